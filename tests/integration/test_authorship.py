"""Issue 17 on the real stack: an annotation forged with another author's ``completed_by`` is not counted.

Readers hold no Label Studio credential (their door is radlabel's editor gateway), but anyone else with a Label
Studio account — a member of staff, an administrator's script — can still post an annotation with any
``completed_by``: Label Studio 1.23 Community accepts it. radlabel counts a read only when its records agree
(a read radlabel saved through a reader's door, vouched; or Label Studio's record of the saver). The readers'
credentials come from ``radlabel readers add --json``; ``readers revoke`` closes both doors.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from connectors.adjudicate import Adjudicator
from connectors.readers import ReaderRegistry
from radlabel.brush_rle import mask_regions
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import class_targets
from tests.integration.conftest import protocol_variant, radlabel_cli as radlabel, registered_readers, synced_lung_case


@pytest.fixture(scope="module")
def protocol(settings):
    return protocol_variant(settings, "ct-lung-nodules.yaml", "authorship_test", "^authorship test$")


@pytest.fixture(scope="module")
def case(settings, protocol):
    return synced_lung_case(settings, protocol, 1717, "authorship test")


@pytest.fixture(scope="module")
def people(settings):
    return registered_readers("authorship")


# Inside Label Studio's Django: a member of radlabel's organisation who is not a reader, with a token of its own.
_MEMBER_TOKEN = r'''
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
import django
django.setup()
from users.models import User
user = User.objects.get(id=json.loads(sys.stdin.read())["user_id"])
print(json.dumps({"token": user.reset_token().key}))
'''


@pytest.fixture(scope="module")
def member(settings):
    """A Label Studio member who is not a reader (staff), with its own token: (user id, token)."""
    from connectors.label_studio import client
    from connectors.stack.services import label_studio

    user = client(settings).users.create(email="staff.member@hospital.org", username="staff-member").id
    service = label_studio(settings, settings.secrets())
    done = subprocess.run([str(settings.label_studio_venv / "bin" / "python"), "-c", _MEMBER_TOKEN],
                          input=json.dumps({"user_id": user}), capture_output=True, text=True, env=service.env,
                          cwd=service.cwd, timeout=180)
    return user, json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])["token"]


def gateway(settings, token, method, path, **kwargs):
    return requests.request(method, f"{settings.url('viewer')}/radlabel/editor/{path}", timeout=120,
                            headers={"Authorization": f"Bearer {token}"}, **kwargs)


def ls_as(settings, token, method, path, **kwargs):
    return requests.request(method, f"{settings.url('label_studio')}{path}", timeout=60,
                            headers={"Authorization": f"Token {token}"} if token else {}, **kwargs)


def user_id(credentials) -> int:
    return int(credentials["reader"].removeprefix("reader-"))


def test_readers_add_prints_both_doors_credentials(settings, people):
    a = people["a"]
    assert set(a) == {"reader", "tier", "ohif_token", "label_studio"} and a["reader"].startswith("reader-")
    assert a["label_studio"] == {"url": settings.url("viewer") + "/radlabel/editor/",
                                 "email": "authorship.a@hospital.org", "token": a["ohif_token"]}
    assert gateway(settings, a["label_studio"]["token"], "GET", "api/worklist").json()["reader"] == a["reader"]
    assert ReaderRegistry.from_settings(settings).authenticate(a["ohif_token"]).pseudonym == a["reader"]
    assert ls_as(settings, a["label_studio"]["token"], "GET", "/api/current-user/whoami").status_code == 401
    assert ls_as(settings, None, "GET", "/api/projects").status_code == 401  # an outsider
    listed = radlabel("readers", "list", "--json")
    assert a["reader"] in {r["reader"] for r in json.loads(listed.stdout)}
    assert a["ohif_token"] not in listed.stdout + listed.stderr


def test_a_read_forged_with_another_readers_completed_by_is_not_counted(settings, protocol, case, people, member):
    task_id, study = case
    a = people["a"]
    staff, staff_token = member
    consensus = Adjudicator(settings).consensus_user()
    regions = mask_regions({"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7},
                           targets=class_targets(protocol, Geometry.MASK))  # each class on its preset's control
    own = gateway(settings, a["label_studio"]["token"], "POST", f"tasks/{task_id}/annotation", json={"result": regions})
    assert own.status_code == 201, own.text  # a's own read, through a's own door
    forged_ids = []
    for victim in (user_id(a), consensus):  # staff writes in a's name, then in radlabel's consensus user's name
        reply = ls_as(settings, staff_token, "POST", f"/api/tasks/{task_id}/annotations/",
                      json={"result": regions, "completed_by": victim, "ground_truth": victim == consensus})
        assert reply.status_code == 201, reply.text  # Label Studio Community takes it: the hole radlabel closes
        assert reply.json()["completed_by"] == victim and reply.json()["updated_by"] == staff
        forged_ids.append(reply.json()["id"])

    adjudicator = Adjudicator(settings)
    with adjudicator._lock("reads", task_id):
        outcome = adjudicator.adjudicate_task(protocol, task_id)
    assert outcome.status == "waiting" and outcome.detail == "1 of 2 counted reads"  # a's own read only

    shown = radlabel("reads", "unverified", "--json", "--protocol", protocol.id)
    assert shown.returncode == 0, shown.stderr
    rows = {r["annotation"]: r for r in json.loads(shown.stdout)["unverified_reads"]}
    assert set(forged_ids) <= set(rows)
    assert rows[forged_ids[0]]["reason"].startswith(f"saved by reader-{staff}")
    assert rows[forged_ids[1]]["claimed_author"] == f"reader-{consensus}" and rows[forged_ids[1]]["task"] == task_id
    assert own.json()["annotation_id"] not in rows  # a's own read counts
    assert f"{len(rows)} unverified read(s)" in radlabel("reads", "unverified", "--protocol", protocol.id).stdout


def test_a_read_radlabel_saved_and_someone_else_rewrote_is_not_counted(settings, protocol, case, people, member):
    from connectors.authorship import post_read, unverified_reads
    from connectors.label_studio import client

    task_id, study = case
    b = people["b"]
    staff, staff_token = member
    adjudicator = Adjudicator(settings)
    [service] = adjudicator.authorship.service_users()
    regions = mask_regions({"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7})
    saved = post_read(settings, client(settings), task_id, user_id(b), regions, "simulated")
    # staff rewrites it, and claims in the body that radlabel's service account saved it
    reply = ls_as(settings, staff_token, "PATCH", f"/api/annotations/{saved}/", json={"result": [], "updated_by": service})
    assert reply.status_code == 200, reply.text
    assert reply.json()["updated_by"] == staff  # Label Studio records the real saver, whatever the body says
    with adjudicator._lock("reads", task_id):
        adjudicator.adjudicate_task(protocol, task_id)
    [row] = [r for r in unverified_reads(settings) if r["annotation"] == saved]
    assert row["reason"] == f"saved by reader-{staff} in the name of {b['reader']}"


def test_revoke_closes_both_doors_and_only_that_readers(settings, people):
    a, b = people["a"], people["b"]
    done = radlabel("readers", "revoke", "authorship.b@hospital.org", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"reader": b["reader"], "ohif_token": "revoked", "label_studio": "revoked"}
    assert gateway(settings, b["label_studio"]["token"], "GET", "api/worklist").status_code == 401
    assert ReaderRegistry.from_settings(settings).authenticate(b["ohif_token"]) is None
    viewer = requests.get(f"{settings.url('viewer')}/radlabel/api/me", timeout=30,
                          headers={"Authorization": f"Bearer {b['ohif_token']}"})
    assert viewer.status_code == 401
    assert gateway(settings, a["label_studio"]["token"], "GET", "api/worklist").status_code == 200
    again = radlabel("readers", "add", "authorship.b@hospital.org", "--tier", "radiologist", "--json")
    fresh = json.loads(again.stdout)  # registered again: a new token works, the revoked one stays dead
    assert gateway(settings, fresh["label_studio"]["token"], "GET", "api/worklist").status_code == 200
    assert gateway(settings, b["label_studio"]["token"], "GET", "api/worklist").status_code == 401
    assert ls_as(settings, fresh["label_studio"]["token"], "GET", "/api/current-user/whoami").status_code == 401
