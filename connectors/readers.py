"""The reader registry: who may read, at which tier, with which credential for both doors.

``radlabel readers add EMAIL --tier T`` finds (or creates) the reader's Label Studio user (reads are
attributed to its id) and seals it (``connectors/label_studio_accounts.py``: inactive, no password, no
token), then issues a random per-reader token (only its SHA-256 is kept, table ``reader_tokens``). That
one token opens both of radlabel's doors on the viewer front: OHIF with the readers' API, and Label
Studio's editor behind radlabel's gateway (``/radlabel/editor/``); nothing the reader holds opens Label
Studio itself. It is handed out once: printed with ``--json``, else written to a file only the
administrator can read. Every request is authenticated by the token, compared in constant time.
``readers revoke`` closes both doors at once (the token) and seals the Label Studio user again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from connectors.database import Database
from connectors.wiring import Adapters
from radlabel.errors import RadlabelError
from radlabel.settings import Settings

TIERS = ("technician", "radiologist", "senior")
TOKEN_PREFIX = "rlr_"  # tells a reader token apart from other secrets in a support request
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")

SCHEMA = """CREATE TABLE IF NOT EXISTS reader_tokens (
    email TEXT PRIMARY KEY, ls_user_id INTEGER NOT NULL, tier TEXT NOT NULL,
    token_sha256 TEXT, created DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION)"""
# Digests of tokens that no longer open anything, and why: a reader holding one is told so (not "sign in").
RETIRED_SCHEMA = """CREATE TABLE IF NOT EXISTS retired_reader_tokens (
    token_sha256 TEXT PRIMARY KEY, reason TEXT NOT NULL, retired DOUBLE PRECISION NOT NULL)"""

# Why a token opens nothing, in one sentence for the reader (the readers' API and the viewer front say it).
TOKEN_REFUSALS = {
    "missing": "sign in with your reader token (ask the administrator: `radlabel readers add`).",
    "malformed": "this is not a radlabel reader token (they start with rlr_): paste the whole token the administrator "
                 "gave you.",
    "unknown": "this reader token is not valid here (mistyped, cut short, or from another radlabel installation): "
               "paste it again or ask the administrator.",
    "revoked": "this reader token was revoked by the administrator: ask them for a new one if you should still read.",
    "replaced": "this reader token has expired: the administrator issued you a newer one; sign in with that.",
}


@dataclass(frozen=True)
class Reader:
    email: str
    ls_user_id: int
    tier: str
    active: bool = True

    @property
    def pseudonym(self) -> str:
        """How a reader appears in SEGs, audit entries and QA data (the adjudication's naming)."""
        return f"reader-{self.ls_user_id}"

    @property
    def person_name(self) -> str:
        """The pseudonym as a DICOM person name (ContentCreatorName): one component, marked by a trailing caret."""
        return f"{self.pseudonym}^"

    def as_dict(self) -> dict:
        return {"email": self.email, "ls_user_id": self.ls_user_id, "tier": self.tier, "active": self.active}


_PSEUDONYM_NAME = re.compile(r"^(reader-[A-Za-z0-9]+)\^*$")


def pseudonym_from_name(name) -> str | None:
    """``reader-<id>`` from a ContentCreatorName written ``reader-<id>`` or ``reader-<id>^`` (a one-component
    person name); None for any other name."""
    match = _PSEUDONYM_NAME.match(str(name or "").strip())
    return match[1] if match else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ReaderRegistry:
    def __init__(self, database: Database):
        self.database = database
        database.ensure(SCHEMA, RETIRED_SCHEMA)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ReaderRegistry":
        """The registry in the settings' state database (for tests and scripts; stages are given their adapters)."""
        return cls(Adapters(settings).database)

    def _connect(self):
        return self.database.connect()

    def issue(self, email: str, tier: str, ls_user_id: int) -> str:
        """Register (or re-register) a reader; a new token replaces any earlier one. Returns the token."""
        email = check_email(email)
        if tier not in TIERS:
            raise RadlabelError(f"tier {tier!r} is not one of {', '.join(TIERS)}.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as db:
            self._retire(db, email, "replaced")
            db.execute("INSERT INTO reader_tokens VALUES (?,?,?,?,?,NULL) ON CONFLICT(email) DO UPDATE SET "
                       "ls_user_id=excluded.ls_user_id, tier=excluded.tier, token_sha256=excluded.token_sha256, "
                       "created=excluded.created, revoked=NULL",
                       (email, ls_user_id, tier, _digest(token), time.time()))
        return token

    @staticmethod
    def _retire(db, email: str, reason: str) -> None:
        row = db.execute("SELECT token_sha256 FROM reader_tokens WHERE email=? AND token_sha256 IS NOT NULL",
                         (email,)).fetchone()
        if row:
            db.execute("INSERT INTO retired_reader_tokens VALUES (?,?,?) ON CONFLICT(token_sha256) DO UPDATE SET "
                       "reason=excluded.reason, retired=excluded.retired", (row[0], reason, time.time()))

    def revoke(self, email: str) -> bool:
        with self._connect() as db:
            self._retire(db, email.strip().lower(), "revoked")
            changed = db.execute("UPDATE reader_tokens SET token_sha256=NULL, revoked=? WHERE email=? AND revoked IS NULL",
                                 (time.time(), email.strip().lower())).rowcount
        return bool(changed)

    def readers(self) -> list[Reader]:
        with self._connect() as db:
            rows = db.execute("SELECT email, ls_user_id, tier, revoked FROM reader_tokens ORDER BY email").fetchall()
        return [Reader(email, user, tier, revoked is None) for email, user, tier, revoked in rows]

    def authenticate(self, token: str) -> Reader | None:
        """The active reader holding this token, or None. Every stored digest is compared in constant time."""
        if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        given = _digest(token)
        with self._connect() as db:
            rows = db.execute("SELECT email, ls_user_id, tier, token_sha256 FROM reader_tokens "
                              "WHERE revoked IS NULL AND token_sha256 IS NOT NULL").fetchall()
        found = None
        for email, user, tier, stored in rows:  # no early exit: timing says nothing about which row matched
            if hmac.compare_digest(given, stored):
                found = Reader(email, user, tier)
        return found

    def refusal(self, token: str) -> tuple[str, str]:
        """Why ``token`` opens nothing: (reason, the sentence for the reader). Call it only once authenticate failed."""
        if not token:
            reason = "missing"
        elif not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            reason = "malformed"
        else:
            with self._connect() as db:
                row = db.execute("SELECT reason FROM retired_reader_tokens WHERE token_sha256=?", (_digest(token),)).fetchone()
            reason = row[0] if row and row[0] in TOKEN_REFUSALS else "unknown"
        return reason, TOKEN_REFUSALS[reason]


def check_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        raise RadlabelError(f"{email!r} is not an email address: give the reader's address, e.g. dr.a@hospital.org.")
    return email


def label_studio_user(settings: Settings, email: str, adapters: Adapters | None = None) -> int:
    """The Label Studio user id of this email, created (no password, API only) when missing."""
    from connectors.label_studio import label_studio_errors, user_id

    from connectors.adjudications import CONSENSUS_USER

    ls = (adapters or Adapters(settings)).label_studio
    with label_studio_errors("identify radlabel's own Label Studio user"):
        own = {CONSENSUS_USER, (ls.users.whoami().email or "").lower()}
    if email in own:  # sealing radlabel's own users would lock radlabel out of Label Studio
        raise RadlabelError(f"{email} is one of radlabel's own Label Studio users, not a reader: give the reader's "
                            "own address.")
    return user_id(ls, email, create_as=email.split("@")[0][:30])


def add_reader(settings: Settings, email: str, tier: str, adapters: Adapters | None = None) -> tuple[Reader, str]:
    from radlabel.audit import audit_log

    adapters = adapters or Adapters(settings)
    email = check_email(email)
    if tier not in TIERS:
        raise RadlabelError(f"tier {tier!r} is not one of {', '.join(TIERS)}.")
    registry = ReaderRegistry(adapters.database)
    user = label_studio_user(settings, email, adapters)
    token = registry.issue(email, tier, user)
    reader = Reader(email, user, tier)
    audit_log(settings).append("reader_token_issued", "admin", None, reader=reader.pseudonym, tier=tier)
    return reader, token


# -- the `radlabel readers` command (wired into radlabel/cli.py) ------------------------------------------
def editor_url(settings: Settings) -> str:
    """Where readers annotate in Label Studio's editor: radlabel's gateway on the viewer front."""
    return settings.url("viewer") + "/radlabel/editor/"


def issue_credentials(settings: Settings, email: str, tier: str, seal_account=None,
                      adapters: Adapters | None = None) -> dict:
    """Register the reader: {"reader", "tier", "ohif_token", "label_studio": {url, email, token}}. Both doors are
    radlabel's and take the same token. ``seal_account(settings, user_id)`` is Label Studio's side (injected by tests)."""
    seal = None if seal_account is None else (lambda s, user_ids: [seal_account(s, user) for user in user_ids])
    [credentials] = register_readers(settings, [(email, tier)], seal, adapters)
    return credentials


def register_readers(settings: Settings, people: list[tuple[str, str]], seal_accounts=None,
                     adapters: Adapters | None = None) -> list[dict]:
    """``issue_credentials`` for each (email, tier), their Label Studio users sealed together
    (``seal_accounts(settings, user_ids)``): one start of Label Studio's Django, not one per reader. If anything
    fails, no token issued here works and none is shown."""
    from radlabel.audit import audit_log

    if seal_accounts is None:
        from connectors.label_studio_accounts import seal_accounts
    adapters = adapters or Adapters(settings)
    registry, added = ReaderRegistry(adapters.database), []

    def withdraw() -> None:  # the tokens just issued are never shown, and stop working now
        for reader, _ in added:
            registry.revoke(reader.email)

    try:
        for email, tier in people:
            added.append(add_reader(settings, email, tier, adapters))
    except Exception:
        withdraw()
        raise
    try:
        seal_accounts(settings, [reader.ls_user_id for reader, _ in added])
    except RadlabelError as exc:
        withdraw()
        names = ", ".join(reader.pseudonym for reader, _ in added)
        were, users = ("was", "user") if len(added) == 1 else ("were", "users")
        raise RadlabelError(f"{names} {were} not registered: their Label Studio {users} could not be sealed: "
                            f"{exc} Run `radlabel readers add` again.") from None
    for reader, _ in added:
        audit_log(settings).append("reader_label_studio_user_sealed", "admin", None, reader=reader.pseudonym)
    return [{"reader": reader.pseudonym, "tier": reader.tier, "ohif_token": token,
             "label_studio": {"url": editor_url(settings), "email": reader.email, "token": token}}
            for reader, token in added]


def revoke_reader(settings: Settings, email: str, seal_account=None, adapters: Adapters | None = None) -> Reader:
    """Close both doors: the token at once (OHIF and the editor gateway), then the Label Studio user is sealed again
    (repeatable if that step failed)."""
    from radlabel.audit import audit_log

    if seal_account is None:
        from connectors.label_studio_accounts import seal_account
    email = check_email(email)
    registry = ReaderRegistry((adapters or Adapters(settings)).database)
    known = {r.email: r for r in registry.readers()}
    if email not in known:
        raise RadlabelError(f"{email} is not a registered reader: `radlabel readers list` shows the readers.")
    if registry.revoke(email):
        audit_log(settings).append("reader_token_revoked", "admin", None, reader=known[email].pseudonym)
    try:
        seal_account(settings, known[email].ls_user_id)
    except RadlabelError as exc:
        raise RadlabelError(f"the token of {known[email].pseudonym} is revoked (both of radlabel's doors are closed), "
                            f"but its Label Studio user could not be checked sealed: {exc} Run `radlabel readers "
                            "revoke` again.") from None
    audit_log(settings).append("reader_label_studio_user_sealed", "admin", None, reader=known[email].pseudonym)
    return known[email]


def write_credentials(settings: Settings, credentials: dict) -> Path:
    """The credentials in a file only the administrator can read (0600, created so: never readable by others)."""
    folder = settings.home / "credentials"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{credentials['reader']}.json"
    path.unlink(missing_ok=True)  # an older file may have looser permissions
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2)
    return path


def _fail(args, exc: RadlabelError) -> int:
    """--json prints JSON whatever happens; otherwise the CLI's one-line error."""
    if not getattr(args, "json", False):
        raise exc
    print(json.dumps({"error": str(exc)}, indent=2))
    return 2


def cmd_readers(args) -> int:
    from radlabel.settings import load_settings

    try:
        settings = load_settings()
        adapters = Adapters(settings)
        if args.readers_command == "add":
            return _add(settings, args, adapters)
        if args.readers_command == "list":
            return _list(adapters, args)
        reader = revoke_reader(settings, args.email, adapters=adapters)
    except RadlabelError as exc:
        return _fail(args, exc)
    if args.json:
        print(json.dumps({"reader": reader.pseudonym, "ohif_token": "revoked", "label_studio": "revoked"}, indent=2))
    else:
        print(f"revoked {reader.pseudonym} ({reader.email}): token revoked (OHIF and the Label Studio editor), "
              "Label Studio user sealed")
    return 0


def _add(settings: Settings, args, adapters: Adapters) -> int:
    credentials = issue_credentials(settings, args.email, args.tier, adapters=adapters)
    if args.json:
        print(json.dumps(credentials, indent=2))
        return 0
    path = write_credentials(settings, credentials)
    print(f"{credentials['reader']} ({args.tier}): credentials for OHIF and the Label Studio editor written to {path} "
          "(readable by you only); hand them to the reader, then delete the file.")
    return 0


def _list(adapters: Adapters, args) -> int:
    readers = ReaderRegistry(adapters.database).readers()
    if args.json:
        print(json.dumps([{"reader": r.pseudonym} | r.as_dict() for r in readers], indent=2))
        return 0
    for r in readers:
        print(f"  {r.pseudonym:<12} {r.email:<40} {r.tier:<12} {'active' if r.active else 'revoked'}")
    if not readers:
        print("  (no readers: add one with `radlabel readers add EMAIL --tier radiologist`)")
    return 0


def add_cli(sub) -> None:
    readers = sub.add_parser("readers", help="OHIF readers and their tokens").add_subparsers(
        dest="readers_command", required=True, metavar="ACTION")
    add = readers.add_parser("add", help="register a reader; their OHIF and Label Studio editor credentials, once "
                             "(--json prints them; else a 0600 file)")
    add.add_argument("email")
    add.add_argument("--tier", required=True, help=f"one of {', '.join(TIERS)}")  # checked by us: --json answers JSON
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_readers)
    listing = readers.add_parser("list", help="registered readers (no tokens)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_readers)
    revoke = readers.add_parser("revoke", help="close both doors: revoke the reader's token, seal the Label Studio user")
    revoke.add_argument("email")
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(func=cmd_readers)
