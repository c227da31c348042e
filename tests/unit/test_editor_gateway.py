"""The Label Studio door behind radlabel's gateway, first slice (issue 17): a reader saves a read of their own
task through radlabel, authored by their token, never by the body. Label Studio is the readers' API fake."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from connectors.readers import ReaderRegistry
from connectors.viewer.editor import create_editor_api, result_problem
from connectors.viewer.editor_bundle import editor_bundle
from radlabel.protocol.labelconfig import label_config
from radlabel.brush_rle import mask_regions
from radlabel.settings import Settings
from tests.unit.test_reader_api import PROTOCOL, FakeTasks

import numpy as np

DATA = {"series": "2.25.1", "study": "2.25.2", "sop_instance_uids": [f"2.25.3.{k}" for k in range(4)],
        "images": [f"/x/{k}.png" for k in range(4)], "rows": 16, "columns": 16}


def brush(index=1):
    mask = np.zeros((4, 16, 16), bool)
    mask[index, 4:9, 4:9] = True
    return mask_regions({"solid_nodule": mask}, "mask_lung", "image_lung")


def editor_app(tmp_path, assist=None) -> dict:
    """The editor blueprint on the readers' API fake: readers a and b (radiologists), s (senior); task 100 of the
    protocol's project, task 200 a's calibration case; ``assist`` stands in for the ML backend."""
    settings = Settings(home=tmp_path / "home", tools=tmp_path / "tools", ports={})
    (settings.home / "protocols").mkdir(parents=True)
    (settings.home / "protocols" / f"{PROTOCOL.id}.protocol.json").write_text(PROTOCOL.model_dump_json())
    registry = ReaderRegistry.from_settings(settings)
    tokens = {name: registry.issue(f"{name}@hospital.org", tier, user)
              for name, tier, user in (("a", "radiologist", 11), ("b", "radiologist", 12), ("s", "senior", 20))}
    tasks = FakeTasks()
    tasks.add_project(1, f"Lung nodules.\n\nradlabel-protocol: {PROTOCOL.id} {PROTOCOL.version} {PROTOCOL.fingerprint}")
    tasks.add_project(2, f"Calibration.\nradlabel-calibration: {PROTOCOL.id} {PROTOCOL.version} 11")
    tasks.add_task(100, 1, DATA)
    tasks.add_task(200, 2, DATA)  # a's calibration case
    app = Flask(__name__)
    app.register_blueprint(create_editor_api(settings, tasks=tasks, assist=assist), url_prefix="/radlabel/editor")
    return {"client": app.test_client(), "tokens": tokens, "tasks": tasks, "settings": settings}


@pytest.fixture
def env(tmp_path):
    return editor_app(tmp_path)


def post(env, task_id, body, who="a"):
    headers = {"Authorization": f"Bearer {env['tokens'][who]}"} if who in env["tokens"] else \
        ({"Authorization": f"Bearer {who}"} if who else {})
    return env["client"].post(f"/radlabel/editor/tasks/{task_id}/annotation", data=json.dumps(body),
                              headers=headers | {"Content-Type": "application/json"})


def test_a_reader_saves_their_own_read_as_themselves(env):
    reply = post(env, 100, {"result": brush()})
    assert reply.status_code == 201, reply.json
    [saved] = env["tasks"].tasks_[100]["annotations"]
    assert saved["completed_by"] == 11 and saved["id"] == reply.json["annotation_id"]
    again = post(env, 100, {"result": brush()})
    assert again.status_code == 409  # one read per reader


def test_the_body_cannot_name_another_author(env):
    reply = post(env, 100, {"result": brush(), "completed_by": 12})
    assert reply.status_code == 422 and "the author is the signed-in reader" in reply.json["error"]
    assert env["tasks"].tasks_[100]["annotations"] == []


def test_outsiders_and_the_wrong_reader_are_refused(env):
    assert post(env, 100, {"result": []}, who="").status_code == 401
    assert post(env, 100, {"result": []}, who="rlr_forged").status_code == 401
    assert post(env, 200, {"result": []}, who="b").status_code == 404  # a's calibration case
    assert post(env, 987654, {"result": []}, who="b").status_code == 404  # unknown: the same answer
    assert post(env, 200, {"result": []}, who="a").status_code == 201


@pytest.mark.parametrize("result, expected", [
    ("nope", "'result' must be a list"),
    ([{"from_name": "mask"}], "result[0] must be an object with a 'value' object."),
    ([{"from_name": "webhook", "to_name": "image", "type": "brushlabels", "value": {}}], "must name a control"),
    ([dict(brush()[0], item_index=9)], "result[0].item_index must be a slice number from 0 to 3."),
    ([dict(brush()[0], value=dict(brush()[0]["value"], brushlabels=["liver"]))], "must list values of the protocol"),
    ([dict(brush()[0], value=dict(brush()[0]["value"], rle=[1, 2, 999]))], "rle list of byte values"),
    ([dict(brush()[0], value=dict(brush()[0]["value"], rle=[1] * 2000))], "rle list of byte values"),
])
def test_regions_the_protocol_cannot_produce_are_refused_in_one_sentence(env, result, expected):
    reply = post(env, 100, {"result": result})
    assert reply.status_code == 422 and expected in reply.json["error"]
    assert reply.json["error"].count(".") >= 1 and "Traceback" not in reply.json["error"]
    assert env["tasks"].tasks_[100]["annotations"] == []


def test_every_control_of_the_protocol_is_accepted():
    findings = [{"from_name": "escalation", "to_name": "image_lung", "type": "choices", "value": {"choices": ["escalate"]}},
                {"from_name": "escalation_note", "to_name": "image_lung", "type": "textarea", "value": {"text": ["why"]}}]
    assert result_problem(brush() + findings, PROTOCOL, DATA) is None
    assert "a note needs" in result_problem([dict(findings[1], value={"text": ["x" * 1001]})], PROTOCOL, DATA)


# -- the editor page's data: only the reader's own work, only what the labelling configuration shows --------
def get(env, path, who="a"):
    headers = {"Authorization": f"Bearer {env['tokens'][who]}"} if who in env["tokens"] else \
        ({"Authorization": f"Bearer {who}"} if who else {})
    return env["client"].get(f"/radlabel/editor/{path}", headers=headers)


def test_the_task_holds_only_the_readers_own_read_and_the_shown_data(env):
    task = env["tasks"].tasks_[100]
    slices = {p: [f"http://127.0.0.1:3000/radlabel/images/k/{p}/{k:04d}.png?exp=9&sig=s" for k in range(4)]
              for p in ("lung", "mediastinum", "bone")}
    task["data"] = dict(DATA, images=slices["lung"], images_by_preset=slices, source_task=7, disagreement=["b vs a"])
    task["annotations"] += [{"id": 1, "completed_by": 12, "result": brush(2)},  # b's read
                            {"id": 2, "completed_by": 99, "result": brush(3)},  # the consensus
                            {"id": 3, "completed_by": 11, "result": brush(1)}]  # a's own
    task["predictions"] = [{"model_version": "reader-12", "result": brush(2)}]
    reply = get(env, "api/tasks/100")
    assert reply.status_code == 200, reply.json
    body = reply.json
    assert [a["id"] for a in body["task"]["annotations"]] == [3] and body["task"]["predictions"] == []
    assert body["task"]["data"] == {"images_by_preset": {  # every preset's slices, same-origin
        p: [f"/radlabel/images/k/{p}/{k:04d}.png?exp=9&sig=s" for k in range(4)] for p in ("lung", "mediastinum", "bone")}}
    assert body["config"] == label_config(PROTOCOL) and body["open"] is False and body["reader"] == "reader-11"
    text = json.dumps(body)
    assert "b vs a" not in text and "2.25.1" not in text and '"source_task"' not in text


def test_the_worklist_lists_only_the_readers_own_tasks(env):
    assert [t["task_id"] for t in get(env, "api/worklist").json["tasks"]] == [200, 100]  # calibration first
    assert [t["task_id"] for t in get(env, "api/worklist", who="b").json["tasks"]] == [100]
    post(env, 100, {"result": brush()})
    assert [t["task_id"] for t in get(env, "api/worklist").json["tasks"]] == [200]  # read: off the list


def test_outsiders_revoked_and_wrong_readers_get_nothing(env, tmp_path):
    assert get(env, "api/worklist", who="").status_code == 401
    assert get(env, "api/tasks/100", who="rlr_forged").status_code == 401
    wrong, unknown = get(env, "api/tasks/200", who="b"), get(env, "api/tasks/987654", who="b")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json["error"].replace("200", "N") == unknown.json["error"].replace("987654", "N")
    env["tasks"].add_project(3, f"Senior arbitration.\nradlabel-arbitration: {PROTOCOL.id} {PROTOCOL.version}")
    env["tasks"].add_task(300, 3, DATA)
    assert get(env, "api/tasks/300", who="s").status_code == 404  # arbitration shows others' reads: OHIF only
    assert post(env, 300, {"result": []}, who="s").status_code == 404
    ReaderRegistry.from_settings(env["settings"]).revoke("a@hospital.org")
    assert get(env, "api/worklist").status_code == 401 and post(env, 200, {"result": []}).status_code == 401


def test_lead_time_is_kept_and_checked(env):
    assert post(env, 100, {"result": [], "lead_time": -1}).status_code == 422
    assert post(env, 100, {"result": [], "lead_time": 42.5}).status_code == 201
    [saved] = env["tasks"].tasks_[100]["annotations"]
    assert saved["lead_time"] == 42.5 and saved["source"] == "label-studio-editor"


def test_pages_are_public_shells_and_the_bundle_comes_from_label_studio(env):
    page = env["client"].get("/radlabel/editor/")
    assert page.status_code == 200 and b'id="radlabel-signin"' in page.data and b"<script>" not in page.data
    missing = env["client"].get("/radlabel/editor/tasks/100")
    assert missing.status_code == 503 and b"radlabel install" in missing.data
    folder = env["settings"].label_studio_venv / "lib/python3.11/site-packages/web/dist/apps/labelstudio"
    folder.mkdir(parents=True)
    (folder / "main.js").write_text('(self.webpackChunklabelstudio=self.webpackChunklabelstudio||[]).push([[792],{1:()=>{'
                                    'x=()=>Promise.all([n.e(502),n.e(358)]).then(n.bind(n,41607))}}])')
    (folder / "358.js").write_text("AP.instances=new Set,window.LabelStudio=AP")
    flags = folder.parents[3] / "label_studio" / "core" / "feature_flags"
    flags.mkdir(parents=True)
    (flags / "stale_feature_flags.py").write_text("STALE_FEATURE_FLAGS = {'fflag_multi_image': True, 'f': 'x'}\n")
    editor_bundle.cache_clear()
    page = env["client"].get("/radlabel/editor/tasks/100")
    assert page.status_code == 200
    assert b'data-main-chunk="792" data-chunks="502,358" data-module="41607"' in page.data
    assert b'data-feature-flags="{&quot;fflag_multi_image&quot;: true}"' in page.data  # as Label Studio's pages set
    assert env["client"].get("/radlabel/editor/static/358.js").data.endswith(b"window.LabelStudio=AP")
    assert env["client"].get("/radlabel/editor/static/../main.js").status_code == 404
    (folder / "index.html").write_text("<script src=main.js></script>")  # Label Studio's whole app: not served
    assert env["client"].get("/radlabel/editor/static/index.html").status_code == 404


def test_an_uncertified_readers_read_takes_no_overlap_slot_once_certification_counts(env):
    from connectors.database import state_database
    from connectors.qa_records import SCHEMA as QA_SCHEMA

    env["tasks"].tasks_[100]["annotations"] += [{"id": 1, "completed_by": 12, "result": []},   # b: certified
                                                {"id": 2, "completed_by": 13, "result": []}]   # c: not certified
    assert post(env, 100, {"result": []}).status_code == 404  # two reads of two: full
    database = state_database(env["settings"])
    database.ensure(*QA_SCHEMA)
    with database.connect() as db:
        for task in range(PROTOCOL.qa.calibration.cases):  # the calibration set is complete: certification counts
            db.execute("INSERT INTO gold VALUES (?,?,?)", (PROTOCOL.id, 5000 + task, 0.0))
        db.execute("INSERT INTO certifications VALUES (?,?,?,?,?,?)", (PROTOCOL.id, 12, "radiologist", 1, "{}", 0.0))
    assert post(env, 100, {"result": []}).status_code == 201  # c's read does not fill the task
