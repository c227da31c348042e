"""Why a reader does not get a Label Studio organisation of their own (README, "The Label Studio door"):
what Label Studio 1.23.2 Community does with a member of a second organisation, measured.

These assert Label Studio's behaviour, not radlabel's. If one fails, Label Studio has changed how it
isolates organisations: evaluate the two designs again.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import requests

from connectors.label_studio import client
from connectors.stack.services import label_studio

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
