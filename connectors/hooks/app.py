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
import threading
import time

from flask import Flask, request

from connectors.database import Database
from connectors.service_auth import SECRET_HEADER
from connectors.wiring import Adapters
from radlabel.http_guard import json_body, limit_body_size
from radlabel.settings import load_settings

# Label Studio sends a task's data and its annotation; brush masks of a few hundred slices stay far below.
MAX_WEBHOOK_BYTES = 64 * 2**20
MAX_ATTEMPTS = 8  # tries of one event before only `radlabel reconcile` (or the next start's catch-up) takes it


class EventQueue:
    """Webhook events kept in the state database until a worker takes them."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, received DOUBLE PRECISION,"
              " action TEXT, body TEXT, done INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
              " error TEXT, next_try DOUBLE PRECISION NOT NULL DEFAULT 0)")

    def __init__(self, database: Database):
        self.database = database
        database.ensure(self.SCHEMA)

    def _connect(self):
        return self.database.connect()

    def put(self, action: str, body: dict) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO events (received, action, body) VALUES (?, ?, ?) RETURNING id",
                (time.time(), action, json.dumps(body)),
            )
            return int(cursor.fetchone()[0])

    def pending(self, limit: int = 20) -> list[tuple[int, str, dict]]:
        with self._connect() as db:
            rows = db.execute("SELECT id, action, body FROM events WHERE done=0 AND attempts<? AND next_try<=?"
                              " ORDER BY id LIMIT ?", (MAX_ATTEMPTS, time.time(), limit)).fetchall()
        return [(row[0], row[1], json.loads(row[2])) for row in rows]

    def finish(self, event_id: int, error: str | None = None) -> None:
        with self._connect() as db:
            # A failed event waits 2, 4, 8 … 128 s before its next try: ~4 min in all, longer than a Label
            # Studio or Orthanc restart takes.
            db.execute("UPDATE events SET done=?, attempts=attempts+1, error=?, next_try=? + (1 << (attempts + 1))"
                       " WHERE id=?", (0 if error else 1, error, time.time(), event_id))

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}


def _annotation_ids(body: dict) -> tuple[int, int]:
    """(project id, task id) of an annotation event; ValueError (recorded as the event's error) when the
    body does not hold them as positive integers (a bool, float or text is not taken for an id)."""
    def part(name: str) -> dict:
        value = body.get(name)
        return value if isinstance(value, dict) else {}

    def positive(value) -> int | None:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63 else None

    project = positive(part("project").get("id")) or positive(part("task").get("project"))
    task = positive(part("task").get("id"))
    if project is None or task is None:
        raise ValueError("the annotation event names no project and task ids (positive integers)")
    return project, task


def _note_in_task_index(database: Database, body: dict) -> None:
    """The readers' worklists learn of the read without listing Label Studio; the index is a cache, so
    a failure here is logged and left to the worklist's own catch-up, never failing the event."""
    from connectors.task_index import note_annotation_event

    try:
        note_annotation_event(database, body)
    except Exception as exc:  # noqa: BLE001 - see above
        logging.getLogger("radlabel.hooks").warning("task index not updated: %s", exc.__class__.__name__)


def work(queue: EventQueue, settings, stop: threading.Event, interval: float = 0.5,
         adapters: Adapters | None = None) -> None:
    """Take queued events in order; annotation events go to the adjudicator (in this process by
    default, as a job for the workers in the scale profile)."""
    from connectors.adjudicate import Adjudicator

    adapters = adapters or Adapters(settings)
    adjudicator = None
    jobs = adapters.worker_queue
    while not stop.is_set():
        try:
            events = queue.pending()
        except Exception as exc:  # the state database locked or away for a while: the worker lives on
            logging.getLogger("radlabel.hooks").warning("reading the event queue failed: %s", exc.__class__.__name__)
            stop.wait(5 * interval)
            continue
        for event_id, action, body in events:
            try:
                if action in ANNOTATION_ACTIONS:
                    project, task = _annotation_ids(body)
                    _note_in_task_index(adapters.database, body)
                    if jobs:
                        jobs.submit("adjudicate", f"adjudicate:event:{event_id}", project_id=project, task_id=task)
                    else:
                        adjudicator = adjudicator or Adjudicator(settings, adapters=adapters)
                        adjudicator.handle(project, task)
                queue.finish(event_id)
            except Exception as exc:  # kept for a retry (MAX_ATTEMPTS); reconcile catches the rest
                queue.finish(event_id, f"{exc.__class__.__name__}: {str(exc)[:300]}")
                logging.getLogger("radlabel.hooks").warning("event %s failed: %s", event_id, exc.__class__.__name__)
        if not events:
            stop.wait(interval)


def catch_up(settings, adapters: Adapters | None = None) -> None:
    """Once at start: adjudicate what was annotated while this server was down (Label Studio never
    re-sends a webhook it could not deliver) — `radlabel reconcile`, idempotent and locked per task."""
    from connectors.adjudicate import Adjudicator

    log = logging.getLogger("radlabel.hooks")
    try:
        outcomes = Adjudicator(settings, adapters=adapters).reconcile()
    except Exception as exc:  # Label Studio not up yet, say: the next events or `radlabel reconcile` catch up
        log.warning("catch-up at start failed (%s): run `radlabel reconcile` once Label Studio is up",
                    exc.__class__.__name__)
        return
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    log.warning("catch-up at start: %s", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing")


def create_app(start_worker: bool = True) -> Flask:
    settings = load_settings()
    secret = settings.secrets()["webhook_secret"].encode()
    adapters = Adapters(settings)
    queue = EventQueue(adapters.database)
    app = Flask(__name__)
    limit_body_size(app, MAX_WEBHOOK_BYTES)  # chunked bodies included
    if start_worker:
        stop = threading.Event()
        threading.Thread(target=work, args=(queue, settings, stop, 0.5, adapters), daemon=True, name="radlabel-worker").start()
        threading.Thread(target=catch_up, args=(settings, adapters), daemon=True, name="radlabel-catch-up").start()

    @app.get("/health")
    def health():
        return {"status": "UP"}

    @app.post("/webhook")
    def webhook():
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return {"error": f"missing or wrong {SECRET_HEADER} header"}, 403
        body = json_body(MAX_WEBHOOK_BYTES)  # None for invalid JSON, including JSON nested thousands deep
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return {"error": "the body must be a JSON object with an 'action' string"}, 400
        try:
            body["action"].encode("utf-8")
            json.dumps(body)  # what put() stores: refused here, before anything is written
        except (UnicodeEncodeError, RecursionError, ValueError):
            return {"error": "the body must be a JSON object of valid text (an 'action' without lone surrogates, "
                             "not nested too deeply)"}, 400
        event_id = queue.put(body["action"], body)
        return {"queued": event_id}, 202

    return app
