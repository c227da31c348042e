"""The scale profile: Redis + RQ workers run the sync jobs of the same pipeline, nothing lost or doubled."""

from __future__ import annotations


import pytest

from connectors.dicomweb import OrthancDicomWeb
from connectors.job_handlers import job_queue
from connectors.jobs import JobStore
from connectors.label_studio import client
from connectors.sync import Syncer
from radlabel.phantom import make_ct_study
from tests.integration.conftest import protocol_variant, state_rows

STUDIES = 24


@pytest.fixture(scope="module")
def scale(settings):
    """The session's stack in the scale profile (PostgreSQL, Redis, two RQ workers): `make test` runs the
    integration tests a second time with RADLABEL_PROFILE=scale, and these tests in that session only."""
    if settings.profile != "scale" or settings.workers < 2:
        pytest.skip("scale-profile session only (RADLABEL_PROFILE=scale RADLABEL_WORKERS=2; `make test` runs it)")
    return settings


def test_sync_jobs_on_two_workers_lose_and_double_nothing(scale):
    protocol = protocol_variant(scale, "ct-lung-nodules.yaml", "scale_test", "^scale test$", min_slices=2)
    orthanc = OrthancDicomWeb.pacs_loader(scale)
    uids = set()
    for seed in range(STUDIES):
        study = make_ct_study(seed=5000 + seed, slices=4, size=48, pixel_spacing=8.0, slice_spacing=2.0,
                              lung_nodules=1, liver_lesions=0)
        for ds in study.datasets:
            ds.SeriesDescription = "scale test"
        assert not orthanc.store(study.datasets).failed
        uids.add(study.series_uid)
    assert type(job_queue(scale)).__name__ == "RQQueue"
    syncer = Syncer(scale, protocol)
    summary = syncer.run()
    assert summary.synced == STUDIES and not summary.quarantined
    keys = {syncer.series_key(uid) for uid in uids}
    assert {s["series_key"] for s in summary.series} == keys
    tasks = list(client(scale).tasks.list(project=syncer.project_id(), fields="all", page_size=100))
    assert len(tasks) == STUDIES and len({t.data["series"] for t in tasks}) == STUDIES  # one task per series
    workers = {r[0] for r in state_rows(scale, "SELECT DISTINCT status FROM jobs WHERE key LIKE 'sync_series:scale_test:%'")}
    assert workers == {"done"} and JobStore(scale).counts()["done"] >= STUDIES
    again = Syncer(scale, protocol).run()  # a second run finds everything done: no job runs twice
    assert again.synced == 0 and again.already_done == STUDIES
    assert len(list(client(scale).tasks.list(project=syncer.project_id(), page_size=100))) == STUDIES


def _horses(settings) -> list[int]:
    """PIDs of the children of our workers (work horses, and RQ's scheduler process)."""
    import json
    import subprocess

    pids = []
    for pid_file in settings.run.glob("worker-*.pid"):
        worker = json.loads(pid_file.read_text())["pid"]
        found = subprocess.run(["pgrep", "-P", str(worker)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in found]
    return pids


def test_a_worker_killed_mid_job_is_retried_to_one_result(scale):
    import os
    import signal
    import threading
    import time

    protocol = protocol_variant(scale, "ct-lung-nodules.yaml", "scale_fault", "^scale fault$", min_slices=2)
    study = make_ct_study(seed=6100, slices=40, size=256, pixel_spacing=1.5, slice_spacing=2.0)
    for ds in study.datasets:
        ds.SeriesDescription = "scale fault"
    assert not OrthancDicomWeb.pacs_loader(scale).store(study.datasets).failed
    syncer = Syncer(scale, protocol)
    outcome = {}
    idle = set(_horses(scale))  # schedulers: a work horse is a child that appears with a job
    runner = threading.Thread(target=lambda: outcome.update(summary=syncer.run()))
    runner.start()
    deadline, killed = time.monotonic() + 60, None
    while killed is None and time.monotonic() < deadline:
        running = state_rows(scale, "SELECT 1 FROM jobs WHERE key LIKE 'sync_series:scale_fault:%' AND status='running'")
        horses = [pid for pid in _horses(scale) if pid not in idle]
        if running and horses:  # the job has started in a work horse: kill it mid-job
            os.kill(horses[0], signal.SIGKILL)
            killed = horses[0]
        time.sleep(0.05)
    runner.join(timeout=300)
    assert killed, "no job was seen running"
    summary = outcome["summary"]
    assert summary.synced == 1
    status, attempts = state_rows(scale, "SELECT status, attempts FROM jobs WHERE key LIKE 'sync_series:scale_fault:%'")[0]
    assert status == "done" and attempts >= 2  # run again after the kill
    tasks = list(client(scale).tasks.list(project=syncer.project_id(), page_size=100))
    assert len(tasks) == 1


def test_adjudication_locks_are_postgresql_advisory_locks_any_machine_sees(scale):
    """With PostgreSQL the per-task lock lives in the server (workers on other machines see it; a dead
    holder's session frees it), not in a file of one machine's state directory."""
    from connectors.database import state_database, state_lock

    def free_elsewhere() -> bool:  # another session, as a worker on another machine would have
        with state_database(scale).connect() as db:
            taken = db.execute("SELECT pg_try_advisory_xact_lock(hashtextextended('radlabel:task-lock-test', 0))")
            return bool(taken.fetchone()[0])

    with state_lock(scale, "task-lock-test"):
        assert not free_elsewhere()
        assert not (scale.home / "locks" / "task-lock-test.lock").exists()
    assert free_elsewhere()
