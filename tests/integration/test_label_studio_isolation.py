"""Issue 17, the Label Studio door: a reader's credentials open radlabel's editor gateway and nothing of Label Studio.

Readers annotate in Label Studio's own editor served by the viewer front (``connectors/viewer/editor.py``).
With only what ``radlabel readers add --json`` printed, a reader sees their own task and saves a verified read
in the editor (headless Chromium); sees no other reader's read, no consensus and no secret in any answer; and
gets 401 from Label Studio's API (projects, webhooks, ML backends, annotations) and cannot sign in to its UI.

The last test measures why a Label Studio organisation per reader was not chosen (README, "The Label Studio
door"): it asserts Label Studio's behaviour, not radlabel's. If it fails, Label Studio has changed how it
isolates organisations: evaluate the two designs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from connectors.adjudicate import Adjudicator
from connectors.campaign import save_through_gateway
from connectors.label_studio import client
from connectors.stack.services import label_studio
from radlabel.brush_rle import mask_regions
from tests.chromium import ARTIFACTS
from tests.integration.conftest import protocol_variant, registered_readers, state_rows, synced_lung_case

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "editor" / "read_task.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def protocol(settings):
    # any two reads agree here, so the task gets consensus labels that the reader must then not see
    return protocol_variant(settings, "ct-lung-nodules.yaml", "editor_isolation", "^editor isolation test$",
                            overrides={"adjudication": {"method": "majority", "thresholds": {"dice": 0.0}}})


@pytest.fixture(scope="module")
def case(settings, protocol):
    return synced_lung_case(settings, protocol, 1818, "editor isolation test")


@pytest.fixture(scope="module")
def people(settings):
    """Two readers, each with only what `radlabel readers add --json` printed."""
    return registered_readers("editor")


def user_id(credentials) -> int:
    return int(credentials["reader"].removeprefix("reader-"))


@pytest.fixture(scope="module")
def b_read(settings, case, people):
    """b reads the task first, through the gateway with b's own token (as b's editor would)."""
    task_id, study = case
    return save_through_gateway(settings, people["b"]["label_studio"]["token"], task_id,
                                mask_regions({"lung_field": study.labelmap == 3}, "mask_lung", "image_lung"), 120.0)


@pytest.fixture(scope="module")
def a_read_in_editor(settings, case, people, b_read, tmp_path_factory):
    """a reads the same task in Label Studio's editor in headless Chromium; then the two reads are adjudicated."""
    tools = (("Chromium", Path(CHROMIUM).exists()), ("node", shutil.which("node")),
             ("playwright-core (npm ci in ohif_extension/)",
              (REPO / "ohif_extension" / "node_modules" / "playwright-core").exists()))
    missing = [what for what, ok in tools if not ok]
    if missing:
        pytest.fail("the editor test needs " + ", ".join(missing) + ": `make install` sets them up.")
    task_id, _ = case
    folder = ARTIFACTS / "label-studio-editor"  # kept after the run (tests/artifacts is not tracked)
    folder.mkdir(parents=True, exist_ok=True)
    credentials = tmp_path_factory.mktemp("editor") / "credentials.json"
    credentials.touch(mode=0o600)
    credentials.write_text(json.dumps(people["a"]))  # a file, not an argument: tokens stay out of process listings
    done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), settings.url("label_studio"), str(credentials),
                           str(task_id), str(folder)], capture_output=True, text=True, timeout=420,
                          env=os.environ | {"RADLABEL_EXTENSION_DIR": str(REPO / "ohif_extension"), "CHROMIUM": CHROMIUM})
    credentials.unlink()
    print(f"\nLabel Studio editor screenshots: {folder}")
    assert done.returncode == 0, done.stderr[-2000:]
    (folder / "report.json").write_text(done.stdout)
    Adjudicator(settings).reconcile()  # whatever the webhook has not adjudicated yet
    return json.loads(done.stdout.strip().splitlines()[-1])


def gateway(settings, credentials, method, path, **kwargs):
    return requests.request(method, f"{settings.url('viewer')}/radlabel/editor/{path}", timeout=120,
                            headers={"Authorization": f"Bearer {credentials['label_studio']['token']}"}, **kwargs)


def test_readers_add_hands_out_the_gateway_not_label_studio(settings, people):
    for credentials in people.values():
        assert credentials["label_studio"]["url"] == settings.url("viewer") + "/radlabel/editor/"
        assert credentials["label_studio"]["token"] == credentials["ohif_token"]
        me = gateway(settings, credentials, "GET", "api/worklist")
        assert me.status_code == 200 and me.json()["reader"] == credentials["reader"]


def test_a_reader_reads_in_label_studios_editor_and_it_is_their_verified_read(settings, protocol, case, people,
                                                                                a_read_in_editor):
    from connectors.authorship import Authorship

    task_id, _ = case
    report, a = a_read_in_editor, people["a"]
    result = report["result"]
    assert task_id in result.get("worklist", []), report
    assert result.get("submit", {}).get("status") == 201, report
    assert not [e for e in report["console_errors"] if "Content Security Policy" in e], report["console_errors"]
    ls = client(settings)
    [saved] = [x for x in ls.annotations.list(id=task_id) if x.id == result["submit"]["body"]["annotation_id"]]
    assert saved.completed_by == user_id(a)
    labels = {label for region in saved.result for label in region["value"].get("brushlabels", [])}
    assert labels == {"lung_field"} and all(region["type"] == "brushlabels" for region in saved.result)
    verified = Authorship(settings, ls).verified(task_id, [saved.dict()], protocol.id)
    assert [x["id"] for x in verified] == [saved.id]  # counted as a's read: radlabel saved it, vouched
    assert state_rows(settings, "SELECT source FROM vouched_reads WHERE annotation_id=?", saved.id) == \
        [("label-studio-editor",)]
    # the same credentials on Label Studio's own UI: the login form refuses them, the token opens no page
    assert "/user/login" in result["label_studio_login_url"], report
    assert "/user/login" in result["label_studio_projects_url"], report


def test_no_answer_shows_another_readers_read_the_consensus_or_a_secret(settings, case, people, a_read_in_editor):
    task_id, _ = case
    a = people["a"]
    annotations = list(client(settings).annotations.list(id=task_id))
    others = [x for x in annotations if x.completed_by != user_id(a)]
    # b's read and the final labels exist in Label Studio ...
    assert {x.completed_by for x in others} == {user_id(people["b"]), Adjudicator(settings).consensus_user()}
    answers = [gateway(settings, a, "GET", "api/worklist"), gateway(settings, a, "GET", f"api/tasks/{task_id}"),
               gateway(settings, a, "GET", f"api/tasks/{task_id + 100000}"), gateway(settings, a, "GET", "tasks/1"),
               requests.get(f"{settings.url('viewer')}/radlabel/api/tasks/{task_id}", timeout=60,
                            headers={"Authorization": f"Bearer {a['ohif_token']}"})]
    detail = answers[1].json()
    assert [x["id"] for x in detail["task"]["annotations"]] == [x.id for x in annotations if x.completed_by == user_id(a)]
    assert detail["task"]["predictions"] == [] and set(detail["task"]["data"]) == {"images_by_preset"}
    # ... but no answer to a holds them, nor any secret of the stack
    text = "\n".join(reply.text for reply in answers)
    packed = text.replace(" ", "")
    masks = [",".join(map(str, region["value"]["rle"])) for other in others for region in other.result
             if "rle" in region["value"]]
    assert masks and not [mask for mask in masks if mask in packed]  # no other read's brush mask, whole
    shown_ids = {x["id"] for x in detail["task"]["annotations"]}
    assert not shown_ids & {x.id for x in others}
    for name, secret in settings.secrets().items():
        assert secret not in text, name


def test_reader_credentials_get_401_from_label_studio_api(settings, case, people, b_read):
    task_id, _ = case
    url, ls = settings.url("label_studio"), client(settings)
    project = ls.tasks.get(id=task_id).project
    consensus = Adjudicator(settings).consensus_user()
    attempts = [("GET", "/api/projects", None), ("GET", f"/api/tasks?project={project}&fields=all", None),
                ("GET", f"/api/annotations/{b_read}/", None), ("GET", "/api/webhooks/", None),
                ("PATCH", f"/api/projects/{project}/", {"title": "renamed"}),
                ("DELETE", f"/api/projects/{project}/", None),
                ("POST", "/api/webhooks/", {"project": project, "url": "http://127.0.0.1:9/x"}),
                ("POST", "/api/ml/", {"project": project, "url": "http://127.0.0.1:9"}),
                ("POST", f"/api/tasks/{task_id}/annotations/", {"result": [], "completed_by": consensus}),
                ("GET", "/api/current-user/whoami", None)]
    for credentials in people.values():
        token = credentials["label_studio"]["token"]
        for scheme in ("Token", "Bearer"):
            for method, path, body in attempts:
                reply = requests.request(method, url + path, json=body, timeout=60,
                                         headers={"Authorization": f"{scheme} {token}"})
                assert reply.status_code == 401, (scheme, method, path, reply.status_code)
    assert ls.projects.get(id=project).title != "renamed"  # nothing changed, nothing deleted
    assert b_read in [x.id for x in ls.annotations.list(id=task_id)]


def test_the_gateway_refuses_outsiders_unknown_tasks_and_a_named_author(settings, case, people):
    task_id, _ = case
    a, b = people["a"], people["b"]
    outsider = requests.get(f"{settings.url('viewer')}/radlabel/editor/api/tasks/{task_id}", timeout=60)
    assert outsider.status_code == 401 and "reader token" in outsider.json()["error"]
    unknown = gateway(settings, a, "GET", "api/tasks/987654321")
    assert unknown.status_code == 404 and "not on your worklist" in unknown.json()["error"]
    before = len(list(client(settings).annotations.list(id=task_id)))
    forged = gateway(settings, a, "POST", f"tasks/{task_id}/annotation", json={"result": [], "completed_by": user_id(b)})
    assert forged.status_code == 422 and "the author is the signed-in reader" in forged.json()["error"]
    assert len(list(client(settings).annotations.list(id=task_id))) == before  # never saved


# Inside Label Studio's Django: a second organisation holding only this user (as the per-reader design would).
_OWN_ORGANISATION = r'''
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
import django
django.setup()
from organizations.models import Organization, OrganizationMember
from users.models import User
user = User.objects.get(id=json.loads(sys.stdin.read())["user_id"])
main = Organization.objects.order_by("id").first()
own = Organization.create_organization(created_by=user, title="reader's own")
OrganizationMember.objects.filter(user=user, organization=main).delete()
user.active_organization = own
user.save()
print(json.dumps({"token": user.reset_token().key, "main": main.id}))
'''


def _reader_in_own_organisation(settings) -> tuple[int, dict, int]:
    ls = client(settings)
    user = ls.users.create(email=f"own.org.{uuid.uuid4().hex[:8]}@hospital.org", username="own-org").id
    service = label_studio(settings, settings.secrets())
    done = subprocess.run([str(settings.label_studio_venv / "bin" / "python"), "-c", _OWN_ORGANISATION],
                          input=json.dumps({"user_id": user}), capture_output=True, text=True, env=service.env,
                          cwd=service.cwd, timeout=180)
    answer = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    return user, {"Authorization": f"Token {answer['token']}"}, answer["main"]


def test_a_second_organisation_does_not_isolate_a_reader(settings):
    ls = client(settings)
    config = '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="x"/></Choices></View>'
    project = ls.projects.create(title="isolation probe", label_config=config)
    ls.projects.import_tasks(id=project.id, request=[{"t": "probe"}])
    task = list(ls.tasks.list(project=project.id))[0]
    user, headers, main = _reader_in_own_organisation(settings)
    url = settings.url("label_studio")
    # reading by id is refused ...
    assert requests.get(f"{url}/api/tasks/{task.id}/", headers=headers, timeout=30).status_code == 404
    # ... but writing an annotation into the other organisation's task is not
    wrote = requests.post(f"{url}/api/tasks/{task.id}/annotations/", headers=headers, json={"result": []}, timeout=30)
    assert wrote.status_code == 201
    # and a member may make any organisation its active one, and then sees its projects
    switched = requests.patch(f"{url}/api/users/{user}/", headers=headers, json={"active_organization": main}, timeout=30)
    assert switched.status_code == 200
    listed = requests.get(f"{url}/api/projects", headers=headers, params={"page_size": 100}, timeout=30).json()
    assert project.id in [p["id"] for p in listed["results"]]
    ls.projects.delete(id=project.id)
