"""Fuzzing the hooks server: forged secrets, malformed bodies, and garbage events for the worker.

The Flask app runs in process (``create_app(start_worker=False)``, test client, a temporary state
directory); the worker loop is called directly with a stand-in adjudicator (and once with the real one
while Label Studio is down). Seeded loops, deterministic. The contract: never a 5xx; 403 for a bad secret;
4xx with a JSON ``{"error": ...}`` for a malformed body; nothing queued for a refused request; the worker
records an error for an event it cannot handle and goes on with the next.
"""

from __future__ import annotations

import json
import random
import socket
import string

import pytest

from connectors.hooks.app import MAX_WEBHOOK_BYTES, SECRET_HEADER, create_app, work
from radlabel.errors import RadlabelError
from radlabel.settings import load_settings

SEED = 1234


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def hooks(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RADLABEL_LABEL_STUDIO_PORT", str(free_port()))  # nothing listens there
    monkeypatch.delenv("RADLABEL_DATABASE_URL", raising=False)
    app = create_app(start_worker=False)
    settings = load_settings()
    queue = next(cell.cell_contents for cell in app.view_functions["webhook"].__closure__
                 if type(cell.cell_contents).__name__ == "EventQueue")
    return {"client": app.test_client(), "secret": settings.secrets()["webhook_secret"], "queue": queue,
            "settings": settings}


def rows(queue) -> list[tuple]:
    """Every event as (id, action, body, done, attempts, error): read-only, through the queue's own database."""
    with queue.database.connect() as db:
        return [tuple(row) for row in db.execute(
            "SELECT id, action, body, done, attempts, error FROM events ORDER BY id").fetchall()]


def post(hooks, data, content_type="application/json", headers=None, secret=True):
    sent = dict(headers or {})
    if secret:
        sent[SECRET_HEADER] = hooks["secret"]
    return hooks["client"].post("/webhook", data=data, content_type=content_type, headers=sent)


def assert_json_error(reply, status: int | tuple) -> None:
    assert reply.status_code in ((status,) if isinstance(status, int) else status), reply.get_data()[:200]
    assert isinstance(reply.json, dict) and isinstance(reply.json.get("error"), str) and reply.json["error"]
    assert "\n" not in reply.json["error"]


# -- the secret -------------------------------------------------------------------------------------------
def forged_secrets(secret: str, rng: random.Random) -> list:
    flipped = [secret[:i] + ("a" if secret[i] != "a" else "b") + secret[i + 1:] for i in (0, len(secret) // 2, -1)]
    flipped[-1] = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    forged = [None, "", " ", secret[:-1], secret + "0", secret.upper() if secret.upper() != secret else secret + "X",
              " " + secret, secret + " ", f"Bearer {secret}", secret * 2, secret[::-1], "é" + secret[1:],
              secret[:-1] + "\u00ff", "%s", "null", "0" * len(secret), *flipped]
    alphabet = string.printable.strip() + "éü€"
    forged += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(60)]
    return forged


def test_a_missing_or_forged_secret_is_403_and_queues_nothing(hooks):
    rng = random.Random(SEED)
    body = json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "task": {"id": 2}})
    for forged in forged_secrets(hooks["secret"], rng):
        headers = {} if forged is None else {SECRET_HEADER: forged}
        reply = post(hooks, body, headers=headers, secret=False)
        assert_json_error(reply, 403)
        assert SECRET_HEADER in reply.json["error"] and hooks["secret"] not in reply.get_data(as_text=True)
    # The right secret in the wrong place is no secret either.
    for headers, query in (({"X-Radlabel-Secrets": hooks["secret"]}, ""), ({"Authorization": hooks["secret"]}, ""),
                           ({}, f"?{SECRET_HEADER}={hooks['secret']}")):
        reply = hooks["client"].post("/webhook" + query, data=body, content_type="application/json", headers=headers)
        assert_json_error(reply, 403)
    assert hooks["queue"].count() == 0
    assert post(hooks, body).status_code == 202 and hooks["queue"].count() == 1


# -- the body ---------------------------------------------------------------------------------------------
GARBAGE = [None, True, False, 0, -1, 2**63, 10**30, 1.5, -0.0, "", "12", "abc", "١٢", "ünï\u202e", "\x00", [], [1],
           {}, {"id": None}, {"id": "7"}, {"id": True}, {"id": [1]}, {"id": {"id": 1}}, {"id": -3}, {"id": 1e300},
           "x" * 10000]
ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_CREATED", "PROJECT_UPDATED",
           "", " ", "annotation_created", "ANNOTATION_CREATED\x00", "☃", "A" * 5000]


def random_value(rng: random.Random, depth: int = 0):
    if depth > 3 or rng.random() < 0.5:
        return rng.choice(GARBAGE)
    if rng.random() < 0.5:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["id", "project", "task", "result", "", "ü", "0"]): random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def random_body(rng: random.Random):
    """(bytes sent, content type, whether the body is a JSON object with an action string)."""
    kind = rng.randrange(9)
    if kind <= 3:  # objects close to Label Studio's, with wrong types here and there
        body = {"action": rng.choice(ACTIONS + [None, 1, [], {}]) if rng.random() < 0.3 else rng.choice(ACTIONS)}
        for field in ("project", "task", "annotation"):
            if rng.random() < 0.8:
                body[field] = random_value(rng) if rng.random() < 0.5 else {"id": rng.choice(GARBAGE + [1, 42, 999999])}
        if rng.random() < 0.2:
            del body["action"]
        data = json.dumps(body, ensure_ascii=rng.random() < 0.5).encode()
        return data, "application/json", isinstance(body.get("action"), str)
    if kind == 4:  # JSON that is not an object
        value = rng.choice([[], [{"action": "ANNOTATION_CREATED"}], "ANNOTATION_CREATED", 3, None, True, 1.5])
        return json.dumps(value).encode(), "application/json", False
    if kind == 5:  # broken JSON: cut, flipped or not JSON at all
        data = bytearray(json.dumps({"action": "ANNOTATION_CREATED", "task": {"id": 1}}).encode())
        if rng.random() < 0.5:
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            parsed = json.loads(bytes(data))
        except ValueError:
            parsed = None
        ok = isinstance(parsed, dict) and isinstance(parsed.get("action"), str)
        return bytes(data), "application/json", ok and _encodable(parsed["action"])
    if kind == 6:  # the right JSON under the wrong content type
        return b'{"action": "ANNOTATION_CREATED"}', rng.choice(["text/plain", "application/x-www-form-urlencoded",
                                                                 "multipart/form-data; boundary=x", ""]), False
    if kind == 7:  # unicode garbage and lone surrogates
        action = rng.choice(['"\\ud800"', '"\\udfff x"', '"ok \\u0000"', '"\\uffff"'])
        data = ('{"action": ' + action + ', "task": {"id": "\\ud834"}}').encode()
        return data, "application/json", _encodable(json.loads(data)["action"])
    depth = rng.choice([50, 5000, 100000])  # nested deep enough to break a recursive parser
    data = b'{"action": "X", "task": ' + b"[" * depth + b"]" * depth + b"}"
    return data, "application/json", depth <= 50


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_malformed_bodies_are_4xx_json_and_queue_nothing(hooks):
    rng = random.Random(SEED + 1)
    queued = 0
    for n in range(300):
        data, content_type, acceptable = random_body(rng)
        before = hooks["queue"].count()
        reply = post(hooks, data, content_type=content_type)
        assert reply.status_code < 500, (n, data[:200], reply.get_data()[:300])
        if acceptable:
            assert reply.status_code == 202, (data[:200], reply.json)
            assert isinstance(reply.json["queued"], int) and hooks["queue"].count() == before + 1
            queued += 1
        else:
            assert_json_error(reply, 400)
            assert hooks["queue"].count() == before, data[:200]
    assert 50 < queued < 250
    stored = rows(hooks["queue"])
    assert len(stored) == queued and all(isinstance(json.loads(row[2]), dict) for row in stored)


def test_huge_bodies_are_queued_whole_or_refused(hooks):
    big = {"action": "ANNOTATION_CREATED", "project": {"id": 1}, "task": {"id": 2},
           "annotation": {"result": [{"value": {"rle": list(range(200000))}}]}}
    reply = post(hooks, json.dumps(big))
    assert reply.status_code == 202
    [(_, action, body, *_)] = rows(hooks["queue"])
    assert json.loads(body) == big
    junk = b"{" + b" " * (8 * 1024 * 1024) + b"]"
    assert_json_error(post(hooks, junk), 400)
    assert_json_error(post(hooks, b" " * (MAX_WEBHOOK_BYTES + 1)), 413)  # refused before it is read
    assert hooks["queue"].count() == 1


def test_other_methods_and_paths_are_not_5xx(hooks):
    client = hooks["client"]
    for method in ("get", "put", "delete", "patch"):
        assert 400 <= getattr(client, method)("/webhook", headers={SECRET_HEADER: hooks["secret"]}).status_code < 500
    assert client.get("/webhook/../health").status_code < 500
    assert client.get("/" + "x" * 10000 + "?" + "a=b&" * 5000).status_code == 404
    assert hooks["queue"].count() == 0


# -- the worker ----------------------------------------------------------------------------------------------
class OnePass:
    """A stop event for `work`: the loop runs until the queue has nothing ready, then stops."""

    def __init__(self):
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped

    def wait(self, timeout=None) -> bool:
        self.stopped = True
        return True


class FakeAdjudicator:
    """Stands in for the adjudicator (which needs Label Studio): tasks 1..100 of project 1 exist."""

    handled: list = []

    def __init__(self, settings, *args, **kwargs):
        pass

    def handle(self, project_id, task_id):
        assert type(project_id) is int and type(task_id) is int  # ids reach it as integers only
        FakeAdjudicator.handled.append((project_id, task_id))
        if project_id != 1 or not 1 <= task_id <= 100:
            raise RadlabelError(f"Label Studio refused to read task {task_id} (HTTP 404): Not found.")
        return None


def test_the_worker_records_an_error_for_each_bad_event_and_goes_on(hooks, monkeypatch):
    import connectors.adjudicate

    monkeypatch.setattr(connectors.adjudicate, "Adjudicator", FakeAdjudicator)
    FakeAdjudicator.handled = []
    rng = random.Random(SEED + 2)
    queue = hooks["queue"]
    expected = {}
    for n in range(80):
        action = rng.choice(ACTIONS)
        body = {"action": action}
        if rng.random() < 0.5:  # well formed, task known or unknown
            task = rng.choice([1, 50, 100, 101, 999999, 2**62])
            body |= {"project": {"id": 1}, "task": {"id": task, "project": 1}}
            good = task <= 100
        else:
            for field in ("project", "task", "annotation"):
                if rng.random() < 0.8:
                    body[field] = random_value(rng)
            good = None  # only what the worker makes of it is checked
        expected[queue.put(action, body)] = (action, body, good)
    work(queue, hooks["settings"], OnePass())
    for event_id, action, body, done, attempts, error in rows(queue):
        assert attempts == 1, (action, body)  # every event was taken, whatever came before it
        assert (done == 1) == (error is None), (action, body, error)
        _, sent, good = expected[event_id]
        if action not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            assert done == 1 and error is None  # other actions are not ours to handle
        elif good is True:
            assert done == 1 and error is None
        elif good is False:
            assert done == 0 and error.startswith("RadlabelError: Label Studio refused"), error
        else:
            ids = (sent.get("project") if isinstance(sent.get("project"), dict) else {}).get("id"), \
                (sent.get("task") if isinstance(sent.get("task"), dict) else {}).get("id")
            if error:
                assert error.startswith(("ValueError: ", "RadlabelError: ")), error
            else:
                assert ids[1] is not None  # only an event that names a task can succeed
    assert FakeAdjudicator.handled  # known and unknown tasks reached the adjudicator
    assert queue.pending() == []  # failed events wait for their retry; none is ready again at once


@pytest.mark.parametrize("body", [
    {"action": "ANNOTATION_CREATED"},
    {"action": "ANNOTATION_CREATED", "task": {"id": True, "project": True}},
    {"action": "ANNOTATION_UPDATED", "project": {"id": 1.9}, "task": {"id": 2.5}},
    {"action": "ANNOTATION_UPDATED", "project": "1", "task": "2"},
    {"action": "ANNOTATION_CREATED", "project": {"id": -1}, "task": {"id": 0}},
    {"action": "ANNOTATION_CREATED", "project": {"id": 10**40}, "task": {"id": 3}},
])
def test_annotation_events_without_usable_ids_are_errors_not_silent_or_truncated(hooks, monkeypatch, body):
    import connectors.adjudicate

    monkeypatch.setattr(connectors.adjudicate, "Adjudicator", FakeAdjudicator)
    FakeAdjudicator.handled = []
    hooks["queue"].put(body["action"], body)
    work(hooks["queue"], hooks["settings"], OnePass())
    [(_, _, _, done, attempts, error)] = rows(hooks["queue"])
    assert (done, attempts) == (0, 1) and error.startswith("ValueError: the annotation event names no project")
    assert FakeAdjudicator.handled == []


def test_digit_string_ids_are_taken(hooks, monkeypatch):
    import connectors.adjudicate

    monkeypatch.setattr(connectors.adjudicate, "Adjudicator", FakeAdjudicator)
    FakeAdjudicator.handled = []
    hooks["queue"].put("ANNOTATION_CREATED", {"action": "ANNOTATION_CREATED", "task": {"id": "7", "project": "1"}})
    work(hooks["queue"], hooks["settings"], OnePass())
    assert FakeAdjudicator.handled == [(1, 7)] and rows(hooks["queue"])[0][3:] == (1, 1, None)


def test_the_real_adjudicator_with_label_studio_down_records_the_error(hooks):
    queue = hooks["queue"]
    first = queue.put("ANNOTATION_CREATED", {"action": "ANNOTATION_CREATED", "project": {"id": 3}, "task": {"id": 4}})
    second = queue.put("PROJECT_UPDATED", {"action": "PROJECT_UPDATED", "project": {"id": 3}})
    work(queue, hooks["settings"], OnePass())
    events = {row[0]: row for row in rows(queue)}
    assert events[first][3:5] == (0, 1) and "Label Studio is not reachable" in events[first][5]
    assert events[second][3:] == (1, 1, None)


def test_chunked_bodies_over_the_cap_are_413_and_queue_nothing(hooks, monkeypatch):
    """A body sent without Content-Length (chunked; gunicorn terminates the stream) meets the same cap."""
    import io

    from connectors.hooks import app as hooks_app

    monkeypatch.setattr(hooks_app, "MAX_WEBHOOK_BYTES", 2048)
    app = hooks_app.create_app(start_worker=False)
    client = app.test_client()
    event = json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 1}, "task": {"id": 2}, "pad": ""})
    fits = event.replace('"pad": ""', '"pad": "' + "x" * (2048 - len(event)) + '"').encode()
    assert len(fits) == 2048

    def chunked(data: bytes):
        return client.post("/webhook", input_stream=io.BytesIO(data), environ_overrides={"wsgi.input_terminated": True},
                           headers={SECRET_HEADER: hooks["secret"], "Content-Type": "application/json",
                                    "Transfer-Encoding": "chunked"})

    for data in (fits + b" ", b"[" * 10 * 2**20):
        reply = chunked(data)
        assert reply.request.content_length is None
        assert_json_error(reply, 413)
        assert reply.json["error"] == "the request body is larger than the 2048 bytes this service accepts"
    assert hooks["queue"].count() == 0
    assert chunked(fits).status_code == 202 and hooks["queue"].count() == 1
