"""The Label Studio door behind radlabel's gateway (issue 17, chosen design), on the viewer front.

Readers hold no usable Label Studio credential: Label Studio's own editor (taken from the installed
Label Studio, ``connectors/viewer/editor_bundle.py``) runs in a page of this front, signed in with
the reader's token (sessionStorage, sent as ``Authorization: Bearer``, as in the OHIF extension).
Everything it gets comes through the readers' API rules (``Workspace``): the reader's own tasks,
the protocol's labelling configuration, only the task data that configuration shows (the slices, as
same-origin signed URLs) and only the reader's own earlier annotations. Its ``onSubmitAnnotation``
posts the ``result`` back; radlabel checks every region against the protocol and saves it with its
service token as *that* reader's read, vouched in the ledger — the author comes from the token,
never from the body.

Public (they hold nothing): ``GET /radlabel/editor/`` (sign-in and worklist page),
``GET /radlabel/editor/tasks/<id>`` (the editor page), ``/radlabel/editor/page/<file>`` (its script
and style), ``/radlabel/editor/static/<file>`` (Label Studio's bundle).
Reader only: ``GET api/worklist``, ``GET api/tasks/<id>``, ``POST tasks/<id>/annotation``
(body ``{"result": [...], "lead_time": seconds}`` → 201 ``{"annotation_id"}``), ``POST tasks/<id>/assist``
(body ``{"result": [the smart tools' regions]}`` → 200 ``{"result": [3-D brush regions], "model_version"}``:
the ML backend's interactive assist, called server-side with the ML credential for the reader's own open task).
"""

from __future__ import annotations

import math
import re
import uuid
from html import escape
from functools import wraps
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, jsonify, request, send_from_directory

from connectors.readers import ReaderRegistry
from connectors.viewer.api import ApiError, Workspace, _annotator, _json_object, reader_tasks
from connectors.wiring import Adapters
from connectors.viewer.editor_bundle import bundle_folder, editor_bundle
from radlabel.errors import RadlabelError
from radlabel.geometry import positions_along_normal
from radlabel.protocol.labelconfig import ASSIST_PREFIX, config_controls, label_config
from radlabel.settings import Settings

MAX_REGIONS = 20_000
MAX_ASSIST_REGIONS = 500  # the smart tools' regions of one class: strokes, clicks and boxes on a few slices
ASSIST_KINDS = {"brushlabels", "keypointlabels", "rectanglelabels"}
ASSIST_TIMEOUT_S = 100  # Label Studio's own limit for an ML backend call
PAGE_DIR = Path(__file__).resolve().parent / "editor_page"
# Arbitration shows every reader's labels: seniors do it in OHIF, never in this door.
EDITOR_KINDS = ("reads", "calibration")
_DATA_KEYS = re.compile(r'\$([A-Za-z_][A-Za-z0-9_]*)')
_LABELLED = {"brushlabels", "rectanglelabels", "polygonlabels", "keypointlabels", "vectorlabels", "choices"}


def controls(protocol) -> dict[str, tuple[str, set[str]]]:
    """{control name: (region type, allowed values)} of the protocol's labelling configuration."""
    return {name: (kind, values) for name, (kind, values, _) in _controls(protocol).items()}


def _controls(protocol) -> dict[str, tuple[str, set[str], str]]:
    """{control name: (region type, allowed values, the image it draws on)}; one image per window preset."""
    return config_controls(label_config(protocol))


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


def without_assist_clicks(result):
    """The read without the clicks that asked the 3-D assist (``assist_<preset>`` keypoints): they are how the
    reader asked, not what they labelled (the assist's answer is in the class's brush regions)."""
    if not isinstance(result, list):
        return result
    return [region for region in result
            if not (isinstance(region, dict) and str(region.get("from_name", "")).startswith(ASSIST_PREFIX))]


def same_origin(url):
    """A slice URL as a path on this front (the editor page and the slices share one origin: no CORS, CSP 'self')."""
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def editor_data(config: str, data: dict) -> dict:
    """Only the task data the labelling configuration shows (``$images``): nothing else of the task reaches the
    browser (no source task, no series UIDs, no disagreement notes)."""
    shown = {}
    for key in sorted(set(_DATA_KEYS.findall(config))):
        shown[key] = _same_origin_all(data.get(key))
    return shown


def _same_origin_all(value):
    """Slice URLs made same-origin in a value, a list of them or a mapping of lists (``images_by_preset``)."""
    if isinstance(value, dict):
        return {key: _same_origin_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [same_origin(item) for item in value]
    return same_origin(value)


def slice_positions(data: dict) -> list[float] | None:
    """Each slice's position in mm along the slice normal, in the task's slice order (slice 1, the first image, is
    the most inferior); None for a task without geometry. Shown beside the image by ``editor_page/navigation.js``."""
    positions, orientation = data.get("slice_positions_mm"), data.get("image_orientation")
    if not positions or not isinstance(orientation, list) or len(orientation) != 6:
        return None
    return [round(value, 2) for value in positions_along_normal(positions, orientation)]


def own_annotations(task: dict, reader) -> list[dict]:
    """The reader's own earlier reads of the task (id, labels, time): never anyone else's."""
    return [{"id": a["id"], "result": a.get("result") or [], "created_at": str(a.get("created_at") or "")}
            for a in task["annotations"] if _annotator(a) == reader.ls_user_id and not a.get("was_cancelled")]


def _lead_time(payload: dict) -> float | None:
    value = payload.get("lead_time")
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or \
            not 0 <= value <= 86400:
        raise ApiError(422, "'lead_time' must be the seconds spent on the read (0 to 86400).")
    return float(value)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>radlabel — {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
{styles}<link rel="stylesheet" href="/radlabel/editor/page/editor.css"></head>
<body data-page="{page}" data-task="{task}"{bundle_attributes}>
<header id="radlabel-bar"><a href="/radlabel/editor/">radlabel worklist</a> <span id="radlabel-who"></span>
<button id="radlabel-signout" type="button">Sign out</button></header>
<form id="radlabel-signin" hidden><label for="radlabel-token">Reader token</label>
<input id="radlabel-token" type="password" autocomplete="off"><button type="submit">Sign in</button></form>
<p id="radlabel-status" role="status"></p><main id="radlabel-main"></main>
{scripts}<script src="/radlabel/editor/page/editor.js"></script></body></html>
"""


def page_html(page: str, task_id: int = 0, bundle=None) -> str:
    """The sign-in/worklist page, or the editor page loading Label Studio's bundle (no inline script: CSP)."""
    static = "/radlabel/editor/static/"
    styles = scripts = attributes = ""
    if bundle is not None:
        styles = f'<link rel="stylesheet" href="{static}main.css">\n'
        # vendor and runtime first; the shim drops main.js's entry (the whole Label Studio app) before main.js runs
        scripts = "".join(f'<script src="{src}"></script>\n' for src in
                          (static + "vendor.js", static + "runtime.js", "/radlabel/editor/page/shim.js", static + "main.js",
                           "/radlabel/editor/page/navigation.js"))
        attributes = (f' data-main-chunk="{bundle.main_chunk}" data-chunks="{",".join(map(str, bundle.chunks))}"'
                      f' data-module="{bundle.module}" data-feature-flags="{escape(bundle.feature_flags)}"')
    return _PAGE.format(title="Label Studio editor" if bundle else "worklist", styles=styles, page=page,
                        task=int(task_id), bundle_attributes=attributes, scripts=scripts)


def _public_routes(api: Blueprint, settings: Settings) -> None:
    """Pages, their script and Label Studio's bundle: public, like OHIF's files (they hold no data, no secret)."""
    def bundle():
        folder = bundle_folder(settings.label_studio_venv)
        if folder is None:
            raise ApiError(503, f"Label Studio is not installed at {settings.label_studio_venv}: run `radlabel install`.")
        return editor_bundle(folder)

    def html(body: str) -> Response:
        return Response(body, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @api.get("/")
    def worklist_page():
        return html(page_html("worklist"))

    @api.get("/tasks/<int:task_id>")
    def task_page(task_id: int):
        try:
            return html(page_html("task", task_id, bundle()))
        except (ApiError, RadlabelError) as exc:
            return Response(str(exc), status=503, mimetype="text/plain")

    @api.get("/page/<name>")
    def page_file(name: str):
        return send_from_directory(PAGE_DIR, name, max_age=0)

    @api.get("/static/<path:name>")
    def bundle_file(name: str):
        if name.endswith((".html", ".htm")):  # Label Studio's own app page: never on this origin
            return Response("not found", status=404, mimetype="text/plain")
        try:
            return send_from_directory(bundle().folder, name, max_age=3600)
        except (ApiError, RadlabelError) as exc:
            return Response(str(exc), status=503, mimetype="text/plain")


def _editor_task(space: Workspace, task_id: int):
    """The task if it is this reader's to see in this door; the same 404 for another's task and an unknown id."""
    kind, task = space.task_for(g.reader, task_id)
    if kind.kind not in EDITOR_KINDS:
        raise ApiError(404, f"task {task_id} is not on your Label Studio worklist (arbitration is done in OHIF).")
    return kind, task


def _reader_routes(api: Blueprint, settings: Settings, workspace, reader_required) -> None:
    """The reader's worklist, task and save routes (bearer token required: ``reader_required``)."""
    @api.get("/api/worklist")
    @reader_required
    def worklist():
        items = [item for item in workspace().worklist(g.reader) if item["kind"] in EDITOR_KINDS]
        return {"reader": g.reader.pseudonym, "tasks": [{k: item[k] for k in ("task_id", "kind", "protocol", "slices")}
                                                        for item in items]}

    @api.get("/api/tasks/<int:task_id>")
    @reader_required
    def task(task_id: int):
        space = workspace()
        kind, found = _editor_task(space, task_id)
        config = label_config(space.protocol(kind.protocol_id))
        return {"reader": g.reader.pseudonym, "user_id": g.reader.ls_user_id, "kind": kind.kind,
                "protocol": {"id": kind.protocol_id, "version": kind.version}, "config": config,
                "open": space.open_for(g.reader, kind, found),
                "slice_positions_mm": slice_positions(found["data"]),
                "task": {"id": task_id, "data": editor_data(config, found["data"]),
                         "annotations": own_annotations(found, g.reader), "predictions": []}}

    @api.post("/tasks/<int:task_id>/annotation")
    @reader_required
    def annotation(task_id: int):
        from radlabel.audit import audit_log

        reader, space = g.reader, workspace()
        payload = _json_object()
        if set(payload) - {"result", "lead_time"}:  # before anything else: a body naming an author is never saved
            raise ApiError(422, "send only 'result' (and 'lead_time'): the author is the signed-in reader.")
        kind, task = _editor_task(space, task_id)
        if not space.open_for(reader, kind, task):
            raise ApiError(409, f"task {task_id} already has your read: it cannot be read again.")
        payload["result"] = without_assist_clicks(payload.get("result"))
        problem = result_problem(payload["result"], space.protocol(kind.protocol_id), task["data"])
        if problem:
            raise ApiError(422, problem)
        lead_time = _lead_time(payload)
        extra = {"lead_time": lead_time} if lead_time is not None else {}
        # saved with radlabel's service token in the signed-in reader's name, and vouched (LabelStudioTasks)
        saved = space.tasks.create_annotation(task_id, payload["result"], reader.ls_user_id,
                                              source="label-studio-editor", **extra)
        audit_log(settings).append("reader_submit", reader.pseudonym, f"{kind.protocol_id} {kind.version}",
                                   task=task_id, kind=kind.kind, annotation=saved, source="label-studio-editor")
        return {"status": "imported", "annotation_id": saved}, 201


def ml_backend_assist(settings: Settings):
    """``assist(task, label_config, regions) -> (result, model_version)`` through the ML backend's ``/predict`` (Label
    Studio's interactive protocol: ``params.context.result``), with the ML credential readers never hold."""
    import requests

    from connectors.service_auth import ML_USER

    def assist(task: dict, config: str, regions: list[dict]) -> tuple[list[dict], str]:
        body = {"tasks": [{"id": task["id"], "data": task["data"]}], "project": str(task.get("project") or ""),
                "label_config": config, "params": {"context": {"result": regions}}}
        try:
            reply = requests.post(settings.url("ml_backend") + "/predict", json=body, timeout=ASSIST_TIMEOUT_S,
                                  auth=(ML_USER, settings.secrets()["ml_backend_password"]))
            reply.raise_for_status()
            [answer] = reply.json()["results"]
        except Exception as exc:  # down, slow or a bad answer: one sentence, no detail of the backend
            raise ApiError(502, f"the ML assist did not answer ({exc.__class__.__name__}): paint the class by hand "
                                "or try again.") from None
        return answer.get("result") or [], str(answer.get("model_version") or "")
    return assist


def assist_problem(regions, protocol, data: dict) -> str | None:
    """None if ``regions`` are smart-tool regions this protocol's editor can draw on this task; else one sentence."""
    if not isinstance(regions, list) or not 0 < len(regions) <= MAX_ASSIST_REGIONS:
        return f"'result' must list the assist's regions (1 to {MAX_ASSIST_REGIONS})."
    problem = result_problem(regions, protocol, data)
    if problem:
        return problem
    for n, region in enumerate(regions):
        if region["type"] not in ASSIST_KINDS:
            return f"result[{n}]: the assist takes brush strokes, keypoints and boxes only."
    return None


def _assist_route(api: Blueprint, workspace, reader_required, assist) -> None:
    """The reader's smart-tool regions → the ML backend's 3-D assist for their own open task."""
    @api.post("/tasks/<int:task_id>/assist")
    @reader_required
    def assist_task(task_id: int):
        space = workspace()
        payload = _json_object()
        if set(payload) != {"result"}:
            raise ApiError(422, "send only 'result': the smart tools' regions to grow.")
        kind, task = _editor_task(space, task_id)
        if not space.open_for(g.reader, kind, task):
            raise ApiError(409, f"task {task_id} already has your read: the assist is for tasks you are reading.")
        protocol = space.protocol(kind.protocol_id)
        problem = assist_problem(payload["result"], protocol, task["data"])
        if problem:
            raise ApiError(422, problem)
        result, version = assist()(task, label_config(protocol), payload["result"])
        batch = uuid.uuid4().hex[:8]  # ids unique across assists: the editor keeps regions of earlier ones
        return {"result": [dict(region, id=f"assist-{batch}-{n}") for n, region in enumerate(result)],
                "model_version": version}


def create_editor_api(settings: Settings, tasks=None, assist=None, adapters: Adapters | None = None) -> Blueprint:
    """The blueprint; ``tasks`` (Label Studio as the readers' API sees it) is built from the adapters unless given,
    ``assist`` (the ML backend's interactive assist, ``ml_backend_assist``) likewise."""
    api = Blueprint("radlabel_editor", __name__)
    adapters = adapters or Adapters(settings)
    registry = ReaderRegistry(adapters.database)
    state = {"tasks": tasks}

    def workspace() -> Workspace:
        if state["tasks"] is None:  # built on first use: the front must start even while Label Studio is down
            state["tasks"] = reader_tasks(settings, adapters)
        return Workspace(settings, state["tasks"], adapters)

    def reader_required(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            g.reader = registry.authenticate(header[7:].strip() if header[:7].lower() == "bearer " else "")
            if g.reader is None:
                return jsonify({"error": "sign in with your reader token: it is missing, invalid or revoked (ask the "
                                         "administrator: `radlabel readers add`)."}), 401
            try:
                return view(*args, **kwargs)
            except ApiError as exc:
                return jsonify({"error": str(exc)}), exc.status
            except RadlabelError as exc:
                return jsonify({"error": str(exc)}), 502
        return wrapper

    _reader_routes(api, settings, workspace, reader_required)
    _assist_route(api, workspace, reader_required, lambda: assist or ml_backend_assist(settings))
    _public_routes(api, settings)
    return api
