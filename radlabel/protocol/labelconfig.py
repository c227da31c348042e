"""Label Studio labelling configuration generated from a protocol.

One task is one series; its slices are a multi-image ``valueList``, so every region
carries the ``item_index`` of its slice. Every window preset of the protocol has its
own ``<Image>`` (``image_<preset>``, slices rendered in that preset, from the task's
``images_by_preset``), shown when the reader picks the preset in the ``preset``
selector. A class is drawn only on the image of the preset it must be read in
(``read_in``): its region control is ``<control>_<preset>`` (``mask_soft_tissue``), so
the control name records which preset every stroke was made in. Label values are the
protocol's class names (stable identifiers); the display name and boundary
definition are the hint readers see.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, fromstring, indent, tostring

from radlabel.protocol.enum import EdgeCaseAction, Geometry
from radlabel.protocol.template import Protocol

IMAGE = "image"  # the single image of configurations before per-preset images (still read)
IMAGES_KEY = "images"
PRESET_IMAGES_KEY = "images_by_preset"
PRESET_SELECTOR = "preset"
# Control tag and name per region geometry.
REGION_CONTROLS = {
    Geometry.MASK: ("BrushLabels", "mask"),
    Geometry.BOX: ("RectangleLabels", "box"),
    Geometry.POLYGON: ("PolygonLabels", "outline"),
    Geometry.LANDMARK: ("KeyPointLabels", "landmark"),
}
ASSIST_PREFIX = "assist_"
FINDINGS = "findings"
EDGE_CASES = "edge_cases"
ESCALATION = "escalation"
ESCALATION_NOTE = "escalation_note"


def measurement_control(class_name: str) -> str:
    return f"{class_name}_longest_diameter_mm"


def image_name(preset: str) -> str:
    return f"{IMAGE}_{preset}"


def region_control(geometry: Geometry, preset: str) -> str:
    """The control drawing ``geometry`` regions on the image of ``preset``."""
    return f"{REGION_CONTROLS[geometry][1]}_{preset}"


def ruler_control(preset: str) -> str:
    """The two-point ruler (``VectorLabels``, two vertices) of the measured classes read in ``preset``."""
    return f"ruler_{preset}"


def assist_control(preset: str) -> str:
    """The smart keypoints of the 3-D assist on the image of ``preset``: the reader's clicks, never part of the read."""
    return f"{ASSIST_PREFIX}{preset}"


def main_image(protocol: Protocol) -> str:
    """The image per-series controls (findings, flags, escalation) point at: the default preset's."""
    return image_name(protocol.default_preset)


def class_targets(protocol: Protocol, geometry: Geometry) -> dict[str, tuple[str, str]]:
    """{class name: (control name, image name)} where each ``geometry`` class is drawn."""
    return {cls.name: (region_control(geometry, cls.read_in), image_name(cls.read_in))
            for cls in protocol.classes_with(geometry)}


def control_presets(protocol: Protocol, geometry: Geometry) -> dict[str, str]:
    """{control name: preset} of the region controls of ``geometry``."""
    return {region_control(geometry, preset.name): preset.name for preset in protocol.window_presets}


def _hint(cls) -> str:
    hint = cls.display_name
    if cls.boundary:
        hint += ": " + " ".join(cls.boundary.text.split())
    return hint[:500]


_ROW = "display: flex; gap: 12px; align-items: flex-start"
_IMAGE_COLUMN = "flex: 1 1 auto; min-width: 0"
_SIDE_COLUMN = "flex: 0 0 260px; max-height: calc(100vh - 160px); overflow-y: auto"


def _preset_selector(view: Element, protocol: Protocol) -> None:
    SubElement(view, "Header", value="Window preset (each class is drawn in the preset it must be read in)", size="6")
    selector = SubElement(view, "Choices", name=PRESET_SELECTOR, toName=main_image(protocol), choice="single-radio",
                          showInline="true")
    for preset in protocol.window_presets:
        drawn = [c.display_name for c in protocol.classes if c.read_in == preset.name and set(c.geometry) & set(REGION_CONTROLS)]
        choice = {"value": preset.name, "hint": f"W {preset.width:g} / L {preset.center:g}"
                  + (f"; draw here: {', '.join(drawn)}" if drawn else "; for viewing only")}
        if preset.name == protocol.default_preset:
            choice["selected"] = "true"
        SubElement(selector, "Choice", choice)


def _preset_view(view: Element, protocol: Protocol, preset: str) -> None:
    """The image of one preset with the region controls of the classes read in it."""
    others = [p.name for p in protocol.window_presets if p.name != preset]
    if preset != protocol.default_preset:
        shown = SubElement(view, "View", visibleWhen="choice-selected", whenTagName=PRESET_SELECTOR,
                           whenChoiceValue=preset)
    elif others:  # Label Studio's editor starts with no choice selected (``selected`` is not applied): the
        # default preset shows until another one is picked
        shown = SubElement(view, "View", visibleWhen="choice-unselected", whenTagName=PRESET_SELECTOR,
                           whenChoiceValue=",".join(others))
    else:
        shown = SubElement(view, "View")
    row = SubElement(shown, "View", style=_ROW)  # the class buttons beside the image, not below it
    # Brightness/contrast stay off: slices come pre-windowed with the protocol's presets,
    # so every reader labels under the same viewing conditions.
    SubElement(SubElement(row, "View", style=_IMAGE_COLUMN), "Image", name=image_name(preset), valueList=f"${PRESET_IMAGES_KEY}.{preset}", zoom="true",
               zoomControl="true", rotateControl="false", brightnessControl="false", contrastControl="false",
               crosshair="true")
    panel = SubElement(row, "View", style=_SIDE_COLUMN)
    for geometry, (tag, _) in REGION_CONTROLS.items():
        classes = [c for c in protocol.classes_with(geometry) if c.read_in == preset]
        if not classes:
            continue
        attributes = {"name": region_control(geometry, preset), "toName": image_name(preset)}
        if geometry is Geometry.POLYGON:
            attributes["closePolygon"] = "true"
        if geometry is Geometry.LANDMARK:
            attributes["strokeWidth"] = "3"
        if geometry is Geometry.MASK:  # the smart brush: its scribbles go to the 3-D assist (the editor gateway)
            attributes["smart"] = "true"
        control = SubElement(panel, tag, attributes)
        for cls in classes:
            SubElement(control, "Label", value=cls.name, background=cls.color, hint=_hint(cls))
    _assist_points(panel, protocol, preset)
    measured = [c for c in protocol.classes_with(Geometry.MEASUREMENT) if c.read_in == preset]
    if measured:  # a ruler per measured class; radlabel turns its two points into mm with the pixel spacing
        ruler = SubElement(panel, "VectorLabels", name=ruler_control(preset), toName=image_name(preset),
                           maxPoints="2", strokeWidth="2")
        for cls in measured:
            SubElement(ruler, "Label", value=cls.name, background=cls.color,
                       hint=f"{cls.display_name}: click both ends of the longest axial diameter")
    if any(c.read_in == preset for c in protocol.classes_with(Geometry.LANDMARK) + protocol.classes_with(Geometry.MASK)) \
            and not any(c.read_in == preset for c in protocol.classes_with(Geometry.BOX)):
        # Label Studio 1.23's exporter removes the COCO format twice for a multi-image config with
        # keypoints but no rectangles and fails (converter._get_supported_formats); a hidden,
        # never-used rectangle control keeps exports working.
        hidden = SubElement(panel, "View", style="display: none")
        unused = SubElement(hidden, "RectangleLabels", name=f"export_workaround_{preset}", toName=image_name(preset))
        SubElement(unused, "Label", value="unused")


def _assist_points(panel: Element, protocol: Protocol, preset: str) -> None:
    """Label Studio's smart keypoints for the mask classes read in ``preset``: a click (Alt+click: outside) asks the
    3-D assist, which answers with the class's brush regions on every slice it reaches."""
    masks = [c for c in protocol.classes_with(Geometry.MASK) if c.read_in == preset]
    if not masks:
        return
    SubElement(panel, "Header", value="3-D assist: click inside (Alt+click outside)", size="6")
    points = SubElement(panel, "KeyPointLabels", name=assist_control(preset), toName=image_name(preset),
                        smartOnly="true", strokeWidth="2")
    for cls in masks:
        SubElement(points, "Label", value=cls.name, background=cls.color, hint=f"{cls.display_name}: grow it in 3-D")


def label_config(protocol: Protocol) -> str:
    view = Element("View")
    SubElement(view, "Header", value=f"{protocol.name} (protocol {protocol.id} {protocol.version})", size="5")
    row = SubElement(view, "View", style=_ROW)
    images = SubElement(row, "View", style=_IMAGE_COLUMN)
    for preset in protocol.window_presets:
        _preset_view(images, protocol, preset.name)
    side = SubElement(row, "View", style=_SIDE_COLUMN)  # presets, findings, flags and escalation beside the image
    _preset_selector(side, protocol)
    _series_controls(side, protocol)
    indent(view)
    return tostring(view, encoding="unicode")


def _series_controls(view: Element, protocol: Protocol) -> None:
    """Findings, measurements, edge-case flags and escalation: one of each per series."""
    image = main_image(protocol)
    classified = protocol.classes_with(Geometry.CLASSIFICATION)
    if classified:
        SubElement(view, "Header", value="Findings present in this series", size="6")
        choices = SubElement(view, "Choices", name=FINDINGS, toName=image, choice="multiple", showInline="true")
        for cls in classified:
            SubElement(choices, "Choice", value=cls.name, hint=_hint(cls))
    for cls in protocol.classes_with(Geometry.MEASUREMENT):
        region = next((region_control(g, cls.read_in) for g in (Geometry.MASK, Geometry.POLYGON, Geometry.BOX)
                       if g in cls.geometry), None)
        top = str(cls.boundary.max_diameter_mm * 3) if cls.boundary and cls.boundary.max_diameter_mm else "500"
        number = {"name": measurement_control(cls.name), "toName": image, "min": "0", "max": top, "step": "0.1"}
        if region:  # one diameter per region of this class, on the image the class is drawn on
            number |= {"toName": image_name(cls.read_in), "perRegion": "true", "whenTagName": region,
                       "whenLabelValue": cls.name}
        else:
            SubElement(view, "Header", value=f"{cls.display_name}: longest diameter (mm)", size="6")
        SubElement(view, "Number", number)
    flagged = [case for case in protocol.edge_cases if case.action in (EdgeCaseAction.FLAG, EdgeCaseAction.ESCALATE)]
    if flagged:
        SubElement(view, "Header", value="Edge cases met in this series", size="6")
        choices = SubElement(view, "Choices", name=EDGE_CASES, toName=image, choice="multiple")
        for case in flagged:
            SubElement(choices, "Choice", value=case.id, hint=" ".join(case.text.split())[:500])
    SubElement(view, "Header", value=f"Escalate to the {protocol.escalation.route_to.value} reader", size="6")
    escalate = SubElement(view, "Choices", name=ESCALATION, toName=image, choice="single")
    SubElement(escalate, "Choice", value="escalate", hint="Send this series to the escalation route of the protocol")
    SubElement(view, "TextArea", name=ESCALATION_NOTE, toName=image, placeholder="Why escalate? (no patient details)",
               maxSubmissions="1", editable="true", rows="2")


# Region types whose value names the classes it draws (Choices name findings, flags and escalation, not classes).
_CLASS_REGIONS = ("brushlabels", "rectanglelabels", "polygonlabels", "keypointlabels", "vectorlabels")


def config_controls(config: str) -> dict[str, tuple[str, set[str], str]]:
    """{control name: (region type, allowed values, the image it draws on)} of a labelling configuration."""
    root = fromstring(config)
    images = {element.get("name") for element in root.iter("Image")}
    found = {}
    for element in root.iter():
        if element.get("toName") in images and element.get("name"):
            values = {child.get("value") for child in element if child.get("value")}
            found[element.get("name")] = (element.tag.lower(), values, element.get("toName"))
    return found


def placed_region(region: dict, controls: dict[str, tuple[str, set[str], str]]) -> dict:
    """``region`` on the control and image that draw its class in ``controls`` (``config_controls``): a class
    whose ``read_in`` changed moves to its new preset's control; a per-series or per-region control (findings,
    a diameter) to its control's image. A region already in place, or with no place there, comes back as is."""
    kind, value = region.get("type"), region.get("value") or {}
    if kind in _CLASS_REGIONS and value.get(kind):
        names = set(value[kind])
        fits = [name for name, (tag, values, _) in controls.items() if tag == kind and names <= values]
        name = region.get("from_name") if region.get("from_name") in fits else next(iter(fits), None)
    else:
        name = region.get("from_name") if region.get("from_name") in controls else None
    if name is None or (name, controls[name][2]) == (region.get("from_name"), region.get("to_name")):
        return region
    return region | {"from_name": name, "to_name": controls[name][2]}

