"""A reader's own Label Studio account: opened with a personal token, closed at revocation.

Label Studio's API cannot hand out another user's token, set a password or deactivate a user
(``users/api.py``: tokens only for the current user; ``is_active`` is not a serializer field), so
radlabel does both inside Label Studio's own Django, in its virtual environment and on its database,
as ``label-studio reset_password`` would. The token travels over a pipe, never on a command line
or into a log.

Opening: the user is made active, a member of radlabel's organisation with it as the active one,
and gets a fresh legacy API token (any earlier one stops working). Closing: ``is_active`` off (Label
Studio's token and session authentication refuse inactive users: HTTP 401), the token deleted and
every personal access (JWT refresh) token blacklisted.
"""

from __future__ import annotations

import json
import subprocess

from radlabel.errors import RadlabelError
from radlabel.settings import Settings

# Runs inside Label Studio's venv; reads {"action", "user_id"} on stdin, writes one JSON object.
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
if request["action"] == "open":
    organization = Organization.objects.order_by("id").first()
    if not organization.has_user(user):
        organization.add_user(user)
    user.active_organization = organization
    user.is_active = True
    user.save()
    print(json.dumps({"token": user.reset_token().key}))
else:
    user.is_active = False
    user.save()
    Token.objects.filter(user=user).delete()
    try:
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
        for outstanding in OutstandingToken.objects.filter(user=user):
            BlacklistedToken.objects.get_or_create(token=outstanding)
    except ImportError:
        pass
    print(json.dumps({"closed": True}))
"""


def _run(settings: Settings, action: str, user_id: int) -> dict:
    from connectors.stack.services import label_studio

    service = label_studio(settings, settings.secrets())  # the environment Label Studio itself runs with
    python = settings.label_studio_venv / "bin" / "python"
    if not python.exists():
        raise RadlabelError(f"Label Studio is not installed at {settings.label_studio_venv}: run `radlabel install`.")
    try:
        done = subprocess.run([str(python), "-c", _SCRIPT], input=json.dumps({"action": action, "user_id": user_id}),
                              capture_output=True, text=True, env=service.env, cwd=service.cwd, timeout=180)
    except subprocess.TimeoutExpired:
        raise RadlabelError("Label Studio's database did not answer within 180 s: check `radlabel status`.") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        # stderr is Django's traceback: it names no secret, but only its last line is useful here
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise RadlabelError(f"could not {action} the reader's Label Studio account ({last}).")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise RadlabelError(f"Label Studio has no user {user_id}: add the reader again with `radlabel readers add`.")
    return answer


def open_account(settings: Settings, user_id: int) -> str:
    """Activate the reader's Label Studio user; a new personal token (the earlier one stops working)."""
    return _run(settings, "open", user_id)["token"]


def close_account(settings: Settings, user_id: int) -> None:
    """Deactivate the reader's Label Studio user and void its tokens."""
    _run(settings, "close", user_id)
