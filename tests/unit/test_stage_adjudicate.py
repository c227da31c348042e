"""Adjudication as a stage, on in-memory ports: counted reads → consensus → ground truth + final SEG, once;
a read saved in another reader's name is never counted (the integration tests check the same on the real servers)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from connectors.adjudicate import Adjudicator
from connectors.adjudications import CONSENSUS_CREATOR, CONSENSUS_USER, Adjudications
from connectors.authorship import post_read
from connectors.database import state_database
from connectors.label_studio import user_id
from connectors.sync import Syncer
from radlabel.brush_rle import mask_regions
from radlabel.protocol import load_template
from tests.unit.fakes import TEMPLATES, FakeArchive, FakeLabelStudio, ct_study, home_settings, sync_ports


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def two_readers():
    protocol = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    selection = protocol.selection.model_copy(update={"min_slices": 2})
    readers = protocol.readers.model_copy(update={"per_study": 2})
    qa = protocol.qa.model_copy(update={"sampling_rate": 0.0})
    return protocol.model_copy(update={"version": "1.0.1", "readers": readers, "qa": qa, "selection": selection})


@pytest.fixture
def synced(settings, two_readers):
    from connectors.provision import Provisioner

    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(two_readers).project_id
    ports = sync_ports(settings, FakeArchive(ct_study(7).datasets), ls)
    Syncer(settings, two_readers, adapters=ports).run()
    (task,) = ls.tasks.list(project=project_id)
    database = state_database(settings)
    adjudicator = Adjudicator(settings, adapters=SimpleNamespace(
        label_studio=ls, research_archive=ports.research_archive, database=database,
        adjudications=Adjudications(database)))
    return SimpleNamespace(ls=ls, project_id=project_id, task=task, adjudicator=adjudicator,
                           archive=ports.research_archive)


def _liver(task) -> dict:
    mask = np.zeros((len(task.data["images"]), task.data["rows"], task.data["columns"]), bool)
    mask[1:3, 8:20, 8:20] = True
    return {"liver": mask}


def _reader(ls, n: int) -> int:
    return user_id(ls, f"reader{n}@hospital.org", create_as=f"reader{n}")


def test_two_agreeing_reads_become_final_labels_and_one_final_seg(settings, synced):
    for n in (1, 2):
        post_read(settings, synced.ls, synced.task.id, _reader(synced.ls, n), mask_regions(_liver(synced.task)), "simulated")
    outcome = synced.adjudicator.handle(synced.project_id, synced.task.id)
    assert outcome.status == "final" and outcome.seg_sop_uid
    finals = [a for a in synced.task.annotations if a.get("ground_truth")]
    assert [a["completed_by"] for a in finals] == [user_id(synced.ls, CONSENSUS_USER)]
    segs = [ds for series in synced.archive.series.values() for ds in series if ds.Modality == "SEG"]
    assert [str(ds.SOPInstanceUID) for ds in segs] == [outcome.seg_sop_uid]
    assert str(segs[0].ContentCreatorName) == CONSENSUS_CREATOR
    assert synced.adjudicator.adjudications.row(synced.task.id).status == "final"
    again = synced.adjudicator.handle(synced.project_id, synced.task.id)
    assert again.status == "already final" and len(synced.archive.series) == 2  # research copy + one final SEG


def test_a_read_saved_in_another_readers_name_is_not_counted(settings, synced):
    first, second = _reader(synced.ls, 1), _reader(synced.ls, 2)
    post_read(settings, synced.ls, synced.task.id, first, mask_regions(_liver(synced.task)), "simulated")
    synced.task.annotations.append({"id": 999, "result": mask_regions(_liver(synced.task)), "completed_by": second,
                                    "updated_by": first})  # the first reader saves a read as the second
    outcome = synced.adjudicator.handle(synced.project_id, synced.task.id)
    assert (outcome.status, outcome.detail) == ("waiting", "1 of 2 counted reads")
    assert synced.adjudicator.adjudications.row(synced.task.id) is None
