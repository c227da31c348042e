"""Adjudication as a stage, on in-memory ports: counted reads → consensus → ground truth + final SEG, once;
a read saved in another reader's name is never counted (the integration tests check the same on the real servers)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.adjudications import CONSENSUS_CREATOR, CONSENSUS_USER
from connectors.authorship import post_read
from connectors.label_studio import user_id
from radlabel.brush_rle import mask_regions
from tests.unit.fakes import home_settings, liver_protocol, synced_case


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def synced(settings):
    return synced_case(settings, liver_protocol())


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
