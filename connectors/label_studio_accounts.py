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

# Runs inside Label Studio's venv; reads {"user_ids"} on stdin, writes one JSON object.
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
wanted = [int(i) for i in json.loads(sys.stdin.read())["user_ids"]]
users = {user.id: user for user in User.objects.filter(id__in=wanted)}
missing = [i for i in wanted if i not in users]
if missing:
    print(json.dumps({"error": "no such user", "missing": missing})); sys.exit(0)
organization = Organization.objects.order_by("id").first()
try:
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
except ImportError:
    OutstandingToken = None
for user in users.values():
    if not organization.has_user(user):
        organization.add_user(user)
    user.active_organization = organization
    user.is_active = False
    user.set_unusable_password()
    user.save()
    Token.objects.filter(user=user).delete()
    for outstanding in (OutstandingToken.objects.filter(user=user) if OutstandingToken else []):
        BlacklistedToken.objects.get_or_create(token=outstanding)
print(json.dumps({"sealed": sorted(users)}))
"""


def seal_account(settings: Settings, user_id: int) -> None:
    """Deactivate the reader's Label Studio user: no password, no token (its reads are still attributed to it)."""
    seal_accounts(settings, [user_id])


def seal_accounts(settings: Settings, user_ids: list[int]) -> None:
    """Seal several readers' Label Studio users in one start of Label Studio's Django (each start takes about 4 s:
    a campaign registering five readers paid it five times)."""
    from connectors.stack.services import label_studio

    service = label_studio(settings, settings.secrets())  # the environment Label Studio itself runs with
    python = settings.label_studio_venv / "bin" / "python"
    if not python.exists():
        raise RadlabelError(f"Label Studio is not installed at {settings.label_studio_venv}: run `radlabel install`.")
    try:
        done = subprocess.run([str(python), "-c", _SCRIPT], input=json.dumps({"user_ids": list(user_ids)}),
                              capture_output=True, text=True, env=service.env, cwd=service.cwd, timeout=180)
    except subprocess.TimeoutExpired:
        raise RadlabelError("Label Studio's database did not answer within 180 s: check `radlabel status`.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        # stderr is Django's traceback: it names no secret, but only its last line is useful here
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise RadlabelError(f"could not seal the reader's Label Studio user ({last}).")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise RadlabelError(f"Label Studio has no user {answer['missing'][0]}: add the reader again with "
                            "`radlabel readers add`.")
    if sorted(answer.get("sealed", [])) != sorted(set(user_ids)):
        raise RadlabelError(f"Label Studio sealed users {answer.get('sealed')} when asked for {sorted(set(user_ids))}.")
