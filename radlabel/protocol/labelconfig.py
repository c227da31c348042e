"""Label Studio labelling configuration generated from a protocol.

One task is one series; its slices are a multi-image ``valueList`` (``$images``),
so every region carries the ``item_index`` of its slice. Label values are the
protocol's class names (stable identifiers); the display name and boundary
definition are the hint readers see.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, indent, tostring

from radlabel.protocol.enum import EdgeCaseAction, Geometry
from radlabel.protocol.template import Protocol

IMAGE = "image"
IMAGES_KEY = "images"
# Control tag and name per region geometry.
REGION_CONTROLS = {
    Geometry.MASK: ("BrushLabels", "mask"),
    Geometry.BOX: ("RectangleLabels", "box"),
    Geometry.POLYGON: ("PolygonLabels", "outline"),
    Geometry.LANDMARK: ("KeyPointLabels", "landmark"),
}
FINDINGS = "findings"
EDGE_CASES = "edge_cases"
ESCALATION = "escalation"
ESCALATION_NOTE = "escalation_note"


def measurement_control(class_name: str) -> str:
    return f"{class_name}_longest_diameter_mm"


def _hint(cls) -> str:
    hint = cls.display_name
    if cls.boundary:
        hint += ": " + " ".join(cls.boundary.text.split())
    return hint[:500]


def label_config(protocol: Protocol) -> str:
    view = Element("View")
    SubElement(view, "Header", value=f"{protocol.name} (protocol {protocol.id} {protocol.version})", size="5")
    # Brightness/contrast stay off: slices come pre-windowed with the protocol's presets,
    # so every reader labels under the same viewing conditions.
    SubElement(view, "Image", name=IMAGE, valueList=f"${IMAGES_KEY}", zoom="true", zoomControl="true",
               rotateControl="false", brightnessControl="false", contrastControl="false", crosshair="true")
    for geometry, (tag, name) in REGION_CONTROLS.items():
        classes = protocol.classes_with(geometry)
        if not classes:
            continue
        attributes = {"name": name, "toName": IMAGE}
        if geometry is Geometry.POLYGON:
            attributes["closePolygon"] = "true"
        if geometry is Geometry.LANDMARK:
            attributes["strokeWidth"] = "3"
        control = SubElement(view, tag, attributes)
        for cls in classes:
            SubElement(control, "Label", value=cls.name, background=cls.color, hint=_hint(cls))
    if protocol.classes_with(Geometry.LANDMARK) and not protocol.classes_with(Geometry.BOX):
        # Label Studio 1.23's exporter removes the COCO format twice for a multi-image config with
        # keypoints but no rectangles and fails (converter._get_supported_formats); a hidden,
        # never-used rectangle control keeps exports working.
        hidden = SubElement(view, "View", style="display: none")
        unused = SubElement(hidden, "RectangleLabels", name="export_workaround", toName=IMAGE)
        SubElement(unused, "Label", value="unused")
    # No smart KeyPointLabels for interactive assist here: with one beside BrushLabels, Label Studio
    # 1.23's export fails (converter._get_supported_formats: list.remove). The backend answers
    # interactive requests all the same.
    classified = protocol.classes_with(Geometry.CLASSIFICATION)
    if classified:
        SubElement(view, "Header", value="Findings present in this series", size="6")
        choices = SubElement(view, "Choices", name=FINDINGS, toName=IMAGE, choice="multiple", showInline="true")
        for cls in classified:
            SubElement(choices, "Choice", value=cls.name, hint=_hint(cls))
    for cls in protocol.classes_with(Geometry.MEASUREMENT):
        region = next((REGION_CONTROLS[g][1] for g in (Geometry.MASK, Geometry.POLYGON, Geometry.BOX)
                       if g in cls.geometry), None)
        top = str(cls.boundary.max_diameter_mm * 3) if cls.boundary and cls.boundary.max_diameter_mm else "500"
        number = {"name": measurement_control(cls.name), "toName": IMAGE, "min": "0", "max": top, "step": "0.1"}
        if region:  # one diameter per region of this class
            number |= {"perRegion": "true", "whenTagName": region, "whenLabelValue": cls.name}
        else:
            SubElement(view, "Header", value=f"{cls.display_name}: longest diameter (mm)", size="6")
        SubElement(view, "Number", number)
    flagged = [case for case in protocol.edge_cases if case.action in (EdgeCaseAction.FLAG, EdgeCaseAction.ESCALATE)]
    if flagged:
        SubElement(view, "Header", value="Edge cases met in this series", size="6")
        choices = SubElement(view, "Choices", name=EDGE_CASES, toName=IMAGE, choice="multiple")
        for case in flagged:
            SubElement(choices, "Choice", value=case.id, hint=" ".join(case.text.split())[:500])
    SubElement(view, "Header", value=f"Escalate to the {protocol.escalation.route_to.value} reader", size="6")
    escalate = SubElement(view, "Choices", name=ESCALATION, toName=IMAGE, choice="single")
    SubElement(escalate, "Choice", value="escalate", hint="Send this series to the escalation route of the protocol")
    SubElement(view, "TextArea", name=ESCALATION_NOTE, toName=IMAGE, placeholder="Why escalate? (no patient details)",
               maxSubmissions="1", editable="true", rows="2")
    indent(view)
    return tostring(view, encoding="unicode")
