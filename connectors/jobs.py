"""The job queue: long steps run in-process (default profile) or on RQ workers over Redis (scale profile).

A job is a handler's name, JSON arguments and an idempotency key. This module is the mechanism only;
which handler runs a name is the wiring's business (``connectors.job_handlers``): the in-process
queue is given the handlers, and RQ workers run them by the name ``WORKER_ENTRY`` (RQ imports it in
the worker), so a stage that submits jobs imports none of the handlers' code. The job store (a table
in the state database) records each key's outcome: a key already done is not run again, so a job
enqueued twice, retried after a worker was killed, or replayed by a reconcile has one effect. The
functions themselves are idempotent too (a synced series is found in the sync state; a final task
is never adjudicated again), the key only saves the repeated work.

RQ (Label Studio's own queue library) carries the jobs in the scale profile: retries with backoff,
workers started by ``radlabel up --profile scale`` (``radlabel worker`` is one of them).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

from connectors.database import state_database
from radlabel.errors import RadlabelError
from radlabel.settings import Settings, load_settings

__all__ = ["JobQueue", "JobStore", "InProcessQueue", "RQQueue", "Submitted", "run_job", "start_worker"]

QUEUE_NAME = "radlabel"
WORKER_ENTRY = "connectors.job_handlers.run_registered"  # what an RQ worker runs: run_job with the registered handlers
Handler = Callable[..., object]  # handler(settings, **arguments) -> a JSON-able result
RETRY_INTERVALS = [2, 10, 30]  # seconds between RQ's attempts of a failed job

SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    result TEXT, error TEXT, updated DOUBLE PRECISION NOT NULL)"""


# -- bookkeeping ---------------------------------------------------------------------------------------------
class JobStore:
    def __init__(self, settings: Settings):
        self.database = state_database(settings)
        self.database.ensure(SCHEMA)

    def _connect(self):
        return self.database.connect()

    def get(self, key: str) -> tuple[str, object] | None:
        with self._connect() as db:
            row = db.execute("SELECT status, result, error FROM jobs WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1]) if row[1] else row[2]

    def mark(self, key: str, name: str, status: str, result=None, error: str | None = None) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO jobs VALUES (?,?,?,1,?,?,?) ON CONFLICT(key) DO UPDATE SET status=excluded.status,"
                       " attempts=jobs.attempts + CASE WHEN excluded.status='running' THEN 1 ELSE 0 END, result=excluded.result,"
                       " error=excluded.error, updated=excluded.updated",
                       (key, name, status, json.dumps(result, default=str) if result is not None else None, error,
                        time.time()))

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            return dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())


def run_job(handlers: Mapping[str, Handler], name: str, key: str, arguments: dict, home: str | None = None):
    """Run one job once per key (what RQ workers run through WORKER_ENTRY, and the in-process path)."""
    settings = load_settings() if home is None else _settings_for(home)
    store = JobStore(settings)
    done = store.get(key)
    if done and done[0] == "done":
        return done[1]
    if name not in handlers:
        raise RadlabelError(f"unknown job {name!r}: expected one of {', '.join(handlers)}.")
    store.mark(key, name, "running")
    try:
        result = handlers[name](settings, **arguments)
    except Exception as exc:
        # The class and the first line only: messages of ours carry no PHI, a traceback might.
        store.mark(key, name, "failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        raise
    store.mark(key, name, "done", result=result)
    return result


def _settings_for(home: str) -> Settings:
    import os

    os.environ["RADLABEL_HOME"] = home
    return load_settings()


# -- queues ----------------------------------------------------------------------------------------------------
@dataclass
class Submitted:
    key: str
    handle: object = None  # the RQ job, or the in-process result
    error: str | None = None


class JobQueue(Protocol):
    """The port: submit a job (once per key), wait for a batch of them ((result, error) each, in order)."""

    def submit(self, name: str, key: str, **arguments) -> Submitted: ...

    def wait(self, submitted: list[Submitted], timeout: float = 3600) -> list[tuple[object, str | None]]: ...


class InProcessQueue:
    """The default: a job runs at once in the calling process."""

    def __init__(self, settings: Settings, handlers: Mapping[str, Handler]):
        self.settings = settings
        self.handlers = handlers

    def submit(self, name: str, key: str, **arguments) -> Submitted:
        try:
            return Submitted(key, run_job(self.handlers, name, key, arguments, str(self.settings.home)))
        except Exception as exc:  # reported by wait(), as a worker's failure would be
            return Submitted(key, None, f"{type(exc).__name__}: {exc}")

    def wait(self, submitted: list[Submitted], timeout: float = 3600) -> list[tuple[object, str | None]]:
        return [(s.handle, s.error) for s in submitted]


class RQQueue:
    """The scale profile: jobs go to Redis; ``radlabel worker`` processes run them."""

    def __init__(self, settings: Settings):
        from redis import Redis
        from rq import Queue

        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url)
        self.queue = Queue(QUEUE_NAME, connection=self.redis, default_timeout=1800)

    def submit(self, name: str, key: str, **arguments) -> Submitted:
        from rq import Retry
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        try:  # a key already queued, running or done is not enqueued again (RQ would run it twice)
            existing = Job.fetch(_rq_id(key), connection=self.redis)
            if existing.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED,
                                                      JobStatus.SCHEDULED, JobStatus.FINISHED):
                return Submitted(key, existing)
        except NoSuchJobError:
            pass
        job = self.queue.enqueue(WORKER_ENTRY, name, key, arguments, str(self.settings.home), job_id=_rq_id(key),
                                 retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                                 result_ttl=86400, failure_ttl=7 * 86400)
        return Submitted(key, job)

    def wait(self, submitted: list[Submitted], timeout: float = 3600) -> list[tuple[object, str | None]]:
        from rq.job import JobStatus

        deadline = time.monotonic() + timeout
        pending = {s.key: s for s in submitted}
        results: dict[str, tuple[object, str | None]] = {}
        while pending and time.monotonic() < deadline:
            for key, item in list(pending.items()):
                job = item.handle
                status = job.get_status(refresh=True)
                if status == JobStatus.FINISHED:
                    results[key] = (job.return_value(), None)
                elif status == JobStatus.FAILED and not job.retries_left:
                    results[key] = (None, (job.latest_result().exc_string or "failed").strip().splitlines()[-1])
                else:
                    continue
                del pending[key]
            if pending:
                time.sleep(0.2)
        for key in pending:
            results[key] = (None, f"not finished within {timeout:.0f} s (is a worker running? `radlabel status`)")
        return [results[s.key] for s in submitted]


def _rq_id(key: str) -> str:
    import hashlib

    return "rl-" + hashlib.sha256(key.encode()).hexdigest()[:32]  # RQ ids: no spaces or colons


def start_worker(settings: Settings, name: str, burst: bool = False) -> None:
    """One RQ worker on this state directory's queue (``connectors.job_handlers.work`` loads the handlers first)."""
    from redis import Redis
    from rq import Queue, Worker

    JobStore(settings)  # the jobs table exists before the first horse
    redis = Redis.from_url(settings.redis_url)
    Worker([Queue(QUEUE_NAME, connection=redis)], connection=redis, name=name).work(burst=burst, with_scheduler=True)
