"""The sync state store: which source series became which research series and task.

A table of the state database (connectors.database). Keys are keyed hashes of the source
series UID, so the store holds no source identifier.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from connectors.database import Database, file_lock

__all__ = ["SCHEMA", "SeriesRecord", "StateStore", "file_lock"]  # file_lock: now the database's, named here too

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    series_key TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    status TEXT NOT NULL,
    pseudo_study_uid TEXT,
    pseudo_series_uid TEXT,
    project_id INTEGER,
    task_id INTEGER,
    frames INTEGER,
    reasons TEXT NOT NULL DEFAULT '[]',
    flags TEXT NOT NULL DEFAULT '[]',
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_key, protocol_id)
)
"""


@dataclass
class SeriesRecord:
    series_key: str
    protocol_id: str
    status: str  # quarantined / held / stored / rendered / done
    pseudo_study_uid: str | None = None
    pseudo_series_uid: str | None = None
    project_id: int | None = None
    task_id: int | None = None
    frames: int | None = None
    reasons: list = field(default_factory=list)
    flags: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class StateStore:
    def __init__(self, database: Database):
        self.database = database
        database.ensure(SCHEMA)

    def _connect(self):
        return self.database.connect()

    def get(self, series_key: str, protocol_id: str) -> SeriesRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT series_key, protocol_id, status, pseudo_study_uid, pseudo_series_uid, project_id,"
                             " task_id, frames, reasons, flags FROM series WHERE series_key=? AND protocol_id=?",
                             (series_key, protocol_id)).fetchone()
        if row is None:
            return None
        return SeriesRecord(*row[:8], reasons=json.loads(row[8]), flags=json.loads(row[9]))

    def put(self, record: SeriesRecord) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO series (series_key, protocol_id, status, pseudo_study_uid, pseudo_series_uid, project_id,"
                " task_id, frames, reasons, flags, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(series_key, protocol_id) DO UPDATE SET status=excluded.status,"
                " pseudo_study_uid=excluded.pseudo_study_uid, pseudo_series_uid=excluded.pseudo_series_uid,"
                " project_id=excluded.project_id, task_id=excluded.task_id, frames=excluded.frames,"
                " reasons=excluded.reasons, flags=excluded.flags, updated=excluded.updated",
                (record.series_key, record.protocol_id, record.status, record.pseudo_study_uid,
                 record.pseudo_series_uid, record.project_id, record.task_id, record.frames,
                 json.dumps(record.reasons), json.dumps(record.flags), time.time()),
            )

    def pseudo_series_uids(self) -> set[str]:
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT pseudo_series_uid FROM series WHERE pseudo_series_uid IS NOT NULL")}

    def all(self, protocol_id: str | None = None) -> list[SeriesRecord]:
        with self._connect() as db:
            keys = db.execute("SELECT series_key, protocol_id FROM series" +
                              (" WHERE protocol_id=?" if protocol_id else ""),
                              (protocol_id,) if protocol_id else ()).fetchall()
        return [self.get(*key) for key in keys]
