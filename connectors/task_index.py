"""radlabel's own index of the tasks readers work on: each task's series and who has annotated it.

A reader's worklist and the DICOMweb gateway's scope need, for every task of every project the reader
may read in, the task's study and series and its annotators. Label Studio's task listing costs about
11 ms a task (its serializer, measured in ``bench/worklist.py``): 11 s for 1,000 tasks, on every
worklist. The index keeps those few fields in the state store, so a worklist is a few SQL rows.

Label Studio stays the source of truth. Every call compares the index with one projects listing's
counts (tasks; annotations, skipped ones included). Counts that agree: the index answers alone.
Counts that disagree: only the tasks whose ``updated_at`` moved since the last look are listed (Label
Studio stamps a task on creation and on every annotation save), and if the counts still disagree
(an annotation was deleted, which stamps nothing) the project is listed again in full.
Left out: one annotation deleted and another created between two looks leaves the counts equal; the
index then keeps the deleted annotator until the project's counts next change.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["TaskSource", "IndexedTasks", "INDEX_SCHEMA", "note_annotation_event"]

INDEX_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS task_index (
    task_id BIGINT PRIMARY KEY, project_id BIGINT NOT NULL, data TEXT NOT NULL, annotators TEXT NOT NULL,
    annotations INTEGER NOT NULL, updated_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS task_index_project ON task_index (project_id)",
)
# Label Studio's stamps come from its own clock; a save in flight while we listed may carry a stamp a
# little older than the newest we saw, so each incremental look goes back this far.
STAMP_MARGIN = timedelta(seconds=5)
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the format Label Studio's data manager filters take
# The task data a worklist and the gateway use; the rest (signed image URLs) stays in Label Studio.
KEPT_DATA = ("study", "series", "sop_instance_uids", "rows", "columns")


class TaskSource(Protocol):
    """What the index needs from the annotation platform (``LabelStudioTasks`` in production)."""

    def projects(self) -> list[dict]:
        """Every project: ``id``, ``description``, ``tasks``, ``annotations`` (skipped ones included)."""

    def listed_tasks(self, project_id: int, since: str | None = None) -> list[dict]:
        """Tasks (``id``, ``data``, ``annotators``, ``annotations``, ``updated_at``), only those stamped at
        or after ``since`` when given."""


def _stamp(value: str) -> datetime | None:
    for pattern in (STAMP_FORMAT, "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value.replace("+00:00", "Z"), pattern)
        except (ValueError, AttributeError):
            continue
    return None


def _normalised(value) -> str:
    """One stamp format in the table, so SQL's MAX over the text is the newest stamp."""
    stamp = _stamp(str(value or ""))
    return stamp.strftime(STAMP_FORMAT) if stamp else ""


class IndexedTasks:
    """The task source the readers' API and gateway use: Label Studio's, with project listings from the index.

    Anything but ``projects`` and ``tasks`` goes to the wrapped source unchanged."""

    def __init__(self, source, database):
        self.source = source
        self.database = database
        self._counts: dict[int, tuple[int, int]] = {}
        database.ensure(*INDEX_SCHEMA)

    def __getattr__(self, name):
        return getattr(self.source, name)

    def projects(self) -> list[dict]:
        projects = self.source.projects()
        self._counts = {p["id"]: (p["tasks"], p["annotations"]) for p in projects}
        return projects

    def tasks(self, project_id: int) -> list[dict]:
        if project_id not in self._counts:
            self.projects()
        expected = self._counts.get(project_id)
        if expected is not None and self._counts_of(project_id) != expected:
            self._catch_up(project_id, expected)
        return [{"id": task_id, "project": project_id, "data": json.loads(data),
                 "annotations": [{"completed_by": user} for user in json.loads(annotators)], "predictions": []}
                for task_id, data, annotators in self._rows(project_id)]

    def _rows(self, project_id: int) -> list[tuple]:
        with self.database.connect() as db:
            return db.execute("SELECT task_id, data, annotators FROM task_index WHERE project_id=? ORDER BY task_id",
                              (project_id,)).fetchall()

    def _counts_of(self, project_id: int) -> tuple[int, int]:
        with self.database.connect() as db:
            tasks, annotations = db.execute("SELECT COUNT(*), COALESCE(SUM(annotations), 0) FROM task_index "
                                            "WHERE project_id=?", (project_id,)).fetchone()
        return int(tasks), int(annotations)

    def _newest_stamp(self, project_id: int) -> datetime | None:
        with self.database.connect() as db:
            newest = db.execute("SELECT MAX(updated_at) FROM task_index WHERE project_id=?", (project_id,)).fetchone()[0]
        return _stamp(newest) if newest else None

    def create_annotation(self, task_id: int, result: list, user: int, **options) -> int:
        """Saved through the source (``options``: its source and lead time); the index learns of the read at once,
        so the next worklist needs no listing."""
        annotation = self.source.create_annotation(task_id, result, user, **options)
        with self.database.connect() as db:
            row = db.execute("SELECT annotators FROM task_index WHERE task_id=?", (task_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE task_index SET annotators=?, annotations=annotations+1 WHERE task_id=?",
                           (json.dumps(sorted(set(json.loads(row[0])) | {user})), task_id))
        return annotation

    def _catch_up(self, project_id: int, expected: tuple[int, int]) -> None:
        """List what changed since the newest stamp; list the whole project when that does not explain the counts."""
        newest = self._newest_stamp(project_id)
        if newest is not None:
            since = (newest - STAMP_MARGIN).strftime(STAMP_FORMAT)
            self._store(project_id, self.source.listed_tasks(project_id, since=since), replace=False)
            if self._counts_of(project_id) == expected:
                return
        self._store(project_id, self.source.listed_tasks(project_id), replace=True)

    def _store(self, project_id: int, listed: list[dict], replace: bool) -> None:
        rows = [(int(t["id"]), project_id, json.dumps({k: t["data"][k] for k in KEPT_DATA if k in (t["data"] or {})}),
                 json.dumps(sorted(set(t["annotators"]))), int(t["annotations"]), _normalised(t.get("updated_at")))
                for t in listed]
        with self.database.connect() as db:
            if replace:  # one transaction: a concurrent reader sees the old rows or the new, never none
                db.execute("DELETE FROM task_index WHERE project_id=?", (project_id,))
            for row in rows:
                db.execute("INSERT INTO task_index (task_id, project_id, data, annotators, annotations, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO UPDATE SET project_id=excluded.project_id,"
                           " data=excluded.data, annotators=excluded.annotators, annotations=excluded.annotations,"
                           " updated_at=excluded.updated_at", row)


def _positive(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63 else None


def note_annotation_event(database, body: dict) -> bool:
    """An annotation webhook (created or updated) brings its task's counts and stamp: the task's row takes
    them and the annotator, so the next worklist finds the counts agreeing and lists nothing. A task not
    indexed yet is left to the next catch-up. True when a row changed."""
    task = body.get("task") if isinstance(body.get("task"), dict) else {}
    annotation = body.get("annotation") if isinstance(body.get("annotation"), dict) else {}
    task_id, user = _positive(task.get("id")), _positive(annotation.get("completed_by"))
    counts = [task.get("total_annotations"), task.get("cancelled_annotations")]
    if task_id is None or user is None or not all(isinstance(c, int) and c >= 0 for c in counts):
        return False
    database.ensure(*INDEX_SCHEMA)
    with database.connect() as db:
        row = db.execute("SELECT annotators FROM task_index WHERE task_id=?", (task_id,)).fetchone()
        if row is None:
            return False
        db.execute("UPDATE task_index SET annotators=?, annotations=?, updated_at=? WHERE task_id=?",
                   (json.dumps(sorted(set(json.loads(row[0])) | {user})), sum(counts),
                    _normalised(task.get("updated_at")), task_id))
    return True
