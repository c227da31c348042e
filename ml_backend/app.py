"""Label Studio ML backend server (protocol of Label Studio 1.23).

GET /health, POST /setup, POST /predict (one result per task, in order), POST /webhook. Every route but
/health needs HTTP basic auth as ``radlabel-ml`` with the secret ``ml_backend_password`` (Label Studio is
given them by ``radlabel provision``); bodies are capped at 64 MB, chunked ones included.
Served with gunicorn by ``radlabel up``. ``/predict`` may get hundreds of tasks with a 100 s
limit: it answers within its budget, and tasks it has no time for get an empty result now and
their prediction written to Label Studio through the API later: by a background thread, or in the
scale profile by ``predict`` jobs on the workers (one per task, idempotent per model version).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask

from connectors.ports import AnnotationPlatform
from connectors.service_auth import ML_USER  # Label Studio calls us as this user with the secret ml_backend_password
from connectors.wiring import Adapters
from ml_backend.model import Model, Prediction
from radlabel.http_guard import json_body, limit_body_size, require_basic_auth

log = logging.getLogger("radlabel.ml")
PREDICT_BUDGET_S = float(os.environ.get("RADLABEL_PREDICT_BUDGET_S", "60"))
# "Retrieve predictions" sends every selected task in one request: 1,000 tasks of 300 image URLs are ~45 MB.
MAX_REQUEST_BYTES = 64 * 2**20


def _default_model() -> Model:
    from ml_backend.prelabel import ProtocolPrelabeller
    from radlabel.settings import load_settings

    return ProtocolPrelabeller(load_settings())


def store_predictions(ls: AnnotationPlatform, tasks: list[dict], label_config: str, model: Model) -> int:
    """Predict tasks and store the predictions in Label Studio (``ls``); how many were stored."""
    stored = 0
    for task in tasks:
        prediction = model.safe_predict(task, label_config)
        if prediction.result:
            try:
                ls.predictions.create(task=task["id"], result=prediction.result, score=prediction.score,
                                      model_version=prediction.model_version)
                stored += 1
            except Exception as exc:
                log.warning("task %s: prediction not stored: %s", task.get("id"), exc.__class__.__name__)
    return stored


def _write_later(tasks: list[dict], label_config: str, model: Model, as_jobs: bool = False) -> None:
    """Predict the tasks the request had no time for and store them in Label Studio: here, or as
    jobs on the workers (the scale profile, with the default model the workers also have)."""
    from radlabel.settings import load_settings

    adapters = Adapters(load_settings())
    if as_jobs and adapters.worker_queue:
        for task in tasks:
            adapters.worker_queue.submit("predict", f"predict:{task.get('id')}:{model.version}", tasks=[task],
                                         label_config=label_config)
        return
    store_predictions(adapters.label_studio, tasks, label_config, model)


def create_app(model: Model | None = None, budget_s: float = PREDICT_BUDGET_S, password: str | None = None) -> Flask:
    """The server; every route but /health needs basic auth as ML_USER with ``password`` (by default the
    state directory's ml_backend_password)."""
    from radlabel.settings import load_settings

    settings = load_settings()
    as_jobs = model is None and settings.profile == "scale"
    model = model or _default_model()
    app = Flask(__name__)
    require_basic_auth(app, ML_USER, password or settings.secrets()["ml_backend_password"], realm="radlabel-ml")
    limit_body_size(app, MAX_REQUEST_BYTES)

    def body() -> dict:
        data = json_body(MAX_REQUEST_BYTES)
        return data if isinstance(data, dict) else {}

    @app.get("/health")
    def health():
        return {"status": "UP", "model_class": type(model).__name__}

    @app.post("/setup")
    def setup():
        data = body()
        version = model.setup(str(data.get("project", "")), data.get("schema", ""), data.get("extra_params"))
        return {"model_version": version}

    @app.post("/predict")
    def predict():
        data = body()
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            return {"error": "the body must hold a 'tasks' list"}, 400
        label_config = data.get("label_config", "")
        context = (data.get("params") or {}).get("context")
        started = time.monotonic()
        results: list[Prediction] = []
        for number, task in enumerate(tasks):
            if time.monotonic() - started > budget_s:
                later = tasks[number:]
                threading.Thread(target=_write_later, args=(later, label_config, model, as_jobs), daemon=True).start()
                results += [Prediction([], 0.0, model.version) for _ in later]
                break
            results += model.predict([task], label_config, context)
        return {"results": [p.as_answer() for p in results]}

    @app.post("/webhook")
    def webhook():
        data = body()
        return model.fit(str(data.get("action", "")), data), 201

    return app
