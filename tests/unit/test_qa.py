"""QA domain logic: scoring, certification, control charts, sampling, workload, representativeness, simulation."""

from __future__ import annotations

import numpy as np
import pytest

from radlabel.adjudication.consensus import majority
from radlabel.adjudication.metrics import mask_agreement
from radlabel.adjudication.reads import Read
from radlabel.phantom import make_ct_study
from radlabel.protocol import load_template
from radlabel.protocol.enum import ReaderTier
from radlabel.qa.certification import certify, tier_classes
from radlabel.qa.control_chart import control_chart
from radlabel.qa.representativeness import representativeness, thickness_band
from radlabel.qa.sampling import gold_copies_due, sampled_for_review
from radlabel.qa.scoring import score_read
from radlabel.qa.simulate import SimulatedReader
from radlabel.qa.workload import fatigue, geometry_cost, measured_cost, time_per_task
from tests.integration.conftest import TEMPLATES

SPACING = (5.0, 4.0, 4.0)


@pytest.fixture(scope="module")
def liver():
    return load_template(TEMPLATES / "ct-liver-lesions.yaml")


def truth_of(seed: int) -> dict[str, np.ndarray]:
    study = make_ct_study(seed=seed, slices=12, size=96, pixel_spacing=4.0, slice_spacing=5.0, liver_lesions=2,
                          lung_nodules=0)
    value = {name: v for v, name in study.labels.items()}
    return {"liver": np.isin(study.labelmap, [value["liver"], value["liver_lesion"]]),
            "liver_lesion": study.labelmap == value["liver_lesion"], "liver_cyst": np.zeros_like(study.labelmap, bool)}


@pytest.fixture(scope="module")
def studies():
    return [truth_of(seed) for seed in range(300, 306)]


def as_read(reader: int, masks: dict, findings=(), edge_cases=()) -> Read:
    return Read(reader, 0, masks=dict(masks), findings=set(findings), edge_cases=set(edge_cases))


def calibration_scores(liver, studies, reader: SimulatedReader, number: int):
    return [score_read(as_read(number, reader.read(truth)), as_read(0, truth), liver, SPACING, f"C{i}",
                       tier_classes(liver, ReaderTier.RADIOLOGIST)) for i, truth in enumerate(studies, 1)]


def test_score_read_counts_what_differs(liver, studies):
    truth = studies[0]
    perfect = score_read(as_read(1, truth, {"x"}), as_read(0, truth, {"x"}), liver, SPACING, "C1")
    assert perfect.classes["liver"].dice == 1.0 and perfect.classes["liver"].sensitivity == 1.0
    missed = {k: np.zeros_like(v) if k == "liver_lesion" else v for k, v in truth.items()}
    scored = score_read(as_read(1, missed, edge_cases={"rule_a"}), as_read(0, truth, {"x"}), liver, SPACING, "C1")
    assert scored.classes["liver_lesion"].dice == 0.0 and scored.classes["liver_lesion"].sensitivity == 0.0
    assert scored.findings_missed == ["x"] and scored.edge_cases_extra == ["rule_a"]
    assert scored.classes["liver_cyst"].dice == 1.0  # both empty agree


def test_certification_passes_a_good_reader_and_explains_a_poor_one(liver, studies):
    liver = liver.model_copy(update={"qa": liver.qa.model_copy(update={"calibration": liver.qa.calibration.model_copy(
        update={"cases": len(studies)})})})
    good = certify(calibration_scores(liver, studies, SimulatedReader("good", 0.08, seed=1), 1), liver,
                   ReaderTier.RADIOLOGIST, 1)
    assert good.certified, good.feedback()
    poor = certify(calibration_scores(liver, studies, SimulatedReader("poor", 0.5, seed=2), 2), liver,
                   ReaderTier.RADIOLOGIST, 2)
    assert not poor.certified
    assert "liver_lesion" in poor.failed_classes
    text = poor.feedback()
    assert "case C" in text and "liver_lesion" in text and "too_small_to_characterise" in text
    # a technician is not scored on lesions at all (the class is not theirs)
    technician = certify(calibration_scores(liver, studies, SimulatedReader("poor", 0.5, seed=2), 2), liver,
                         ReaderTier.TECHNICIAN, 2)
    assert "liver_lesion" not in technician.class_means


def test_certification_needs_every_case(liver, studies):
    scores = calibration_scores(liver, studies[:2], SimulatedReader("good", 0.05, seed=1), 1)
    result = certify(scores, liver, ReaderTier.RADIOLOGIST, 1)
    assert not result.certified and any("of 8 calibration cases" in n for n in result.notes)


def test_control_chart_catches_drift_and_leaves_a_steady_reader_alone():
    rng = np.random.default_rng(4)
    steady = list(0.9 + rng.normal(0, 0.02, 80))
    assert control_chart("steady", steady, window=20, floor=0.75).alert is None
    drifting = list(0.9 + rng.normal(0, 0.02, 20)) + [0.9 - 0.01 * k + rng.normal(0, 0.02) for k in range(1, 60)]
    chart = control_chart("drifting", drifting, window=20, floor=0.75)
    assert chart.alert is not None and 20 <= chart.alert_at <= 32, chart.alert_at
    assert len(chart.ewma) == len(drifting) == len(chart.lower_limit)
    assert control_chart("new", [0.9, 0.8], window=20).ewma == []  # too few reads for a baseline


def test_sampling_rates():
    assert [gold_copies_due(n, 0, 0.1) for n in (0, 9, 10, 25)] == [0, 0, 1, 2]
    assert gold_copies_due(25, 2, 0.1) == 0
    drawn = sum(sampled_for_review(b"k" * 32, task, 0.2) for task in range(2000))
    assert 330 < drawn < 470
    assert sampled_for_review(b"k" * 32, 7, 0.2) == sampled_for_review(b"k" * 32, 7, 0.2)


def test_fatigue_time_and_cost(liver):
    start = 1_700_000_000
    records = [{"reader": "r1", "at": start + 60 * 6 * i, "lead_time_s": 300, "mean_dice": 0.92 if i < 8 else 0.8}
               for i in range(25)]  # one long session: quality falls after ~50 minutes
    figures = fatigue(records)["r1"]
    assert figures["signal"] and "into a session" in figures["signal"]
    assert figures["by_session_time"]["0-30 min"]["mean_dice"] == 0.92
    assert time_per_task(records)["r1"] == {"reads": 25, "median_s": 300.0, "mean_s": 300.0}
    rows = geometry_cost(liver, arbitration_rate=0.5)
    mask = {r["tier"]: r for r in rows if r["geometry"] == "mask"}
    assert mask["radiologist"]["cost_per_read"] == round(25 / 60 * 180, 2)
    assert mask["radiologist"]["cost_per_study"] == round(3 * 25 / 60 * 180 + 0.5 * 20 / 60 * 260, 2)
    assert measured_cost(records, {"r1": "radiologist"}, liver)["r1"]["cost"] == round(25 * 300 / 3600 * 180, 2)


def test_representativeness_warns_about_thin_strata():
    profiles = [{"manufacturer": "A", "scanner": "X1", "site": "site-1", "slice_thickness_mm": 1.0, "kernel": "B30f",
                 "contrast": True}] * 30 + [{"manufacturer": "B", "scanner": "Y", "site": "site-2",
                                             "slice_thickness_mm": 5.0, "kernel": "B30f", "contrast": False}] * 2
    report = representativeness(profiles)
    assert report["factors"]["manufacturer"] == {"A": 30, "B": 2}
    assert any(w.startswith("manufacturer B: 2 of 32") for w in report["warnings"])
    assert not any(w.startswith("kernel") for w in report["warnings"])
    assert thickness_band(1.0) == "≤1.5 mm" and thickness_band(None) == "unknown"


def test_simulated_campaign_consensus_beats_the_median_reader(studies):
    readers = [SimulatedReader("a", 0.1, seed=1), SimulatedReader("b", 0.15, seed=2), SimulatedReader("c", 0.3, seed=3)]
    consensus_dice, median_dice = [], []
    for truth in studies:
        reads = [r.read({"liver_lesion": truth["liver_lesion"]})["liver_lesion"] for r in readers]
        consensus = majority(reads)[0]
        consensus_dice.append(mask_agreement(consensus, truth["liver_lesion"], SPACING, 2.0).dice)
        median_dice.append(np.median([mask_agreement(m, truth["liver_lesion"], SPACING, 2.0).dice for m in reads]))
    assert np.mean(consensus_dice) > np.mean(median_dice)
    drifting = SimulatedReader("d", 0.1, seed=4, drift_after=5, drift=0.05)
    errors = []
    for _ in range(10):
        drifting.read({"liver": studies[0]["liver"]})
        errors.append(drifting.error_now())
    assert errors[:5] == [0.1] * 5 and errors[-1] == pytest.approx(0.35)
