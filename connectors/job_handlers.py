"""The jobs radlabel runs on its queue, by name, and the queue and workers that run them (wiring).

The queue mechanism (``connectors.jobs``) knows no handler: this module gives the in-process queue
its handlers and is what RQ workers import by name (``jobs.WORKER_ENTRY``).
"""

from __future__ import annotations

from connectors.jobs import JobQueue, run_job, start_worker
from connectors.wiring import Adapters
from radlabel.settings import Settings

__all__ = ["HANDLERS", "job_queue", "run_registered", "work"]


def sync_series(settings: Settings, protocol_id: str, study_uid: str, series_uid: str, force: bool = False):
    from connectors.projects import load_provisioned
    from connectors.sync import Syncer

    return Syncer(settings, load_provisioned(settings, protocol_id)).sync_series(study_uid, series_uid, force=force)


def adjudicate(settings: Settings, project_id: int, task_id: int):
    from connectors.adjudicate import Adjudicator

    outcome = Adjudicator(settings).handle(project_id, task_id)
    return outcome.as_dict() if outcome else None


def predict(settings: Settings, tasks: list[dict], label_config: str):
    from ml_backend.app import store_predictions
    from ml_backend.prelabel import ProtocolPrelabeller

    adapters = Adapters(settings)
    return store_predictions(adapters.label_studio, tasks, label_config, ProtocolPrelabeller(settings, adapters))


HANDLERS = {"sync_series": sync_series, "adjudicate": adjudicate, "predict": predict}


def run_registered(name: str, key: str, arguments: dict, home: str | None = None):
    """What an RQ worker runs for each job (``jobs.WORKER_ENTRY`` names it)."""
    return run_job(HANDLERS, name, key, arguments, home)


def job_queue(settings: Settings) -> JobQueue:
    return Adapters(settings).job_queue(HANDLERS)


def work(settings: Settings, name: str, burst: bool = False) -> None:
    """One RQ worker on this state directory's queue (what ``radlabel worker`` runs)."""
    # RQ forks a work horse per job: modules imported here are inherited, not imported again by every
    # job (measured: ~1.7 s of imports per job before, most of a small study's sync or adjudication).
    import connectors.adjudicate  # noqa: F401
    import connectors.seg_import  # noqa: F401
    import connectors.sync  # noqa: F401

    start_worker(settings, name, burst)
