"""Provisioning as a stage, on an in-memory Label Studio: create once, then unchanged, refuse what would lose
labels or go back a version (the integration test checks the same on the real server)."""

from __future__ import annotations

import pytest

from connectors.provision import Provisioner, project_description
from connectors.service_auth import ML_USER, SECRET_HEADER
from radlabel.errors import RadlabelError
from radlabel.protocol import load_template
from tests.unit.fakes import TEMPLATES, FakeLabelStudio, home_settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def protocol():
    return load_template(TEMPLATES / "ct-liver-lesions.yaml")


def _version(protocol, version: str, **changes):
    return protocol.model_copy(update={"version": version} | changes)


def test_a_new_protocol_becomes_one_connected_project_and_then_nothing_is_written(settings, protocol):
    ls = FakeLabelStudio()
    created = Provisioner(settings, ls=ls).provision(protocol)
    assert created.action == "created" and list(ls.projects.items) == [created.project_id]
    project = ls.projects.get(created.project_id)
    assert project.description == project_description(protocol)
    hooks = {w.url: w.headers for w in ls.webhooks.list(project=created.project_id)}
    assert hooks[settings.url("hooks") + "/webhook"] == {SECRET_HEADER: settings.secrets()["webhook_secret"]}
    ml_hook = hooks[settings.url("ml_backend") + "/webhook"]
    assert ml_hook["Authorization"].startswith("Basic ")  # the webhook Label Studio made for the ML backend
    assert [(m.auth_method, m.basic_auth_user) for m in ls.ml.list(project=created.project_id)] == [("BASIC_AUTH", ML_USER)]
    assert (settings.home / "protocols" / f"{protocol.id}.protocol.json").exists()
    writes = ls.writes()
    again = Provisioner(settings, ls=ls).provision(protocol)
    assert (again.action, again.project_id, again.changes) == ("unchanged", created.project_id, [])
    assert ls.writes() == writes


def test_other_content_under_the_same_version_and_an_older_version_are_refused(settings, protocol):
    ls = FakeLabelStudio()
    Provisioner(settings, ls=ls).provision(_version(protocol, "1.2.0"))
    with pytest.raises(RadlabelError, match="already provisioned .* give the changed template a new version"):
        Provisioner(settings, ls=ls).provision(_version(protocol, "1.2.0", name="CT liver, renamed"))
    with pytest.raises(RadlabelError, match="older than the provisioned 1.2.0"):
        Provisioner(settings, ls=ls).provision(_version(protocol, "1.1.0"))


def test_a_version_that_drops_a_labelled_class_needs_a_migration(settings, protocol):
    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(protocol).project_id
    task = ls.tasks.create(project=project_id, data={})
    ls.annotations.create(id=task.id, result=[{"type": "brushlabels", "value": {"brushlabels": ["liver_cyst"]}}])
    without_cysts = _version(protocol, "2.0.0", classes=[c for c in protocol.classes if c.name != "liver_cyst"])
    with pytest.raises(RadlabelError, match="would orphan annotations .*'liver_cyst' \\(1 label"):
        Provisioner(settings, ls=ls).provision(without_cysts)
    updated = Provisioner(settings, ls=ls).provision(without_cysts, {"liver_cyst": "liver_lesion"})
    assert updated.action == "updated" and "migrated 1 label(s) liver_cyst -> liver_lesion" in updated.changes
    assert task.annotations[0]["result"][0]["value"]["brushlabels"] == ["liver_lesion"]
    assert ls.projects.get(project_id).description == project_description(without_cysts)
