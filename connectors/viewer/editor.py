"""The Label Studio door behind radlabel's gateway (issue 17, chosen design), first slice: saving a read.

Readers get no Label Studio account in this design: the editor page (Label Studio's standalone
editor, not built yet) runs in the reader's browser and its ``onSubmitAnnotation`` posts the
annotation's ``result`` here with the reader's bearer token. radlabel checks that the task is the
reader's to read now (the readers' API blinding rules), that every region is one the protocol's
labelling configuration can produce, and saves it with its service token as *that* reader's read,
vouched in the ledger — the author comes from the token, never from the body.

``POST /radlabel/editor/tasks/<id>/annotation``  body ``{"result": [...]}``  → 201 ``{"annotation_id"}``
"""

from __future__ import annotations

import math
from functools import wraps
from xml.etree.ElementTree import fromstring

from flask import Blueprint, g, jsonify, request

from connectors.readers import ReaderRegistry
from connectors.viewer.api import ApiError, Workspace, _json_object, reader_tasks
from radlabel.errors import RadlabelError
from radlabel.protocol.labelconfig import label_config
from radlabel.settings import Settings

MAX_REGIONS = 20_000
_LABELLED = {"brushlabels", "rectanglelabels", "polygonlabels", "keypointlabels", "vectorlabels", "choices"}


def controls(protocol) -> dict[str, tuple[str, set[str]]]:
    """{control name: (region type, allowed values)} of the protocol's labelling configuration."""
    return {name: (kind, values) for name, (kind, values, _) in _controls(protocol).items()}


def _controls(protocol) -> dict[str, tuple[str, set[str], str]]:
    """{control name: (region type, allowed values, the image it draws on)}; one image per window preset."""
    root = fromstring(label_config(protocol))
    images = {element.get("name") for element in root.iter("Image")}
    found = {}
    for element in root.iter():
        if element.get("toName") in images and element.get("name"):
            values = {child.get("value") for child in element if child.get("value")}
            found[element.get("name")] = (element.tag.lower(), values, element.get("toName"))
    return found


def _numbers(value: dict, keys: tuple[str, ...]) -> bool:
    return all(isinstance(value.get(k), (int, float)) and not isinstance(value.get(k), bool)
               and math.isfinite(value[k]) and 0 <= value[k] <= 100 for k in keys)


def _value_problem(kind: str, value: dict, data: dict) -> str | None:
    if kind == "brushlabels":
        rle, limit = value.get("rle"), int(data.get("rows") or 0) * int(data.get("columns") or 0) * 4
        if value.get("format") != "rle" or not isinstance(rle, list) or len(rle) > limit or \
                not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 255 for n in rle):
            return "a brush region needs format 'rle' and an rle list of byte values no longer than the slice allows"
    elif kind == "rectanglelabels" and not _numbers(value, ("x", "y", "width", "height")):
        return "a box needs x, y, width and height in percent (0 to 100)"
    elif kind == "keypointlabels" and not _numbers(value, ("x", "y")):
        return "a landmark needs x and y in percent (0 to 100)"
    elif kind == "polygonlabels":
        points = value.get("points")
        if not isinstance(points, list) or not points or not all(
                isinstance(p, list) and len(p) == 2 and _numbers({"x": p[0], "y": p[1]}, ("x", "y")) for p in points):
            return "an outline needs points as [x, y] pairs in percent (0 to 100)"
    elif kind == "vectorlabels":
        vertices = value.get("vertices")
        if not isinstance(vertices, list) or len(vertices) != 2 or not all(
                isinstance(v, dict) and _numbers(v, ("x", "y")) for v in vertices):
            return "a ruler needs 'vertices': two points with x and y in percent (0 to 100)"
    elif kind == "textarea":
        text = value.get("text")
        if not isinstance(text, list) or len(text) > 1 or not all(isinstance(t, str) and len(t) <= 1000 for t in text):
            return "a note needs 'text' as a list of one string of at most 1000 characters"
    elif kind == "number":
        number = value.get("number")
        if not isinstance(number, (int, float)) or isinstance(number, bool) or not math.isfinite(number) or number < 0:
            return "a measurement needs 'number', a non-negative number of mm"
    return None


def result_problem(result, protocol, data: dict) -> str | None:
    """None if every region is one this protocol's editor can produce on this task; else one sentence."""
    if not isinstance(result, list) or len(result) > MAX_REGIONS:
        return f"'result' must be a list of at most {MAX_REGIONS} regions."
    allowed, slices = _controls(protocol), len(data.get("images") or data.get("sop_instance_uids") or [])
    for n, region in enumerate(result):
        where = f"result[{n}]"
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            return f"{where} must be an object with a 'value' object."
        kind, values, image = allowed.get(region.get("from_name"), (None, set(), None))
        if kind is None or region.get("to_name") != image or region.get("type") != kind:
            return f"{where}: from_name, to_name and type must name a control of the protocol's labelling configuration."
        index = region.get("item_index", 0)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < max(slices, 1):
            return f"{where}.item_index must be a slice number from 0 to {max(slices, 1) - 1}."
        if kind in _LABELLED:
            chosen = region["value"].get(kind)
            if not isinstance(chosen, list) or not chosen or not all(isinstance(v, str) and v in values for v in chosen):
                return f"{where}.value.{kind} must list values of the protocol ({', '.join(sorted(values))})."
        problem = _value_problem(kind, region["value"], data)
        if problem:
            return f"{where}: {problem}."
    return None


def create_editor_api(settings: Settings, tasks=None) -> Blueprint:
    """The blueprint; ``tasks`` (Label Studio as the readers' API sees it) is built from the settings unless given."""
    api = Blueprint("radlabel_editor", __name__)
    registry = ReaderRegistry.from_settings(settings)
    state = {"tasks": tasks}

    def workspace() -> Workspace:
        if state["tasks"] is None:  # built on first use: the front must start even while Label Studio is down
            state["tasks"] = reader_tasks(settings)
        return Workspace(settings, state["tasks"])

    def reader_required(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            g.reader = registry.authenticate(header[7:].strip() if header[:7].lower() == "bearer " else "")
            if g.reader is None:
                return jsonify({"error": "sign in with your reader token (ask the administrator: "
                                         "`radlabel readers add`)."}), 401
            try:
                return view(*args, **kwargs)
            except ApiError as exc:
                return jsonify({"error": str(exc)}), exc.status
            except RadlabelError as exc:
                return jsonify({"error": str(exc)}), 502
        return wrapper

    @api.post("/tasks/<int:task_id>/annotation")
    @reader_required
    def annotation(task_id: int):
        from radlabel.audit import audit_log

        reader, space = g.reader, workspace()
        kind, task = space.task_for(reader, task_id)
        if not space.open_for(reader, kind, task):
            raise ApiError(409, f"task {task_id} already has your read (or its arbitration): it cannot be read again.")
        payload = _json_object()
        if set(payload) - {"result", "lead_time"}:
            raise ApiError(422, "send only 'result' (and 'lead_time'): the author is the signed-in reader.")
        problem = result_problem(payload.get("result"), space.protocol(kind.protocol_id), task["data"])
        if problem:
            raise ApiError(422, problem)
        # saved with radlabel's service token in the signed-in reader's name, and vouched (LabelStudioTasks)
        saved = space.tasks.create_annotation(task_id, payload["result"], reader.ls_user_id)
        audit_log(settings).append("reader_submit", reader.pseudonym, f"{kind.protocol_id} {kind.version}",
                                   task=task_id, kind=kind.kind, annotation=saved, source="label-studio-editor")
        return {"status": "imported", "annotation_id": saved}, 201

    return api
