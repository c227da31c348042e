"""The running stack keeps its state private, logs no query strings, and Label Studio's SSRF guard stays on
while its webhooks and ML calls still reach our services."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest
import requests

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.projects import find_protocol_project
from radlabel.audit import audit_log
from radlabel.phantom import make_ct_study
from tests.integration.conftest import protocol_variant, state_rows


def wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"never happened: {what}")


def test_nothing_under_the_state_directory_is_readable_by_others(settings):
    study = make_ct_study(seed=5, slices=2, size=64, pixel_spacing=6.0)
    # both archives write their storage (the phantom carries PHI: it belongs in the PACS only)
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    home = settings.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    paths = list(home.rglob("*"))
    names = {p.relative_to(home).as_posix() for p in paths}
    # the files the issue names are there to be checked
    # (in the scale profile Label Studio's database is PostgreSQL's, outside the state directory)
    label_studio_db = ["label-studio/label_studio.sqlite3"] if settings.profile == "default" else []
    for expected in ("secrets.json", *label_studio_db, "logs/label_studio.log", "logs/ml_backend.log",
                     "orthanc/orthanc.json", "pacs/orthanc.json"):
        assert expected in names, expected
    assert any(p.is_file() and p.relative_to(home).parts[:2] == ("pacs", "storage") for p in paths)
    loose = [f"{p.relative_to(home)} {stat.filemode(p.lstat().st_mode)}" for p in paths
             if not p.is_symlink() and p.lstat().st_mode & 0o077]
    assert loose == []


def test_access_logs_hold_paths_without_their_query_strings(settings):
    """A request with PHI-like and signature-like query values: the path is logged, the query never."""
    for service in ("ml_backend", "hooks", "viewer"):
        path, secret = f"/no-such-{uuid.uuid4().hex}", f"RLQ{uuid.uuid4().hex}"
        requests.get(f"{settings.url(service)}{path}?PatientID={secret}&sig={secret}", timeout=10)
        log = settings.logs / f"{service}.log"
        line = wait_for(lambda: [l for l in log.read_text(errors="replace").splitlines() if f" GET {path} " in l],
                        f"the access log line of {path} in {log.name}")
        assert len(line) == 1 and "?" not in line[0], line
        assert secret not in log.read_text(errors="replace")


@pytest.fixture
def scratch_project(settings):
    ls = client(settings)
    project = ls.projects.create(title="ssrf check")
    yield project.id
    ls.projects.delete(id=project.id)


def create(settings, what: str, body: dict) -> requests.Response:
    """POST /api/<what>/ as the admin; what was created is deleted again."""
    api, token = f"{settings.url('label_studio')}/api/{what}/", settings.secrets()["label_studio_token"]
    reply = requests.post(api, timeout=60, headers={"Authorization": f"Token {token}"}, json=body)
    if reply.status_code == 201:
        requests.delete(f"{api}{reply.json()['id']}/", timeout=30, headers={"Authorization": f"Token {token}"})
    return reply


def test_label_studio_refuses_webhooks_to_other_local_and_private_addresses(settings, scratch_project):
    port = settings.ports["hooks"]
    for url in (f"http://127.0.0.2:{port}/webhook", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                "http://192.168.1.1/", f"http://0.0.0.0:{port}/webhook",
                f"http://127.1.2.3:{port}/webhook"):
        reply = create(settings, "webhooks", {"project": scratch_project, "url": url, "send_payload": True})
        assert reply.status_code == 403 and "reserved network address" in reply.text, (url, reply.status_code)  # SsrfBlockedUrlError
    ours = create(settings, "webhooks", {"project": scratch_project, "url": settings.url("hooks") + "/webhook"})
    assert ours.status_code == 201, ours.text  # our own host passes


def test_label_studio_refuses_an_ml_backend_on_another_local_address(settings, scratch_project):
    from ml_backend.app import ML_USER

    auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": ML_USER,
            "basic_auth_pass": settings.secrets()["ml_backend_password"]}
    other = f"http://127.0.0.2:{settings.ports['ml_backend']}"
    reply = create(settings, "ml", {"project": scratch_project, "url": other} | auth)
    assert reply.status_code == 403 and "reserved network address" in reply.text, reply.text
    assert create(settings, "ml", {"project": scratch_project, "url": settings.url("ml_backend")} | auth).status_code == 201


def test_webhooks_still_reach_the_hooks_server(settings):
    protocol_variant(settings, "cxr-findings.yaml", "hardening_hooks", "^hardening hooks$")
    ls = client(settings)
    project, _ = find_protocol_project(ls, "hardening_hooks")
    ls.projects.import_tasks(id=project.id, request=[{"images": ["/x/1.png"], "images_by_preset": {
        "radiograph": ["/x/1.png"], "lung_detail": ["/x/1.png"]}}])
    task = list(ls.tasks.list(project=project.id))[0]
    ls.annotations.create(id=task.id, result=[])

    def delivered():
        return [body for (body,) in state_rows(settings, "SELECT body FROM events WHERE action='ANNOTATION_CREATED'")
                if (json.loads(body).get("task") or {}).get("id") == task.id]

    wait_for(delivered, f"the ANNOTATION_CREATED webhook of task {task.id} in the hooks server's queue")


def test_the_audit_trail_of_the_session_verifies(settings):
    audit_log(settings).append("hardening_check", "tests")
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "audit", "verify"], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("audit log intact: "), done.stdout + done.stderr
    assert stat.S_IMODE((settings.home / "audit.head").stat().st_mode) == 0o600
