"""Verified authorship of reads: which Label Studio annotations radlabel counts as whose read.

Label Studio Community lets every member of the organisation post an annotation with any
``completed_by`` (issue 17). radlabel therefore counts an annotation as reader R's read only when
its own records agree (``radlabel.adjudication.reads.authorship_problem``):

- Label Studio recorded R as the user who saved it (``updated_by``, set from the authenticated
  request) and R is a registered reader (``reader_tokens``) eligible for the task; or
- radlabel's service account saved it and radlabel's ledger (``vouched_reads``; for older OHIF
  deliveries ``reader_submissions``) says it saved exactly this read for R in this task, with
  these labels.

Anything else is kept aside in ``unverified_reads`` with its reason, audited once, never adjudicated
or scored, and shown by ``radlabel reads unverified`` and the QA report.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from connectors.database import Database
from connectors.wiring import Adapters
from radlabel.adjudication.reads import AuthorshipRecords, Vouched, annotator, authorship_problem, \
    result_fingerprint, saver
from radlabel.errors import RadlabelError
from radlabel.settings import Settings

SCHEMA = [
    # annotation_id is NULL from just before radlabel saves the read until Label Studio has answered with its id
    "CREATE TABLE IF NOT EXISTS vouched_reads (id INTEGER PRIMARY KEY AUTOINCREMENT, annotation_id INTEGER UNIQUE,"
    " task_id INTEGER NOT NULL, reader INTEGER NOT NULL, source TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " at DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS unverified_reads (annotation_id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL,"
    " protocol_id TEXT, claimed INTEGER, saver INTEGER, reason TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
]


def _database(settings_or_db) -> Database:
    """The given state database, or the one the settings' adapters reach."""
    from connectors.viewer.outbox import SCHEMA as SUBMISSIONS_SCHEMA

    database = settings_or_db if isinstance(settings_or_db, Database) else Adapters(settings_or_db).database
    database.ensure(*SCHEMA, SUBMISSIONS_SCHEMA)
    return database


def vouch(settings_or_db, task_id: int, reader: int, result, source: str) -> int:
    """Record, before saving it, that radlabel saves this read for ``reader`` with its service token: the
    webhook of the save may be handled before Label Studio's answer names the annotation. Returns the record."""
    with _database(settings_or_db).connect() as db:
        return db.execute("INSERT INTO vouched_reads (task_id, reader, source, fingerprint, at) VALUES (?,?,?,?,?) "
                          "RETURNING id", (int(task_id), int(reader), source, result_fingerprint(result),
                                           time.time())).fetchone()[0]


def vouched_as(settings_or_db, record: int, annotation_id: int) -> None:
    """The annotation id Label Studio gave the read of ``record``."""
    with _database(settings_or_db).connect() as db:
        # the save's webhook may have claimed an identical earlier record for this annotation already
        db.execute("UPDATE vouched_reads SET annotation_id=? WHERE id=? AND annotation_id IS NULL AND NOT EXISTS "
                   "(SELECT 1 FROM vouched_reads WHERE annotation_id=?)", (int(annotation_id), record, int(annotation_id)))


def rewrite_read(settings: Settings, ls, task_id: int, annotation: dict, result: list, records: AuthorshipRecords,
                 source: str) -> None:
    """Replace an annotation's labels with radlabel's service token (``source``: why, e.g. an administrator's
    ``provision --migrate``). A verified read stays one: its ledger record takes the new labels first (the save's
    webhook may come before the answer) and gets its old ones back if the save fails. Any other annotation is
    rewritten too but stays unverified: a migration never makes a read count that did not."""
    from connectors.label_studio import label_studio_errors

    annotation_id = int(annotation["id"])
    verified = authorship_problem(annotation, task_id, records) is None
    database = _database(settings)
    with database.connect() as db:
        before = db.execute("SELECT id, source, fingerprint FROM vouched_reads WHERE annotation_id=?",
                            (annotation_id,)).fetchone()
        if verified and before:
            db.execute("UPDATE vouched_reads SET source=?, fingerprint=? WHERE id=?",
                       (source, result_fingerprint(result), before[0]))
        elif verified:
            db.execute("INSERT INTO vouched_reads (annotation_id, task_id, reader, source, fingerprint, at) "
                       "VALUES (?,?,?,?,?,?)", (annotation_id, int(task_id), annotator(annotation), source,
                                                result_fingerprint(result), time.time()))
    try:
        with label_studio_errors(f"rewrite annotation {annotation_id} of task {task_id}"):
            ls.annotations.update(id=annotation_id, result=result)
    except RadlabelError:
        with database.connect() as db:
            if verified and before:
                db.execute("UPDATE vouched_reads SET source=?, fingerprint=? WHERE id=?", (before[1], before[2], before[0]))
            elif verified:
                db.execute("DELETE FROM vouched_reads WHERE annotation_id=?", (annotation_id,))
        raise


class Authorship:
    """Verifies the annotations of tasks against the state database; ``ls`` finds the service user."""

    def __init__(self, settings: Settings, ls, database: Database | None = None):
        self.settings = settings
        self.ls = ls
        self.database = _database(database or settings)
        self._service: set[int] | None = None

    def service_users(self) -> set[int]:
        """The Label Studio user behind radlabel's own token (it saves simulated, imported and OHIF reads)."""
        if self._service is None:
            from connectors.label_studio import label_studio_errors

            with label_studio_errors("identify radlabel's service user"):
                self._service = {int(self.ls.users.whoami().id)}
        return self._service

    def _vouched(self, task_id: int, annotations: list[dict]) -> dict[int, Vouched]:
        ids = [int(a["id"]) for a in annotations]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self.database.connect() as db:
            ledger = db.execute(f"SELECT annotation_id, task_id, reader, fingerprint FROM vouched_reads "
                                f"WHERE annotation_id IN ({marks})", ids).fetchall()
            # OHIF deliveries recorded before the ledger existed: no fingerprint, the rest holds
            delivered = db.execute(f"SELECT annotation_id, task_id, reader FROM reader_submissions WHERE "
                                   f"status='imported' AND annotation_id IN ({marks})", ids).fetchall()
        found = {a: Vouched(t, r) for a, t, r in delivered}
        found.update({a: Vouched(t, r, f) for a, t, r, f in ledger})
        service = self.service_users()
        for annotation in annotations:
            if int(annotation["id"]) not in found and saver(annotation) in service:
                claimed = self._claim_pending(task_id, annotation)
                if claimed:
                    found[int(annotation["id"])] = claimed
        return found

    def _claim_pending(self, task_id: int, annotation: dict) -> Vouched | None:
        """A record made just before radlabel saved this read, whose annotation id is not known yet."""
        if annotation.get("result") is None:
            return None
        print_ = result_fingerprint(annotation["result"])
        with self.database.connect() as db:
            row = db.execute("SELECT id FROM vouched_reads WHERE annotation_id IS NULL AND task_id=? AND reader=? "
                             "AND fingerprint=? ORDER BY id LIMIT 1", (task_id, annotator(annotation), print_)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE vouched_reads SET annotation_id=? WHERE id=?", (int(annotation["id"]), row[0]))
        return Vouched(task_id, annotator(annotation), print_)

    def records(self, task_id: int, annotations: list[dict], eligible: set[int] | None = None) -> AuthorshipRecords:
        from connectors.readers import ReaderRegistry

        readers = {r.ls_user_id for r in ReaderRegistry(self.database).readers() if r.active}
        return AuthorshipRecords(self.service_users(), readers, self._vouched(task_id, annotations), eligible)

    def verified(self, task_id: int, annotations, protocol_id: str | None, eligible: set[int] | None = None) -> list[dict]:
        """The annotations that are verified reads of the task; the others are set aside (once) with their reason."""
        from connectors.label_studio import as_dict

        annotations = [as_dict(a) for a in annotations]
        records = self.records(task_id, annotations, eligible)
        kept = []
        for annotation in annotations:
            problem = authorship_problem(annotation, task_id, records)
            if problem is None:
                kept.append(annotation)
            else:
                self.set_aside(task_id, annotation, problem, protocol_id)
        if kept:  # e.g. a reader registered again: what verifies now is no longer listed as set aside
            ids = [int(a["id"]) for a in kept]
            with self.database.connect() as db:
                db.execute(f"DELETE FROM unverified_reads WHERE annotation_id IN ({','.join('?' * len(ids))})", ids)
        return kept

    def set_aside(self, task_id: int, annotation: dict, reason: str, protocol_id: str | None) -> None:
        from radlabel.audit import audit_log

        claimed, by = annotator(annotation), saver(annotation)
        with self.database.connect() as db:
            new = db.execute("INSERT INTO unverified_reads VALUES (?,?,?,?,?,?,?) ON CONFLICT(annotation_id) DO NOTHING",
                             (int(annotation["id"]), task_id, protocol_id, claimed, by, reason, time.time())).rowcount
        if new:  # audited once, however often the task is looked at again
            audit_log(self.settings).append("read_unverified", "radlabel-adjudicator", protocol_id, task=task_id,
                                            annotation=int(annotation["id"]), claimed=f"reader-{claimed}",
                                            saved_by=f"reader-{by}" if by else None, reason=reason)


def unverified_reads(settings_or_db, protocol_id: str | None = None) -> list[dict]:
    """Reads kept aside, oldest first (user ids as reader-N pseudonyms: no email, no PHI)."""
    where, args = (" WHERE protocol_id=?", (protocol_id,)) if protocol_id else ("", ())
    with _database(settings_or_db).connect() as db:
        rows = db.execute("SELECT task_id, annotation_id, protocol_id, claimed, saver, reason, at FROM unverified_reads"
                          + where + " ORDER BY at, annotation_id", args).fetchall()
    return [{"task": t, "annotation": a, "protocol": p, "claimed_author": f"reader-{c}" if c else None,
             "saved_by": f"reader-{s}" if s else None, "reason": r,
             "at": datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")}
            for t, a, p, c, s, r, at in rows]


# -- the `radlabel reads` command (wired into radlabel/cli.py) ------------------------------------------
def cmd_reads(args) -> int:
    from radlabel.settings import load_settings

    try:
        rows = unverified_reads(load_settings(), args.protocol)
    except RadlabelError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": str(exc), "unverified_reads": []}, indent=2))
        return 2
    if args.json:
        print(json.dumps({"unverified_reads": rows}, indent=2))
        return 0
    for row in rows:
        print(f"  task {row['task']:<6} annotation {row['annotation']:<7} claimed {row['claimed_author'] or '-':<11} "
              f"saved by {row['saved_by'] or '-':<11} {row['reason']}")
    print(f"{len(rows)} unverified read(s): kept in Label Studio, never adjudicated or scored." if rows else
          "No unverified reads: every annotation radlabel looked at was a verified read.")
    return 0


def add_cli(sub) -> None:
    reads = sub.add_parser("reads", help="readers' reads as radlabel counts them").add_subparsers(
        dest="reads_command", required=True, metavar="ACTION")
    unverified = reads.add_parser("unverified", help="annotations not counted: their author is not verified")
    unverified.add_argument("--protocol", help="only this protocol id")
    unverified.add_argument("--json", action="store_true")
    unverified.set_defaults(func=cmd_reads)


def post_read(settings: Settings, ls, task_id: int, reader: int, result: list, source: str, **extra) -> int:
    """Save ``result`` as ``reader``'s annotation with radlabel's service token, vouched for (the only way a read
    saved by radlabel itself counts). ``source`` says why radlabel saved it: ohif, seg-import, simulated, consensus."""
    from connectors.label_studio import label_studio_errors

    record = vouch(settings, task_id, reader, result, source)
    with label_studio_errors(f"store a read in task {task_id}"):
        annotation = ls.annotations.create(id=task_id, result=result, completed_by=reader, **extra)
    vouched_as(settings, record, annotation.id)
    return annotation.id
