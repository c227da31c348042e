"""The ML server's request handling (our own logic, with a stand-in model)."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest

from ml_backend import app as server
from ml_backend.model import Model, Prediction

PASSWORD = "s3cret-for-tests"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{server.ML_USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture(autouse=True)
def state_directory(tmp_path, monkeypatch):
    """create_app reads the profile (and, without a password given, the secrets) of a state directory."""
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADLABEL_PROFILE", raising=False)


class SlowModel(Model):
    version = "slow-1"

    def predict(self, tasks, label_config, context=None):
        time.sleep(0.05)
        return [Prediction([{"from_name": "x"}], 0.5, self.version) for _ in tasks]


def test_predict_answers_within_its_budget_and_defers_the_rest(monkeypatch):
    deferred = []
    monkeypatch.setattr(server, "_write_later", lambda tasks, config, model, as_jobs: deferred.extend(t["id"] for t in tasks))
    client = server.create_app(SlowModel(), budget_s=0.12, password=PASSWORD).test_client()
    started = time.monotonic()
    reply = client.post("/predict", json={"tasks": [{"id": n, "data": {}} for n in range(40)], "label_config": "<View/>"},
                        headers=AUTH)
    elapsed = time.monotonic() - started
    results = reply.get_json()["results"]
    assert reply.status_code == 200 and len(results) == 40 and elapsed < 1.0
    answered = [r for r in results if r["result"]]
    assert 1 <= len(answered) < 40 and all(r["model_version"] == "slow-1" for r in results)
    time.sleep(0.1)
    assert deferred == list(range(len(answered), 40))


def test_malformed_requests_are_refused_politely():
    client = server.create_app(SlowModel(), password=PASSWORD).test_client()
    assert client.post("/predict", data="{nope", content_type="application/json", headers=AUTH).status_code == 400
    assert client.post("/predict", json={"tasks": "all"}, headers=AUTH).status_code == 400
    assert client.get("/health").get_json() == {"status": "UP", "model_class": "SlowModel"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


OUTSIDERS = [
    {}, basic(server.ML_USER, ""), basic(server.ML_USER, PASSWORD[:-1]), basic(server.ML_USER, PASSWORD + "x"),
    basic(server.ML_USER, PASSWORD.upper()), basic("admin", PASSWORD), basic("", PASSWORD),
    basic(server.ML_USER + " ", PASSWORD), {"Authorization": f"Bearer {PASSWORD}"}, {"Authorization": f"Token {PASSWORD}"},
    {"Authorization": "Basic !!!not-base64"}, {"Authorization": "Basic"}, basic(server.ML_USER, "é" + PASSWORD),
    {"X-Radlabel-Secret": PASSWORD}, {"Authorization": PASSWORD}, basic(server.ML_USER, PASSWORD + ":x"),
    basic(server.ML_USER, PASSWORD + "\x00"), {"Authorization": "Basic " + base64.b64encode(
        server.ML_USER.encode() + b":\xff\xfe" + PASSWORD.encode()).decode()},
]


@pytest.mark.parametrize("route", ["/predict", "/setup", "/webhook", "/nothing-here", "/health/"])
def test_an_outsider_is_refused_on_every_route_but_health(route):
    calls = []

    class Recording(SlowModel):
        def predict(self, tasks, label_config, context=None):
            calls.append("predict")
            return super().predict(tasks, label_config, context)

        def setup(self, project, label_config, extra=None):
            calls.append("setup")
            return self.version

        def fit(self, event, payload):
            calls.append("fit")
            return {"status": "ignored"}

    client = server.create_app(Recording(), password=PASSWORD).test_client()
    body = {"tasks": [{"id": 1, "data": {}}], "action": "ANNOTATION_CREATED", "project": "1", "schema": "<View/>"}
    for headers in OUTSIDERS:
        for method in ("post", "get"):
            reply = getattr(client, method)(route, json=body if method == "post" else None, headers=headers)
            assert reply.status_code == 401, (route, headers, reply.status_code)
            assert set(reply.get_json()) == {"error"} and "basic auth" in reply.get_json()["error"]
            assert reply.headers["WWW-Authenticate"].startswith("Basic ")
            assert PASSWORD not in reply.get_data(as_text=True)
    assert calls == []


def test_the_right_credential_opens_every_route_and_health_needs_none():
    client = server.create_app(SlowModel(), password=PASSWORD).test_client()
    assert client.get("/health").status_code == 200
    assert client.post("/setup", json={"project": "1", "schema": "<View/>"}, headers=AUTH).get_json() == \
        {"model_version": "slow-1"}
    assert client.post("/predict", json={"tasks": [{"id": 1, "data": {}}]}, headers=AUTH).status_code == 200
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}, headers=AUTH).status_code == 201


def test_the_password_defaults_to_the_state_directory_secret(monkeypatch):
    from radlabel.settings import load_settings

    secret = load_settings().secrets()["ml_backend_password"]
    client = server.create_app(SlowModel()).test_client()
    assert client.post("/setup", json={}, headers=basic(server.ML_USER, secret)).status_code == 200
    assert client.post("/setup", json={}, headers=AUTH).status_code == 401


def chunked(data: bytes) -> dict:
    """Test-client arguments of a body without Content-Length, as a chunked upload reaches the app under gunicorn
    (which terminates the input stream itself)."""
    return {"input_stream": io.BytesIO(data), "headers": {"Transfer-Encoding": "chunked"},
            "environ_overrides": {"wsgi.input_terminated": True}}


def post_chunked(client, path: str, data: bytes, headers: dict):
    arguments = chunked(data)
    reply = client.post(path, **arguments | {"headers": headers | arguments["headers"]})
    assert reply.request.content_length is None  # really sent without a length
    return reply


def test_bodies_over_the_cap_are_413_with_or_without_content_length(monkeypatch):
    monkeypatch.setattr(server, "MAX_REQUEST_BYTES", 4096)
    client = server.create_app(SlowModel(), password=PASSWORD).test_client()
    fits = json.dumps({"tasks": [{"id": 1, "data": {"pad": ""}}]}).encode()
    fits = fits.replace(b'"pad": ""', b'"pad": "' + b"x" * (4096 - len(fits)) + b'"')
    assert len(fits) == 4096
    too_big = fits.replace(b'"x', b'"xx', 1)
    headers = AUTH | {"Content-Type": "application/json"}
    assert client.post("/predict", data=fits, headers=headers).status_code == 200
    for reply in (client.post("/predict", data=too_big, headers=headers),
                  post_chunked(client, "/predict", too_big, headers),
                  post_chunked(client, "/predict", b" " * 10 * 2**20, headers)):
        assert reply.status_code == 413, reply.get_data()[:200]
        assert reply.get_json() == {"error": "the request body is larger than the 4096 bytes this service accepts"}
    reply = post_chunked(client, "/predict", fits, headers)
    assert reply.status_code == 200 and len(reply.get_json()["results"]) == 1
