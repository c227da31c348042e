"""The QA report: figures from stored data, one self-contained HTML page, looked at in headless Chromium."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from radlabel.protocol import load_template
from radlabel.qa.report import build_figures, render_html
from tests.chromium import dump_dom, screenshot
from tests.integration.conftest import TEMPLATES


@pytest.fixture(scope="module")
def figures():
    protocol = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    rng = np.random.default_rng(0)
    scores = []
    for reader, drift in ((1, 0.0), (2, 0.0), (3, 0.02)):
        for t in range(40):
            dice = 0.9 + rng.normal(0, 0.015) - drift * max(0, t - 15)
            scores.append({"reader": f"reader-{reader}", "reader_id": reader, "task": 100 + t, "source": "consensus",
                           "at": 1_700_000_000 + 300 * t, "lead_time_s": 240 + 10 * reader, "mean_dice": dice})
    certifications = [
        {"reader": 1, "tier": "radiologist", "certified": True, "cases": 3, "failed_classes": [],
         "class_means": {"liver": {"dice": 0.97}}, "shortfalls": [], "notes": []},
        {"reader": 4, "tier": "radiologist", "certified": False, "cases": 3, "failed_classes": ["liver_lesion"],
         "class_means": {"liver_lesion": {"dice": 0.55}}, "shortfalls": [], "notes": []}]
    decisions = [{"accepted": i % 4 != 0, "reasons": [], "edge_cases": {"1": ["too_small_to_characterise"]} if i % 5 == 0
                  else {}, "agreement": {"liver": {"pairs": [{"a": 1, "b": 2, "dice": 0.95}, {"a": 1, "b": 3, "dice": 0.9}]},
                                         "liver_lesion": {"pairs": [{"a": 1, "b": 2, "dice": 0.7}]}}} for i in range(12)]
    profiles = [{"manufacturer": "SIEMENS", "scanner": "SOMATOM", "site": "site-aa", "slice_thickness_mm": 1.0,
                 "kernel": "B30f", "contrast": True}] * 12 + [{"manufacturer": "GE", "scanner": "Revolution",
                                                              "site": "site-bb", "slice_thickness_mm": 5.0,
                                                              "kernel": "STANDARD", "contrast": False}]
    return build_figures(protocol, scores=scores, certifications=certifications,
                         tiers={"reader-1": "radiologist", "reader-3": "radiologist"}, decisions=decisions,
                         profiles=profiles, reviews=[{"final_task": 101, "reviewer": "reader-9",
                                                      "verdict": "confirmed", "mean_dice": 1.0}],
                         counts={"gold_studies": 3})


def test_figures_hold_the_alerts(figures):
    alerts = " ".join(figures["alerts"])
    assert "reader reader-3: quality drifting down" in alerts or "reader reader-3: rolling" in alerts
    assert "reader-1" not in alerts.replace("reader-1 ", "")  # no alert for the steady reader
    assert "reader-4 failed certification" in alerts
    assert "manufacturer GE: 1 of 13" in alerts
    assert figures["counts"]["arbitrated"] == 3 and figures["cost"]["arbitration_rate"] == 0.25
    assert figures["disagreement"]["edge_case_rules"]["too_small_to_characterise"]["flagged"] == 3
    json.dumps(figures)  # the JSON twin is serialisable


def test_report_renders_in_chromium(figures, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(figures))
    text = page.read_text()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text) and "<link" not in text  # self-contained
    dom = dump_dom(page.as_uri(), tmp_path / "profile")
    rendered = int(re.search(r'data-rendered-plots="(\d+)"', dom).group(1))
    expected = text.count('<div class="plot">')
    assert expected >= 8 and rendered == expected  # every plot laid out with a real size
    assert "quality drifting down" in dom or "rolling mean Dice" in dom
    shot = screenshot(page.as_uri(), "qa-report.png", tmp_path / "profile")
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape[1] == 1200 and image.std() > 10  # not a blank page
