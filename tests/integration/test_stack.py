"""The real local stack: every service up, secured, idempotent, restartable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests

from connectors.hooks.app import SECRET_HEADER
from tests.conftest import SERVICE_PORT_VARIABLES, free_ports


def radlabel(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=timeout)


def test_every_service_reports_healthy(stack):
    done = radlabel("status", "--json")
    assert done.returncode == 0, done.stderr
    import json
    states = {s["name"]: s["state"] for s in json.loads(done.stdout)}
    expected = ["pacs", "orthanc", "label_studio", "ml_backend", "hooks", "viewer"]
    if stack.settings.profile == "scale":
        expected += ["postgres", "redis"] + [f"worker-{n}" for n in range(1, stack.settings.workers + 1)]
    assert states == {name: "healthy" for name in expected}


def test_up_again_leaves_the_running_stack_alone(stack):
    before = {s.name: s.pid for s in stack.status()}
    done = radlabel("up", "--json")
    assert done.returncode == 0, done.stderr
    import json
    after = json.loads(done.stdout)
    assert {s["name"]: s["pid"] for s in after} == before
    assert {s["action"] for s in after} == {"already running"}


def test_secrets_are_private_and_absent_from_logs(stack, settings):
    assert (settings.secrets_file.stat().st_mode & 0o777) == 0o600
    assert (settings.home / "orthanc" / "orthanc.json").stat().st_mode & 0o077 == 0
    secrets = settings.secrets()
    requests.get(settings.url("label_studio") + "/api/projects",
                 headers={"Authorization": f"Token {secrets['label_studio_token']}"}, timeout=10)
    for log in settings.logs.iterdir():
        text = log.read_text(errors="replace")
        for value in secrets.values():
            assert value not in text, f"a secret appears in {log.name}"
    shown = radlabel("status").stdout + radlabel("up").stdout
    assert not any(value in shown for value in secrets.values())


def test_orthanc_requires_credentials_and_serves_dicomweb(settings):
    assert requests.get(settings.url("orthanc") + "/system", timeout=5).status_code == 401
    auth = (settings.orthanc_user, settings.secrets()["orthanc_password"])
    system = requests.get(settings.url("orthanc") + "/system", auth=auth, timeout=5).json()
    assert system["Version"].startswith("1.")
    assert requests.get(settings.dicomweb_url + "/studies", auth=auth, timeout=5).status_code == 200


def test_each_archive_user_has_only_the_rights_its_caller_needs(settings):
    """Orthanc's own access filter (orthanc-python): the second wall behind the gateway."""
    secrets = settings.secrets()
    research, pacs = settings.url("orthanc"), settings.url("pacs")
    pipeline = (settings.orthanc_user, secrets["orthanc_password"])
    gateway = (settings.gateway_user, secrets["gateway_password"])
    sync = (settings.pacs_sync_user, secrets["pacs_sync_password"])
    hospital = (settings.pacs_admin_user, secrets["pacs_admin_password"])
    # the pipeline: DICOMweb only, never Orthanc's REST API (which could delete or modify)
    assert requests.get(research + "/dicom-web/studies", auth=pipeline, timeout=5).status_code == 200
    assert requests.get(research + "/patients", auth=pipeline, timeout=5).status_code == 403
    assert requests.delete(research + "/studies/abc", auth=pipeline, timeout=5).status_code == 403
    # the gateway's user: DICOMweb GET only
    assert requests.get(research + "/dicom-web/studies", auth=gateway, timeout=5).status_code == 200
    assert requests.post(research + "/dicom-web/studies", auth=gateway, data=b"x", timeout=5,
                         headers={"Content-Type": "multipart/related; type=application/dicom"}).status_code == 403
    assert requests.get(research + "/app/explorer.html", auth=gateway, timeout=5).status_code == 403
    assert requests.get(research + "/dicom-web/studies", auth=gateway, headers={"X-HTTP-Method-Override": "DELETE"},
                        timeout=5).status_code == 403
    # sync reads the PACS and can do nothing else there; research credentials open nothing in the PACS
    assert requests.get(pacs + "/dicom-web/studies", auth=sync, timeout=5).status_code == 200
    assert requests.post(pacs + "/dicom-web/studies", auth=sync, data=b"x", timeout=5,
                         headers={"Content-Type": "multipart/related; type=application/dicom"}).status_code == 403
    assert requests.get(pacs + "/patients", auth=sync, timeout=5).status_code == 403
    assert requests.get(pacs + "/dicom-web/studies", auth=pipeline, timeout=5).status_code == 401
    assert requests.get(pacs + "/patients", auth=hospital, timeout=5).status_code == 200


def test_label_studio_token_works_and_signup_is_closed(settings):
    base = settings.url("label_studio")
    token = settings.secrets()["label_studio_token"]
    assert requests.get(base + "/api/projects", timeout=10).status_code == 401
    users = requests.get(base + "/api/users", headers={"Authorization": f"Token {token}"}, timeout=10).json()
    assert settings.label_studio_user in [u["email"] for u in users]
    browser = requests.Session()
    browser.get(base + "/user/signup/", timeout=10)
    reply = browser.post(base + "/user/signup/", allow_redirects=False, timeout=10,
                         headers={"Referer": base + "/user/signup/"},
                         data={"email": "stranger@example.org", "password": "An0ther-passw0rd",
                               "csrfmiddlewaretoken": browser.cookies.get("csrftoken")})
    assert reply.status_code in (302, 403) and reply.headers.get("location", "") != "/"
    after = requests.get(base + "/api/users", headers={"Authorization": f"Token {token}"}, timeout=10).json()
    assert len(after) == len(users) and "stranger@example.org" not in [u["email"] for u in after]


def test_hooks_server_checks_the_shared_secret(settings):
    url = settings.url("hooks") + "/webhook"
    event = {"action": "ANNOTATION_CREATED", "task": {"id": 1}}
    assert requests.post(url, json=event, timeout=5).status_code == 403
    assert requests.post(url, json=event, headers={SECRET_HEADER: "wrong"}, timeout=5).status_code == 403
    good = {SECRET_HEADER: settings.secrets()["webhook_secret"]}
    assert requests.post(url, data="{not json", headers=good, timeout=5).status_code == 400
    reply = requests.post(url, json=event, headers=good, timeout=5)
    assert reply.status_code == 202 and reply.json()["queued"] >= 1


def test_ml_backend_speaks_the_label_studio_protocol(settings):
    from ml_backend.app import ML_USER

    base = settings.url("ml_backend")
    auth = (ML_USER, settings.secrets()["ml_backend_password"])
    assert requests.post(base + "/setup", json={"project": "1", "schema": "<View/>"}, auth=auth,
                         timeout=5).json()["model_version"]
    tasks = [{"id": i, "data": {"images": []}} for i in range(3)]
    results = requests.post(base + "/predict", json={"tasks": tasks, "label_config": "<View/>"}, auth=auth,
                            timeout=5).json()
    assert len(results["results"]) == 3
    assert requests.post(base + "/predict", json={"nothing": 1}, auth=auth, timeout=5).status_code == 400
    assert requests.post(base + "/predict", json={"tasks": tasks}, timeout=5).status_code == 401


def test_viewer_front_serves_ohif_config_and_refuses_dicomweb_without_a_reader(settings):
    base = settings.url("viewer")
    index = requests.get(base + "/", timeout=5)
    assert index.status_code == 200 and "/app-config.js" in index.text
    assert "frame-ancestors 'none'" in index.headers["Content-Security-Policy"]
    assert index.headers["X-Frame-Options"] == "DENY" and index.headers["X-Content-Type-Options"] == "nosniff"
    config = requests.get(base + "/app-config.js", timeout=5).text
    assert '"qidoRoot": "/dicom-web"' in config and '"showStudyList": false' in config
    assert not any(value in config for value in settings.secrets().values())
    # client-side routes fall back to index.html
    assert requests.get(base + "/viewer?StudyInstanceUIDs=1.2.3", timeout=5).text == index.text
    # DICOMweb through the front needs a reader's token (tests/integration/test_trust_boundary.py goes further)
    studies = requests.get(base + "/dicom-web/studies", timeout=10)
    assert studies.status_code == 401 and studies.headers["WWW-Authenticate"] == "Bearer"


def test_a_killed_service_is_reported_and_restarted_by_up(stack):
    hooks = next(s for s in stack.services if s.name == "hooks")
    os.killpg(hooks.pid(), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while hooks.pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    done = radlabel("status")
    assert done.returncode == 1 and "stopped" in done.stdout
    done = radlabel("up")
    assert done.returncode == 0, done.stderr
    assert "hooks server" in done.stdout and "(started)" in done.stdout
    assert radlabel("status").returncode == 0


def test_port_in_use_gives_one_clear_line_and_starts_nothing(stack, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        others = dict(zip(SERVICE_PORT_VARIABLES, map(str, free_ports(len(SERVICE_PORT_VARIABLES)))))  # only Orthanc's port is taken
        env = os.environ.copy() | others | {"RADLABEL_HOME": str(tmp_path / "other"), "RADLABEL_ORTHANC_PORT": str(port)}
        done = radlabel("up", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line, and nothing was started
    assert f"port {port} for Orthanc (research archive) is already in use" in done.stderr
    assert "RADLABEL_ORTHANC_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "other" / "run").glob("*.pid"))
