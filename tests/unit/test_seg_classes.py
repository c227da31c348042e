"""The one segment-to-class rule of every SEG import (readers' API delivery and ``radlabel seg import``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlabel import seg as seg_codec
from radlabel.phantom import make_ct_study
from radlabel.protocol import load_template
from radlabel.seg import DecodedSegment, class_masks, segment_class

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def liver():
    return load_template(REPO / "protocol_templates" / "ct-liver-lesions.yaml")


def _segment(label: str, type_code: str = "", fill: int = 0) -> DecodedSegment:
    mask = np.zeros((2, 4, 4), bool)
    mask[0, fill] = True
    return DecodedSegment(1, label, type_code, mask)


def test_a_radlabel_made_seg_comes_back_as_the_classes_it_was_made_of(liver):
    study = make_ct_study(seed=4, slices=4, size=48, pixel_spacing=8.0, slice_spacing=2.0)
    value = {n: v for v, n in study.labels.items()}
    masks = {"liver": study.labelmap == value["liver"], "liver_lesion": study.labelmap == value["liver_lesion"]}
    seg = seg_codec.encode(study.datasets, masks, liver, series_description="a read")
    decoded = seg_codec.decode(seg, [str(d.SOPInstanceUID) for d in study.datasets])
    found, skipped = class_masks(decoded, liver)
    assert skipped == [] and set(found) == set(masks)
    assert all(np.array_equal(found[name], masks[name]) for name in masks)


def test_a_seg_of_another_tool_naming_the_display_name_is_taken(liver):
    """Other tools (Slicer, dcmqi) label segments with the display name ("Liver"): the liver class. (The
    readers' API delivery used to drop such a segment; ``radlabel seg import`` took it.)"""
    study = make_ct_study(seed=5, slices=4, size=48, pixel_spacing=8.0, slice_spacing=2.0)
    value = {n: v for v, n in study.labels.items()}
    foreign = {"Liver": liver.label_class("liver").model_copy(update={"name": "Liver"})}
    seg = seg_codec.encode(study.datasets, {"Liver": study.labelmap == value["liver"]}, foreign, series_description="x")
    decoded = seg_codec.decode(seg, [str(d.SOPInstanceUID) for d in study.datasets])
    assert [s.label for s in decoded] == ["Liver"]
    found, skipped = class_masks(decoded, liver)
    assert list(found) == ["liver"] and skipped == [] and np.array_equal(found["liver"], study.labelmap == value["liver"])


def test_names_any_case_then_a_unique_type_code_else_skipped(liver):
    assert segment_class(liver, "LIVER_LESION", "").name == "liver_lesion"
    assert segment_class(liver, "Solid liver lesion", "").name == "liver_lesion"
    assert segment_class(liver, "Segment 1", "367643001").name == "liver_cyst"  # the one cyst class
    assert segment_class(liver, "Segment 1", "85756007") is None  # OHIF's default "Tissue": no class of it


def test_segments_of_one_class_are_joined_and_foreign_ones_reported(liver):
    found, skipped = class_masks([_segment("liver", fill=0), _segment("Liver", fill=1), _segment("Segment 1", fill=2)],
                                 liver)
    assert skipped == ["Segment 1"]
    assert found["liver"][0, 0].all() and found["liver"][0, 1].all() and not found["liver"][0, 2].any()
