"""Protocol templates: the shipped ones are valid; bad ones get precise messages."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from radlabel.protocol import TemplateError, lint, load_template, parse_template
from radlabel.protocol.codes import check_code, verhoeff_valid
from radlabel.protocol.labelconfig import label_config
from radlabel.protocol.loader import json_schema
from radlabel.protocol.ohif import ohif_config

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"
LUNG = TEMPLATES / "ct-lung-nodules.yaml"


def test_every_shipped_template_lints_clean():
    results = lint([TEMPLATES])
    assert len(results) >= 5
    assert [r.problems for r in results if not r.ok] == []
    ids = {r.protocol.id for r in results}
    assert {"ct_lung_nodules", "ct_liver_lesions", "mr_brain_tumour", "cxr_findings", "spine_landmarks"} <= ids


def broken(edit) -> str:
    """The lung template's text after ``edit`` changed its data."""
    data = yaml.safe_load(LUNG.read_text())
    edit(data)
    return yaml.safe_dump(data, sort_keys=False)


def problems(text: str) -> list[str]:
    with pytest.raises(TemplateError) as error:
        parse_template(text, "bad.yaml")
    return error.value.problems


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def test_unknown_geometry_names_file_line_field_and_choices():
    text = broken(lambda d: d["classes"][1].update(geometry=["mask", "sphere"]))
    [message] = problems(text)
    assert message.startswith(f"bad.yaml:{line_of(text, '- sphere')}: classes[1].geometry[1]: input should be 'mask'")
    assert "(got 'sphere')" in message


def test_colour_clash_and_bad_colour():
    text = broken(lambda d: d["classes"][1].update(color="#e6194c"))
    [message] = problems(text)
    assert message.startswith(f"bad.yaml:{line_of(text, 'color:', 2)}: classes[1].color: #e6194c clashes with solid_nodule's #e6194b")
    [message] = problems(broken(lambda d: d["classes"][0].update(color="red")))
    assert message.endswith("classes[0].color: 'red' is not a colour written #RRGGBB")


def test_preset_missing():
    text = broken(lambda d: d["classes"][2].update(read_in="abdomen"))
    [message] = problems(text)
    assert message == (f"bad.yaml:{line_of(text, 'read_in: abdomen')}: classes[2].read_in: 'abdomen' is not a window "
                       "preset; expected one of ['lung', 'mediastinum', 'bone']")
    [message] = problems(broken(lambda d: d.update(default_preset="liver")))
    assert "default_preset: names no window preset" in message


def test_invalid_codes():
    [message] = problems(broken(lambda d: d["classes"][0]["type"].update(value="27925005")))
    assert "classes[0].type: SNOMED CT code 27925005 fails its check digit" in message
    [message] = problems(broken(lambda d: d["classes"][0]["type"].update(meaning="Liver")))
    assert "classes[0].type: SCT 27925004 means 'nodule', not 'Liver'" in message
    [message] = problems(broken(lambda d: d["classes"][0]["category"].update(value="abc")))
    assert "classes[0].category: SNOMED CT code 'abc' must be 6 to 18 digits" in message


def test_thresholds_out_of_range():
    text = broken(lambda d: d["adjudication"]["thresholds"].update(dice=1.7))
    [message] = problems(text)
    assert message.startswith(f"bad.yaml:{line_of(text, 'dice: 1.7')}: adjudication.thresholds.dice: input should be less than or equal to 1")
    [message] = problems(broken(lambda d: d["qa"].update(sampling_rate=-0.1)))
    assert "qa.sampling_rate: input should be greater than or equal to 0 (got -0.1)" in message
    [message] = problems(broken(lambda d: d["adjudication"]["thresholds"].pop("tolerance_mm")))
    assert "adjudication.thresholds: surface_dice needs tolerance_mm" in message


def test_duplicate_class():
    def duplicate(d):
        d["classes"].append(dict(d["classes"][0], color="#000075", display_name="Another"))
    [message] = problems(broken(duplicate))
    assert "classes[4].name: duplicate class 'solid_nodule' (also at classes[0])" in message


def test_many_problems_are_all_reported_and_yaml_errors_have_lines():
    def many(d):
        d["version"] = "1.0"
        d["classes"][0]["geometry"] = ["cube"]
        del d["escalation"]
    found = problems(broken(many))
    assert len(found) == 3 and any("version: '1.0' is not a semantic version" in p for p in found)
    assert any("escalation: is required" in p for p in found)
    [message] = problems("id: x\nclasses: [\n  - a\n")
    assert message.startswith("bad.yaml:") and "not valid YAML" in message
    [message] = problems(LUNG.read_text() + "\nid: again\n")
    assert message.endswith("id: the key appears twice")


def test_cross_references_are_checked():
    [message] = problems(broken(lambda d: d["classes"][0]["boundary"].update(inside="pleura")))
    assert "classes[0].boundary.inside: 'pleura' is not a class of this protocol" in message
    [message] = problems(broken(lambda d: d["adjudication"]["class_thresholds"].update(heart={"dice": 0.5})))
    assert "adjudication.class_thresholds.heart: 'heart' is not a class" in message
    [message] = problems(broken(lambda d: d["readers"].update(per_study=1)))
    assert "readers.per_study: staple needs at least 2 readers per study, not 1" in message
    [message] = problems(broken(lambda d: d["deidentification"]["options"].append("retain_longitudinal_full_dates")))
    assert "exclude each other" in message


def test_label_config_is_multi_image_with_every_class_and_control():
    protocol = load_template(LUNG)
    root = ElementTree.fromstring(label_config(protocol))
    images = {i.get("name"): i for i in root.iter("Image")}
    assert images["image_lung"].get("valueList") == "$images_by_preset.lung"
    assert images["image_lung"].get("brightnessControl") == "false"  # viewing conditions come from the presets
    drawn = [l.get("value") for b in root.iter("BrushLabels") for l in b]
    assert sorted(drawn) == sorted(c.name for c in protocol.classes)
    numbers = {n.get("name"): n for n in root.iter("Number")}
    assert numbers["solid_nodule_longest_diameter_mm"].get("whenLabelValue") == "solid_nodule"
    assert numbers["solid_nodule_longest_diameter_mm"].get("whenTagName") == "mask_lung"
    edge = next(c for c in root.iter("Choices") if c.get("name") == "edge_cases")
    assert [c.get("value") for c in edge] == ["perifissural", "mass_over_30mm"]  # flag/escalate only
    cxr = ElementTree.fromstring(label_config(load_template(TEMPLATES / "cxr-findings.yaml")))
    findings = next(c for c in cxr.iter("Choices") if c.get("name") == "findings")
    boxes = [l for r in cxr.iter("RectangleLabels") for l in r]
    assert len(findings) == 5 and len(boxes) == 4
    spine = ElementTree.fromstring(label_config(load_template(TEMPLATES / "spine-landmarks.yaml")))
    assert sum(len(k) for k in spine.iter("KeyPointLabels")) == 6


def test_ohif_config_carries_codes_colours_and_presets():
    config = ohif_config(load_template(TEMPLATES / "mr-brain-tumour.yaml"))
    assert [s["segmentNumber"] for s in config["segments"]] == [1, 2, 3]
    enhancing = config["segments"][0]
    assert enhancing["type"] == {"CodeValue": "108369006", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Neoplasm"}
    assert enhancing["color"] == [255, 225, 25] and enhancing["readIn"] == "t1_post_contrast"
    assert {p["name"] for p in config["windowPresets"]} == {"t1_post_contrast", "flair"}


def test_fingerprint_follows_content_and_schema_exports():
    a = load_template(LUNG)
    assert a.fingerprint == load_template(LUNG).fingerprint
    b = parse_template(broken(lambda d: d["classes"][0]["boundary"].update(text="Other words.")))
    assert a.fingerprint != b.fingerprint
    schema = json.loads(json_schema())
    assert "classes" in schema["properties"] and "LabelClass" in schema["$defs"]


def test_verhoeff_and_code_checks():
    assert verhoeff_valid("27925004") and not verhoeff_valid("27925040")
    assert check_code("SCT", "123037004", "Body structure (body structure)") is None
    assert "not a concept identifier" in check_code("SCT", "27925024", "Nodule")
