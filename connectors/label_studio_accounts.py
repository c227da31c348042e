"""A reader's Label Studio user: kept for authorship, sealed so that no reader credential opens Label Studio.

Readers annotate in Label Studio's editor behind radlabel's gateway (``connectors/viewer/editor.py``):
their reads are saved by radlabel in their name, so each reader keeps a Label Studio user (its id is
``completed_by``), but nothing the reader holds may open Label Studio's own API or UI. Label Studio
makes a legacy token for every new user and its API cannot deactivate a user or drop another user's
token (``users/api.py``; ``is_active`` is not a serializer field), so radlabel does it inside Label
Studio's own Django, in its virtual environment and on its database, as ``label-studio
reset_password`` would.

Sealing (at ``readers add`` and again at ``readers revoke``): the user stays a member of radlabel's
organisation (radlabel finds it there), ``is_active`` off (Label Studio's token, session and JWT
authentication refuse inactive users: HTTP 401), no usable password, its legacy token deleted and
every personal access (JWT refresh) token blacklisted.
"""

from __future__ import annotations

import json
import subprocess

from radlabel.errors import RadlabelError
from radlabel.settings import Settings

# Runs inside Label Studio's venv; reads {"user_id"} on stdin, writes one JSON object.
_SCRIPT = r"""
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
import django
django.setup()
from organizations.models import Organization
from users.models import User
from rest_framework.authtoken.models import Token
request = json.loads(sys.stdin.read())
user = User.objects.filter(id=int(request["user_id"])).first()
if user is None:
    print(json.dumps({"error": "no such user"})); sys.exit(0)
organization = Organization.objects.order_by("id").first()
if not organization.has_user(user):
    organization.add_user(user)
user.active_organization = organization
user.is_active = False
user.set_unusable_password()
user.save()
Token.objects.filter(user=user).delete()
try:
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
    for outstanding in OutstandingToken.objects.filter(user=user):
        BlacklistedToken.objects.get_or_create(token=outstanding)
except ImportError:
    pass
print(json.dumps({"sealed": True}))
"""


def seal_account(settings: Settings, user_id: int) -> None:
    """Deactivate the reader's Label Studio user: no password, no token (its reads are still attributed to it)."""
    from connectors.stack.services import label_studio

    service = label_studio(settings, settings.secrets())  # the environment Label Studio itself runs with
    python = settings.label_studio_venv / "bin" / "python"
    if not python.exists():
        raise RadlabelError(f"Label Studio is not installed at {settings.label_studio_venv}: run `radlabel install`.")
    try:
        done = subprocess.run([str(python), "-c", _SCRIPT], input=json.dumps({"user_id": user_id}),
                              capture_output=True, text=True, env=service.env, cwd=service.cwd, timeout=180)
    except subprocess.TimeoutExpired:
        raise RadlabelError("Label Studio's database did not answer within 180 s: check `radlabel status`.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        # stderr is Django's traceback: it names no secret, but only its last line is useful here
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise RadlabelError(f"could not seal the reader's Label Studio user ({last}).")
    if "error" in json.loads(lines[-1]):
        raise RadlabelError(f"Label Studio has no user {user_id}: add the reader again with `radlabel readers add`.")
