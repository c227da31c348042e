"""A reader's Label Studio annotation of a series task as arrays: the domain's "read".

Masks come from brush regions (per-slice RLE with ``item_index``), boxes and
landmarks from their percent coordinates, findings from choices, escalations
and edge-case flags from their controls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radlabel import brush_rle
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import EDGE_CASES, ESCALATION, FINDINGS, REGION_CONTROLS, control_presets
from radlabel.protocol.template import Protocol

MASK_CONTROL = REGION_CONTROLS[Geometry.MASK][1]  # the one brush control of configurations before per-preset images


@dataclass
class Read:
    reader: int  # Label Studio user id
    annotation_id: int
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # class -> (slices, rows, columns) bool
    boxes: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = field(default_factory=dict)
    landmarks: dict[str, list[tuple[int, tuple[float, float]]]] = field(default_factory=dict)
    findings: set[str] = field(default_factory=set)
    edge_cases: set[str] = field(default_factory=set)
    escalated: bool = False
    painted_in: dict[str, set[str]] = field(default_factory=dict)  # class -> window presets its strokes were made in
    # class -> (slice, ((column, row), (column, row))): the two ends of each ruler, in pixels
    rulers: dict[str, list[tuple[int, tuple[tuple[float, float], tuple[float, float]]]]] = field(default_factory=dict)


def annotator(annotation: dict) -> int:
    """The user id of an annotation (Label Studio gives an id or a user object, depending on the endpoint)."""
    value = annotation.get("completed_by")
    if isinstance(value, dict):
        value = value.get("id")
    return int(value or 0)


def task_shape(data: dict) -> tuple[int, int, int]:
    """(slices, rows, columns) of a synced series task, from its data."""
    return len(data["images"]), int(data["rows"]), int(data["columns"])


def task_spacing(data: dict) -> tuple[float, float, float]:
    """Voxel spacing in mm (slice, row, column) of a synced series task, from its data."""
    pixel = data["pixel_spacing_mm"]
    return float(data.get("slice_spacing_mm") or 1.0), float(pixel[0]), float(pixel[1])


def ruler_length_mm(ends: tuple[tuple[float, float], tuple[float, float]], pixel_spacing: tuple[float, float]) -> float:
    """Length of a two-point ruler given in pixels (column, row); ``pixel_spacing`` is DICOM's (row, column) mm."""
    (x0, y0), (x1, y1) = ends
    return float(np.hypot((x1 - x0) * pixel_spacing[1], (y1 - y0) * pixel_spacing[0]))


def diameters_mm(read: Read, pixel_spacing: tuple[float, float]) -> dict[str, list[dict]]:
    """class -> [{"slice", "mm"}] of a read's rulers."""
    return {name: [{"slice": index, "mm": round(ruler_length_mm(ends, pixel_spacing), 2)} for index, ends in rulers]
            for name, rulers in read.rulers.items()}


def _ruler(value: dict, shape: tuple[int, int, int]):
    """The two ends of a ruler region in pixels, or None unless it has exactly two finite points."""
    vertices = value.get("vertices")
    if not isinstance(vertices, list) or len(vertices) != 2:
        return None
    try:
        ends = tuple((float(v["x"]) * shape[2] / 100, float(v["y"]) * shape[1] / 100) for v in vertices)
    except (TypeError, KeyError, ValueError):
        return None
    return ends if np.isfinite(ends).all() else None


def read_from_annotation(annotation: dict, protocol: Protocol, shape: tuple[int, int, int]) -> Read:
    """``shape`` is the task's (slices, rows, columns)."""
    read = Read(annotator(annotation), int(annotation["id"]))
    for cls in protocol.classes_with(Geometry.MASK):
        read.masks[cls.name] = np.zeros(shape, dtype=bool)
    # Brush strokes of a class are merged over every preset's control; the control says the preset.
    brush_presets = control_presets(protocol, Geometry.MASK) | {MASK_CONTROL: protocol.default_preset}
    for region in annotation.get("result") or []:
        value = region.get("value") or {}
        kind = region.get("type", "")
        index = int(region.get("item_index") or 0)
        if kind == "brushlabels" and region.get("from_name") in brush_presets:
            for name in value.get("brushlabels", []):
                if name in read.masks and 0 <= index < shape[0]:
                    read.masks[name][index] |= brush_rle.decode(value["rle"], shape[1], shape[2]) > 0
                    read.painted_in.setdefault(name, set()).add(brush_presets[region["from_name"]])
        elif kind == "vectorlabels" and (ends := _ruler(value, shape)) is not None:
            for name in value.get("vectorlabels", []):
                read.rulers.setdefault(name, []).append((index, ends))
        elif kind == "rectanglelabels":
            box = (value["x"] * shape[2] / 100, value["y"] * shape[1] / 100,
                   value["width"] * shape[2] / 100, value["height"] * shape[1] / 100)
            for name in value.get("rectanglelabels", []):
                read.boxes.setdefault(name, []).append((index, box))
        elif kind == "keypointlabels":
            point = (value["x"] * shape[2] / 100, value["y"] * shape[1] / 100)
            for name in value.get("keypointlabels", []):
                read.landmarks.setdefault(name, []).append((index, point))
        elif kind == "choices":
            chosen = set(value.get("choices", []))
            if region.get("from_name") == FINDINGS:
                read.findings |= chosen
            elif region.get("from_name") == EDGE_CASES:
                read.edge_cases |= chosen
            elif region.get("from_name") == ESCALATION and "escalate" in chosen:
                read.escalated = True
    return read


# -- authorship: whose read an annotation is -----------------------------------------------------------
# Label Studio Community lets any member post an annotation with any ``completed_by``; it records the
# authenticated user who saved it in ``updated_by`` (set from the request on create and on update).
# A read counts only when radlabel's own records agree with both.


@dataclass(frozen=True)
class Vouched:
    """radlabel's own record of an annotation it saved with its service token on a reader's behalf."""
    task_id: int
    reader: int
    fingerprint: str | None = None  # of the result as radlabel saved it; None for records that predate it


@dataclass
class AuthorshipRecords:
    service_users: set[int]  # Label Studio users whose token radlabel itself holds
    readers: set[int]  # registered readers' Label Studio user ids
    vouched: dict[int, Vouched] = field(default_factory=dict)  # annotation id -> record
    eligible: set[int] | None = None  # readers who may read this task; None: any registered reader


def saver(annotation: dict) -> int | None:
    """The Label Studio user who saved the annotation, as Label Studio recorded it."""
    value = annotation.get("updated_by")
    if isinstance(value, dict):
        value = value.get("id")
    return int(value) if value else None


def result_fingerprint(result) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(result, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def authorship_problem(annotation: dict, task_id: int, records: AuthorshipRecords) -> str | None:
    """None when the annotation is a verified read of ``task_id``; else why it is not (one sentence, no secret)."""
    claimed, by = annotator(annotation), saver(annotation)
    if annotation.get("result") is None:
        return "saved without a result (Label Studio then records no saver)"
    if by is None:
        return "Label Studio recorded no user who saved it"
    if by in records.service_users:
        vouched = records.vouched.get(int(annotation["id"]))
        if vouched is None:
            return f"saved with radlabel's service account in the name of reader-{claimed}, but radlabel has no record of saving it"
        if vouched.task_id != task_id or vouched.reader != claimed:
            return f"radlabel saved it for reader-{vouched.reader} in task {vouched.task_id}, not for reader-{claimed} here"
        if vouched.fingerprint and vouched.fingerprint != result_fingerprint(annotation["result"]):
            return "its labels changed after radlabel saved it"
        return None  # radlabel checked the reader's right to this task when it saved the read
    if by != claimed:
        return f"saved by reader-{by} in the name of reader-{claimed}"
    if claimed not in records.readers:
        return f"reader-{claimed} is not an active registered reader"
    if records.eligible is not None and claimed not in records.eligible:
        return f"reader-{claimed} is not eligible to read this task"
    return None
