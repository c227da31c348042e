"""The real Label Studio calls our ML backend and stores its pre-labels (multi-image, item_index)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import requests

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.sync import Syncer
from ml_backend.app import ML_USER
from tests.integration.conftest import protocol_variant
from radlabel.adjudication.metrics import mask_agreement
from radlabel.brush_rle import decode
from radlabel.phantom import make_ct_study
from radlabel.protocol import load_template
from radlabel.protocol.labelconfig import label_config

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"


@pytest.fixture(scope="module")
def project(settings):
    protocol = protocol_variant(settings, "ct-lung-nodules.yaml", "ml_test", "^ml test$")
    study = make_ct_study(seed=91, slices=24, size=128, pixel_spacing=3.2)
    for ds in study.datasets:
        ds.SeriesDescription = "ml test"
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    [record] = [s for s in summary.series if s["series_key"] == syncer.series_key(study.series_uid)]
    return protocol, syncer.project_id(), record["task_id"], study


def retrieve_predictions(settings, project_id):
    token = settings.secrets()["label_studio_token"]
    reply = requests.post(f"{settings.url('label_studio')}/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
                          json={"selectedItems": {"all": True, "excluded": []}},
                          headers={"Authorization": f"Token {token}"}, timeout=120)
    assert reply.status_code == 200, reply.text


def wait_predictions(ls, task_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in ls.predictions.list(task=task_id) if p.model_version == "radlabel-classical-1"]
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"no prediction for task {task_id}")


def test_label_studio_stores_our_prelabels_per_slice(settings, project):
    protocol, project_id, task_id, study = project
    ls = client(settings)
    retrieve_predictions(settings, project_id)
    prediction = wait_predictions(ls, task_id)[0]
    assert 0 < prediction.score <= 1
    masks = {"lung_field": np.zeros(study.labelmap.shape, bool), "solid_nodule": np.zeros(study.labelmap.shape, bool)}
    for region in prediction.result:
        assert (region["from_name"], region["to_name"]) == ("mask_lung", "image_lung")  # both read in the lung preset
        assert 0 <= region["item_index"] < 24
        [label] = region["value"]["brushlabels"]
        masks[label][region["item_index"]] |= decode(region["value"]["rle"], 128, 128) > 0
    spacing = study.geometry.spacing
    assert mask_agreement(masks["lung_field"], study.labelmap == 3, spacing, 2).dice > 0.95
    assert mask_agreement(masks["solid_nodule"], study.labelmap == 7, spacing, 2).dice > 0.8


def test_bad_tasks_and_foreign_configs_get_empty_predictions_without_harm(settings, project):
    protocol, project_id, task_id, _ = project
    ls = client(settings)
    good = ls.tasks.get(id=task_id)
    broken = ls.tasks.create(project=project_id, data=dict(good.data) | {"series": "2.25.1", "study": "2.25.2"})
    base = settings.url("ml_backend")
    auth = (ML_USER, settings.secrets()["ml_backend_password"])

    def predict(task, config):
        reply = requests.post(base + "/predict", timeout=60, auth=auth,
                              json={"tasks": [{"id": task.id, "data": task.data}], "label_config": config})
        assert reply.status_code == 200, reply.text
        [answer] = reply.json()["results"]
        return answer

    try:  # the broken task must not outlive the test: other tests list every task a reader may see
        assert predict(broken, label_config(protocol))["result"] == []
        # a config from no provisioned protocol: an empty prediction
        stranger = load_template(TEMPLATES / "cxr-findings.yaml").model_copy(update={"id": "never_provisioned"})
        assert predict(good, label_config(stranger))["result"] == []
        # a provisioned protocol whose classes no model covers: no prediction at all (no empty tab at 0 %)
        no_model = protocol_variant(settings, "cxr-findings.yaml", "ml_no_model", "^ml no model$")
        assert predict(good, label_config(no_model)) == []
    finally:
        ls.tasks.delete(id=broken.id)
    assert requests.get(base + "/health", timeout=5).json()["status"] == "UP"


def test_deferred_predictions_run_as_jobs_once_per_task_and_model_version(settings, project):
    """What /predict has no time for: a `predict` job (on the workers in the scale profile, in-process by
    default) stores the task's pre-label once, however often it is submitted."""
    from connectors.job_handlers import job_queue

    protocol, project_id, task_id, study = project
    ls = client(settings)
    before = len(wait_predictions(ls, task_id))  # the earlier test's prediction
    task = ls.tasks.get(id=task_id)
    config = label_config(protocol)
    queue = job_queue(settings)
    key = f"predict:{task_id}:jobs-test"
    results = queue.wait([queue.submit("predict", key, tasks=[{"id": task.id, "data": task.data}], label_config=config)
                          for _ in range(2)])
    assert [error for _, error in results] == [None, None] and [r for r, _ in results] == [1, 1], results
    assert len(wait_predictions(ls, task_id)) == before + 1  # two submits, one stored prediction


def test_label_studio_holds_the_ml_credentials_and_outsiders_are_refused(settings, project):
    """Label Studio reaches the ML backend only with its basic-auth credentials (the prediction test above shows it
    does); anyone without them gets 401, on every route but /health."""
    _, project_id, task_id, _ = project
    ls = client(settings)
    password = settings.secrets()["ml_backend_password"]
    [backend] = ls.ml.list(project=project_id)
    assert (backend.auth_method, backend.basic_auth_user, backend.basic_auth_pass_is_set) == ("BASIC_AUTH", ML_USER, True)
    [hook] = [h for h in ls.webhooks.list(project=str(project_id)) if h.url == settings.url("ml_backend") + "/webhook"]
    assert set(hook.headers) == {"Authorization"} and hook.headers["Authorization"].startswith("Basic ")
    base = settings.url("ml_backend")
    body = {"tasks": [{"id": task_id, "data": {}}], "action": "ANNOTATION_CREATED", "project": str(project_id)}
    for route in ("/predict", "/setup", "/webhook", "/versions"):
        for auth in (None, (ML_USER, password[:-1] + "x"), ("admin", password), (ML_USER, "")):
            reply = requests.post(base + route, json=body, auth=auth, timeout=10)
            assert reply.status_code == 401 and set(reply.json()) == {"error"}, (route, reply.status_code)
    assert requests.get(base + "/health", timeout=5).status_code == 200


def test_a_backend_connected_without_credentials_gets_them_on_the_next_provision(settings, project):
    """Label Studio itself refuses to drop the credentials (its setup call gets 401); a backend connected by an older
    radlabel, without them, is made here in Label Studio's database and gets them on the next connect."""
    import sqlite3

    from label_studio_sdk.core.api_error import ApiError

    from connectors.provision import Provisioner

    protocol, project_id, _, _ = project
    ls = client(settings)
    [backend] = ls.ml.list(project=project_id)
    [hook] = [h for h in ls.webhooks.list(project=str(project_id)) if h.url == settings.url("ml_backend") + "/webhook"]
    with pytest.raises(ApiError, match="401"):
        ls.ml.update(id=backend.id, project=project_id, url=backend.url, auth_method="NONE", basic_auth_user="")
    if settings.profile == "scale":
        pytest.skip("the older connection is made in Label Studio's SQLite database (default profile)")
    with sqlite3.connect(settings.home / "label-studio" / "label_studio.sqlite3", timeout=30) as db:
        db.execute("UPDATE ml_mlbackend SET auth_method='NONE', basic_auth_user='', basic_auth_pass='' WHERE id=?",
                   (backend.id,))
    ls.webhooks.update(id=hook.id, headers={})
    assert ls.ml.list(project=project_id)[0].basic_auth_pass_is_set is False
    changes = Provisioner(settings).connect(project_id)
    assert changes == ["ML backend credentials set", "ML backend webhook credentials set"]
    [backend] = ls.ml.list(project=project_id)
    assert (backend.auth_method, backend.basic_auth_user, backend.basic_auth_pass_is_set) == ("BASIC_AUTH", ML_USER, True)
    assert Provisioner(settings).connect(project_id) == []
