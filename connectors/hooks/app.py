"""Hooks server: receives Label Studio webhooks.

It answers within milliseconds (Label Studio waits 1 s and never retries) and
only records the event in a durable queue; a worker thread takes events in
order and hands annotation events to the adjudicator. ``radlabel reconcile``
catches whatever never arrived.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, request

from radlabel.settings import load_settings

SECRET_HEADER = "X-Radlabel-Secret"


class EventQueue:
    """Webhook events kept in SQLite until a worker takes them."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, received REAL, action TEXT, body TEXT,"
                " done INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,"
                " next_try REAL NOT NULL DEFAULT 0)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def put(self, action: str, body: dict) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO events (received, action, body) VALUES (?, ?, ?)",
                (time.time(), action, json.dumps(body)),
            )
            return int(cursor.lastrowid)

    def pending(self, limit: int = 20) -> list[tuple[int, str, dict]]:
        with self._connect() as db:
            rows = db.execute("SELECT id, action, body FROM events WHERE done=0 AND attempts<5 AND next_try<=?"
                              " ORDER BY id LIMIT ?", (time.time(), limit)).fetchall()
        return [(row[0], row[1], json.loads(row[2])) for row in rows]

    def finish(self, event_id: int, error: str | None = None) -> None:
        with self._connect() as db:
            # A failed event waits 2, 4, 8, 16 s before its next try (Orthanc or Label Studio may be restarting).
            db.execute("UPDATE events SET done=?, attempts=attempts+1, error=?, next_try=? + (1 << (attempts + 1))"
                       " WHERE id=?", (0 if error else 1, error, time.time(), event_id))

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


def work(queue: EventQueue, settings, stop: threading.Event, interval: float = 0.5) -> None:
    """Take queued events in order; annotation events go to the adjudicator (in this process by
    default, as a job for the workers in the scale profile)."""
    from connectors.adjudicate import Adjudicator
    from connectors.jobs import RQQueue

    adjudicator = None
    jobs = RQQueue(settings) if settings.profile == "scale" else None
    while not stop.is_set():
        events = queue.pending()
        for event_id, action, body in events:
            try:
                project = (body.get("project") or {}).get("id") or (body.get("task") or {}).get("project")
                task = (body.get("task") or {}).get("id")
                if action in ANNOTATION_ACTIONS and project and task:
                    if jobs:
                        jobs.submit("adjudicate", f"adjudicate:event:{event_id}", project_id=int(project),
                                    task_id=int(task))
                    else:
                        adjudicator = adjudicator or Adjudicator(settings)
                        adjudicator.handle(int(project), int(task))
                queue.finish(event_id)
            except Exception as exc:  # kept for a retry (at most 5 attempts); reconcile catches the rest
                queue.finish(event_id, f"{exc.__class__.__name__}: {str(exc)[:300]}")
                logging.getLogger("radlabel.hooks").warning("event %s failed: %s", event_id, exc.__class__.__name__)
        if not events:
            stop.wait(interval)


def create_app(start_worker: bool = True) -> Flask:
    settings = load_settings()
    secret = settings.secrets()["webhook_secret"].encode()
    queue = EventQueue(settings.home / "hooks" / "events.sqlite")
    app = Flask(__name__)
    if start_worker:
        stop = threading.Event()
        threading.Thread(target=work, args=(queue, settings, stop), daemon=True, name="radlabel-worker").start()

    @app.get("/health")
    def health():
        return {"status": "UP"}

    @app.post("/webhook")
    def webhook():
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return {"error": f"missing or wrong {SECRET_HEADER} header"}, 403
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return {"error": "the body must be a JSON object with an 'action' string"}, 400
        event_id = queue.put(body["action"], body)
        return {"queued": event_id}, 202

    return app
