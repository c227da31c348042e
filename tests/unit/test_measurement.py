"""The two-point ruler: its length in mm from the series' pixel spacing, kept with the read and checked
against the protocol's size rules."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from radlabel.adjudication.decision import decide, size_issues
from radlabel.adjudication.reads import diameters_mm, read_from_annotation, ruler_length_mm
from radlabel.protocol import load_template
from radlabel.protocol.labelconfig import label_config

LUNG = load_template(Path(__file__).resolve().parents[2] / "protocol_templates" / "ct-lung-nodules.yaml")
SHAPE = (4, 200, 100)  # slices, rows, columns


def ruler(name: str, index: int, start: tuple[float, float], end: tuple[float, float]) -> dict:
    """A ruler region as Label Studio saves it: two vertices in percent of the image width/height."""
    vertices = [{"x": x / SHAPE[2] * 100, "y": y / SHAPE[1] * 100} for x, y in (start, end)]
    return {"id": f"r{index}", "from_name": "ruler_lung", "to_name": "image_lung", "type": "vectorlabels",
            "item_index": index, "value": {"vertices": vertices, "closed": False, "vectorlabels": [name]}}


def test_the_lung_protocol_has_a_two_point_ruler_for_its_measured_classes():
    root = ElementTree.fromstring(label_config(LUNG))
    [tool] = root.iter("VectorLabels")
    assert (tool.get("name"), tool.get("toName"), tool.get("maxPoints")) == ("ruler_lung", "image_lung", "2")
    assert [label.get("value") for label in tool] == ["solid_nodule", "part_solid_nodule"]


def test_ruler_length_uses_row_and_column_spacing():
    # 30 columns and 40 rows apart; spacing (row 0.5 mm, column 0.8 mm): hypot(24, 20)
    assert ruler_length_mm(((10, 10), (40, 50)), (0.5, 0.8)) == pytest.approx(np.hypot(24, 20))
    assert ruler_length_mm(((5, 5), (5, 5)), (0.7, 0.7)) == 0


def test_a_read_keeps_its_diameters_in_mm():
    annotation = {"id": 1, "completed_by": 9, "result": [
        ruler("solid_nodule", 2, (10, 20), (10, 60)),  # 40 rows
        ruler("part_solid_nodule", 1, (0, 0), (30, 0)),  # 30 columns
        {**ruler("solid_nodule", 3, (0, 0), (1, 1)), "value": {"vertices": [{"x": 1, "y": 1}], "vectorlabels": ["solid_nodule"]}},
    ]}
    read = read_from_annotation(annotation, LUNG, SHAPE)
    assert diameters_mm(read, (0.5, 0.8)) == {"solid_nodule": [{"slice": 2, "mm": 20.0}],
                                              "part_solid_nodule": [{"slice": 1, "mm": 24.0}]}


def test_diameters_outside_the_size_rules_are_named():
    issues = size_issues({"9": {"solid_nodule": [{"slice": 2, "mm": 2.5}, {"slice": 3, "mm": 12.0}],
                                "part_solid_nodule": [{"slice": 0, "mm": 31.0}]}}, LUNG)
    assert issues == ["solid_nodule: reader 9 measured 2.5 mm on slice 3, below the protocol's 3.0 mm minimum",
                      "part_solid_nodule: reader 9 measured 31.0 mm on slice 1, above the protocol's 30.0 mm maximum"]


def test_adjudication_stores_measurements_and_sends_a_mass_to_arbitration():
    nodule = np.zeros(SHAPE, bool)
    nodule[2, 40:60, 40:60] = True
    reads = []
    for reader, rows in ((1, 20), (2, 80)):  # 20 rows x 0.5 mm = 10 mm; 80 rows = 40 mm, a mass
        annotation = {"id": reader, "completed_by": reader, "result": [ruler("solid_nodule", 2, (50, 40), (50, 40 + rows))]}
        read = read_from_annotation(annotation, LUNG, SHAPE)
        read.masks["solid_nodule"] = nodule
        reads.append(read)
    decision = decide(reads, LUNG, (2.0, 0.5, 0.5))
    assert decision.summary()["measurements"] == {"1": {"solid_nodule": [{"slice": 2, "mm": 10.0}]},
                                                  "2": {"solid_nodule": [{"slice": 2, "mm": 40.0}]}}
    assert not decision.accepted
    assert decision.reasons == ["solid_nodule: reader 2 measured 40.0 mm on slice 3, above the protocol's 30.0 mm maximum"]
