"""The classical pre-labeller against known truth, and prediction checks against the label config."""

from __future__ import annotations

import numpy as np
import pytest

from ml_backend import classical
from ml_backend.validation import PredictionError, check, controls_of
from radlabel.adjudication.metrics import mask_agreement
from radlabel.brush_rle import mask_regions
from radlabel.phantom import make_ct_study
from radlabel.protocol import parse_template
from radlabel.protocol.labelconfig import label_config
from tests.unit.test_protocol import LUNG


@pytest.fixture(scope="module")
def study():
    s = make_ct_study(seed=2, slices=40, size=256, pixel_spacing=1.6)
    return s, np.stack([ds.pixel_array * 1.0 - 1024 for ds in s.datasets])


def dice(study, mask, value):
    return mask_agreement(mask, study.labelmap == value, study.geometry.spacing, 2.0).dice


def test_lungs_bone_fat_and_candidates_match_the_phantom_truth(study):
    s, hu = study
    lungs, confidence = classical.lungs(hu)
    assert dice(s, lungs, 3) > 0.99 and confidence > 0.9
    assert dice(s, classical.bone(hu)[0], 5) > 0.98
    assert dice(s, classical.fat(hu)[0], 2) > 0.95
    nodules, _ = classical.nodule_candidates(hu, lungs, s.geometry.spacing)
    assert dice(s, nodules, 7) > 0.9
    lesions, _ = classical.lesion_candidates(hu, s.labelmap == 4, s.geometry.spacing)
    assert dice(s, lesions, 6) > 0.85


def test_predictions_are_checked_against_the_label_config(study):
    s, _ = study
    config = label_config(parse_template(LUNG.read_text()))
    controls = controls_of(config)
    good = mask_regions({"lung_field": s.labelmap == 3}, "mask_lung", "image_lung")
    check(good, controls, images=40)
    with pytest.raises(PredictionError, match="labels \\['liver'\\] are not offered"):
        check(mask_regions({"liver": s.labelmap == 4}, "mask_lung", "image_lung"), controls, images=40)
    with pytest.raises(PredictionError, match="to_name 'image', expected 'image_lung'"):
        check(mask_regions({"lung_field": s.labelmap == 3}, "mask_lung"), controls, images=40)
    with pytest.raises(PredictionError, match="item_index [0-9]+ outside the task's 10 image"):
        check(good, controls, images=10)
    with pytest.raises(PredictionError, match="no control named 'ribs'"):
        check(mask_regions({"lung_field": s.labelmap == 3}, control="ribs"), controls, images=40)
