"""A simulated QA campaign through the real Orthanc and Label Studio.

Readers of known skill — two good, one poor, one that drifts — calibrate on a gold standard and
then read production series (with hidden gold copies among them). The poor reader fails
certification and their reads stop counting; the drifting reader raises an alert within a bounded
number of reads; the consensus is closer to the known truth than the median reader; final labels
are sampled into QA review; the report renders in headless Chromium.
"""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest

from connectors.adjudicate import Adjudicator
from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.qa import QualityDesk, report_figures
from connectors.sync import Syncer
from radlabel.adjudication.metrics import mask_agreement
from radlabel.adjudication.reads import annotator, read_from_annotation, task_shape, task_spacing
from radlabel.brush_rle import mask_regions
from radlabel.phantom import make_ct_study
from radlabel.protocol.enum import ReaderTier
from radlabel.qa.report import render_html
from radlabel.qa.simulate import SimulatedReader
from tests.chromium import dump_dom, screenshot
from tests.integration.conftest import protocol_variant

GOLD, PRODUCTION = 3, 16
DRIFT_AFTER = GOLD + 8  # reads (calibration ones included) before the drifting reader starts to slip
ALERT_WITHIN = 8  # production reads after the drift began by which the alert must have fired
QA = {"sampling_rate": 0.5, "gold_insertion_rate": 0.2, "drift_window": 8,
      "calibration": {"cases": GOLD, "pass_thresholds": {"dice": 0.75}}}
ADJUDICATION = {"method": "majority", "thresholds": {"dice": 0.5}}


def truth_masks(study) -> dict[str, np.ndarray]:
    value = {name: v for v, name in study.labels.items()}
    return {"liver": np.isin(study.labelmap, [value["liver"], value["liver_lesion"]]),
            "liver_lesion": study.labelmap == value["liver_lesion"]}


def user(ls, name: str) -> int:
    email = f"{name}@readers.radlabel.local"
    found = [u.id for u in ls.users.list() if u.email == email]
    return found[0] if found else ls.users.create(email=email, username=name).id


def post(ls, task_id: int, reader: int, masks: dict, lead_time: float) -> None:
    ls.annotations.create(id=task_id, result=mask_regions(masks), completed_by=reader, lead_time=lead_time)


@pytest.fixture(scope="module")
def campaign(settings):
    protocol = protocol_variant(settings, "ct-liver-lesions.yaml", "qa_campaign", "^qa campaign$",
                                overrides={"qa": QA, "adjudication": ADJUDICATION}, min_slices=8)
    ls = client(settings)
    orthanc = OrthancDicomWeb.from_settings(settings)
    syncer = Syncer(settings, protocol)
    desk = QualityDesk(settings)
    adjudicator = Adjudicator(settings)
    truth_by_series: dict[str, dict] = {}

    def store_and_sync(seeds):
        studies = []
        for seed in seeds:
            study = make_ct_study(seed=seed, slices=12, size=96, pixel_spacing=4.0, slice_spacing=5.0,
                                  liver_lesions=2, lung_nodules=0)
            for ds in study.datasets:
                ds.SeriesDescription = "qa campaign"
                ds.Manufacturer = "GE" if seed % 7 == 0 else "SIEMENS"
            assert not orthanc.store(study.datasets).failed
            studies.append(study)
        summary = syncer.run()
        tasks = []
        for study in studies:
            record = next(s for s in summary.series if s["series_key"] == syncer.series_key(study.series_uid))
            truth_by_series[record["pseudo_series_uid"]] = truth_masks(study)
            tasks.append(record["task_id"])
        return tasks, summary

    good = [SimulatedReader("good-a", 0.08, seed=1), SimulatedReader("good-b", 0.1, seed=2)]
    drifting = SimulatedReader("drifting", 0.08, seed=3, drift_after=DRIFT_AFTER, drift=0.06)
    poor = SimulatedReader("poor", 0.5, seed=4)
    ids = {r.name: user(ls, r.name) for r in [*good, drifting, poor]}

    # 1. the gold standard: three series read by the good readers before certification exists
    gold_tasks, _ = store_and_sync(range(700, 700 + GOLD))
    gold_builders = [*good, SimulatedReader("builder", 0.05, seed=9)]
    ids["builder"] = user(ls, "builder")
    for task_id in gold_tasks:
        truth = truth_by_series[ls.tasks.get(id=task_id).data["series"]]
        for reader in gold_builders:
            post(ls, task_id, ids[reader.name], reader.read(truth), 200)
    for task_id in gold_tasks:
        with adjudicator._lock():
            assert adjudicator.adjudicate_task(protocol, task_id).status in ("final", "already final")
    assert not desk.certification_enforced(protocol)
    assert desk.add_gold(protocol, gold_tasks) == gold_tasks
    assert desk.certification_enforced(protocol)

    # 2. calibration of every production reader
    certifications = {}
    for reader in [*good, drifting, poor]:
        pending, progress = desk.calibrate(protocol, ids[reader.name], ReaderTier.RADIOLOGIST)
        assert pending is None and progress["read"] == 0 and progress["cases"] == GOLD
        cases = [r[0] for r in sqlite3.connect(settings.home / "state.sqlite").execute(
            "SELECT task_id FROM qa_tasks WHERE kind='calibration' AND reader=? ORDER BY task_id", (ids[reader.name],))]
        assert len(cases) == GOLD
        for task_id in cases:
            task = ls.tasks.get(id=task_id)
            assert not task.annotations and not task.predictions  # blind: no reference shown
            post(ls, task_id, ids[reader.name], reader.read(truth_by_series[task.data["series"]]), 300)
        certifications[reader.name], _ = desk.calibrate(protocol, ids[reader.name], ReaderTier.RADIOLOGIST)

    # 3. production, hidden gold copies among the tasks
    production, summary = store_and_sync(range(800, 800 + PRODUCTION))
    copies = summary.gold_copies
    queue = sorted(production + copies)
    for task_id in queue:
        truth = truth_by_series[ls.tasks.get(id=task_id).data["series"]]
        for reader in [*good, drifting, poor]:
            post(ls, task_id, ids[reader.name], reader.read(truth), 250 + 20 * (reader is drifting))
    adjudicator.reconcile()
    return {"protocol": protocol, "ls": ls, "ids": ids, "desk": desk, "adjudicator": adjudicator,
            "certifications": certifications, "production": production, "copies": copies,
            "truth": truth_by_series, "gold": gold_tasks}


def test_poor_reader_fails_certification_with_feedback(campaign):
    certs = campaign["certifications"]
    assert all(certs[name].certified for name in ("good-a", "good-b", "drifting")), \
        {n: c.feedback() for n, c in certs.items()}
    poor = certs["poor"]
    assert not poor.certified and "liver_lesion" in poor.failed_classes
    assert re.search(r"case C\d, liver_lesion: dice 0\.\d\d < 0\.75", poor.feedback())
    assert campaign["desk"].certified_readers(campaign["protocol"].id) == \
        {campaign["ids"][n] for n in ("good-a", "good-b", "drifting")}


def test_uncertified_reads_do_not_count(campaign):
    poor = str(campaign["ids"]["poor"])
    decisions = campaign["adjudicator"].decisions(campaign["protocol"].id)
    production = [d for d in decisions if d.get("reader_findings") is not None]
    assert len(production) >= PRODUCTION
    for decision in production:
        for figures in decision["agreement"].values():
            assert poor not in figures["vs_consensus"] and len(figures["vs_consensus"]) == 3


def test_hidden_gold_copies_are_scored_not_finalised(campaign):
    copies = campaign["copies"]
    assert len(copies) == int(PRODUCTION * QA["gold_insertion_rate"])
    with sqlite3.connect(campaign["adjudicator"].settings.home / "state.sqlite") as db:
        finals = {r[0] for r in db.execute("SELECT task_id FROM adjudications WHERE status='final'")}
        gold_scores = db.execute("SELECT DISTINCT task_id, reader FROM reader_scores WHERE source='gold'").fetchall()
    assert not finals & set(copies)
    assert {t for t, _ in gold_scores} == set(copies) and len(gold_scores) == 4 * len(copies)
    for task_id in copies:  # nothing in the task tells a reader it is gold
        assert "source_task" not in campaign["ls"].tasks.get(id=task_id).data


def test_consensus_is_closer_to_truth_than_the_median_reader(campaign):
    ls, truth_by_series, adjudicator = campaign["ls"], campaign["truth"], campaign["adjudicator"]
    consensus_user = adjudicator.consensus_user()
    readers = {campaign["ids"][n] for n in ("good-a", "good-b", "drifting")}
    consensus_dice, median_dice = [], []
    for task_id in campaign["production"]:
        task = ls.tasks.get(id=task_id)
        annotations = [a if isinstance(a, dict) else a.dict() for a in task.annotations]
        final = [a for a in annotations if annotator(a) == consensus_user]
        if not final:
            continue  # went to arbitration
        from radlabel.adjudication.reads import read_from_annotation, task_shape, task_spacing

        truth = truth_by_series[task.data["series"]]
        spacing = task_spacing(task.data)

        def dice(annotation):
            read = read_from_annotation(annotation, campaign["protocol"], task_shape(task.data))
            return np.mean([mask_agreement(read.masks[k], truth[k], spacing, 2.0).dice for k in truth])

        consensus_dice.append(dice(final[0]))
        median_dice.append(np.median([dice(a) for a in annotations if annotator(a) in readers]))
    assert len(consensus_dice) >= PRODUCTION // 2
    assert np.mean(consensus_dice) > np.mean(median_dice), (np.mean(consensus_dice), np.mean(median_dice))


def test_drifting_reader_alert_and_report_in_chromium(campaign, tmp_path):
    figures = report_figures(campaign["adjudicator"].settings, campaign["protocol"])
    ids = campaign["ids"]
    drifting = figures["readers"][f"reader-{ids['drifting']}"]
    drift_starts = DRIFT_AFTER - GOLD  # production reads before the drift
    assert drifting["alert"], drifting["chart"]
    assert drift_starts <= drifting["chart"]["alert_at"] < drift_starts + ALERT_WITHIN
    for name in ("good-a", "good-b"):
        assert figures["readers"][f"reader-{ids[name]}"]["alert"] is None
    assert any("failed certification" in a for a in figures["alerts"])
    assert figures["counts"]["gold_copy_tasks"] == len(campaign["copies"])
    assert figures["representativeness"]["factors"]["manufacturer"].get("SIEMENS")
    assert figures["time_per_task"][f"reader-{ids['drifting']}"]["median_s"] == 270.0
    page = tmp_path / "report.html"
    page.write_text(render_html(figures))
    dom = dump_dom(page.as_uri(), tmp_path / "profile")
    assert int(re.search(r'data-rendered-plots="(\d+)"', dom).group(1)) == page.read_text().count('<div class="plot">')
    screenshot(page.as_uri(), "qa-campaign-report.png", tmp_path / "profile")


def test_final_labels_sampled_into_qa_review(campaign):
    desk, ls, settings = campaign["desk"], campaign["ls"], campaign["adjudicator"].settings
    with sqlite3.connect(settings.home / "state.sqlite") as db:
        reviews = db.execute("SELECT task_id, reference_task_id FROM qa_tasks WHERE kind='review'").fetchall()
    assert reviews, "no final task was sampled for review at rate 0.5"
    review_task, final_task = reviews[0]
    task = ls.tasks.get(id=review_task)
    assert task.predictions  # the final labels, shown for review
    prediction = task.predictions[0]
    result = prediction["result"] if isinstance(prediction, dict) else prediction.result
    reviewer = user(ls, "reviewer")
    ls.annotations.create(id=review_task, result=result, completed_by=reviewer)  # confirmed unchanged
    outcome = desk.score_review(campaign["protocol"], review_task)
    assert outcome["verdict"] == "confirmed" and outcome["final_task"] == final_task
