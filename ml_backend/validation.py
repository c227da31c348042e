"""Every prediction is checked against the project's label config before it leaves: Label Studio
stores unknown labels and controls without complaint (stack notes)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

_RESULT_TYPES = {"BrushLabels": "brushlabels", "RectangleLabels": "rectanglelabels", "PolygonLabels": "polygonlabels",
                 "KeyPointLabels": "keypointlabels", "Choices": "choices", "Number": "number", "TextArea": "textarea"}


class PredictionError(ValueError):
    """A prediction does not fit the label config (says which region and why)."""


@dataclass
class Control:
    tag: str
    to_name: str
    values: set[str]


def controls_of(label_config: str) -> dict[str, Control]:
    try:
        root = ElementTree.fromstring(label_config)
    except ElementTree.ParseError as exc:
        raise PredictionError(f"the label config is not valid XML ({exc})") from None
    out = {}
    for element in root.iter():
        if element.tag in _RESULT_TYPES and element.get("name"):
            values = {child.get("value") for child in element if child.get("value")}
            out[element.get("name")] = Control(element.tag, element.get("toName", ""), values)
    return out


def check(result: list[dict], controls: dict[str, Control], images: int) -> None:
    for number, region in enumerate(result):
        name = region.get("from_name")
        control = controls.get(name)
        where = f"region {number} ({name})"
        if control is None:
            raise PredictionError(f"{where}: the label config has no control named {name!r}")
        expected = _RESULT_TYPES[control.tag]
        if region.get("type") != expected:
            raise PredictionError(f"{where}: type {region.get('type')!r}, the control expects {expected!r}")
        if region.get("to_name") != control.to_name:
            raise PredictionError(f"{where}: to_name {region.get('to_name')!r}, expected {control.to_name!r}")
        labels = (region.get("value") or {}).get(expected, [])
        if control.values and isinstance(labels, list):
            unknown = [label for label in labels if label not in control.values]
            if unknown:
                raise PredictionError(f"{where}: labels {unknown} are not offered by the config")
        index = region.get("item_index")
        if index is not None and not 0 <= int(index) < max(images, 1):
            raise PredictionError(f"{where}: item_index {index} outside the task's {images} image(s)")
