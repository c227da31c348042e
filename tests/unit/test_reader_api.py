"""Reader registry and the connector API of the OHIF extension (Flask test client, no servers).

Label Studio and Orthanc are stood in for by small fakes of *our* task source and delivery steps;
the SEGs are real (highdicom), the registry, blinding rules, checks and outbox are the real code.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from flask import Flask
from pydicom import dcmread

from connectors.database import state_database
from connectors.readers import ReaderRegistry, check_email, pseudonym_from_name
from connectors.projects import project_kind
from connectors.viewer.api import create_api, viewing_conditions
from connectors.viewer.outbox import Outbox
from radlabel import seg as seg_codec
from radlabel.errors import RadlabelError
from radlabel.phantom import make_ct_study
from radlabel.protocol import load_template
from radlabel.protocol.ohif import ohif_config
from radlabel.settings import Settings

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"
PROTOCOL = load_template(TEMPLATES / "ct-lung-nodules.yaml")
VERSION = f"{PROTOCOL.id} {PROTOCOL.version}"


class FakeTasks:
    """Label Studio as the API sees it: projects with marker descriptions and tasks as dicts."""

    def __init__(self):
        self.projects_ = {}
        self.tasks_ = {}

    def add_project(self, project_id, description):
        self.projects_[project_id] = {"id": project_id, "description": description}

    def add_task(self, task_id, project_id, data, annotations=(), predictions=()):
        self.tasks_[task_id] = {"id": task_id, "project": project_id, "data": data,
                                "annotations": list(annotations), "predictions": list(predictions)}

    def projects(self):
        return list(self.projects_.values())

    def project(self, project_id):
        return self.projects_[project_id]

    def tasks(self, project_id):
        return [t for t in self.tasks_.values() if t["project"] == project_id]

    def task(self, task_id):
        return self.tasks_.get(task_id)

    def consensus_user(self):
        return 99

    def create_annotation(self, task_id, result, user, source="ohif", **extra):
        annotation = {"id": 8000 + sum(len(t["annotations"]) for t in self.tasks_.values()), "completed_by": user,
                      "result": list(result), **extra}
        if source != "ohif":
            annotation["source"] = source
        self.tasks_[task_id]["annotations"].append(annotation)
        return annotation["id"]


@pytest.fixture(scope="module")
def study():
    return make_ct_study(seed=3, slices=6, size=32, pixel_spacing=10.0, lung_nodules=1)


@pytest.fixture
def env(tmp_path, study):
    settings = Settings(home=tmp_path / "home", tools=tmp_path / "tools", ports={})
    settings.home.mkdir()
    folder = settings.home / "protocols"
    folder.mkdir()
    (folder / f"{PROTOCOL.id}.json").write_text(json.dumps(ohif_config(PROTOCOL)))
    (folder / f"{PROTOCOL.id}.protocol.json").write_text(PROTOCOL.model_dump_json())
    registry = ReaderRegistry.from_settings(settings)
    tokens = {name: registry.issue(f"{name}@hospital.org", tier, user)
              for name, tier, user in (("a", "radiologist", 11), ("b", "radiologist", 12), ("c", "radiologist", 13),
                                       ("s", "senior", 20))}
    tasks = FakeTasks()
    data = {"series": str(study.datasets[0].SeriesInstanceUID), "study": str(study.datasets[0].StudyInstanceUID),
            "sop_instance_uids": [str(ds.SOPInstanceUID) for ds in study.datasets], "rows": 32, "columns": 32}
    tasks.add_project(1, f"Lung nodules.\n\nradlabel-protocol: {PROTOCOL.id} {PROTOCOL.version} {PROTOCOL.fingerprint}")
    tasks.add_project(2, f"Calibration.\nradlabel-calibration: {PROTOCOL.id} {PROTOCOL.version} 11")
    tasks.add_project(3, f"Senior arbitration.\nradlabel-arbitration: {PROTOCOL.id} {PROTOCOL.version}")
    tasks.add_project(4, "somebody else's project")
    tasks.add_task(100, 1, data)  # nobody has read it
    tasks.add_task(101, 1, data, annotations=[{"id": 1, "completed_by": 12, "result": [{"x": 1}]},
                                              {"id": 2, "completed_by": 13, "result": []}])  # reads complete
    tasks.add_task(102, 1, data, annotations=[{"id": 3, "completed_by": 11, "result": []}])  # a read it
    tasks.add_task(103, 1, data, annotations=[{"id": 4, "completed_by": 12, "result": [{"secret": "b"}]},
                                              {"id": 5, "completed_by": 99, "ground_truth": True, "result": []}])
    tasks.add_task(200, 2, data)
    tasks.add_task(300, 3, data | {"source_task": 101, "disagreement": ["solid_nodule: Dice 0.41 < 0.7"]},
                   predictions=[{"model_version": "reader-12", "score": 0.41, "result": []},
                                {"model_version": "reader-13", "score": 0.52, "result": []}])
    tasks.add_task(400, 4, data)
    delivered = {"stored": [], "imported": [], "orthanc_up": True}

    def store(path):
        if not delivered["orthanc_up"]:
            raise RadlabelError("Orthanc is not reachable at http://127.0.0.1:1/dicom-web: run `radlabel up`.")
        delivered["stored"].append(path.name)

    def import_(submission, path):
        delivered["imported"].append(submission.task_id)
        return 7000 + len(delivered["imported"])

    outbox = Outbox(settings.home, state_database(settings), store, import_)
    app = Flask(__name__)
    app.register_blueprint(create_api(settings, tasks=tasks, outbox=outbox, retry_interval=0), url_prefix="/radlabel/api")
    return {"settings": settings, "client": app.test_client(), "tokens": tokens, "tasks": tasks, "outbox": outbox,
            "delivered": delivered, "study": study, "data": data}


def get(env, path, who):
    return env["client"].get("/radlabel/api/" + path, headers={"Authorization": f"Bearer {env['tokens'][who]}"})


def reader_seg(env, task_id=100, creator="reader-11^", description=VERSION, series=None, wl_log=None, timing=None):
    study = env["study"]
    nodule = study.labelmap == 7
    lungs = study.labelmap == 3
    ds = seg_codec.encode(study.datasets, {"lung_field": lungs, "solid_nodule": nodule | lungs & False},
                          PROTOCOL, series_description="radlabel read", content_creator=creator,
                          content_description=description)
    if series:
        ds.ReferencedSeriesSequence[0].SeriesInstanceUID = series
    ds.ImageComments = json.dumps({"task": task_id, **({"timing": timing} if timing is not None else {}),
                                   "wl_log": wl_log if wl_log is not None else [
        {"type": "wl", "t": 1, "preset": "lung", "center": -600, "width": 1500},
        {"type": "paint", "t": 2, "segment": "lung_field", "center": -600, "width": 1500},
        {"type": "wl", "t": 3, "preset": None, "center": 40, "width": 400},
        {"type": "paint", "t": 4, "segment": "solid_nodule", "center": 40, "width": 400}]})
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def post_seg(env, who, body, task_id=100):
    return env["client"].post(f"/radlabel/api/tasks/{task_id}/seg", data=body, content_type="application/dicom",
                              headers={"Authorization": f"Bearer {env['tokens'][who]}"})


# -- registry ------------------------------------------------------------------------------------------
def test_tokens_are_stored_only_as_digests_and_revocation_is_immediate(env):
    registry = ReaderRegistry.from_settings(env["settings"])
    token = env["tokens"]["a"]
    assert registry.authenticate(token).ls_user_id == 11
    raw = (env["settings"].home / "state.sqlite").read_bytes()
    assert token.encode() not in raw
    assert registry.authenticate(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert registry.authenticate("") is None and registry.authenticate("Bearer") is None
    assert registry.revoke("a@hospital.org")
    assert registry.authenticate(token) is None
    assert get(env, "me", "a").status_code == 401
    assert [r.active for r in registry.readers() if r.email == "a@hospital.org"] == [False]
    again = registry.issue("a@hospital.org", "senior", 11)  # re-issue: a new token, the old one stays dead
    assert registry.authenticate(again).tier == "senior" and registry.authenticate(token) is None


def test_bad_emails_and_tiers_are_one_sentence(env):
    with pytest.raises(RadlabelError, match="not an email address"):
        check_email("not-an-address")
    with pytest.raises(RadlabelError, match="tier"):
        ReaderRegistry.from_settings(env["settings"]).issue("x@hospital.org", "boss", 1)


def test_a_refused_token_is_told_why_missing_malformed_unknown_replaced_or_revoked(env):
    registry = ReaderRegistry.from_settings(env["settings"])
    client = env["client"]
    old_b = env["tokens"]["b"]
    registry.issue("b@hospital.org", "radiologist", 12)  # b's token re-issued: the old one has expired
    assert registry.revoke("c@hospital.org")

    def refusal(token):
        reply = client.get("/radlabel/api/me", headers={"Authorization": f"Bearer {token}"} if token is not None else {})
        assert reply.status_code == 401
        return reply.json["reason"], reply.json["error"]

    assert refusal(None)[0] == "missing" and "sign in with your reader token" in refusal(None)[1]
    assert refusal("paste-error")[0] == "malformed" and "rlr_" in refusal("paste-error")[1]
    assert refusal("rlr_guess")[0] == "unknown" and "not valid here" in refusal("rlr_guess")[1]
    assert refusal(old_b) == ("replaced", "this reader token has expired: the administrator issued you a newer one; "
                                          "sign in with that.")
    assert refusal(env["tokens"]["c"])[0] == "revoked" and "revoked by the administrator" in refusal(env["tokens"]["c"])[1]
    assert refusal(env["tokens"]["a"].upper())[0] == "malformed"  # RLR_: not a reader token
    # Each sentence is for the reader who holds that token: no email, tier or pseudonym is in any of them.
    for token in (old_b, env["tokens"]["c"], "rlr_guess"):
        assert "@" not in refusal(token)[1] and "reader-" not in refusal(token)[1]
    assert get(env, "me", "a").status_code == 200  # the others' tokens still work


def test_requests_without_a_valid_token_are_refused(env):
    client = env["client"]
    assert client.get("/radlabel/api/worklist").status_code == 401
    reply = client.get("/radlabel/api/worklist", headers={"Authorization": "Bearer rlr_guess"})
    assert reply.status_code == 401 and "reader token" in reply.json["error"]
    assert get(env, "me", "s").json == {"email": "s@hospital.org", "tier": "senior", "reader": "reader-20"}


# -- worklist and blinding -------------------------------------------------------------------------------
def test_worklist_holds_only_the_readers_own_assignments(env):
    def ids(who):
        return [(t["task_id"], t["kind"]) for t in get(env, "worklist", who).json["tasks"]]

    assert ids("a") == [(200, "calibration"), (100, "reads"), (103, "reads")]  # 102: already read; 101: full
    assert ids("b") == [(100, "reads"), (102, "reads")]  # 103: read by b (ground truth is no read)
    assert ids("s") == [(300, "arbitration"), (100, "reads"), (102, "reads"), (103, "reads")]


def test_a_reader_cannot_fetch_another_readers_task_or_labels(env):
    assert get(env, "tasks/101", "a").status_code == 404  # read by b and c, complete
    assert get(env, "tasks/200", "b").status_code == 404  # a's calibration task
    assert get(env, "tasks/300", "a").status_code == 404  # arbitration: seniors only
    assert get(env, "tasks/400", "a").status_code == 404  # not a radlabel project
    assert get(env, "tasks/999", "a").status_code == 404
    assert get(env, "tasks/300/reads", "b").status_code == 404
    detail = get(env, "tasks/103", "a").json  # open for a; b's read of it must not show
    assert detail["own_annotations"] == [] and "secret" not in json.dumps(detail)
    assert "annotations" not in detail and "predictions" not in detail
    own = get(env, "tasks/103", "b").json
    assert [a["id"] for a in own["own_annotations"]] == [4] and own["open"] is False
    assert detail["ohif"]["protocol"]["id"] == PROTOCOL.id and detail["sop_instance_uids"] == env["data"]["sop_instance_uids"]


def test_seniors_see_every_read_and_the_agreement_on_arbitration_tasks(env):
    with sqlite3.connect(env["settings"].home / "state.sqlite") as db:
        db.execute("CREATE TABLE adjudications (task_id INTEGER PRIMARY KEY, protocol_id TEXT, status TEXT,"
                   " arbitration_task_id INTEGER, seg_sop_uid TEXT, decision TEXT, updated REAL)")
        db.execute("INSERT INTO adjudications VALUES (101, ?, 'arbitration', 300, NULL, ?, 0)",
                   (PROTOCOL.id, json.dumps({"reasons": ["solid_nodule: Dice 0.41 < 0.7"],
                                             "agreement": {"solid_nodule": {"pairs": {"12-13": {"dice": 0.41}}}}})))
    detail = get(env, "tasks/300", "s").json
    assert [r["reader"] for r in detail["arbitration"]["reads"]] == ["reader-12", "reader-13"]
    assert detail["arbitration"]["agreement"]["solid_nodule"]["pairs"]["12-13"]["dice"] == 0.41
    reads = get(env, "tasks/300/reads", "s").json
    assert [r["reader"] for r in reads["reads"]] == ["reader-12", "reader-13"] and reads["shape"] == [6, 32, 32]
    assert get(env, "tasks/100/reads", "s").status_code == 403


# -- submit ----------------------------------------------------------------------------------------------
def test_a_submitted_seg_is_kept_stored_imported_and_its_viewing_recorded(env):
    reply = post_seg(env, "a", reader_seg(env))
    assert reply.status_code == 201, reply.json
    assert reply.json["status"] == "imported" and env["delivered"]["imported"] == [100]
    assert reply.json["viewing"]["out_of_preset"] == [{"class": "solid_nodule", "paint_events": 1, "required": "lung"}]
    key = reply.json["seg_key"]
    assert (env["settings"].home / "outbox" / "delivered" / f"{key}.dcm").exists()
    with sqlite3.connect(env["settings"].home / "state.sqlite") as db:
        row = db.execute("SELECT wl_changes, presets_used, out_of_preset FROM reader_viewing WHERE seg_key=?",
                         (key,)).fetchone()
    assert row[0] == 2 and json.loads(row[1]) == ["lung"] and "solid_nodule" in row[2]
    audit = [json.loads(line) for line in (env["settings"].home / "audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "reader_submit" and audit[-1]["objects"]["out_of_preset"] == ["solid_nodule"]
    assert "@" not in json.dumps(audit)  # reader pseudonyms only


def test_the_server_names_each_seg_so_no_reader_can_replace_anothers(env):
    env["delivered"]["orthanc_up"] = False  # A's SEG stays pending in the outbox
    planted = dcmread(io.BytesIO(reader_seg(env)))
    planted.InstitutionName = "Springfield General Hospital"  # identity a client might copy into its SEG
    buffer = io.BytesIO()
    planted.save_as(buffer, enforce_file_format=True)
    a_body = buffer.getvalue()
    first = post_seg(env, "a", a_body)
    assert first.status_code == 202
    kept = env["settings"].home / "outbox" / f"{first.json['seg_key']}.dcm"
    a_kept = kept.read_bytes()
    sent_uid = str(dcmread(io.BytesIO(a_body)).SOPInstanceUID)
    assert str(dcmread(kept).SOPInstanceUID) != sent_uid  # the reader's own UID is not used
    # B sends a SEG carrying the very same SOPInstanceUID for their own task: a separate submission
    env["tasks"].add_task(104, 1, env["data"])
    b_ds = dcmread(io.BytesIO(reader_seg(env, task_id=104, creator="reader-12^")))
    b_ds.SOPInstanceUID = sent_uid
    buffer = io.BytesIO()
    b_ds.save_as(buffer, enforce_file_format=True)
    second = post_seg(env, "b", buffer.getvalue(), task_id=104)
    assert second.status_code == 202 and second.json["seg_key"] != first.json["seg_key"]
    assert kept.read_bytes() == a_kept
    # the same SEG sent again by A is the same submission, not a second one
    assert post_seg(env, "a", a_body).json["seg_key"] == first.json["seg_key"]
    # whatever patient or site identity the client copied into the SEG is not kept (the phantom's PHI here)
    sent, kept_ds = dcmread(io.BytesIO(a_body)), dcmread(kept)
    assert sent.PatientName and sent.InstitutionName and sent.PatientBirthDate
    assert kept_ds.PatientName == "" and kept_ds.PatientID == "" and kept_ds.PatientBirthDate == ""
    assert "InstitutionName" not in kept_ds and str(sent.PatientName) not in kept.read_bytes().decode("latin-1")


def test_a_chunked_upload_over_the_cap_is_413_and_nothing_is_kept(env, monkeypatch):
    import connectors.viewer.api as module

    monkeypatch.setattr(module, "MAX_SEG_BYTES", 1000)
    reply = env["client"].post("/radlabel/api/tasks/100/seg", input_stream=io.BytesIO(reader_seg(env)),
                               content_type="application/dicom",
                               headers={"Authorization": f"Bearer {env['tokens']['a']}", "Transfer-Encoding": "chunked"},
                               environ_overrides={"wsgi.input_terminated": True})
    assert reply.status_code == 413 and "larger than" in reply.json["error"]
    assert not list((env["settings"].home / "outbox").glob("*.dcm"))


def test_a_submit_while_orthanc_is_down_is_kept_and_retried(env):
    env["delivered"]["orthanc_up"] = False
    reply = post_seg(env, "a", reader_seg(env))
    assert reply.status_code == 202 and reply.json["status"] == "queued"
    assert "not reachable" in reply.json["detail"]
    key = reply.json["seg_key"]
    assert (env["settings"].home / "outbox" / f"{key}.dcm").exists()
    assert env["outbox"].deliver_pending()[0].status == "queued"  # still down: still kept
    env["delivered"]["orthanc_up"] = True
    [done] = env["outbox"].deliver_pending()
    assert done.status == "imported" and done.attempts == 3 and env["delivered"]["imported"] == [100]
    assert not (env["settings"].home / "outbox" / f"{key}.dcm").exists()
    assert env["outbox"].deliver_pending() == []


def test_the_retry_thread_delivers_without_a_request(env):
    import time

    env["delivered"]["orthanc_up"] = False
    key = post_seg(env, "a", reader_seg(env)).json["seg_key"]
    env["delivered"]["orthanc_up"] = True
    env["outbox"].start(0.05)
    deadline = time.monotonic() + 5
    while env["outbox"].get(key).status != "imported" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env["outbox"].get(key).status == "imported"


@pytest.mark.parametrize("change, status, words", [
    ({"creator": "reader-12^"}, 422, "reader identity"),
    ({"creator": "reader-111^"}, 422, "reader identity"),
    ({"creator": "READER^ELEVEN"}, 422, "reader identity"),
    ({"description": "ct_lung_nodules 0.9.0"}, 422, "protocol"),
    ({"series": "1.2.3.4"}, 422, "research series"),
    ({"task_id": 101}, 422, "task 100"),
])
def test_a_seg_not_of_this_reader_task_or_version_is_refused(env, change, status, words):
    reply = post_seg(env, "a", reader_seg(env, **change))
    assert reply.status_code == status and words in reply.json["error"], reply.json
    assert env["delivered"]["stored"] == []


def test_the_reader_name_is_a_one_component_person_name_and_the_bare_form_still_maps(env):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # highdicom warns about a person name without a caret
        body = reader_seg(env, creator="reader-11^")
    assert post_seg(env, "a", body).status_code == 201
    with pytest.warns(UserWarning, match="unlikely to represent"):
        bare = reader_seg(env, task_id=102, creator="reader-12")  # as the extension wrote it before
    assert post_seg(env, "b", bare, task_id=102).status_code == 201
    assert [pseudonym_from_name(n) for n in ("reader-11^", "reader-11", " reader-11^^ ", "READER^ONE", "reader-11^X", "")] == \
        ["reader-11", "reader-11", "reader-11", None, None, None]


def test_bodies_that_are_not_segs_are_one_sentence(env):
    reply = post_seg(env, "a", b"not dicom at all")
    assert reply.status_code == 400 and reply.json == {"error": "the body is not a readable DICOM file."}
    buffer = io.BytesIO()
    env["study"].datasets[0].save_as(buffer, enforce_file_format=True)
    assert "not a DICOM Segmentation" in post_seg(env, "a", buffer.getvalue()).json["error"]
    reply = env["client"].post("/radlabel/api/tasks/100/seg", data=b"{}", content_type="application/json",
                               headers={"Authorization": f"Bearer {env['tokens']['a']}"})
    assert reply.status_code == 415


def test_another_readers_task_takes_no_submit_and_a_read_is_not_repeated(env):
    assert post_seg(env, "a", reader_seg(env, task_id=101), task_id=101).status_code == 404
    assert post_seg(env, "a", reader_seg(env)).status_code == 201
    env["tasks"].tasks_[100]["annotations"].append({"id": 9, "completed_by": 11, "result": []})
    assert post_seg(env, "a", reader_seg(env)).status_code == 409


def test_no_findings_is_an_empty_read_recorded_once(env):
    from radlabel.adjudication.reads import read_from_annotation
    from radlabel.protocol.enum import Geometry

    headers = {"Authorization": f"Bearer {env['tokens']['a']}"}
    log = [{"type": "wl", "t": 1, "preset": "lung", "center": -600, "width": 1500}]
    reply = env["client"].post("/radlabel/api/tasks/100/empty", json={"wl_log": log}, headers=headers)
    assert reply.status_code == 201 and reply.json["empty"] is True, reply.json
    [annotation] = env["tasks"].tasks_[100]["annotations"]
    assert annotation == {"id": reply.json["annotation_id"], "completed_by": 11, "result": []}
    assert env["delivered"]["stored"] == []  # no SEG: an empty SEG is not valid DICOM
    audit = [json.loads(line) for line in (env["settings"].home / "audit.log").read_text().splitlines()]
    assert audit[-1]["action"] == "reader_submit" and audit[-1]["objects"]["empty"] is True
    assert audit[-1]["actor"] == "reader-11"
    with sqlite3.connect(env["settings"].home / "state.sqlite") as db:
        assert db.execute("SELECT presets_used FROM reader_viewing WHERE task_id=100 AND reader=11").fetchone() == ('["lung"]',)
    # Read once: a second "no findings" or a SEG after it is refused; the task leaves a's worklist.
    assert env["client"].post("/radlabel/api/tasks/100/empty", json={}, headers=headers).status_code == 409
    assert post_seg(env, "a", reader_seg(env)).status_code == 409
    assert 100 not in [t["task_id"] for t in get(env, "worklist", "a").json["tasks"]]
    assert get(env, "tasks/100", "a").json["own_annotations"][0]["regions"] == 0
    # Adjudication takes it as a read with empty masks, one per mask class.
    read = read_from_annotation(annotation, PROTOCOL, (6, 32, 32))
    assert read.reader == 11 and set(read.masks) == {c.name for c in PROTOCOL.classes_with(Geometry.MASK)}
    assert all(m.shape == (6, 32, 32) and not m.any() for m in read.masks.values()) and not read.findings
    # Blinding holds: not for another reader's finished task, nor without a token.
    assert env["client"].post("/radlabel/api/tasks/101/empty", json={}, headers=headers).status_code == 404
    assert env["client"].post("/radlabel/api/tasks/102/empty", json={}).status_code == 401
    bad = env["client"].post("/radlabel/api/tasks/103/empty", json={"wl_log": "x"}, headers=headers)
    assert bad.status_code == 422 and len(env["tasks"].tasks_[103]["annotations"]) == 2


def test_reading_time_goes_on_the_annotation_and_is_recorded_with_the_read(env):
    headers = {"Authorization": f"Bearer {env['tokens']['a']}"}
    timing = {"lead_time_s": 95.5, "active_time_s": 61.2}
    reply = env["client"].post("/radlabel/api/tasks/100/empty", json={"wl_log": [], "timing": timing}, headers=headers)
    assert reply.status_code == 201, reply.json
    [annotation] = env["tasks"].tasks_[100]["annotations"]
    assert annotation["lead_time"] == 95.5  # what Label Studio's own editor records, read by the QA time figures
    reply = post_seg(env, "b", reader_seg(env, creator="reader-12^", timing={"lead_time_s": 300, "active_time_s": 200}))
    assert reply.status_code == 201, reply.json
    with sqlite3.connect(env["settings"].home / "state.sqlite") as db:
        rows = db.execute("SELECT reader, lead_time_s, active_time_s FROM reader_timing ORDER BY reader").fetchall()
    assert rows == [(11, 95.5, 61.2), (12, 300.0, 200.0)]
    audit = [json.loads(line) for line in (env["settings"].home / "audit.log").read_text().splitlines()]
    assert audit[-1]["objects"]["lead_time_s"] == 300 and audit[-1]["objects"]["active_time_s"] == 200


@pytest.mark.parametrize("timing, words", [
    ({"lead_time_s": -1, "active_time_s": 0}, "timing.lead_time_s must be a number of seconds"),
    ({"lead_time_s": 10, "active_time_s": 11}, "cannot exceed"),
    ({"lead_time_s": "10", "active_time_s": 1}, "timing.lead_time_s"),
    ({"lead_time_s": 10, "active_time_s": True}, "timing.active_time_s"),
    ({"lead_time_s": 1e12, "active_time_s": 1}, "timing.lead_time_s"),
    ([1, 2], "timing must be an object"),
])
def test_a_malformed_reading_time_is_one_sentence_and_nothing_is_saved(env, timing, words):
    headers = {"Authorization": f"Bearer {env['tokens']['a']}"}
    reply = env["client"].post("/radlabel/api/tasks/100/empty", json={"timing": timing}, headers=headers)
    assert reply.status_code == 422 and words in reply.json["error"] and env["tasks"].tasks_[100]["annotations"] == []
    reply = post_seg(env, "a", reader_seg(env, timing=timing))
    assert reply.status_code == 422 and words in reply.json["error"] and env["delivered"]["stored"] == []


def test_escalation_reaches_the_protocols_route(env):
    reply = env["client"].post("/radlabel/api/tasks/100/escalate", json={"note": "motion artefact"},
                               headers={"Authorization": f"Bearer {env['tokens']['a']}"})
    assert reply.status_code == 200 and reply.json["route_to"] == PROTOCOL.escalation.route_to.value
    audit = (env["settings"].home / "audit.log").read_text()
    assert "escalation" in audit and "motion artefact" not in audit


def test_viewing_conditions_flag_classes_painted_outside_their_preset():
    config = ohif_config(PROTOCOL)
    log = [{"type": "wl", "preset": "bone", "center": 400, "width": 1800},
           {"type": "paint", "segment": "calcified_nodule", "center": 405, "width": 1800},  # within 2 %
           {"type": "paint", "segment": "solid_nodule", "center": 400, "width": 1800},
           {"type": "paint", "segment": "solid_nodule"},  # no window recorded: cannot be shown to be in preset
           "junk"]
    result = viewing_conditions(log, config)
    assert result["wl_changes"] == 1 and result["presets_used"] == ["bone"]
    assert result["out_of_preset"] == [{"class": "solid_nodule", "paint_events": 2, "required": "lung"}]


def test_project_markers():
    assert project_kind("x\nradlabel-calibration: ct_lung_nodules 1.0.0 7").reader == 7
    assert project_kind("radlabel-arbitration: ct_lung_nodules 1.0.0").kind == "arbitration"
    assert project_kind("radlabel-qa-review: ct_lung_nodules 1.0.0").kind == "review"
    assert project_kind("nothing") is None and project_kind(None) is None
