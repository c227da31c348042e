"""A simulated QA campaign through the real Orthanc and Label Studio.

Readers of known skill — two good, one poor, one that drifts — calibrate on a gold standard and
then read production series (with hidden gold copies among them). The poor reader fails
certification and their reads stop counting; the drifting reader raises an alert within a bounded
number of reads; the consensus is closer to the known truth than the median reader; final labels
are sampled into QA review; the report renders in headless Chromium.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import requests

from connectors.adjudicate import Adjudicator
from connectors.campaign import Campaign, campaign_protocol
from connectors.label_studio import client
from connectors.quality import QualityDesk, reader_id, report_figures
from radlabel.adjudication.metrics import mask_agreement
from radlabel.adjudication.reads import annotator, read_from_annotation, task_shape, task_spacing
from connectors.authorship import post_read
from radlabel.qa.report import render_html
from tests.chromium import dump_dom, screenshot
from tests.integration.conftest import state_rows

GOLD, PRODUCTION = 3, 16
ALERT_WITHIN = 8  # production reads after the drift began by which the alert must have fired


@pytest.fixture(scope="module")
def campaign(settings):
    protocol = campaign_protocol(GOLD, "qa_campaign")
    result = Campaign(settings, protocol).run(GOLD, PRODUCTION, first_seed=1700)  # the demo uses 700…
    ls = client(settings)
    desk = QualityDesk.build(settings)
    calibration = [t for reader in result.reader_ids.values() for t in desk.calibration.tasks_of(protocol.id, reader)]
    for task_id in result.gold_copies + calibration:
        task = ls.tasks.get(id=task_id)  # nothing in a copy tells the reader it is gold
        assert "source_task" not in task.data
        [(_, _, reference, _)] = [desk.qa_tasks.kind_of(task_id)]
        source = ls.tasks.get(id=reference).data
        # its own study, series, instances and image URLs: a reader cannot match it to its source
        assert task.data["study"] != source["study"] and task.data["series"] != source["series"]
        assert not set(task.data["sop_instance_uids"]) & set(source["sop_instance_uids"])
        key = task.data["images"][0].split("/radlabel/images/")[1].split("/")[0]
        assert key not in json.dumps(source)
        assert requests.get(task.data["images"][0], timeout=10).content == requests.get(source["images"][0], timeout=10).content
        # calibration is read blind (no pre-labels); gold copies get pre-labels like every production task
        assert not task.predictions or task_id in result.gold_copies
    return {"protocol": protocol, "ls": ls, "ids": result.reader_ids, "desk": QualityDesk.build(settings),
            "adjudicator": Adjudicator(settings), "certifications": result.certifications,
            "production": result.production_tasks, "copies": result.gold_copies, "truth": result.truth,
            "drift_after": next(r.drift_after for r in result.readers if r.name == "drifting")}


def test_poor_reader_fails_certification_with_feedback(campaign):
    certs = campaign["certifications"]
    assert all(certs[name].certified for name in ("good-a", "good-b", "drifting")), \
        {n: c.feedback() for n, c in certs.items()}
    poor = certs["poor"]
    assert not poor.certified and "liver_lesion" in poor.failed_classes
    assert re.search(r"case C\d, liver_lesion: dice 0\.\d\d < 0\.75", poor.feedback())
    assert campaign["desk"].calibration.certified_readers(campaign["protocol"].id) == \
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
    assert len(copies) == int(PRODUCTION * campaign["protocol"].qa.gold_insertion_rate)
    finals = {r[0] for r in state_rows(campaign["adjudicator"].settings,
                                       "SELECT task_id FROM adjudications WHERE status='final'")}
    gold_scores = state_rows(campaign["adjudicator"].settings, "SELECT DISTINCT task_id, reader FROM reader_scores "
                             "WHERE source='gold' AND protocol_id=?", campaign["protocol"].id)
    assert not finals & set(copies)
    assert {t for t, _ in gold_scores} == set(copies) and len(gold_scores) == 4 * len(copies)


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
    drift_starts = campaign["drift_after"] - GOLD  # production reads before the drift
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
    reviews = state_rows(settings, "SELECT task_id, reference_task_id FROM qa_tasks WHERE kind='review' "
                         "AND protocol_id=?", campaign["protocol"].id)
    assert reviews, "no final task was sampled for review at rate 0.5"
    review_task, final_task = reviews[0]
    task = ls.tasks.get(id=review_task)
    assert task.predictions  # the final labels, shown for review
    prediction = task.predictions[0]
    result = prediction["result"] if isinstance(prediction, dict) else prediction.result
    reviewer = reader_id(ls, "reviewer@readers.radlabel.local")
    post_read(settings, ls, review_task, reviewer, result, "simulated")  # confirmed unchanged (a vouched simulated read)
    outcome = desk.review.score(campaign["protocol"], review_task)
    assert outcome["verdict"] == "confirmed" and outcome["final_task"] == final_task
