"""Long steps as jobs: run in-process (default profile) or on RQ workers over Redis (scale profile).

A job is a registered function name, JSON arguments and an idempotency key. The job store (a table
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
from typing import Callable

from connectors.database import state_database
from radlabel.errors import RadlabelError
from radlabel.settings import Settings, load_settings

QUEUE_NAME = "radlabel"
RETRY_INTERVALS = [2, 10, 30]  # seconds between RQ's attempts of a failed job

SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
    result TEXT, error TEXT, updated DOUBLE PRECISION NOT NULL)"""


# -- the jobs ------------------------------------------------------------------------------------------
def _sync_series(settings: Settings, protocol_id: str, study_uid: str, series_uid: str, force: bool = False):
    from connectors.projects import load_provisioned
    from connectors.sync import Syncer

    return Syncer(settings, load_provisioned(settings, protocol_id)).sync_series(study_uid, series_uid, force=force)


def _adjudicate(settings: Settings, project_id: int, task_id: int):
    from connectors.adjudicate import Adjudicator

    outcome = Adjudicator(settings).handle(project_id, task_id)
    return outcome.as_dict() if outcome else None


def _predict(settings: Settings, tasks: list[dict], label_config: str):
    from ml_backend.app import store_predictions
    from ml_backend.prelabel import ProtocolPrelabeller

    return store_predictions(settings, tasks, label_config, ProtocolPrelabeller(settings))


JOBS: dict[str, Callable] = {"sync_series": _sync_series, "adjudicate": _adjudicate, "predict": _predict}


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


def run_job(name: str, key: str, arguments: dict, home: str | None = None):
    """Run one job once per key (the entry point RQ workers call, and the in-process path)."""
    settings = load_settings() if home is None else _settings_for(home)
    store = JobStore(settings)
    done = store.get(key)
    if done and done[0] == "done":
        return done[1]
    if name not in JOBS:
        raise RadlabelError(f"unknown job {name!r}: expected one of {', '.join(JOBS)}.")
    store.mark(key, name, "running")
    try:
        result = JOBS[name](settings, **arguments)
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


class InProcessQueue:
    """The default: a job runs at once in the calling process."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def submit(self, name: str, key: str, **arguments) -> Submitted:
        try:
            return Submitted(key, run_job(name, key, arguments, str(self.settings.home)))
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
        job = self.queue.enqueue(run_job, name, key, arguments, str(self.settings.home), job_id=_rq_id(key),
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


def job_queue(settings: Settings):
    return RQQueue(settings) if settings.profile == "scale" else InProcessQueue(settings)


def work(settings: Settings, name: str, burst: bool = False) -> None:
    """One RQ worker on this state directory's queue (what ``radlabel worker`` runs)."""
    from redis import Redis
    from rq import Queue, Worker

    # RQ forks a work horse per job: modules imported here are inherited, not imported again by every
    # job (measured: ~1.7 s of imports per job before, most of a small study's sync or adjudication).
    import connectors.adjudicate  # noqa: F401
    import connectors.seg_import  # noqa: F401
    import connectors.sync  # noqa: F401

    JobStore(settings)  # the jobs table exists before the first horse
    redis = Redis.from_url(settings.redis_url)
    Worker([Queue(QUEUE_NAME, connection=redis)], connection=redis, name=name).work(burst=burst, with_scheduler=True)

