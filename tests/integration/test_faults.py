"""Faults of the real stack: a service stopped or the state database locked mid-flow, then back.

Every test ends in the same final state as a run without the fault, with nothing lost or doubled:
the interrupted step either rides the fault out (retries) or stops with one clear sentence, and a
rerun, ``radlabel reconcile`` or the hooks server's catch-up finishes the work. Every service
stopped here is started again (in a ``finally``), so the rest of the session keeps its stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

import connectors.database
from connectors.adjudicate import Adjudicator
from connectors.adjudications import CONSENSUS_CREATOR
from connectors.database import state_database
from connectors.dicomweb import OrthancDicomWeb
from connectors.hooks.app import SECRET_HEADER
from connectors.label_studio import client
from connectors.sync import Syncer
from radlabel.brush_rle import mask_regions
from connectors.authorship import post_read
from radlabel.errors import RadlabelError
from radlabel.settings import load_settings
from radlabel.phantom import FakePatient, make_ct_study
from tests.integration.conftest import protocol_variant, restart, state_rows


# -- helpers ---------------------------------------------------------------------------------------
def radlabel(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)


def service(stack, name):
    return next(s for s in stack.services if s.name == name)


def ensure_running(*services):
    for svc in services:
        if svc.pid() is None or not svc.is_healthy():
            svc.stop()
            restart(svc)
        assert svc.is_healthy(), f"{svc.title} did not come back"


def store_series(settings, seed, description):
    study = make_ct_study(seed=seed, slices=4, size=48, pixel_spacing=8.0, slice_spacing=2.0, lung_nodules=1,
                          liver_lesions=0)
    for ds in study.datasets:
        ds.SeriesDescription = description
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    return study


def assert_clear(message, seeds, studies=()):
    """One sentence a user can act on: no traceback, no source identifier."""
    assert "\n" not in message.strip() and "Traceback" not in message, message
    phi = [value for seed in seeds for value in FakePatient.from_seed(seed).phi_strings()]
    phi += [uid for study in studies for uid in (study.study_uid, study.series_uid)]
    assert not any(value in message for value in phi), message


def project_tasks(settings, syncer):
    return list(client(settings).tasks.list(project=syncer.project_id(), fields="all", page_size=100))


def assert_one_task_per_series(settings, syncer, studies):
    """Every series done in the state store, with exactly one task of its own in Label Studio."""
    tasks = project_tasks(settings, syncer)
    records = [syncer.state.get(syncer.series_key(s.series_uid), syncer.protocol.id) for s in studies]
    assert all(r is not None and r.status == "done" for r in records), [r and r.status for r in records]
    assert len(tasks) == len(studies) and len({t.data["series"] for t in tasks}) == len(studies)
    assert {t.id for t in tasks} == {r.task_id for r in records}
    assert {t.data["series"] for t in tasks} == {r.pseudo_series_uid for r in records}


def adjudication_row(settings, task_id):
    with state_database(settings).connect() as db:
        return db.execute("SELECT status, seg_sop_uid FROM adjudications WHERE task_id=?", (task_id,)).fetchone()


def wait_final(settings, task_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = adjudication_row(settings, task_id)
        if row and row[0] == "final":
            return row
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not become final within {timeout} s")


def final_segs(settings, study_uid):
    orthanc = OrthancDicomWeb.from_settings(settings)
    return [ds for row in orthanc.search_series(study_uid, Modality="SEG")
            for ds in orthanc.retrieve_series(study_uid, row["0020000E"]["Value"][0])
            if str(ds.get("ContentCreatorName", "")) == CONSENSUS_CREATOR]


def reader(ls, name):
    email = f"{name}@readers.radlabel.local"
    found = [u.id for u in ls.users.list() if u.email == email]
    return found[0] if found else ls.users.create(email=email, username=name).id


def annotate_both(ls, task_id, study):
    masks = {"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7}
    for name in ("reader-a", "reader-b"):  # two readers who agree: consensus, one final SEG
        post_read(load_settings(), ls, task_id, reader(ls, name), mask_regions(masks), "simulated")  # vouched


def ground_truths(ls, task_id):
    return [a for a in ls.annotations.list(id=task_id) if a.ground_truth]


# -- 1. The PACS (Orthanc) restarted mid-sync -------------------------------------------------------------
def test_orthanc_restarted_mid_sync_is_ridden_out_or_resumed_to_one_task_per_series(settings, stack):
    protocol = protocol_variant(settings, "ct-lung-nodules.yaml", "faults_orthanc", "^faults orthanc$", min_slices=2)
    seeds = range(8100, 8104)
    studies = [store_series(settings, seed, "faults orthanc") for seed in seeds]
    orthanc = service(stack, "pacs")  # the Orthanc that sync retrieves from
    if settings.profile == "scale":
        return orthanc_restarted_under_running_jobs(settings, protocol, studies, orthanc)
    said, timers = [], []

    def progress(message):  # called between series, in the syncing thread
        said.append(message)
        if message.startswith("[1/4]"):  # a short outage: back after ~2 s, while series 2 is retrieved
            orthanc.stop()
            timers.append(threading.Timer(2.0, restart, args=(orthanc,)))
            timers[-1].start()
        elif message.startswith("[3/4]"):  # a long one: down until the run has given up
            orthanc.stop()

    syncer = Syncer(settings, protocol, progress)
    try:
        with pytest.raises(RadlabelError) as failed:
            syncer.run()
    finally:
        for timer in timers:
            timer.join()
        ensure_running(orthanc)
    # the short outage was retried transparently; the long one ended in one clear sentence
    assert [m[:5] for m in said] == ["[1/4]", "[2/4]", "[3/4]"], (said, str(failed.value))
    message = str(failed.value)
    assert "the PACS" in message and "radlabel up" in message, message
    assert_clear(message, seeds, studies)
    done = [syncer.state.get(syncer.series_key(s.series_uid), protocol.id) for s in studies]
    assert [r.status if r else None for r in done].count("done") == 3 and None in done  # nothing half-written
    assert len(project_tasks(settings, syncer)) == 3

    again = Syncer(settings, protocol).run()
    assert again.selected == 4 and again.already_done == 3 and again.synced == 1
    assert_one_task_per_series(settings, syncer, studies)
    assert Syncer(settings, protocol).run().already_done == 4  # and nothing more to do


def orthanc_restarted_under_running_jobs(settings, protocol, studies, orthanc):
    """Scale profile: the series are jobs on two workers; Orthanc goes away while they run and comes back;
    the clients' and RQ's retries bring every series to one task."""
    syncer = Syncer(settings, protocol)
    outcome = {}
    running = threading.Thread(target=lambda: outcome.update(summary=syncer.run()), daemon=True)
    running.start()
    deadline = time.monotonic() + 60
    key = f"sync_series:{protocol.id}:%"
    while not state_rows(settings, "SELECT 1 FROM jobs WHERE key LIKE ? AND status='running'", key):
        assert time.monotonic() < deadline, "no sync job started on the workers"
        time.sleep(0.05)
    orthanc.stop()
    try:
        time.sleep(3.0)
    finally:
        restart(orthanc)
    running.join(600)
    assert outcome["summary"].synced == 4 and not outcome["summary"].quarantined
    assert_one_task_per_series(settings, syncer, studies)
    assert {r[0] for r in state_rows(settings, "SELECT status FROM jobs WHERE key LIKE ?", key)} == {"done"}
    assert Syncer(settings, protocol).run().already_done == 4  # and nothing more to do


# -- 2 and 3. Label Studio or the hooks server down around adjudication ---------------------------------------
@pytest.fixture(scope="module")
def adjudication(settings):
    """Two synced series of a protocol of their own: seed -> (task id, research study UID, study)."""
    protocol = protocol_variant(settings, "ct-lung-nodules.yaml", "faults_adjudication", "^faults adjudication$",
                                min_slices=2)
    studies = {seed: store_series(settings, seed, "faults adjudication") for seed in (8110, 8111)}
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    assert summary.synced == 2
    out = {}
    for seed, study in studies.items():
        record = syncer.state.get(syncer.series_key(study.series_uid), protocol.id)
        out[seed] = (record.task_id, record.pseudo_study_uid, study)
    return protocol, out


def test_label_studio_down_during_adjudication_fails_clearly_then_reconciles_to_one_final_seg(
        settings, stack, adjudication):
    protocol, tasks = adjudication
    task_id, study_uid, study = tasks[8110]
    ls = client(settings)
    project_id = ls.tasks.get(id=task_id).project
    label_studio, hooks = service(stack, "label_studio"), service(stack, "hooks")
    hooks.stop()  # so that nothing adjudicates the reads before Label Studio goes down
    try:
        annotate_both(ls, task_id, study)
        label_studio.stop()
        with pytest.raises(RadlabelError) as failed:
            Adjudicator(settings).handle(project_id, task_id)
        assert "Label Studio is not reachable" in str(failed.value) and "radlabel up" in str(failed.value)
        assert_clear(str(failed.value), [8110], [study])
        done = radlabel("reconcile")
        assert done.returncode == 2 and done.stderr.startswith("radlabel: error: Label Studio is not reachable")
        assert_clear(done.stderr, [8110], [study])
        # no partial final state: not final in the state store, no final SEG in Orthanc
        assert adjudication_row(settings, task_id) is None
        assert final_segs(settings, study_uid) == []
        # the hooks server comes back first: an event it cannot handle now is kept for a retry
        restart(hooks)
        body = {"action": "ANNOTATION_CREATED", "task": {"id": task_id}, "project": {"id": project_id}}
        reply = requests.post(settings.url("hooks") + "/webhook", json=body, timeout=5,
                              headers={SECRET_HEADER: settings.secrets()["webhook_secret"]})
        assert reply.status_code == 202
        event_id = reply.json()["queued"]
        deadline = time.monotonic() + 60
        event = None
        while time.monotonic() < deadline:
            if settings.profile == "scale":  # the event became an adjudication job; its failure is recorded
                event = next(iter(state_rows(settings, "SELECT status, attempts, error FROM jobs WHERE key=?",
                                             f"adjudicate:event:{event_id}")), None)
                if event and event[0] == "failed":
                    break
            else:
                event = next(iter(state_rows(settings, "SELECT done, attempts, error FROM events WHERE id=?",
                                             event_id)), None)
                if event and event[1] >= 1:
                    break
            time.sleep(0.25)
        assert event and event[0] in (0, "failed") and event[1] >= 1 and "Label Studio is not reachable" in event[2], event
        assert adjudication_row(settings, task_id) is None
    finally:
        ensure_running(label_studio, hooks)

    outcomes = [o for o in Adjudicator(settings).reconcile(protocol.id) if o.task_id == task_id]
    assert [o.status for o in outcomes] in (["final"], ["already final"])  # the worker's retry may win the race
    status, seg_uid = wait_final(settings, task_id)
    deadline = time.monotonic() + 45  # let the hooks worker's retries of the event run out
    while time.monotonic() < deadline:
        with state_database(settings).connect() as db:
            done, attempts = db.execute("SELECT done, attempts FROM events WHERE id=?", (event_id,)).fetchone()
        if done or attempts >= 5:
            break
        time.sleep(0.5)
    [final] = final_segs(settings, study_uid)
    assert str(final.SOPInstanceUID) == seg_uid
    assert len(ground_truths(ls, task_id)) == 1


def test_hooks_down_while_reads_are_saved_catches_up_to_one_final_seg(settings, stack, adjudication):
    protocol, tasks = adjudication
    task_id, study_uid, study = tasks[8111]
    ls = client(settings)
    hooks = service(stack, "hooks")
    hooks.stop()
    try:
        annotate_both(ls, task_id, study)  # Label Studio's webhooks fail, and it never sends them again
        assert len([a for a in ls.annotations.list(id=task_id) if not a.ground_truth]) == 2
        time.sleep(1)
        assert adjudication_row(settings, task_id) is None
    finally:
        ensure_running(hooks)
    # the hooks server adjudicates what it missed when it starts
    status, seg_uid = wait_final(settings, task_id)
    [final] = final_segs(settings, study_uid)
    assert str(final.SOPInstanceUID) == seg_uid
    # and `radlabel reconcile` afterwards finds it final and changes nothing
    done = radlabel("reconcile", "--json")
    assert done.returncode == 0, done.stderr
    mine = [o for o in json.loads(done.stdout) if o["task_id"] == task_id]
    assert [o["status"] for o in mine] == ["already final"] and mine[0]["seg_sop_uid"] == seg_uid
    assert len(final_segs(settings, study_uid)) == 1 and len(ground_truths(ls, task_id)) == 1


# -- 4. The state database locked ----------------------------------------------------------------------------
class Locker(threading.Thread):
    """Another process's writer: holds an exclusive lock on the state database for a while (SQLite's
    database lock, or PostgreSQL's lock on the sync state table)."""

    def __init__(self, settings, seconds):
        super().__init__(daemon=True)
        self.database, self.seconds = state_database(settings), seconds
        self.holding = threading.Event()

    def run(self):
        with self.database.connect() as db:
            db.execute("BEGIN EXCLUSIVE" if self.database.dialect == "sqlite" else
                       "LOCK TABLE series IN ACCESS EXCLUSIVE MODE")
            self.holding.set()
            time.sleep(self.seconds)

    def __enter__(self):
        self.start()
        assert self.holding.wait(30), "could not take the lock"
        return self

    def __exit__(self, *exc):
        self.join()


def test_a_locked_state_database_is_waited_for_or_fails_clearly_and_a_rerun_completes(settings, monkeypatch):
    protocol = protocol_variant(settings, "ct-lung-nodules.yaml", "faults_database", "^faults database$",
                                min_slices=2)
    first = store_series(settings, 8130, "faults database")
    syncer = Syncer(settings, protocol)
    syncer.project_id()
    # a lock shorter than the timeout: the sync waits for it and completes
    with Locker(settings, 4.0):
        started = time.monotonic()
        summary = syncer.run()
        waited = time.monotonic() - started
    assert summary.synced == 1 and waited >= 3.0, waited
    assert_one_task_per_series(settings, syncer, [first])

    # one longer than the timeout: one clear sentence, nothing half-written, and a rerun completes
    second = store_series(settings, 8131, "faults database")
    monkeypatch.setattr(connectors.database, "LOCK_TIMEOUT_S", 2.0)
    with Locker(settings, 6.0):
        with pytest.raises(RadlabelError, match=r"state database .* locked") as failed:
            Syncer(settings, protocol).run()
    assert_clear(str(failed.value), [8130, 8131], [first, second])
    assert syncer.state.get(syncer.series_key(second.series_uid), protocol.id) is None
    assert len(project_tasks(settings, syncer)) == 1
    research = OrthancDicomWeb.from_settings(settings).search_series(
        SeriesInstanceUID=syncer.deid.uid(second.series_uid))
    assert research == []
    monkeypatch.undo()
    again = Syncer(settings, protocol).run()
    assert again.selected == 2 and again.already_done == 1 and again.synced == 1
    assert_one_task_per_series(settings, syncer, [first, second])
