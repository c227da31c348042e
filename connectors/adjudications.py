"""The adjudications table: one row per production task that adjudication has decided on.

The only module that holds this table's SQL and creates it; adjudication writes it, the QA desk,
export and the readers' API read it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import NamedTuple

from connectors.database import Database

__all__ = ["CONSENSUS_CREATOR", "CONSENSUS_USER", "SCHEMA", "AdjudicationRow", "Adjudications", "Outcome"]

CONSENSUS_USER = "radlabel-consensus@readers.radlabel.local"  # the Label Studio user of final labels
CONSENSUS_CREATOR = "RADLABEL^CONSENSUS"  # ContentCreatorName of final SEGs

SCHEMA = """CREATE TABLE IF NOT EXISTS adjudications (
    task_id INTEGER PRIMARY KEY, protocol_id TEXT NOT NULL, status TEXT NOT NULL,
    arbitration_task_id INTEGER, seg_sop_uid TEXT, decision TEXT, updated DOUBLE PRECISION NOT NULL)"""


@dataclass
class Outcome:
    task_id: int
    status: str  # waiting / arbitration / final / already final; QA: reviewed / calibrating / certified / not certified
    detail: str = ""
    seg_sop_uid: str | None = None
    arbitration_task_id: int | None = None

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class AdjudicationRow(NamedTuple):
    status: str  # arbitration / final
    arbitration_task_id: int | None
    seg_sop_uid: str | None


class Adjudications:
    def __init__(self, database: Database):
        self.database = database
        database.ensure(SCHEMA)

    def row(self, task_id: int) -> AdjudicationRow | None:
        with self.database.connect() as db:
            row = db.execute("SELECT status, arbitration_task_id, seg_sop_uid FROM adjudications WHERE task_id=?",
                             (task_id,)).fetchone()
        return AdjudicationRow(*row) if row else None

    def save(self, task_id: int, protocol_id: str, status: str, arbitration: int | None, seg_uid: str | None,
             decision: dict) -> None:
        with self.database.connect() as db:
            db.execute("INSERT INTO adjudications VALUES (?,?,?,?,?,?,?) ON CONFLICT(task_id) DO UPDATE SET "
                       "status=excluded.status, arbitration_task_id=excluded.arbitration_task_id, "
                       "seg_sop_uid=excluded.seg_sop_uid, decision=excluded.decision, updated=excluded.updated",
                       (task_id, protocol_id, status, arbitration, seg_uid, json.dumps(decision), time.time()))

    def decision(self, task_id: int) -> dict | None:
        """The decision recorded for a task (agreement, reasons, edge cases …), or None."""
        with self.database.connect() as db:
            row = db.execute("SELECT decision FROM adjudications WHERE task_id=?", (task_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def decisions(self, protocol_id: str) -> list[dict]:
        with self.database.connect() as db:
            rows = db.execute("SELECT decision FROM adjudications WHERE protocol_id=? AND decision IS NOT NULL",
                              (protocol_id,)).fetchall()
        return [json.loads(row[0]) for row in rows if row[0]]

    def final(self, protocol_id: str) -> dict[int, dict]:
        """task id -> decision of each final task of a protocol, in task order."""
        with self.database.connect() as db:
            rows = db.execute("SELECT task_id, decision FROM adjudications WHERE protocol_id=? AND status='final'"
                              " ORDER BY task_id", (protocol_id,)).fetchall()
        return {task_id: json.loads(decision or "{}") for task_id, decision in rows}
