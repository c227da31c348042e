"""The QA desk as a stage, on in-memory ports: a final task becomes gold; a reader's calibration case is a
disguised copy of it; a good read certifies, a poor one does not, and only certified readers' reads count."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.authorship import post_read
from connectors.projects import CALIBRATION_MARKER
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.protocol.enum import ReaderTier
from tests.unit.fakes import home_settings, liver_protocol, synced_case
from tests.unit.test_stage_adjudicate import _liver, _reader


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def protocol():
    one_case = liver_protocol()
    qa = one_case.qa.model_copy(update={"calibration": one_case.qa.calibration.model_copy(update={"cases": 1})})
    return one_case.model_copy(update={"qa": qa})


@pytest.fixture
def gold(settings, protocol):
    """A synced task adjudicated to final labels by two agreeing readers, then made the gold standard."""
    case = synced_case(settings, protocol)
    for n in (1, 2):
        post_read(settings, case.ls, case.task.id, _reader(case.ls, n), mask_regions(_liver(case.task)), "simulated")
    assert case.adjudicator.handle(case.project_id, case.task.id).status == "final"
    case.desk = case.adjudicator.quality_desk()
    assert case.desk.add_gold(protocol, [case.task.id]) == [case.task.id]
    return case


def _calibration_case(gold, protocol, reader: int):
    certification, progress = gold.desk.calibrate(protocol, reader, ReaderTier.RADIOLOGIST)
    assert certification is None and (progress["cases"], progress["read"]) == (1, 0)
    (task_id,) = gold.desk.calibration_tasks(protocol.id, reader)
    return gold.ls.tasks.get(task_id), progress["project"]


def test_a_calibration_case_is_a_disguised_copy_in_the_readers_own_project(gold, protocol):
    reader = _reader(gold.ls, 3)
    copy, project = _calibration_case(gold, protocol, reader)
    assert f"{CALIBRATION_MARKER} {protocol.id} {protocol.version} {reader}" in gold.ls.projects.get(project).description
    assert copy.data["series"] != gold.task.data["series"] and copy.data["study"] != gold.task.data["study"]
    assert not set(copy.data["sop_instance_uids"]) & set(gold.task.data["sop_instance_uids"])
    assert (copy.data["study"], copy.data["series"]) in gold.archive.series  # stored again under its new UIDs


def test_a_good_read_certifies_a_poor_one_does_not_and_only_certified_reads_count(settings, gold, protocol):
    good, poor = _reader(gold.ls, 3), _reader(gold.ls, 4)
    shifted = {"liver": np.roll(_liver(gold.task)["liver"], 10, axis=2)}  # the liver drawn 10 pixels off
    for reader, masks in ((good, _liver(gold.task)), (poor, shifted)):
        copy, _ = _calibration_case(gold, protocol, reader)
        post_read(settings, gold.ls, copy.id, reader, mask_regions(masks), "simulated")
        outcome = gold.desk.handle_event(protocol, "calibration", copy.id)
        assert outcome.status == ("certified" if reader == good else "not certified")
    assert gold.desk.counts(protocol, good) and not gold.desk.counts(protocol, poor)


def test_only_final_tasks_become_gold(gold, protocol):
    with pytest.raises(RadlabelError, match="has no final labels in protocol .* only adjudicated tasks"):
        gold.desk.add_gold(protocol, [gold.task.id + 1000])
