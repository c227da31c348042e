"""Agreement metrics and consensus against independent reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radlabel.adjudication.consensus import majority, staple
from radlabel.adjudication.metrics import (
    box_iou, cohen_kappa, continuity_issues, fleiss_kappa, krippendorff_alpha_nominal, landmark_distance_mm,
    mask_agreement, pairwise,
)

SIX = ndimage.generate_binary_structure(3, 1)


def reference(a, b, spacing, tolerance):
    """Whole-volume Euclidean distance transforms: a different route to the same definitions."""
    border_a = a & ~ndimage.binary_erosion(a, SIX, border_value=0)
    border_b = b & ~ndimage.binary_erosion(b, SIX, border_value=0)
    to_b = ndimage.distance_transform_edt(~border_b, sampling=spacing)[border_a]
    to_a = ndimage.distance_transform_edt(~border_a, sampling=spacing)[border_b]
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    hd95 = max(np.percentile(to_b, 95), np.percentile(to_a, 95))
    nsd = ((to_b <= tolerance).sum() + (to_a <= tolerance).sum()) / (to_b.size + to_a.size)
    return dice, hd95, nsd


def blob(shape, centre, radii, rng=None):
    grid = np.indices(shape).astype(float)
    inside = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)) <= 1
    if rng is not None:
        inside &= rng.random(shape) > 0.05  # ragged surfaces
    return inside


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.7, 0.9)])
def test_random_shapes_match_the_reference(seed, spacing):
    rng = np.random.default_rng(seed)
    shape = (20, 40, 36)
    a = blob(shape, rng.uniform(8, 12, 3) + [0, 8, 6], rng.uniform(4, 9, 3), rng)
    b = blob(shape, rng.uniform(8, 12, 3) + [0, 8, 6], rng.uniform(4, 9, 3), rng)
    ours = mask_agreement(a, b, spacing, tolerance_mm=2.0)
    dice, hd95, nsd = reference(a, b, spacing, 2.0)
    assert ours.dice == pytest.approx(dice) and ours.hd95_mm == pytest.approx(hd95) and ours.surface_dice == pytest.approx(nsd)
    assert ours.iou == pytest.approx((a & b).sum() / (a | b).sum())
    assert ours.abs_volume_difference_mm3 == pytest.approx(abs(int(a.sum()) - int(b.sum())) * np.prod(spacing))


def test_edge_cases_empty_one_voxel_and_identical():
    shape = (5, 6, 7)
    empty = np.zeros(shape, bool)
    one = empty.copy()
    one[2, 3, 4] = True
    both_empty = mask_agreement(empty, empty, (1, 1, 1), 1.0)
    assert (both_empty.dice, both_empty.hd95_mm, both_empty.surface_dice) == (1.0, 0.0, 1.0)
    one_empty = mask_agreement(one, empty, (1, 1, 1), 1.0)
    assert one_empty.dice == 0.0 and math.isinf(one_empty.hd95_mm) and one_empty.as_dict()["hd95_mm"] is None
    same = mask_agreement(one, one, (2, 1, 1), 1.0)
    assert (same.dice, same.hd95_mm, same.surface_dice) == (1.0, 0.0, 1.0)
    moved = one.copy()
    moved[2, 3, 4], moved[3, 3, 4] = False, True  # one slice up, 2.5 mm
    shifted = mask_agreement(one, moved, (2.5, 1, 1), 2.0)
    assert shifted.dice == 0.0 and shifted.hd95_mm == pytest.approx(2.5) and shifted.surface_dice == 0.0


def test_pairwise_covers_every_pair_once():
    rng = np.random.default_rng(9)
    masks = [blob((12, 20, 20), (6, 10, 10), (4, 6 + k, 6), rng) for k in range(3)]
    pairs = pairwise(masks, (2.0, 0.8, 0.8), 1.5)
    assert sorted(pairs) == [(0, 1), (0, 2), (1, 2)]
    assert pairs[(0, 2)].dice == pytest.approx(mask_agreement(masks[0], masks[2], (2.0, 0.8, 0.8), 1.5).dice)


def test_staple_equals_simpleitk_and_majority_counts_votes():
    rng = np.random.default_rng(4)
    truth = blob((16, 32, 32), (8, 16, 16), (5, 10, 9))
    reads = [ndimage.binary_dilation(truth), ndimage.binary_erosion(truth), truth & (rng.random(truth.shape) > 0.2)]
    ours = staple(reads)
    images = [sitk.GetImageFromArray(r.astype(np.uint8)) for r in reads]
    reference_filter = sitk.STAPLEImageFilter()
    reference_filter.SetForegroundValue(1)
    probability = sitk.GetArrayFromImage(reference_filter.Execute(images))
    assert np.abs(ours.probability - probability).max() < 1e-4
    assert np.array_equal(ours.consensus, probability >= 0.5)
    assert ours.sensitivity == pytest.approx(reference_filter.GetSensitivity(), abs=1e-4)
    assert ours.specificity == pytest.approx(reference_filter.GetSpecificity(), abs=1e-4)
    consensus, ties = majority(reads[:2])
    assert np.array_equal(consensus, reads[0] & reads[1]) and np.array_equal(ties, reads[0] ^ reads[1])
    assert staple([np.zeros((2, 2, 2), bool)] * 2).consensus.sum() == 0


def test_kappas_and_alpha_on_textbook_data():
    # Cohen: 50 items, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # Fleiss (14 raters, 10 items, 5 categories) -> 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = [[c for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings) == pytest.approx(0.210, abs=5e-4)
    # Krippendorff's nominal example (4 coders, 12 units, missing values) -> 0.743
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    assert krippendorff_alpha_nominal(list(zip(*coders))) == pytest.approx(0.743, abs=5e-4)


def test_boxes_landmarks_and_continuity():
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert landmark_distance_mm((0, 0, 0), (3, 4, 0)) == 5.0
    mask = np.zeros((5, 20, 20), bool)
    mask[0, 2:5, 2:5] = mask[2, 2:5, 2:5] = mask[3, 12:15, 12:15] = True
    issues = continuity_issues(mask, (2.0, 1.0, 1.0), max_jump_mm=5)
    # Slices named in radlabel's numbering (1 = the first of the task's slices, as in Label Studio and OHIF's panel).
    assert issues == ["breaks on slice(s) [2] between labelled slices", "drifts 14.1 mm between slices 3 and 4"]


def test_disagreement_report_counts_classes_pairs_rules_and_findings():
    from radlabel.adjudication.analytics import disagreement_report

    decisions = [
        {"accepted": False, "reasons": ["nodule: readers 1 and 2: Dice 0.40 < 0.7"],
         "agreement": {"nodule": {"pairs": [{"a": 1, "b": 2, "dice": 0.4}]}},
         "edge_cases": {"1": ["juxtapleural"], "2": []}, "reader_findings": {"1": ["effusion"], "2": []}},
        {"accepted": True, "reasons": [], "agreement": {"nodule": {"pairs": [{"a": 2, "b": 1, "dice": 0.9}]}},
         "edge_cases": {}, "reader_findings": {"1": ["effusion"], "2": ["effusion"]}},
    ]
    report = disagreement_report(decisions)
    assert report["arbitrated"] == 1
    assert report["classes"]["nodule"] == {"pairs": 2, "failed_pairs": 1, "mean_dice": 0.65}
    assert report["reader_pairs"]["1~2"]["tasks"] == 2
    assert report["edge_case_rules"]["juxtapleural"] == {"flagged": 1, "went_to_arbitration": 1}
    assert report["findings"]["effusion"]["items"] == 2
