"""The ML server's request handling (our own logic, with a stand-in model)."""

from __future__ import annotations

import time

from ml_backend import app as server
from ml_backend.model import Model, Prediction


class SlowModel(Model):
    version = "slow-1"

    def predict(self, tasks, label_config, context=None):
        time.sleep(0.05)
        return [Prediction([{"from_name": "x"}], 0.5, self.version) for _ in tasks]


def test_predict_answers_within_its_budget_and_defers_the_rest(monkeypatch):
    deferred = []
    monkeypatch.setattr(server, "_write_later", lambda tasks, config, model, as_jobs: deferred.extend(t["id"] for t in tasks))
    client = server.create_app(SlowModel(), budget_s=0.12).test_client()
    started = time.monotonic()
    reply = client.post("/predict", json={"tasks": [{"id": n, "data": {}} for n in range(40)], "label_config": "<View/>"})
    elapsed = time.monotonic() - started
    results = reply.get_json()["results"]
    assert reply.status_code == 200 and len(results) == 40 and elapsed < 1.0
    answered = [r for r in results if r["result"]]
    assert 1 <= len(answered) < 40 and all(r["model_version"] == "slow-1" for r in results)
    time.sleep(0.1)
    assert deferred == list(range(len(answered), 40))


def test_malformed_requests_are_refused_politely():
    client = server.create_app(SlowModel()).test_client()
    assert client.post("/predict", data="{nope", content_type="application/json").status_code == 400
    assert client.post("/predict", json={"tasks": "all"}).status_code == 400
    assert client.get("/health").get_json() == {"status": "UP", "model_class": "SlowModel"}
