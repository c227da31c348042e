"""Where a region belongs in a protocol's labelling configuration (``labelconfig.placed_region``): a class whose
``read_in`` preset changed between versions moves to the new preset's control and image (issue 20)."""

from __future__ import annotations

from radlabel.protocol import load_template
from radlabel.protocol.labelconfig import config_controls, label_config, placed_region
from tests.unit.fakes import TEMPLATES

LIVER = load_template(TEMPLATES / "ct-liver-lesions.yaml")


def moved(name: str, preset: str):
    return LIVER.model_copy(update={"classes": [c.model_copy(update={"read_in": preset}) if c.name == name else c
                                                for c in LIVER.classes]})


def controls(protocol):
    return config_controls(label_config(protocol))


def brush(label: str, from_name: str, to_name: str) -> dict:
    return {"id": "r1", "from_name": from_name, "to_name": to_name, "type": "brushlabels", "item_index": 7,
            "value": {"format": "rle", "rle": [1, 2, 3], "brushlabels": [label]}}


def test_a_class_read_in_another_preset_moves_there_with_its_slice_and_strokes():
    region = brush("liver_cyst", "mask_liver", "image_liver")
    placed = placed_region(region, controls(moved("liver_cyst", "soft_tissue")))
    assert (placed["from_name"], placed["to_name"]) == ("mask_soft_tissue", "image_soft_tissue")
    assert placed["item_index"] == 7 and placed["value"] == region["value"] and placed["id"] == "r1"
    assert region["from_name"] == "mask_liver"  # the original is left as it was


def test_a_region_in_place_and_one_with_no_place_come_back_as_they_are():
    in_place = brush("liver_cyst", "mask_liver", "image_liver")
    assert placed_region(in_place, controls(LIVER)) is in_place
    unknown = brush("spleen", "mask_liver", "image_liver")
    assert placed_region(unknown, controls(LIVER)) is unknown


def test_a_measured_class_takes_its_ruler_and_its_diameters_along():
    ruler = {"id": "v1", "from_name": "ruler_liver", "to_name": "image_liver", "type": "vectorlabels", "item_index": 3,
             "value": {"vertices": [{"x": 1, "y": 1}, {"x": 5, "y": 5}], "vectorlabels": ["liver_lesion"]}}
    diameter = {"id": "r1", "from_name": "liver_lesion_longest_diameter_mm", "to_name": "image_liver",
                "type": "number", "value": {"number": 12.5}}
    target = controls(moved("liver_lesion", "soft_tissue"))
    assert placed_region(ruler, target)["from_name"] == "ruler_soft_tissue"
    assert placed_region(ruler, target)["to_name"] == "image_soft_tissue"
    assert placed_region(diameter, target)["to_name"] == "image_soft_tissue"
    assert placed_region(diameter, target)["from_name"] == diameter["from_name"]


def test_strokes_of_the_single_image_configuration_land_on_their_classes_preset():
    placed = placed_region(brush("liver", "mask", "image"), controls(LIVER))
    assert (placed["from_name"], placed["to_name"]) == ("mask_soft_tissue", "image_soft_tissue")
