"""The editor gateway's 3-D assist route (issue 20): a reader's smart-tool regions reach the ML backend's assist,
server-side with the ML credential, for the reader's own open task only; bad bodies get one sentence."""

from __future__ import annotations

import json

import pytest

from radlabel.settings import Settings
from tests.unit.test_editor_gateway import DATA, brush, editor_app


@pytest.fixture
def env(tmp_path):
    calls = []

    def assist(task, config, regions):
        calls.append((task["id"], task["data"]["series"], regions))
        grown = brush(2)[0] | {"id": "grown-2"}
        return [grown], "radlabel-classical-1-assist"

    return editor_app(tmp_path, assist=assist) | {"calls": calls}


def call(env, task_id, body, who="a", what="assist"):
    token = env["tokens"].get(who, who)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return env["client"].post(f"/radlabel/editor/tasks/{task_id}/{what}", data=json.dumps(body),
                              headers=headers | {"Content-Type": "application/json"})


def test_the_readers_strokes_come_back_grown_for_their_own_open_task(env):
    reply = call(env, 100, {"result": brush(1)})
    assert reply.status_code == 200, reply.json
    assert reply.json["model_version"] == "radlabel-classical-1-assist"
    assert [r["item_index"] for r in reply.json["result"]] == [2]
    assert reply.json["result"][0]["id"].startswith("assist-")
    assert call(env, 100, {"result": brush(1)}).json["result"][0]["id"] != reply.json["result"][0]["id"]
    (task_id, series, regions), _ = env["calls"]
    assert (task_id, series, regions) == (100, DATA["series"], brush(1))  # the task's data stays server-side
    assert "series" not in json.dumps(reply.json)


def test_outsiders_the_wrong_reader_and_a_read_task_are_refused(env):
    assert call(env, 100, {"result": brush()}, who="").status_code == 401
    assert call(env, 100, {"result": brush()}, who="rlr_forged").status_code == 401
    assert call(env, 200, {"result": brush()}, who="b").status_code == 404  # a's calibration case
    assert call(env, 987654, {"result": brush()}, who="b").status_code == 404
    assert call(env, 100, {"result": brush()}, what="annotation").status_code == 201
    finished = call(env, 100, {"result": brush()})
    assert finished.status_code == 409 and "already has your read" in finished.json["error"]
    assert env["calls"] == []  # the ML backend was never asked


@pytest.mark.parametrize("body, expected", [
    ({}, "send only 'result'"),
    ({"result": brush(), "task": 7}, "send only 'result'"),
    ({"result": []}, "'result' must list the assist's regions (1 to 500)."),
    ({"result": brush() * 501}, "'result' must list the assist's regions"),
    ({"result": [dict(brush()[0], item_index=9)]}, "result[0].item_index must be a slice number from 0 to 3."),
    ({"result": [{"from_name": "escalation", "to_name": "image_lung", "type": "choices",
                  "value": {"choices": ["escalate"]}}]}, "the assist takes brush strokes, keypoints and boxes only."),
])
def test_bad_bodies_get_one_sentence(env, body, expected):
    reply = call(env, 100, body)
    assert reply.status_code == 422 and expected in reply.json["error"], reply.json
    assert "Traceback" not in reply.json["error"] and env["calls"] == []


def test_a_down_ml_backend_is_one_sentence(tmp_path):
    from connectors.viewer.editor import ApiError, ml_backend_assist

    settings = Settings(home=tmp_path / "home", tools=tmp_path / "tools", ports={"ml_backend": 9})
    settings.home.mkdir(parents=True)
    with pytest.raises(ApiError, match="the ML assist did not answer") as refused:
        ml_backend_assist(settings)({"id": 1, "data": DATA}, "<View/>", brush())
    assert refused.value.status == 502


def test_the_assist_clicks_are_not_saved_with_the_read(env):
    click = {"from_name": "assist_lung", "to_name": "image_lung", "type": "keypointlabels", "item_index": 1,
             "value": {"x": 40.0, "y": 50.0, "keypointlabels": ["lung_field"]}}
    asked = call(env, 100, {"result": [click]})
    assert asked.status_code == 200, asked.json  # the assist takes the smart keypoints ...
    saved = call(env, 100, {"result": brush() + [click]}, what="annotation")
    assert saved.status_code == 201, saved.json
    [read] = env["tasks"].tasks_[100]["annotations"]
    assert [r["from_name"] for r in read["result"]] == ["mask_lung"]  # ... and the read keeps only the labels
