"""Fuzzing the readers' API of the OHIF extension (Flask test client, no servers).

Label Studio and Orthanc are the small fakes of tests/unit/test_reader_api.py; the registry, blinding,
SEG checks and the outbox are the real code. Seeded loops (deterministic) over tokens, route parameters,
JSON bodies and SEG uploads. The contract: never a 5xx; 401/403/404/400/409/413/415/422 with a JSON
``{"error": ...}``; a refused request writes nothing (no outbox file or row, no annotation, no audit entry).
"""

from __future__ import annotations

import copy
import io
import json
import random
import string

import pydicom
import pytest
from flask import Flask
from pydicom import dcmread
from pydicom.uid import generate_uid

from connectors.readers import ReaderRegistry
from connectors.viewer.api import create_api
from connectors.viewer.outbox import Outbox
from radlabel.protocol.ohif import ohif_config
from radlabel.settings import load_settings
from tests.unit.test_reader_api import PROTOCOL, FakeTasks, reader_seg

SEED = 1234
# pydicom warns about the damaged uploads these tests send on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SUCCESS = {200, 201, 202}
REFUSALS = {400, 401, 403, 404, 405, 409, 413, 415, 422}


def make_outbox(settings, store, import_) -> Outbox:
    """The outbox as the API gets it."""
    from connectors.database import state_database

    return Outbox(settings.home, state_database(settings), store, import_)


@pytest.fixture
def api(tmp_path, monkeypatch):
    from radlabel.phantom import make_ct_study

    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADLABEL_DATABASE_URL", raising=False)
    settings = load_settings()
    folder = settings.home / "protocols"
    folder.mkdir(parents=True)
    (folder / f"{PROTOCOL.id}.json").write_text(json.dumps(ohif_config(PROTOCOL)))
    (folder / f"{PROTOCOL.id}.protocol.json").write_text(PROTOCOL.model_dump_json())
    registry = ReaderRegistry.from_settings(settings)
    tokens = {name: registry.issue(f"{name}@hospital.org", tier, user)
              for name, tier, user in (("a", "radiologist", 11), ("s", "senior", 20))}
    study = make_ct_study(seed=3, slices=6, size=32, pixel_spacing=10.0, lung_nodules=1)
    tasks = FakeTasks()
    data = {"series": str(study.datasets[0].SeriesInstanceUID), "study": str(study.datasets[0].StudyInstanceUID),
            "sop_instance_uids": [str(ds.SOPInstanceUID) for ds in study.datasets], "rows": 32, "columns": 32}
    tasks.add_project(1, f"Lung nodules.\n\nradlabel-protocol: {PROTOCOL.id} {PROTOCOL.version} {PROTOCOL.fingerprint}")
    tasks.add_project(4, "somebody else's project")
    tasks.add_task(100, 1, data)
    tasks.add_task(400, 4, data)
    delivered = {"stored": [], "imported": []}
    outbox = make_outbox(settings, lambda path: delivered["stored"].append(path.name),
                         lambda submission, path: delivered["imported"].append(submission.task_id) or 7000)
    app = Flask(__name__)
    app.register_blueprint(create_api(settings, tasks=tasks, outbox=outbox, retry_interval=0), url_prefix="/radlabel/api")
    env = {"settings": settings, "client": app.test_client(), "tokens": tokens, "tasks": tasks, "outbox": outbox,
           "delivered": delivered, "study": study, "data": data, "next_task": 1000}
    env["seg"] = pydicom.dcmread(io.BytesIO(reader_seg(env, task_id=100)))  # a good SEG, re-tagged per case
    return env


def fresh_task(env) -> int:
    """A new unread task of the reads project (so that every case can be a first read)."""
    env["next_task"] += 1
    env["tasks"].add_task(env["next_task"], 1, env["data"])
    return env["next_task"]


def seg_bytes(env, task_id: int, edit=None) -> bytes:
    ds = copy.deepcopy(env["seg"])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageComments = json.dumps({"task": task_id, "wl_log": [{"type": "wl", "preset": "lung", "center": -600,
                                                                "width": 1500}]})
    if edit:
        edit(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def written(env) -> tuple:
    """Everything a request can leave behind: outbox files and rows, annotations, audit entries."""
    folder = env["settings"].home / "outbox"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".lock")
    audit = env["settings"].home / "audit.log"
    annotations = sum(len(t["annotations"]) for t in env["tasks"].tasks_.values())
    rows = [(s.seg_key, s.status) for s in env["outbox"].pending()]
    return files, rows, annotations, audit.read_text().count("\n") if audit.exists() else 0


def auth(env, who="a") -> dict:
    return {"Authorization": f"Bearer {env['tokens'][who]}"}


def check(reply, before, env, allowed=SUCCESS | REFUSALS):
    """The shared properties of every answer; returns the status."""
    status = reply.status_code
    assert status < 500, reply.get_data()[:500]
    assert status in allowed, (status, reply.get_data()[:300])
    assert reply.is_json, reply.get_data()[:200]
    if status >= 400:
        assert isinstance(reply.json.get("error"), str) and reply.json["error"] and "\n" not in reply.json["error"]
        assert written(env) == before, reply.json  # a refused request leaves nothing behind
    return status


# -- tokens -----------------------------------------------------------------------------------------------
def test_forged_tokens_are_401_and_write_nothing(api):
    rng = random.Random(SEED)
    token = api["tokens"]["a"]
    variants = ["", "Bearer", "Bearer ", f"Bearer{token}", f"Basic {token}", token, f"Bearer {token[:-1]}",
                f"Bearer {token}x", f"Bearer {token.upper()}", f"Bearer {token[4:]}", f"Bearer rlr_{token[4:][::-1]}",
                f"Bearer {token} {token}", "Bearer rlr_", "Bearer " + "rlr_" + "a" * 300, f"Bearer\t{token}",
                "Bearer %00", "Bearer rlr_\u00e9\u00e8", f"Token {token}", "bearer"]
    alphabet = string.ascii_letters + string.digits + "-_ \t%é"
    variants += ["Bearer " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(60)]
    variants += ["Bearer " + token[:i] + rng.choice([c for c in "xyz" if c != token[i]]) + token[i + 1:]
                 for i in rng.sample(range(4, len(token)), 10)]
    requests = [("get", "me"), ("get", "worklist"), ("get", "tasks/100"), ("get", "tasks/100/reads"),
                ("post", "tasks/100/seg"), ("post", "tasks/100/empty"), ("post", "tasks/100/escalate")]
    body = seg_bytes(api, 100)
    for header in variants:
        method, path = rng.choice(requests)
        before = written(api)
        headers = {"Authorization": header} if header else {}
        kwargs = {"data": body, "content_type": "application/dicom"} if path.endswith("seg") else {"json": {}}
        reply = getattr(api["client"], method)("/radlabel/api/" + path, headers=headers,
                                               **(kwargs if method == "post" else {}))
        assert check(reply, before, api) == 401, (header, reply.json)
        assert "reader token" in reply.json["error"] and token not in reply.get_data(as_text=True)
    # The accepted spellings of a good token (scheme in any case, spaces around the token).
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER   {token}  ", f"Bearer {token}\u00a0"):
        assert api["client"].get("/radlabel/api/me", headers={"Authorization": header}).status_code == 200


# -- route parameters and query strings -----------------------------------------------------------------------
def test_route_parameters_are_json_4xx_never_5xx(api):
    rng = random.Random(SEED + 1)
    ids = ["-1", "0", "00", "1e3", "abc", "100.0", "0x64", "%00", "%2e%2e", "..", "100%20", "１００", "٣", "9" * 30,
           str(2**63), str(2**64 + 100), "-" + "9" * 30, "100/../100", "", " ", "x" * 5000, "None", "true", "[100]",
           "100;drop", "100?x=1", "400", "999999"]
    suffixes = ["", "/reads", "/seg", "/empty", "/escalate", "/nothing", "/", "//", "/seg/extra"]
    for n in range(150):
        task = rng.choice(ids)
        path = f"/radlabel/api/tasks/{task}{rng.choice(suffixes)}"
        method = rng.choice(["get", "post", "put", "delete", "patch"])
        before = written(api)
        kwargs = {"data": b"garbage", "content_type": rng.choice(["application/dicom", "application/json"])} \
            if method == "post" else {}
        reply = getattr(api["client"], method)(path, headers=auth(api), **kwargs)
        status = check(reply, before, api)
        if status in SUCCESS:  # only a real task of this reader, reached however it was spelled
            assert path.startswith(("/radlabel/api/tasks/100", "/radlabel/api/tasks/１００", "/radlabel/api/tasks/0")), path
    for path in ("/radlabel/api/", "/radlabel/api/me/x", "/radlabel/api/worklist/1", "/radlabel/api/tasks"):
        assert check(api["client"].get(path, headers=auth(api)), written(api), api) == 404


def test_huge_query_strings_and_headers_are_ignored(api):
    before = written(api)
    query = "&".join(f"k{i}={'v' * 50}" for i in range(2000))
    assert check(api["client"].get(f"/radlabel/api/worklist?{query}", headers=auth(api)), before, api) == 200
    reply = api["client"].get("/radlabel/api/tasks/100?" + "%ff" * 5000, headers=auth(api) | {"X-Junk": "é" * 8000})
    assert check(reply, before, api) == 200


# -- JSON bodies: no findings, escalation ---------------------------------------------------------------------
EVENT_VALUES = [None, True, 0, -1, 10**400, 1.5, float("inf"), "", "lung", "solid_nodule", "x" * 3000, [], ["a"],
                {}, {"a": 1}, "\ud800", "ünï"]


def random_event(rng):
    if rng.random() < 0.15:
        return rng.choice(EVENT_VALUES)
    event = {"type": rng.choice(["wl", "paint", "other", None, ["wl"], {"t": 1}])}
    for key in ("preset", "segment", "center", "width", "t"):
        if rng.random() < 0.6:
            event[key] = rng.choice(EVENT_VALUES)
    return event


def random_json_body(rng):
    """(bytes, content type, what the API should make of it: 'object', 'not a list', 'refused')."""
    kind = rng.randrange(7)
    if kind <= 2:
        log = [random_event(rng) for _ in range(rng.randint(0, 30))]
        payload = {"wl_log": log, "note": rng.choice(EVENT_VALUES)}
        text = json.dumps(payload, allow_nan=True)
        if rng.random() < 0.3:  # numbers no float holds
            text = text.replace('"center": 0', '"center": 1' + "0" * 400)
        return text.encode("utf-8", "surrogatepass"), "application/json", "object"
    if kind == 3:
        payload = {"wl_log": rng.choice(EVENT_VALUES[:-5] + [{"type": "wl"}])}
        listed = isinstance(payload["wl_log"], list) or payload["wl_log"] is None
        return json.dumps(payload).encode(), "application/json", "object" if listed else "not a list"
    if kind == 4:  # JSON that is no object, or no JSON at all
        data = rng.choice([b"[]", b"[1]", b'"wl_log"', b"3", b"null", b"true", b"{", b'{"wl_log": [}', b"\xff\xfe",
                           b"wl_log=[]", b"{'wl_log': []}", b'{"wl_log": [' + b"[" * 5000 + b"]" * 5000 + b"]}"])
        return data, rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded"]), "refused"
    if kind == 5:
        return b"", rng.choice(["application/json", "text/plain", ""]), "object"  # no body: nothing to say
    return json.dumps({"wl_log": []}).encode(), rng.choice(["text/plain", "application/octet-stream"]), "object"


@pytest.mark.parametrize("endpoint", ["empty", "escalate"])
def test_json_bodies_are_taken_or_refused_with_nothing_written(api, endpoint):
    rng = random.Random(f"{SEED}-{endpoint}")
    outcomes = set()
    for n in range(100):
        task = fresh_task(api)
        data, content_type, expected = random_json_body(rng)
        before = written(api)
        reply = api["client"].post(f"/radlabel/api/tasks/{task}/{endpoint}", data=data, content_type=content_type,
                                   headers=auth(api))
        status = check(reply, before, api)
        outcomes.add(status)
        if expected == "refused":
            assert status == 400, (data[:100], reply.json)
        elif expected == "not a list" and endpoint == "empty":
            assert status == 422, (data[:100], reply.json)
        else:
            assert status == (201 if endpoint == "empty" else 200), (data[:100], reply.json)
            if endpoint == "empty":
                assert api["tasks"].tasks_[task]["annotations"][-1]["completed_by"] == 11
    assert outcomes >= {400, 201 if endpoint == "empty" else 200}


# -- SEG uploads ----------------------------------------------------------------------------------------------
def mutate_bytes(rng, data: bytes) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return data[:rng.randrange(len(data))]
    b = bytearray(data)
    if kind == 1:
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if kind == 2:  # a length field made huge, where an element header is
        at = rng.randrange(140, len(b) - 4)
        b[at:at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
        return bytes(b)
    return bytes(b) + rng.randbytes(rng.randint(1, 64))  # junk after the end


SEG_EDITS = {
    "no SOP instance UID": lambda ds: delattr(ds, "SOPInstanceUID"),
    "W/L log of odd events": lambda ds: setattr(ds, "ImageComments", json.dumps(
        {"task": int(json.loads(ds.ImageComments)["task"]),
         "wl_log": [{"type": "paint", "segment": ["solid_nodule"]}, {"type": "wl", "preset": {"x": 1}},
                    {"type": "paint", "segment": "solid_nodule", "center": 10**400, "width": 1},
                    {"type": "paint", "segment": "solid_nodule", "center": "nan", "width": "inf"}, 7, None]})),
    "ImageComments not JSON": lambda ds: setattr(ds, "ImageComments", "{not json"),
    "ImageComments a list": lambda ds: setattr(ds, "ImageComments", "[1, 2]"),
    "W/L log not a list": lambda ds: setattr(ds, "ImageComments", json.dumps({"task": 0, "wl_log": "x"})),
    "no referenced series": lambda ds: delattr(ds, "ReferencedSeriesSequence"),
    "referenced series without UID": lambda ds: delattr(ds.ReferencedSeriesSequence[0], "SeriesInstanceUID"),
    "referenced instance without UID": lambda ds: delattr(
        ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0], "ReferencedSOPInstanceUID"),
    "segment without label": lambda ds: delattr(ds.SegmentSequence[0], "SegmentLabel"),
    "no segments": lambda ds: delattr(ds, "SegmentSequence"),
    "not binary": lambda ds: setattr(ds, "SegmentationType", "FRACTIONAL"),
    "creator of many values": lambda ds: setattr(ds, "ContentCreatorName", ["reader-11^", "x"]),
    "a CT image": lambda ds: setattr(ds, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2"),
    "pixel data cut": lambda ds: setattr(ds, "PixelData", ds.PixelData[:-3]),
}


@pytest.mark.parametrize("label", sorted(SEG_EDITS))
def test_odd_segs_are_4xx_or_taken_never_5xx(api, label):
    task = fresh_task(api)
    before = written(api)
    reply = api["client"].post(f"/radlabel/api/tasks/{task}/seg", data=seg_bytes(api, task, SEG_EDITS[label]),
                               content_type="application/dicom", headers=auth(api))
    status = check(reply, before, api)
    if label == "W/L log of odd events":
        assert status == 201 and reply.json["viewing"]["wl_changes"] == 1
        assert reply.json["viewing"]["out_of_preset"] == [{"class": "solid_nodule", "paint_events": 2, "required": "lung"}]
    elif label == "pixel data cut":
        assert status == 400
    else:
        assert status == 422, reply.json


def test_random_seg_uploads_are_kept_whole_or_refused(api):
    rng = random.Random(SEED + 5)
    foreign = [b"", b"not dicom at all", bytes(132), bytes(128) + b"DICM", rng.randbytes(4000),
               json.dumps({"task": 1}).encode()]
    buffer = io.BytesIO()
    api["study"].datasets[0].save_as(buffer, enforce_file_format=True)
    ct = buffer.getvalue()
    taken = 0
    for n in range(120):
        task = fresh_task(api)
        good = seg_bytes(api, task)
        kind = rng.randrange(10)
        content_type = "application/dicom"
        if kind <= 5:
            data = mutate_bytes(rng, good)
        elif kind == 6:
            data = rng.choice(foreign)
        elif kind == 7:
            data = ct
        elif kind == 8:
            data, content_type = good, rng.choice(["application/json", "multipart/form-data; boundary=x", "text/plain",
                                                   "", "application/dicom+json", "application/octet-stream"])
        else:
            data = good
        before = written(api)
        reply = api["client"].post(f"/radlabel/api/tasks/{task}/seg", data=data, content_type=content_type,
                                   headers=auth(api))
        status = check(reply, before, api)
        if len(data) < len(good) and good.startswith(data):
            assert status in (400, 422), (len(data), len(good), reply.json)  # a SEG cut short is no SEG
        if kind == 9:
            assert status == 201, reply.json
        if kind == 8:
            assert status == 415
        if status in SUCCESS:
            taken += 1
            files, rows, annotations, audit = written(api)
            assert len(files) == len(before[0]) + 1 and audit == before[3] + 1
            kept = api["settings"].home / "outbox" / "delivered" / f"{reply.json['seg_key']}.dcm"
            kept_ds, sent = dcmread(kept), dcmread(io.BytesIO(data))
            # what was kept is what was sent, whole, under the UIDs the server gave it
            assert kept_ds.PixelData == sent.PixelData and kept_ds.SegmentSequence == sent.SegmentSequence
            assert kept_ds.SOPInstanceUID != sent.SOPInstanceUID
    assert 10 < taken < 100


def test_a_seg_bigger_than_the_limit_is_413(api, monkeypatch):
    import connectors.viewer.api as module

    monkeypatch.setattr(module, "MAX_SEG_BYTES", 1000)
    before = written(api)
    reply = api["client"].post("/radlabel/api/tasks/100/seg", data=seg_bytes(api, 100), content_type="application/dicom",
                               headers=auth(api))
    assert check(reply, before, api) == 413
