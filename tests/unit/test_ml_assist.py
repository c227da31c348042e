"""Interactive 3-D assist from brush scribbles, clicks and key slices on the CT phantom (liver is label 4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ml_backend import interactive
from radlabel.adjudication.metrics import mask_agreement
from radlabel.brush_rle import encode
from radlabel.phantom import make_ct_study


@pytest.fixture(scope="module")
def phantom():
    study = make_ct_study(seed=3, slices=40, size=192, pixel_spacing=2.0, slice_spacing=2.5)
    values = np.stack([ds.pixel_array * 1.0 - 1024 for ds in study.datasets])
    return study, values, study.labelmap == 4


def dice(mask, truth, study):
    return mask_agreement(mask, truth, study.geometry.spacing, 2.0).dice


def stroke_region(plane: np.ndarray, k: int, label: str = "liver") -> dict:
    return {"type": "brushlabels", "item_index": k, "from_name": "mask_soft_tissue",
            "value": {"format": "rle", "rle": encode(plane.astype(np.uint8) * 255), "brushlabels": [label]}}


def scribble(truth: np.ndarray, k: int) -> np.ndarray:
    """A short horizontal stroke through the middle of the liver on slice k."""
    j, i = np.argwhere(truth[k]).mean(0).astype(int)
    plane = np.zeros(truth.shape[1:], bool)
    plane[j - 1:j + 2, i - 10:i + 10] = True
    plane &= truth[k]  # around a lesion, as a reader would
    assert plane.sum() > 30
    return plane


def liver_slices(truth):
    return np.flatnonzero(truth.any(axis=(1, 2)))


def test_one_scribble_on_one_slice_segments_the_liver_in_3d(phantom):
    study, values, truth = phantom
    k = int(np.median(liver_slices(truth)))
    masks = interactive.from_context(values, study.geometry.spacing, {"result": [stroke_region(scribble(truth, k), k)]})
    assert set(masks) == {"liver"}
    assert dice(masks["liver"], truth, study) >= 0.9
    sizeable = np.flatnonzero(truth.sum(axis=(1, 2)) >= 50)
    assert set(liver_slices(masks["liver"])) >= set(sizeable)  # through the organ's slices, not just the stroke's


def test_one_click_on_the_liver_segments_it_in_3d_and_a_click_on_a_lesion_only_the_lesion(phantom):
    study, values, truth = phantom
    k = int(np.argmax(truth.sum(axis=(1, 2))))
    depth = ndimage.distance_transform_edt(truth[k])  # where a reader clicks: deep inside, away from lesions
    j, i = np.unravel_index(np.argmax(depth), depth.shape)

    def click(k, j, i, label):
        return {"result": [{"type": "keypointlabels", "item_index": int(k), "is_positive": True,
                            "value": {"x": (i + 0.5) * 100 / 192, "y": (j + 0.5) * 100 / 192, "keypointlabels": [label]}}]}

    liver = interactive.from_context(values, study.geometry.spacing, click(k, j, i, "liver"))["liver"]
    assert dice(liver, truth, study) >= 0.9
    lesion = study.lesions[0]
    lk, lj, li = np.round(study.geometry.lps_to_index(lesion.centre_lps)).astype(int)
    grown = interactive.from_context(values, study.geometry.spacing, click(lk, lj, li, "liver_lesion"))["liver_lesion"]
    components, _ = ndimage.label(study.labelmap == 6)
    assert dice(grown, components == components[lk, lj, li], study) >= 0.7  # a 2 mm-pixel lesion: edges weigh
    assert np.count_nonzero(grown) < 0.05 * np.count_nonzero(truth)


def test_a_negative_click_stops_the_growth_leaking_into_a_close_tissue(phantom):
    study, values, truth = phantom
    close = values.copy()
    close[truth] -= 10  # liver 50 HU beside soft tissue 40 HU: the stroke's band alone takes both
    k = int(np.median(liver_slices(truth)))
    stroke = stroke_region(scribble(truth, k), k)
    leaked = interactive.from_context(close, study.geometry.spacing, {"result": [stroke]})["liver"]
    soft = ndimage.binary_erosion(study.labelmap[k] == 1, iterations=4)  # soft tissue, away from other tissues
    centre = np.argwhere(truth[k]).mean(0)
    j, i = min(np.argwhere(soft), key=lambda p: np.hypot(*(p - centre)))  # the soft tissue nearest the liver
    negative = {"type": "keypointlabels", "item_index": k, "is_positive": False,
                "value": {"x": (i + 0.5) * 100 / 192, "y": (j + 0.5) * 100 / 192, "keypointlabels": ["liver"]}}
    held = interactive.from_context(close, study.geometry.spacing, {"result": [stroke, negative]})["liver"]
    assert dice(leaked, truth, study) < 0.6
    assert dice(held, truth, study) >= 0.9
    assert not held[k, j, i]


def test_strokes_on_key_slices_are_interpolated_where_intensity_cannot_tell(phantom):
    study, values, truth = phantom
    flat = values.copy()
    flat[truth] = 40.0 + (flat[truth] - 60.0)  # liver as dense as the soft tissue around it: growth alone leaks
    slices = liver_slices(truth)
    keys = [int(slices[0] + 2), int(np.median(slices)), int(slices[-1] - 2)]
    context = {"result": [stroke_region(truth[k], k) for k in keys]}  # the liver's outline filled on 3 key slices
    mask = interactive.from_context(flat, study.geometry.spacing, context)["liver"]
    span = slice(keys[0], keys[-1] + 1)
    assert dice(mask[span], truth[span], study) >= 0.9
    assert not mask[:keys[0]].any() and not mask[keys[-1] + 1:].any()  # the key slices bound the organ


def test_key_slice_interpolation_of_two_discs_gives_the_discs_between():
    rows, columns = np.ogrid[:64, :64]
    small = (rows - 32) ** 2 + (columns - 32) ** 2 <= 10 ** 2
    large = (rows - 32) ** 2 + (columns - 32) ** 2 <= 20 ** 2
    between = interactive.interpolate_key_slices({0: small, 4: large}, 5, (1.0, 1.0))
    areas = between.reshape(5, -1).sum(1)
    assert list(areas) == sorted(areas) and areas[0] < areas[2] < areas[4]
    middle = (rows - 32) ** 2 + (columns - 32) ** 2 <= 15 ** 2
    assert np.count_nonzero(between[2] ^ middle) <= 0.05 * middle.sum()


def test_regions_on_slices_outside_the_series_or_without_labels_are_ignored(phantom):
    study, values, truth = phantom
    plane = scribble(truth, int(np.median(liver_slices(truth))))
    outside = stroke_region(plane, values.shape[0] + 3)
    unlabelled = {"type": "keypointlabels", "item_index": 1, "value": {"x": 50, "y": 50, "keypointlabels": []}}
    assert interactive.from_context(values, study.geometry.spacing, {"result": [outside, unlabelled]}) == {}
