"""Provisioning as a stage, on an in-memory Label Studio: create once, then unchanged, refuse what would lose
labels or go back a version (the integration test checks the same on the real server)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading

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


def _cyst_read(ls, project_id, from_name="mask_liver", to_name="image_liver"):
    task = ls.tasks.create(project=project_id, data={})
    region = {"id": "r1", "from_name": from_name, "to_name": to_name, "type": "brushlabels", "item_index": 2,
              "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["liver_cyst"]}}
    diameter = {"id": "r1", "from_name": "liver_lesion_longest_diameter_mm", "to_name": "image_liver",
                "type": "number", "value": {"number": 12.5}}
    return task, region, diameter


def _moved(protocol, name: str, preset: str):
    return [c.model_copy(update={"read_in": preset}) if c.name == name else c for c in protocol.classes]


def test_a_class_read_in_another_preset_takes_its_regions_there_and_a_verified_read_stays_verified(settings, protocol):
    from connectors.authorship import Authorship, post_read, vouch
    from connectors.readers import ReaderRegistry

    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(protocol).project_id
    ReaderRegistry.from_settings(settings).issue("cyst.reader@hospital.org", "radiologist", ls_user_id=7)
    task, region, diameter = _cyst_read(ls, project_id)
    kept = {"id": "f1", "from_name": "findings", "to_name": "image_liver", "type": "choices", "value": {"choices": ["x"]}}
    post_read(settings, ls, task.id, 7, [region, diameter, kept], "simulated")
    forged = ls.annotations.create(id=task.id, result=[region], completed_by=7)  # saved by radlabel, never vouched
    vouch(settings, task.id, 99, [], "simulated")  # another reader's record stays as it is

    updated = Provisioner(settings, ls=ls).provision(_version(protocol, "1.3.0", classes=_moved(protocol, "liver_cyst", "soft_tissue")))
    assert "moved 2 region(s) of liver_cyst from mask_liver to mask_soft_tissue (its read_in preset)" in updated.changes
    read, rewritten_forgery = task.annotations
    assert [(r["from_name"], r["to_name"]) for r in read["result"]] == [
        ("mask_soft_tissue", "image_soft_tissue"), ("liver_lesion_longest_diameter_mm", "image_liver"), ("findings", "image_liver")]
    assert read["result"][0]["item_index"] == 2 and read["result"][0]["value"] == region["value"]
    assert rewritten_forgery["result"][0]["from_name"] == "mask_soft_tissue"
    records = Authorship(settings, ls).records(task.id, task.annotations)
    from radlabel.adjudication.reads import authorship_problem
    assert authorship_problem(read, task.id, records) is None  # the read still counts, with its new labels
    assert authorship_problem(rewritten_forgery, task.id, records) is not None  # a migration makes nothing count

    again = Provisioner(settings, ls=ls).provision(_version(protocol, "1.3.1", classes=_moved(protocol, "liver_cyst", "soft_tissue")))
    assert not [c for c in again.changes if c.startswith("moved")]  # regions already in place are not written again


def test_two_provisioners_at_once_make_one_project(settings, protocol):
    """Each lister waits (up to a second) for the other to list too: without the lock both find no project."""
    ls = FakeLabelStudio()
    meeting, listed = threading.Barrier(2, timeout=1.0), ls.projects.list

    def list_when_both_look(**kwargs):
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait()
        return listed(**kwargs)

    ls.projects.list = list_when_both_look
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: Provisioner(settings, ls=ls).provision(protocol), range(2)))
    assert sorted(r.action for r in results) == ["created", "unchanged"]
    assert list(ls.projects.items) == [results[0].project_id] == [results[1].project_id]
