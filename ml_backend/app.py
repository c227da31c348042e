"""Label Studio ML backend server (protocol of Label Studio 1.23).

GET /health, POST /setup, POST /predict (one result per task, in order),
POST /webhook. Served with gunicorn by ``radlabel up``.
"""

from __future__ import annotations

from flask import Flask, request

from ml_backend.model import Model


def create_app(model: Model | None = None) -> Flask:
    model = model or Model()
    app = Flask(__name__)

    def body() -> dict:
        data = request.get_json(silent=True)
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
        context = (data.get("params") or {}).get("context")
        predictions = model.predict(tasks, data.get("label_config", ""), context)
        return {"results": [p.as_dict() for p in predictions]}

    @app.post("/webhook")
    def webhook():
        data = body()
        return model.fit(str(data.get("action", "")), data), 201

    return app
