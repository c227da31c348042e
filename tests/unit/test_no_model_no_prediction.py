"""A protocol without a model gets no prediction at all from the ML backend (no empty tab at 0 %)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ml_backend import app as server
from ml_backend.prelabel import ProtocolPrelabeller
from radlabel.protocol import load_template
from radlabel.protocol.labelconfig import label_config
from radlabel.settings import load_settings

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"
PASSWORD = "s3cret-for-tests"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{server.ML_USER}:{PASSWORD}".encode()).decode()}


class VolumeLoaded(Exception):
    pass


@pytest.fixture
def prelabeller(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RADLABEL_PROFILE", raising=False)
    model = ProtocolPrelabeller(load_settings())
    protocols = {p.id: p for p in (load_template(TEMPLATES / name) for name in ("ct-liver-lesions.yaml", "ct-lung-nodules.yaml"))}
    monkeypatch.setattr(model, "protocol_for", lambda config: next(p for p in protocols.values() if p.id in config))

    def load(data):
        raise VolumeLoaded()  # stands for the model's work on the series
    monkeypatch.setattr(model.volumes, "load", load)
    return model, protocols


def predict(model, protocol) -> list:
    client = server.create_app(model, password=PASSWORD).test_client()
    reply = client.post("/predict", json={"tasks": [{"id": 1, "data": {"images": []}}],
                                          "label_config": label_config(protocol)}, headers=AUTH)
    assert reply.status_code == 200
    return reply.get_json()["results"]


def test_a_protocol_without_a_model_gets_no_prediction_and_no_work(prelabeller):
    model, protocols = prelabeller
    assert not protocols["ct_liver_lesions"].ml.get("prelabel")
    assert predict(model, protocols["ct_liver_lesions"]) == [[]]  # Label Studio stores no prediction for []


def test_a_protocol_with_a_model_still_gets_its_prediction(prelabeller):
    model, protocols = prelabeller
    [answer] = predict(model, protocols["ct_lung_nodules"])  # the model ran (and failed here): an empty one
    assert answer["result"] == [] and answer["model_version"] == model.version
