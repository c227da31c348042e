"""The QA desk's jobs as stages, on in-memory ports: a final task becomes gold; a reader's calibration case is a
disguised copy of it; a good read certifies, a poor one does not, and only certified readers' reads count; hidden
gold keeps its rate and scores its readers; a drawn final task is reviewed once; every scored read is recorded."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from connectors.authorship import post_read
from connectors.projects import CALIBRATION_MARKER
from connectors.quality import report_figures
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
    assert case.desk.gold.add(protocol, [case.task.id]) == [case.task.id]
    return case


def _calibration_case(gold, protocol, reader: int):
    certification, progress = gold.desk.calibration.calibrate(protocol, reader, ReaderTier.RADIOLOGIST)
    assert certification is None and (progress["cases"], progress["read"]) == (1, 0)
    (task_id,) = gold.desk.calibration.tasks_of(protocol.id, reader)
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
        outcome = gold.desk.events.handle(protocol, "calibration", copy.id)
        assert outcome.status == ("certified" if reader == good else "not certified")
    assert gold.desk.calibration.counts(protocol, good) and not gold.desk.calibration.counts(protocol, poor)


def test_only_final_tasks_become_gold(gold, protocol):
    with pytest.raises(RadlabelError, match="has no final labels in protocol .* only adjudicated tasks"):
        gold.desk.gold.add(protocol, [gold.task.id + 1000])


def _with_qa(protocol, **changes):
    return protocol.model_copy(update={"qa": protocol.qa.model_copy(update=changes)})


def _scores_of(desk, protocol, source: str) -> list[dict]:
    return [s for s in desk.scores.of_protocol(protocol.id) if s["source"] == source]


# -- GoldStandard -------------------------------------------------------------------------------------------------
def test_the_reference_is_the_final_labels_with_the_edge_cases_most_readers_flagged(gold, protocol):
    decision = gold.desk.adjudications.decision(gold.task.id)
    readers = {"1": ["partial_volume", "motion"], "2": ["motion"], "3": ["motion"], "4": ["partial_volume"]}
    gold.desk.adjudications.save(gold.task.id, protocol.id, "final", None, None,
                                      decision | {"edge_cases": readers})
    reference, task = gold.desk.gold.reference(protocol, gold.task.id)
    assert task.id == gold.task.id and reference.edge_cases == {"motion"}  # 3 of 4 readers; half is no majority
    assert reference.masks["liver"].sum() == _liver(gold.task)["liver"].sum()


def test_a_task_without_final_labels_in_label_studio_has_no_reference(gold, protocol):
    gold.task.annotations[:] = [a for a in gold.task.annotations if not a.get("ground_truth")]
    with pytest.raises(RadlabelError, match="has no final labels in Label Studio: run `radlabel reconcile`"):
        gold.desk.gold.reference(protocol, gold.task.id)


def test_the_calibration_set_is_the_first_gold_tasks(gold, protocol):
    assert gold.desk.gold.add(protocol, [gold.task.id]) == []  # already gold: nothing added twice
    assert gold.desk.gold.tasks(protocol.id) == gold.desk.gold.calibration_set(protocol) == [gold.task.id]
    assert gold.desk.gold.calibration_set(_with_qa(protocol, calibration=protocol.qa.calibration.model_copy(
        update={"cases": 0}))) == []


# -- QaTasks ------------------------------------------------------------------------------------------------------
def test_a_qa_copy_drops_what_names_its_source_and_is_known_only_to_the_state_store(gold, protocol):
    gold.task.data["source_task"], gold.task.data["disagreement"] = 5, {"liver": 0.4}
    project = gold.desk.qa_tasks.side_project("radlabel-review: x 1", "QA review x", "review", protocol)
    copy_id = gold.desk.qa_tasks.copy(project, gold.task, "review", protocol, None, prediction=[{"r": 1}])
    copy = gold.ls.tasks.get(copy_id)
    assert "source_task" not in copy.data and "disagreement" not in copy.data
    assert copy.data["series"] == gold.task.data["series"]  # a review task is not disguised: the final task itself
    assert [p.result for p in gold.ls.predictions.items.values() if p.task == copy_id] == [[{"r": 1}]]
    assert gold.desk.qa_tasks.kind_of(copy_id) == ("review", protocol.id, gold.task.id, None)
    assert gold.desk.qa_tasks.kind_of(gold.task.id) is None


# -- ReadScores -----------------------------------------------------------------------------------------------------
def test_only_the_readers_own_verified_read_is_scored_and_recorded(settings, gold, protocol):
    reader, other = _reader(gold.ls, 3), _reader(gold.ls, 4)
    reference, _ = gold.desk.gold.reference(protocol, gold.task.id)
    scores = gold.desk.scores
    assert scores.score_own_read(protocol, gold.task.id, reader, reference, "gold", "case") is None  # not read
    gold.task.annotations.append({"id": 990, "result": mask_regions(_liver(gold.task)), "completed_by": reader,
                                  "updated_by": other})  # saved by another in the reader's name
    assert scores.score_own_read(protocol, gold.task.id, reader, reference, "gold", "case") is None
    post_read(settings, gold.ls, gold.task.id, reader, mask_regions(_liver(gold.task)), "simulated", lead_time=42)
    score = scores.score_own_read(protocol, gold.task.id, reader, reference, "gold", "case")
    assert score.mean_dice == pytest.approx(1.0)
    [row] = _scores_of(gold.desk, protocol, "gold")
    assert (row["reader_id"], row["task"], row["lead_time_s"]) == (reader, gold.task.id, 42)


def test_consensus_scores_leave_out_classes_absent_from_both_read_and_consensus(gold, protocol):
    both_empty = {"dice": 1.0, "volume_a_mm3": 0, "volume_b_mm3": 0}
    decision = SimpleNamespace(agreement={
        "liver": {"vs_consensus": {"7": {"dice": 0.6, "volume_a_mm3": 9, "volume_b_mm3": 8}, "8": both_empty}},
        "liver_lesion": {"vs_consensus": {"7": {"dice": 0.8, "volume_a_mm3": 1, "volume_b_mm3": 0}, "8": both_empty}}})
    gold.desk.scores.record_consensus(protocol, gold.task, {7: {"created_at": 1.0}, 8: {"created_at": 2.0}}, decision)
    rows = {row["reader_id"]: row for row in _scores_of(gold.desk, protocol, "consensus")}
    assert rows[7]["mean_dice"] == pytest.approx(0.7) and rows[8]["mean_dice"] is None


# -- Calibration ----------------------------------------------------------------------------------------------------
def test_calibration_needs_a_complete_calibration_set_and_enforces_from_then_on(gold, protocol):
    two_cases = _with_qa(protocol, calibration=protocol.qa.calibration.model_copy(update={"cases": 2}))
    reader = _reader(gold.ls, 3)
    with pytest.raises(RadlabelError, match=r"has 1 gold studies; its calibration needs 2 \(qa.calibration.cases\)"):
        gold.desk.calibration.calibrate(two_cases, reader, ReaderTier.RADIOLOGIST)
    assert not gold.desk.calibration.enforced(two_cases) and gold.desk.calibration.counts(two_cases, reader)
    assert gold.desk.calibration.enforced(protocol) and not gold.desk.calibration.counts(protocol, reader)


def test_calibration_opens_each_case_once_and_remembers_the_readers_tier(gold, protocol):
    reader = _reader(gold.ls, 3)
    assert gold.desk.calibration.tier(protocol.id, reader) == ReaderTier.RADIOLOGIST  # the default
    first = gold.desk.calibration.calibrate(protocol, reader, ReaderTier.TECHNICIAN)[1]
    again = gold.desk.calibration.calibrate(protocol, reader, ReaderTier.TECHNICIAN)[1]
    assert first == again and len(gold.desk.calibration.tasks_of(protocol.id, reader)) == 1
    assert gold.desk.calibration.tier(protocol.id, reader) == ReaderTier.TECHNICIAN
    assert gold.desk.calibration.certifications(protocol.id) == []  # nothing read: nobody certified yet


# -- HiddenGold -----------------------------------------------------------------------------------------------------
def test_hidden_gold_keeps_its_rate_in_the_growing_queue_and_scores_its_readers(settings, gold, protocol):
    half = _with_qa(protocol, gold_insertion_rate=0.5)
    hidden = gold.desk.hidden_gold
    assert hidden.insert(_with_qa(protocol, gold_insertion_rate=0.0), gold.project_id, 4) == []
    copies = hidden.insert(half, gold.project_id, 4)
    assert len(copies) == 2 and hidden.insert(half, gold.project_id, 4) == []  # due once, not again
    assert len(hidden.insert(half, gold.project_id, 6)) == 1
    copy = gold.ls.tasks.get(copies[0])
    assert copy.project == gold.project_id and copy.data["series"] != gold.task.data["series"]
    good, poor = _reader(gold.ls, 3), _reader(gold.ls, 4)
    post_read(settings, gold.ls, copy.id, good, mask_regions(_liver(copy)), "simulated")
    post_read(settings, gold.ls, copy.id, poor, mask_regions({"liver": np.roll(_liver(copy)["liver"], 10, axis=2)}),
              "simulated")
    scores = {s.reader: s.mean_dice for s in hidden.score_copy(half, copy.id)}
    assert scores[good] == pytest.approx(1.0) and scores[poor] < 0.5
    assert {row["reader_id"] for row in _scores_of(gold.desk, protocol, "gold")} == {good, poor}


# -- QaReview and QaEvents ------------------------------------------------------------------------------------------
def test_a_final_task_drawn_for_review_is_sent_once_and_only_when_drawn(gold, protocol):
    review = gold.desk.review
    assert review.maybe_review(_with_qa(protocol, sampling_rate=0.0), gold.task, _liver(gold.task), set()) is None
    always = _with_qa(protocol, sampling_rate=1.0)
    review_id = review.maybe_review(always, gold.task, _liver(gold.task), set())
    assert gold.desk.qa_tasks.kind_of(review_id) == ("review", protocol.id, gold.task.id, None)
    assert review.maybe_review(always, gold.task, _liver(gold.task), set()) is None  # reviewed already


@pytest.mark.parametrize("shift, verdict", [(0, "confirmed"), (10, "corrected")])
def test_a_saved_review_is_routed_and_judged_against_the_final_labels(settings, gold, protocol, shift, verdict):
    review_id = gold.desk.review.maybe_review(_with_qa(protocol, sampling_rate=1.0), gold.task, _liver(gold.task), set())
    assert gold.desk.events.handle(protocol, "review", review_id).status == "waiting"
    reviewer = _reader(gold.ls, 5)
    masks = {"liver": np.roll(_liver(gold.task)["liver"], shift, axis=2)}
    post_read(settings, gold.ls, review_id, reviewer, mask_regions(masks), "simulated")
    outcome = gold.desk.events.handle(protocol, "review", review_id)
    assert (outcome.status, outcome.detail) == ("reviewed", verdict)
    [saved] = gold.desk.review.reviews(protocol.id)
    assert saved["verdict"] == verdict and saved["final_task"] == gold.task.id


def test_a_calibration_event_on_a_task_that_is_no_readers_case_is_ignored(gold, protocol):
    assert gold.desk.events.handle(protocol, "calibration", gold.task.id) is None


# -- the report's figures -------------------------------------------------------------------------------------------
def test_the_report_counts_gold_qa_tasks_and_final_tasks(settings, gold, protocol):
    _calibration_case(gold, protocol, _reader(gold.ls, 3))
    figures = report_figures(settings, protocol, gold.desk)
    assert {k: figures["counts"][k] for k in ("gold_studies", "calibration_tasks", "final", "certification_enforced")} \
        == {"gold_studies": 1, "calibration_tasks": 1, "final": 1, "certification_enforced": True}
