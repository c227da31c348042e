"""The connector API the OHIF extension talks to (``/radlabel/api/``), on the viewer front's origin.

Every request carries ``Authorization: Bearer <reader token>`` (``radlabel readers add``).
Blinding is enforced here, not in the browser: a reader sees the tasks assigned to them
and only their own labels; every reader's labels and the agreement figures are shown on
arbitration tasks, to senior readers only.

- ``GET me``; ``GET worklist``: production reads still needing this reader, their
  calibration tasks, and (seniors) open arbitration tasks;
- ``GET tasks/<id>``: series, protocol configuration, the reader's own previous reads;
- ``GET tasks/<id>/reads``: (arbitration, seniors) each read's masks as run lengths, for overlays;
- ``POST tasks/<id>/seg``: a binary DICOM-SEG (``application/dicom``) checked against the task,
  the reader and the protocol version, kept in the outbox, stored in Orthanc and imported into
  the task as this reader's annotation; 202 "queued" when Orthanc or Label Studio is down;
- ``POST tasks/<id>/empty``: "no findings": an empty read (an empty SEG is not valid DICOM), recorded as
  this reader's annotation with an empty result list, with its W/L log (JSON ``{"wl_log": [...]}``);
- ``POST tasks/<id>/escalate``: sends the task to the protocol's escalation route.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from functools import wraps

import numpy as np
from flask import Blueprint, g, jsonify, request
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from connectors.adjudications import CONSENSUS_USER, Adjudications
from connectors.database import Database
from connectors.projects import ProjectKind, load_provisioned, project_kind
from connectors.readers import Reader, ReaderRegistry, pseudonym_from_name
from connectors.task_index import IndexedTasks
from connectors.viewer.outbox import Outbox, Submission
from connectors.viewer.timing import SCHEMA as TIMING_SCHEMA, reading_time, record_timing
from connectors.wiring import Adapters
from radlabel.dicom_files import READ_ERRORS, check_read
from radlabel.errors import RadlabelError
from radlabel.settings import Settings

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MAX_SEG_BYTES = 512 * 1024 * 1024

VIEWING_SCHEMA = """CREATE TABLE IF NOT EXISTS reader_viewing (
    seg_key TEXT PRIMARY KEY, task_id INTEGER NOT NULL, reader INTEGER NOT NULL, protocol TEXT NOT NULL,
    wl_changes INTEGER NOT NULL, presets_used TEXT NOT NULL, out_of_preset TEXT NOT NULL, log TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL)"""
ESCALATION_SCHEMA = """CREATE TABLE IF NOT EXISTS reader_escalations (
    task_id INTEGER NOT NULL, reader INTEGER NOT NULL, protocol TEXT NOT NULL, route_to TEXT NOT NULL,
    note TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, PRIMARY KEY (task_id, reader))"""


# The project fields a listing asks for (Label Studio returns only those named): its counts drive the task index.
PROJECT_FIELDS = "id,description,task_number,total_annotations_number,skipped_annotations_number"

# Projects whose tasks are read in OHIF (QA review is done in Label Studio for now).
VIEWER_KINDS = ("reads", "calibration", "arbitration")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status




def _annotator(annotation: dict) -> int:
    value = annotation.get("completed_by")
    if isinstance(value, dict):
        value = value.get("id")
    return int(value or 0)


def _plain(obj) -> dict:
    from connectors.label_studio import as_dict

    return as_dict(obj)


class LabelStudioTasks:
    """What the API needs from Label Studio, as plain dicts (the SDK behind it)."""

    def __init__(self, settings: Settings, adapters: Adapters | None = None):
        self.settings = settings
        self._adapters = adapters or Adapters(settings)
        self._consensus: int | None = None

    @property
    def ls(self):
        """Built on first use: the front must start even while Label Studio is down."""
        return self._adapters.label_studio

    def projects(self) -> list[dict]:
        from connectors.label_studio import every_item, label_studio_errors

        with label_studio_errors("list projects"):
            listed = list(every_item(self.ls.projects.list(page_size=100, include=PROJECT_FIELDS), 100))
            return [{"id": p.id, "description": p.description or "", "tasks": int(p.task_number or 0),
                     "annotations": int(p.total_annotations_number or 0) + int(p.skipped_annotations_number or 0)}
                    for p in listed]

    def project(self, project_id: int) -> dict:
        from connectors.label_studio import label_studio_errors

        with label_studio_errors(f"read project {project_id}"):
            p = self.ls.projects.get(id=project_id)
        return {"id": p.id, "description": p.description or ""}

    def _task(self, task) -> dict:
        t = _plain(task)
        return {"id": t["id"], "project": t.get("project"), "data": t.get("data") or {},
                "annotations": [_plain(a) for a in t.get("annotations") or []],
                "predictions": [_plain(p) for p in t.get("predictions") or []]}

    def listed_tasks(self, project_id: int, since: str | None = None) -> list[dict]:
        """The tasks of a project with who has annotated each, without the annotations' results (Label
        Studio's review listing); only those stamped at or after ``since`` (``updated_at``) when given."""
        from connectors.label_studio import every_item, label_studio_errors

        query = None
        if since is not None:
            query = json.dumps({"filters": {"conjunction": "and", "items": [
                {"filter": "filter:tasks:updated_at", "operator": "greater_or_equal", "type": "Datetime",
                 "value": since}]}})
        with label_studio_errors(f"list the tasks of project {project_id}"):
            pager = self.ls.tasks.list(project=project_id, review=True, page_size=500, query=query, resolve_uri=False)
            listed = [_plain(t) for t in every_item(pager, 500)]
        return [{"id": t["id"], "data": t.get("data") or {}, "annotators": list(t.get("annotators") or []),
                 "annotations": int(t.get("total_annotations") or 0) + int(t.get("cancelled_annotations") or 0),
                 "updated_at": str(t.get("updated_at") or "")} for t in listed]

    def tasks(self, project_id: int) -> list[dict]:
        """Every task of a project, each annotator a result-less annotation: brush masks made the full
        listing (``fields=all``) cost seconds per worklist."""
        return [{"id": t["id"], "project": project_id, "data": t["data"],
                 "annotations": [{"completed_by": user} for user in t["annotators"]], "predictions": []}
                for t in self.listed_tasks(project_id)]

    def task(self, task_id: int) -> dict | None:
        """The task, or None when Label Studio does not know it (so an unknown id answers like a forbidden one)."""
        from label_studio_sdk.core.api_error import ApiError as SdkError

        from connectors.label_studio import label_studio_errors

        try:
            found = self.ls.tasks.get(id=task_id)
        except SdkError as exc:
            if exc.status_code == 404:
                return None
            with label_studio_errors(f"read task {task_id}"):
                raise
        with label_studio_errors(f"read task {task_id}"):
            return self._task(found)

    def create_annotation(self, task_id: int, result: list, user: int, source: str = "ohif", **extra) -> int:
        """Saved as ``user``'s read, vouched: the readers' API or the editor gateway checked the reader."""
        from connectors.authorship import post_read

        return post_read(self.settings, self.ls, task_id, user, result, source, **extra)

    def consensus_user(self) -> int | None:
        if self._consensus is None:
            from connectors.label_studio import user_id

            self._consensus = user_id(self.ls, CONSENSUS_USER) or -1
        return self._consensus


def reader_tasks(settings: Settings, adapters: Adapters | None = None) -> IndexedTasks:
    """Label Studio as the readers' API and the gateway see it: project listings from radlabel's task index."""
    adapters = adapters or Adapters(settings)
    return IndexedTasks(LabelStudioTasks(settings, adapters), adapters.database)


def _reads_of(task: dict, consensus_user: int | None) -> set[int]:
    """Readers who have read a task (cancelled reads, ground truth and the consensus user are not reads)."""
    return {_annotator(a) for a in task["annotations"]
            if not a.get("was_cancelled") and not a.get("ground_truth") and _annotator(a) != consensus_user}


class Workspace:
    """Assignment and blinding rules, over a task source and the provisioned protocols."""

    def __init__(self, settings: Settings, tasks, adapters: Adapters | None = None):
        self.settings = settings
        self.tasks = tasks
        self.database = (adapters or Adapters(settings)).database
        self._protocols: dict[str, object] = {}
        self._counting: dict[str, set[int] | None] = {}

    def protocol(self, protocol_id: str):
        if protocol_id not in self._protocols:
            self._protocols[protocol_id] = load_provisioned(self.settings, protocol_id)
        return self._protocols[protocol_id]

    def protocol_config(self, protocol_id: str) -> dict:
        path = self.settings.home / "protocols" / f"{protocol_id}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise ApiError(409, f"protocol {protocol_id} has no OHIF configuration: provision it again.") from None

    def allowed(self, reader: Reader, kind: ProjectKind, task: dict) -> bool:
        """May this reader open this task (to read it now, or to see their own earlier read)?"""
        if kind.kind == "calibration":
            return kind.reader == reader.ls_user_id
        if kind.kind == "arbitration":
            return reader.tier == "senior"
        readers = _reads_of(task, self.tasks.consensus_user())
        if reader.ls_user_id in readers:
            return True
        try:
            protocol = self.protocol(kind.protocol_id)
        except RadlabelError:
            return False
        return len(self._filling(protocol, readers)) < protocol.readers.per_study

    def _filling(self, protocol, readers: set[int]) -> set[int]:
        """The reads that fill the task's overlap: an uncertified reader's read does not count, so it takes no slot."""
        from connectors.quality.calibration import counting_readers

        if protocol.id not in self._counting:
            self._counting[protocol.id] = counting_readers(self.database, protocol)
        counting = self._counting[protocol.id]
        return readers if counting is None else readers & counting

    def open_for(self, reader: Reader, kind: ProjectKind, task: dict) -> bool:
        """Is this task on the reader's worklist (assigned and not yet read by them)?"""
        if reader.ls_user_id in {_annotator(a) for a in task["annotations"] if not a.get("was_cancelled")}:
            return False
        if kind.kind == "arbitration" and any(not a.get("was_cancelled") for a in task["annotations"]):
            return False  # another senior already arbitrated it
        return self.allowed(reader, kind, task)

    def readable_tasks(self, reader: Reader):
        """(project kind, task, project id) of every task in the projects this reader may read in."""
        for project in self.tasks.projects():
            kind = project_kind(project["description"])
            if kind is None or kind.kind not in VIEWER_KINDS or (kind.kind == "arbitration" and reader.tier != "senior") or \
                    (kind.kind == "calibration" and kind.reader != reader.ls_user_id):
                continue
            for task in self.tasks.tasks(project["id"]):
                yield kind, task, project["id"]

    def worklist(self, reader: Reader) -> list[dict]:
        items = [self.summary(kind, task, project) for kind, task, project in self.readable_tasks(reader)
                 if self.open_for(reader, kind, task)]
        order = {"calibration": 0, "arbitration": 1, "reads": 2}  # calibration first: it gates production
        return sorted(items, key=lambda item: (order[item["kind"]], item["task_id"]))

    def accessible_series(self, reader: Reader) -> dict[str, str]:
        """{series UID: study UID} of every task this reader may open: what the DICOMweb gateway serves them."""
        series = {}
        for kind, task, _ in self.readable_tasks(reader):
            data = task["data"]
            if data.get("series") and data.get("study") and self.allowed(reader, kind, task):
                series[str(data["series"])] = str(data["study"])
        return series

    @staticmethod
    def summary(kind: ProjectKind, task: dict, project_id: int) -> dict:
        data = task["data"]
        return {"task_id": task["id"], "kind": kind.kind, "project_id": project_id,
                "protocol": {"id": kind.protocol_id, "version": kind.version},
                "study": data.get("study"), "series": data.get("series"),
                "slices": len(data.get("sop_instance_uids") or [])}

    def task_for(self, reader: Reader, task_id: int) -> tuple[ProjectKind, dict]:
        """The task if this reader may see it; 404 otherwise (a task of another reader is not acknowledged)."""
        task = self.tasks.task(task_id)
        if task is None or task.get("project") is None:
            raise ApiError(404, f"task {task_id} is not on your worklist.")
        kind = project_kind(self.tasks.project(task["project"])["description"])
        if kind is None or kind.kind not in VIEWER_KINDS or not self.allowed(reader, kind, task):
            raise ApiError(404, f"task {task_id} is not on your worklist.")
        return kind, task

    def detail(self, reader: Reader, task_id: int, outbox: Outbox) -> dict:
        kind, task = self.task_for(reader, task_id)
        data = task["data"]
        own = [{"id": a["id"], "created_at": str(a.get("created_at") or ""), "regions": len(a.get("result") or [])}
               for a in task["annotations"] if _annotator(a) == reader.ls_user_id and not a.get("was_cancelled")]
        detail = self.summary(kind, task, task["project"]) | {
            "sop_instance_uids": data.get("sop_instance_uids") or [],
            "rows": data.get("rows"), "columns": data.get("columns"),
            "ohif": self.protocol_config(kind.protocol_id),
            "reader": reader.pseudonym,
            "own_annotations": own,
            "own_submissions": [{"seg_key": s.seg_key, "status": s.status} for s in outbox.for_task(task_id, reader.ls_user_id)],
            "open": self.open_for(reader, kind, task),
        }
        if kind.kind == "arbitration":  # seniors only (allowed() said so): every read and its agreement
            detail["arbitration"] = self.arbitration(task)
        return detail

    def arbitration(self, task: dict) -> dict:
        source = task["data"].get("source_task")
        decision = Adjudications(self.database).decision(source) or {}
        reads = [{"read": n, "reader": p.get("model_version"), "score": p.get("score")}
                 for n, p in enumerate(task["predictions"])]
        return {"source_task": source, "reads": reads, "reasons": decision.get("reasons", []),
                "agreement": decision.get("agreement", {}), "disagreement": task["data"].get("disagreement", [])}

    def read_masks(self, task: dict, protocol) -> list[dict]:
        """Each read of an arbitration task as per-slice run lengths (start, length, ...) over row-major pixels."""
        from radlabel.adjudication.reads import read_from_annotation

        data = task["data"]
        shape = (len(data["sop_instance_uids"]), int(data["rows"]), int(data["columns"]))
        out = []
        for n, prediction in enumerate(task["predictions"]):
            read = read_from_annotation({"id": n, "completed_by": 0, "result": prediction.get("result") or []},
                                        protocol, shape)
            classes = {}
            for name, mask in read.masks.items():
                slices = {}
                for index in np.flatnonzero(mask.reshape(shape[0], -1).any(axis=1)):
                    flat = np.concatenate([[0], mask[index].ravel().astype(np.int8), [0]])
                    edges = np.flatnonzero(np.diff(flat))
                    starts, ends = edges[::2], edges[1::2]
                    slices[int(index)] = np.column_stack([starts, ends - starts]).ravel().tolist()
                if slices:
                    classes[name] = slices
            out.append({"read": n, "reader": prediction.get("model_version"), "score": prediction.get("score"),
                        "classes": classes})
        return out


# -- SEG checks and viewing conditions -------------------------------------------------------------------
def check_seg(ds, task: dict, reader: Reader, kind: ProjectKind, segment_names: set[str]) -> dict:
    """Refuse a SEG that is not this reader's binary SEG of this task's series under this protocol version;
    return its radlabel JSON (task, W/L log)."""
    def refuse(sentence: str):
        raise ApiError(422, sentence)

    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        refuse("the body is not a DICOM Segmentation: submit a binary DICOM-SEG.")
    if str(ds.get("SegmentationType", "")) != "BINARY":
        refuse(f"the SEG is {ds.get('SegmentationType', 'untyped')}, not BINARY: submit a binary SEG.")
    if not str(ds.get("SOPInstanceUID", "") or "").strip():
        refuse("the SEG has no SOPInstanceUID: submit the SEG as the viewer wrote it.")
    series = task["data"].get("series")
    referenced = [str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence") or []]
    if referenced != [series]:
        refuse("the SEG does not reference this task's research series (only that series may be segmented).")
    allowed = set(task["data"].get("sop_instance_uids") or [])
    instances = {str(i.get("ReferencedSOPInstanceUID", "")) for s in ds.ReferencedSeriesSequence
                 for i in s.get("ReferencedInstanceSequence") or []}
    if not instances or not instances <= allowed:
        refuse("the SEG references instances outside this task's series.")
    if pseudonym_from_name(ds.get("ContentCreatorName", "")) != reader.pseudonym:
        refuse(f"the SEG is not tagged with your reader identity (ContentCreatorName must be {reader.person_name}).")
    expected = f"{kind.protocol_id} {kind.version}"
    if not str(ds.get("ContentDescription", "")).startswith(expected):
        refuse(f"the SEG is not tagged with protocol {expected} (ContentDescription): reload the task.")
    labels = {str(s.get("SegmentLabel", "")) for s in ds.get("SegmentSequence") or []}
    unknown = sorted(labels - segment_names)
    if unknown:
        refuse(f"segments {', '.join(unknown)[:200]} are not classes of {expected}.")
    if not labels:
        refuse("the SEG has no segment.")
    try:
        meta = json.loads(str(ds.get("ImageComments", "") or "{}"))
    except ValueError:
        refuse("the SEG's ImageComments is not the radlabel JSON (task, W/L log).")
    if not isinstance(meta, dict) or meta.get("task") != task["id"]:
        refuse(f"the SEG's radlabel JSON does not name task {task['id']}.")
    if not isinstance(meta.get("wl_log", []), list):
        refuse("the SEG's W/L log is not a list.")
    try:
        meta["timing"] = reading_time(meta)
    except ValueError as exc:
        refuse(f"the SEG's radlabel JSON: {exc}")
    return meta


def record_viewing(database: Database, key: str, task_id: int, reader: int, protocol: str, viewing: dict,
                   wl_log: list) -> None:
    """The viewing conditions of one read (once per submission key): the QA data of the W/L log."""
    with database.connect() as db:
        db.execute("INSERT INTO reader_viewing VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                   (key, task_id, reader, protocol, viewing["wl_changes"], json.dumps(viewing["presets_used"]),
                    json.dumps(viewing["out_of_preset"]), json.dumps(wl_log)[:1_000_000], time.time()))


def viewing_conditions(wl_log: list, ohif: dict) -> dict:
    """W/L changes, presets used, and the classes painted outside the preset they must be read in.

    Worked out here from the raw log (not taken from the browser's own flags): a paint event
    carries the class and the window in effect; it is in its preset when the window matches
    the required preset's centre and width within 2 % of the width (at least 1 HU).
    """
    presets = {p["name"]: (float(p["windowCenter"]), float(p["windowWidth"])) for p in ohif.get("windowPresets", [])}
    read_in = {s["name"]: s.get("readIn") for s in ohif.get("segments", [])}
    changes, used, outside = 0, set(), {}
    for event in wl_log:
        if not isinstance(event, dict):
            continue
        if event.get("type") == "wl":
            changes += 1
            if isinstance(event.get("preset"), str) and event["preset"] in presets:
                used.add(event["preset"])
        elif event.get("type") == "paint":
            name = event.get("segment")
            required = read_in.get(name) if isinstance(name, str) else None  # a list or dict names no class
            if not isinstance(required, str) or required not in presets:
                continue
            try:
                center, width = float(event["center"]), float(event["width"])
                if not (math.isfinite(center) and math.isfinite(width)):
                    raise ValueError
            except (KeyError, TypeError, ValueError, OverflowError):
                outside[name] = outside.get(name, 0) + 1  # unknown window: cannot be shown to be in preset
                continue
            want_c, want_w = presets[required]
            tolerance = max(1.0, 0.02 * want_w)
            if abs(center - want_c) > tolerance or abs(width - want_w) > tolerance:
                outside[name] = outside.get(name, 0) + 1
    return {"wl_changes": changes, "presets_used": sorted(used),
            "out_of_preset": [{"class": k, "paint_events": v, "required": read_in[k]} for k, v in sorted(outside.items())]}


# -- the blueprint ---------------------------------------------------------------------------------------
def _error(status: int, message: str):
    return jsonify({"error": message}), status


MAX_JSON_BYTES = 1024 * 1024


def _bounded_body(cap: int, sentence: str) -> bytes:
    """The body, read through a hard cap that also holds for chunked uploads (no Content-Length)."""
    data = request.stream.read(cap + 1)
    if len(data) > cap:
        raise ApiError(413, sentence)
    return data


# Who the patient is and where the study was made: a SEG needs none of it (its references are UIDs), yet a
# client may have copied it from anywhere. Type 2 in the SEG IOD are emptied, the rest removed.
_EMPTIED = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID",
            "StudyDate", "StudyTime")
_REMOVED = ("OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress", "PatientBirthTime",
            "PatientTelephoneNumbers", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
            "StationName", "OperatorsName", "PerformingPhysicianName", "ReferencedPatientSequence", "IssuerOfPatientID")


def assign_seg_uids(ds, deid, reader: int, task_id: int, body: bytes) -> bytes:
    """Give a reader's SEG server-made SOP and series UIDs and no patient or site identity; the re-encoded file."""
    for keyword in _EMPTIED:
        if keyword in ds:
            setattr(ds, keyword, "")
    for keyword in _REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    content = hashlib.sha256(body).hexdigest()
    ds.SOPInstanceUID = deid.uid(f"seg-instance:{reader}:{task_id}:{content}")
    ds.SeriesInstanceUID = deid.uid(f"seg-series:{reader}:{task_id}:{content}")
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _json_object() -> dict:
    """The request's JSON object: {} for an empty body; ApiError 400 for anything else that is not one."""
    body = _bounded_body(MAX_JSON_BYTES, "the JSON body is larger than 1 MB.")
    if not body:
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, or JSON nested thousands deep
        payload = None
    if not isinstance(payload, dict):
        raise ApiError(400, "the body is not a JSON object: send Content-Type: application/json and an object.")
    return payload


def _reader_required(registry: ReaderRegistry, view):
    """The view for a signed-in reader only (``g.reader``); refusals say why, errors become JSON answers."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        reader = registry.authenticate(token)
        if reader is None:
            reason, sentence = registry.refusal(token)
            return jsonify({"error": sentence, "reason": reason}), 401
        g.reader = reader
        try:
            return view(*args, **kwargs)
        except ApiError as exc:
            return _error(exc.status, str(exc))
        except RadlabelError as exc:
            return _error(502, str(exc))
    return wrapper


class ReaderApi:
    """The readers' API's handlers, for the reader in ``g.reader``; Label Studio and the outbox are built on
    first use from the settings unless given (the front must start even while Label Studio is down)."""

    def __init__(self, settings: Settings, tasks=None, outbox: Outbox | None = None, adapters: Adapters | None = None):
        self.settings = settings
        self.adapters = adapters or Adapters(settings)
        self._tasks, self._outbox = tasks, outbox

    def workspace(self) -> Workspace:
        if self._tasks is None:
            self._tasks = reader_tasks(self.settings, self.adapters)
        return Workspace(self.settings, self._tasks, self.adapters)

    def outbox(self) -> Outbox:
        if self._outbox is None:
            from connectors.viewer.delivery import default_outbox

            self._outbox = default_outbox(self.settings, self.adapters)
        return self._outbox

    def me(self):
        r = g.reader
        return {"email": r.email, "tier": r.tier, "reader": r.pseudonym}

    def worklist(self):
        return {"tasks": self.workspace().worklist(g.reader)}

    def task(self, task_id: int):
        return self.workspace().detail(g.reader, task_id, self.outbox())

    def reads(self, task_id: int):
        space = self.workspace()
        kind, found = space.task_for(g.reader, task_id)
        if kind.kind != "arbitration":
            raise ApiError(403, "other readers' labels are shown only on arbitration tasks.")
        return {"reads": space.read_masks(found, space.protocol(kind.protocol_id)),
                "shape": [len(found["data"]["sop_instance_uids"]), found["data"]["rows"], found["data"]["columns"]]}

    @staticmethod
    def _seg_body() -> tuple[bytes, object]:
        """The request's SEG, bounded and readable, or the refusal that says what is wrong with it."""
        if (request.content_length or 0) > MAX_SEG_BYTES:
            raise ApiError(413, "the SEG is larger than 512 MB.")
        if request.mimetype != "application/dicom":
            raise ApiError(415, "send the SEG as Content-Type: application/dicom.")
        body = _bounded_body(MAX_SEG_BYTES, "the SEG is larger than 512 MB.")
        try:
            ds = dcmread(io.BytesIO(body))
            check_read(ds, body)  # pydicom reads a cut or damaged file without complaint
        except (InvalidDicomError, *READ_ERRORS):
            raise ApiError(400, "the body is not a readable DICOM file.") from None
        return body, ds

    def submit(self, task_id: int):
        from radlabel.audit import audit_log
        from radlabel.ingest.deid import Deidentifier

        reader, space = g.reader, self.workspace()
        body, ds = self._seg_body()
        kind, found = space.task_for(reader, task_id)
        ohif = space.protocol_config(kind.protocol_id)
        meta = check_seg(ds, found, reader, kind, {s["name"] for s in ohif.get("segments", [])})
        if not space.open_for(reader, kind, found):
            raise ApiError(409, f"task {task_id} already has your read (or its arbitration): it cannot be read again.")
        # The server names the SEG: its UIDs come from (reader, task, content), never from the reader, so one
        # reader's SEG can neither replace nor join another's; the same SEG sent twice is one submission.
        deid = Deidentifier(bytes.fromhex(self.settings.secrets()["pseudonym_key"]))
        body = assign_seg_uids(ds, deid, reader.ls_user_id, task_id, body)
        key = deid.digest("seg", str(ds.SOPInstanceUID)).hex()[:24]
        protocol = f"{kind.protocol_id} {kind.version}"
        outbox_ = self.outbox()
        first = outbox_.get(key) is None
        outbox_.keep(Submission(key, task_id, reader.ls_user_id, kind.kind, protocol), body)
        viewing = viewing_conditions(meta.get("wl_log") or [], ohif)
        if first:
            record_viewing(self.adapters.database, key, task_id, reader.ls_user_id, protocol, viewing, meta.get("wl_log") or [])
            if meta["timing"]:
                record_timing(self.adapters.database, key, task_id, reader.ls_user_id, protocol, meta["timing"])
            audit_log(self.settings).append("reader_submit", reader.pseudonym, protocol, task=task_id, kind=kind.kind,
                                            seg=key, wl_changes=viewing["wl_changes"],
                                            presets_used=viewing["presets_used"],
                                            out_of_preset=[o["class"] for o in viewing["out_of_preset"]],
                                            **(meta["timing"] or {}))
        result = outbox_.deliver(key)
        answer = {"seg_key": key, "status": result.status, "viewing": viewing}
        if result.status == "imported":
            return answer | {"annotation_id": result.annotation_id}, 201
        outbox_.wake()
        # Kept on disk and retried in the background; the reason is an infrastructure sentence, no PHI.
        return answer | {"status": "queued", "stage": result.status, "detail": result.last_error}, 202

    def empty(self, task_id: int):
        """No findings: the reader's read with no labels (an empty result list in Label Studio)."""
        from radlabel.audit import audit_log

        reader, space = g.reader, self.workspace()
        kind, found = space.task_for(reader, task_id)
        if not space.open_for(reader, kind, found):
            raise ApiError(409, f"task {task_id} already has your read (or its arbitration): it cannot be read again.")
        payload = _json_object()
        wl_log = payload.get("wl_log")
        if wl_log is not None and not isinstance(wl_log, list):
            raise ApiError(422, "the W/L log is not a list.")
        wl_log = wl_log or []
        try:
            timing = reading_time(payload)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        viewing = viewing_conditions(wl_log, space.protocol_config(kind.protocol_id))
        protocol = f"{kind.protocol_id} {kind.version}"
        annotation_id = space.tasks.create_annotation(task_id, [], reader.ls_user_id,
                                                      **({"lead_time": timing["lead_time_s"]} if timing else {}))
        key = f"empty-{task_id}-{reader.ls_user_id}-{annotation_id}"
        record_viewing(self.adapters.database, key, task_id, reader.ls_user_id, protocol, viewing, wl_log)
        if timing:
            record_timing(self.adapters.database, key, task_id, reader.ls_user_id, protocol, timing)
        audit_log(self.settings).append("reader_submit", reader.pseudonym, protocol, task=task_id, kind=kind.kind,
                                        empty=True, annotation=annotation_id, wl_changes=viewing["wl_changes"],
                                        presets_used=viewing["presets_used"],
                                        out_of_preset=[o["class"] for o in viewing["out_of_preset"]], **(timing or {}))
        return {"status": "imported", "empty": True, "annotation_id": annotation_id, "viewing": viewing}, 201

    def escalate(self, task_id: int):
        from radlabel.audit import audit_log

        reader, space = g.reader, self.workspace()
        kind, _ = space.task_for(reader, task_id)
        payload = _json_object()
        # Lone surrogates (valid in JSON, not in UTF-8) would fail the database write.
        note = str(payload.get("note") or "")[:1000].encode("utf-8", "replace").decode("utf-8")
        route = space.protocol(kind.protocol_id).escalation.route_to.value
        protocol = f"{kind.protocol_id} {kind.version}"
        with self.adapters.database.connect() as db:
            db.execute("INSERT INTO reader_escalations VALUES (?,?,?,?,?,?) ON CONFLICT(task_id, reader) DO UPDATE SET "
                       "note=excluded.note, created=excluded.created",
                       (task_id, reader.ls_user_id, protocol, route, note, time.time()))
        # The note stays in the state DB only: free text may hold what the audit trail must not.
        audit_log(self.settings).append("escalation", reader.pseudonym, protocol, task=task_id, route_to=route,
                                        with_note=bool(note))
        return {"task_id": task_id, "route_to": route, "status": "escalated"}


def _unknown(rest: str):
    """Anything else (a task id that is not a number, a GET of a POST endpoint): JSON, as the extension expects."""
    return _error(404, "no such endpoint of the radlabel reader API (me, worklist, tasks/<number>[/reads, /seg, "
                       "/empty, /escalate]).")


def create_api(settings: Settings, tasks=None, outbox: Outbox | None = None, retry_interval: float | None = None,
               adapters: Adapters | None = None) -> Blueprint:
    """The blueprint; ``tasks`` (Label Studio) and ``outbox`` are built from the adapters unless given."""
    adapters = adapters or Adapters(settings)
    adapters.database.ensure(VIEWING_SCHEMA, ESCALATION_SCHEMA, TIMING_SCHEMA)
    handlers = ReaderApi(settings, tasks, outbox, adapters)
    interval = retry_interval if retry_interval is not None else float(os.environ.get("RADLABEL_OUTBOX_RETRY_S", "10"))
    if interval > 0:
        handlers.outbox().start(interval)
        handlers.outbox().wake()  # anything kept from before a restart goes out now
    registry = ReaderRegistry(adapters.database)
    api = Blueprint("radlabel_api", __name__)
    for method, rule, view in (("GET", "/me", handlers.me), ("GET", "/worklist", handlers.worklist),
                               ("GET", "/tasks/<int:task_id>", handlers.task),
                               ("GET", "/tasks/<int:task_id>/reads", handlers.reads),
                               ("POST", "/tasks/<int:task_id>/seg", handlers.submit),
                               ("POST", "/tasks/<int:task_id>/empty", handlers.empty),
                               ("POST", "/tasks/<int:task_id>/escalate", handlers.escalate)):
        api.add_url_rule(rule, view.__name__, _reader_required(registry, view), methods=[method])
    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    api.add_url_rule("/", "unknown", _unknown, defaults={"rest": ""}, methods=every)
    api.add_url_rule("/<path:rest>", "unknown", _unknown, methods=every)
    return api

