"""The Label Studio door behind radlabel's gateway, first slice (issue 17): a reader saves a read of their own
task through radlabel, authored by their token, never by the body. Label Studio is the readers' API fake."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from connectors.readers import ReaderRegistry
from connectors.viewer.editor import create_editor_api, result_problem
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


@pytest.fixture
def env(tmp_path):
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
    app.register_blueprint(create_editor_api(settings, tasks=tasks), url_prefix="/radlabel/editor")
    return {"client": app.test_client(), "tokens": tokens, "tasks": tasks}


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
