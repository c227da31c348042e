"""Hooks server: receives Label Studio webhooks.

It answers within milliseconds (Label Studio waits 1 s and never retries) and
only records the event in a durable queue; the work is done elsewhere.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
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
                "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, received REAL, action TEXT, body TEXT)"
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

    def count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def create_app() -> Flask:
    settings = load_settings()
    secret = settings.secrets()["webhook_secret"].encode()
    queue = EventQueue(settings.home / "hooks" / "events.sqlite")
    app = Flask(__name__)

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
