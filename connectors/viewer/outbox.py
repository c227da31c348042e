"""Readers' SEG submissions: kept on disk first, then stored in Orthanc and imported into Label Studio.

A submit is written atomically to ``$RADLABEL_HOME/outbox/`` before anything else
happens, so it survives Orthanc or Label Studio being down and the viewer front
restarting. Delivery (STOW-RS, then the Label Studio annotation) is retried by a
background thread until it succeeds; each step is recorded in ``reader_submissions``
and repeats safely (the SEG's UID is fixed, the import is recorded once).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from connectors.database import Database

log = logging.getLogger("radlabel.outbox")

SCHEMA = """CREATE TABLE IF NOT EXISTS reader_submissions (
    seg_key TEXT PRIMARY KEY, task_id INTEGER NOT NULL, reader INTEGER NOT NULL, kind TEXT NOT NULL,
    protocol TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, annotation_id INTEGER,
    last_error TEXT, created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL)"""


@dataclass
class Submission:
    seg_key: str
    task_id: int
    reader: int  # Label Studio user id
    kind: str  # reads / calibration / arbitration
    protocol: str  # "<id> <version>"
    status: str = "queued"  # queued -> stored (in Orthanc) -> imported (in Label Studio)
    attempts: int = 0
    annotation_id: int | None = None
    last_error: str | None = None


class Outbox:
    """``store(path)`` STOWs one SEG file (raises on failure); ``import_(submission, path)`` returns the
    Label Studio annotation id (raises on failure). Both are ours, injected so tests can stand in for them."""

    def __init__(self, home: Path, database: Database, store: Callable[[Path], None],
                 import_: Callable[[Submission, Path], int]):
        self.folder = home / "outbox"
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "delivered").mkdir(exist_ok=True)
        self.database = database
        self.store = store
        self.import_ = import_
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        database.ensure(SCHEMA)

    def _connect(self):
        return self.database.connect()

    # -- keeping ------------------------------------------------------------------------
    def path(self, seg_key: str) -> Path:
        return self.folder / f"{seg_key}.dcm"

    def keep(self, submission: Submission, body: bytes) -> Path:
        """Write the SEG durably (fsync, then rename) and record it; repeat submits of one SEG are one entry."""
        target = self.path(submission.seg_key)
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(target)
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT INTO reader_submissions (seg_key, task_id, reader, kind, protocol, status, created, updated)"
                       " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(seg_key) DO NOTHING",
                       (submission.seg_key, submission.task_id, submission.reader, submission.kind,
                        submission.protocol, "queued", now, now))
        return target

    def get(self, seg_key: str) -> Submission | None:
        with self._connect() as db:
            row = db.execute("SELECT seg_key, task_id, reader, kind, protocol, status, attempts, annotation_id, last_error"
                             " FROM reader_submissions WHERE seg_key=?", (seg_key,)).fetchone()
        return Submission(*row) if row else None

    def for_task(self, task_id: int, reader: int) -> list[Submission]:
        with self._connect() as db:
            keys = db.execute("SELECT seg_key FROM reader_submissions WHERE task_id=? AND reader=? ORDER BY created",
                              (task_id, reader)).fetchall()
        return [self.get(key) for (key,) in keys]

    def pending(self) -> list[Submission]:
        with self._connect() as db:
            keys = db.execute("SELECT seg_key FROM reader_submissions WHERE status != 'imported' ORDER BY created").fetchall()
        return [self.get(key) for (key,) in keys]

    def _update(self, submission: Submission) -> None:
        with self._connect() as db:
            db.execute("UPDATE reader_submissions SET status=?, attempts=?, annotation_id=?, last_error=?, updated=?"
                       " WHERE seg_key=?", (submission.status, submission.attempts, submission.annotation_id,
                                            submission.last_error, time.time(), submission.seg_key))

    # -- delivering ---------------------------------------------------------------------
    def deliver(self, seg_key: str) -> Submission:
        """One delivery attempt: STOW if not stored yet, then import. Serialised across threads and processes."""
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            submission = self.get(seg_key)
            if submission is None or submission.status == "imported":
                return submission
            path = self.path(seg_key)
            submission.attempts += 1
            try:
                if submission.status == "queued":
                    self.store(path)
                    submission.status, submission.last_error = "stored", None
                    self._update(submission)
                submission.annotation_id = self.import_(submission, path)
                submission.status, submission.last_error = "imported", None
                path.replace(self.folder / "delivered" / path.name)
            except Exception as exc:  # kept for the next attempt whatever went wrong; the reason is recorded
                submission.last_error = str(exc)[:300] or exc.__class__.__name__
                log.warning("submission %s: attempt %d failed: %s", seg_key, submission.attempts, submission.last_error)
            self._update(submission)
            return submission

    def deliver_pending(self) -> list[Submission]:
        return [self.deliver(s.seg_key) for s in self.pending()]

    def start(self, interval: float) -> None:
        """Retry pending deliveries every ``interval`` seconds (and at once when woken) in a daemon thread."""
        if self._thread and self._thread.is_alive():
            return

        def loop():
            while True:
                self._wake.wait(interval)
                self._wake.clear()
                try:
                    self.deliver_pending()
                except Exception:  # the loop must outlive any one failure (e.g. the state DB busy)
                    log.exception("outbox retry pass failed")

        self._thread = threading.Thread(target=loop, name="radlabel-outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

