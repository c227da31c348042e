"""One image per window preset: each class is drawn in the preset it must be read in, Label Studio 1.23
accepts every shipped template's configuration and can export it, and reads merge a class over presets."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from radlabel.adjudication.reads import read_from_annotation
from radlabel.brush_rle import mask_regions
from radlabel.protocol import load_template
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import class_targets, label_config
from radlabel.settings import load_settings

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "protocol_templates").glob("*.yaml"))
LUNG = next(t for t in TEMPLATES if t.name == "ct-lung-nodules.yaml")

# Run inside Label Studio's own virtual environment: its validator (schema, unique names, toName targets,
# tag attributes) and the SDK's export converter, whose format check fails on some multi-image configs.
_LABEL_STUDIO_CHECK = r"""
import json, os, sys, tempfile
from pathlib import Path
import label_studio
os.environ.update(DJANGO_SETTINGS_MODULE="core.settings.label_studio", LABEL_STUDIO_BASE_DATA_DIR=tempfile.mkdtemp())
sys.path.insert(0, str(Path(label_studio.__file__).parent))
import django
django.setup()
from core.label_config import validate_label_config
from label_studio_sdk.converter import Converter
answers = {}
for name, config in json.load(sys.stdin).items():
    try:
        validate_label_config(config)
        formats = Converter(config, tempfile.mkdtemp()).supported_formats
        answers[name] = "ok" if "JSON" in [str(f) for f in formats] or formats else "no formats"
    except Exception as exc:
        answers[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(answers))
"""


def label_studio_verdicts(configs: dict[str, str]) -> dict[str, str]:
    python = load_settings().label_studio_venv / "bin" / "python"
    assert python.exists(), f"Label Studio is not installed at {python} (make install)"
    done = subprocess.run([str(python), "-c", _LABEL_STUDIO_CHECK], input=json.dumps(configs), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_label_studio_accepts_and_can_export_every_shipped_template():
    configs = {t.stem: label_config(load_template(t)) for t in TEMPLATES}
    # a control pointing at an image that does not exist: the validator must say no (the check can fail)
    configs["broken"] = configs["ct-lung-nodules"].replace('toName="image_bone"', 'toName="image_nowhere"', 1)
    verdicts = label_studio_verdicts(configs)
    assert verdicts.pop("broken") != "ok"
    assert verdicts == {t.stem: "ok" for t in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.stem)
def test_every_preset_is_viewable_and_classes_sit_in_their_read_in_preset(template):
    protocol = load_template(template)
    root = ElementTree.fromstring(label_config(protocol))
    selector = next(c for c in root.iter("Choices") if c.get("name") == "preset")
    assert [c.get("value") for c in selector] == [p.name for p in protocol.window_presets]
    assert [c.get("value") for c in selector if c.get("selected") == "true"] == [protocol.default_preset]
    for preset in protocol.window_presets:
        [panel] = [v for v in root.iter("View") if v.get("whenTagName") == "preset"
                   and any(i.get("name") == f"image_{preset.name}" for i in v.iter("Image"))]
        others = [p.name for p in protocol.window_presets if p.name != preset.name]
        if preset.name == protocol.default_preset:  # shown until another preset is picked
            assert (panel.get("visibleWhen"), panel.get("whenChoiceValue")) == ("choice-unselected", ",".join(others))
        else:
            assert (panel.get("visibleWhen"), panel.get("whenChoiceValue")) == ("choice-selected", preset.name)
        [image] = panel.iter("Image")
        assert image.get("name") == f"image_{preset.name}"
        assert image.get("valueList") == f"$images_by_preset.{preset.name}"
        drawn = {label.get("value") for control in panel.iter() if control.get("toName") == image.get("name")
                 and control.tag.endswith("Labels") and control.tag != "VectorLabels"
                 and not control.get("name", "").startswith("export_")
                 for label in control}
        region_geometries = {Geometry.MASK, Geometry.BOX, Geometry.POLYGON, Geometry.LANDMARK}
        assert drawn == {c.name for c in protocol.classes if c.read_in == preset.name
                         and region_geometries & set(c.geometry)}


def test_lung_classes_land_on_their_presets_brush_controls():
    protocol = load_template(LUNG)
    root = ElementTree.fromstring(label_config(protocol))
    brushes = {b.get("name"): (b.get("toName"), [l.get("value") for l in b]) for b in root.iter("BrushLabels")}
    assert brushes == {"mask_lung": ("image_lung", ["solid_nodule", "part_solid_nodule", "lung_field"]),
                       "mask_bone": ("image_bone", ["calcified_nodule"])}
    targets = class_targets(protocol, Geometry.MASK)
    assert targets["calcified_nodule"] == ("mask_bone", "image_bone")
    assert targets["lung_field"] == ("mask_lung", "image_lung")


def test_a_read_merges_a_class_over_presets_and_records_where_it_was_painted():
    protocol = load_template(LUNG)
    shape = (5, 12, 12)
    in_lung, in_bone, nodule = (np.zeros(shape, bool) for _ in range(3))
    in_lung[1, 2:5, 2:5] = True
    in_bone[3, 6:9, 6:9] = True
    nodule[2, 0:2, 0:2] = True
    result = (mask_regions({"calcified_nodule": in_lung}, "mask_lung", "image_lung")  # drawn in the wrong window
              + mask_regions({"calcified_nodule": in_bone, "solid_nodule": nodule},
                             targets=class_targets(protocol, Geometry.MASK)))
    assert {(r["from_name"], r["value"]["brushlabels"][0]) for r in result} == {
        ("mask_lung", "calcified_nodule"), ("mask_bone", "calcified_nodule"), ("mask_lung", "solid_nodule")}
    read = read_from_annotation({"id": 7, "completed_by": 3, "result": result}, protocol, shape)
    assert np.array_equal(read.masks["calcified_nodule"], in_lung | in_bone)
    assert np.array_equal(read.masks["solid_nodule"], nodule)
    assert not read.masks["lung_field"].any()
    assert read.painted_in == {"calcified_nodule": {"lung", "bone"}, "solid_nodule": {"lung"}}


def test_reads_from_the_single_image_configuration_still_count_in_the_default_preset():
    protocol = load_template(LUNG)
    mask = np.zeros((3, 8, 8), bool)
    mask[0, 1:3, 1:3] = True
    read = read_from_annotation({"id": 1, "completed_by": 2, "result": mask_regions({"lung_field": mask})},
                                protocol, mask.shape)
    assert np.array_equal(read.masks["lung_field"], mask)
    assert read.painted_in == {"lung_field": {protocol.default_preset}}


def test_labels_and_flags_sit_beside_the_image():
    root = ElementTree.fromstring(label_config(load_template(LUNG)))
    row = next(v for v in root.iter("View") if "display: flex" in (v.get("style") or ""))
    images, side = list(row)
    assert list(images.iter("Image")) and not list(side.iter("Image"))
    assert {c.get("name") for c in side.iter("Choices")} == {"preset", "edge_cases", "escalation"}
    for panel in (v for v in images.iter("View") if v.get("whenTagName") == "preset"):
        [inner] = list(panel)
        image_column, controls = list(inner)
        assert [e.tag for e in image_column] == ["Image"] and "Image" not in [e.tag for e in controls.iter()]
