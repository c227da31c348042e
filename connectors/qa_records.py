"""The QA tables: gold standard, QA tasks (calibration cases, gold copies, reviews), certifications, readers'
calibration tiers, scored reads and the hidden-gold counter. The only module with their SQL and schema.

Which task is a gold copy or a calibration case lives only here, never in the task.
"""

from __future__ import annotations

import json
import time

from connectors.database import Database

__all__ = ["SCHEMA", "QaRecords"]

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS gold (protocol_id TEXT NOT NULL, task_id INTEGER NOT NULL, added DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (protocol_id, task_id))",
    "CREATE TABLE IF NOT EXISTS qa_tasks (task_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, protocol_id TEXT NOT NULL,"
    " reference_task_id INTEGER NOT NULL, reader INTEGER, outcome TEXT, created DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS certifications (protocol_id TEXT NOT NULL, reader INTEGER NOT NULL, tier TEXT NOT NULL,"
    " certified INTEGER NOT NULL, report TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL, PRIMARY KEY (protocol_id, reader, tier))",
    "CREATE TABLE IF NOT EXISTS reader_scores (protocol_id TEXT NOT NULL, reader INTEGER NOT NULL,"
    " task_id INTEGER NOT NULL, source TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, lead_time_s DOUBLE PRECISION, mean_dice DOUBLE PRECISION,"
    " detail TEXT NOT NULL, PRIMARY KEY (protocol_id, reader, task_id, source))",
    "CREATE TABLE IF NOT EXISTS calibration_tiers (protocol_id TEXT NOT NULL, reader INTEGER NOT NULL, tier TEXT NOT NULL,"
    " PRIMARY KEY (protocol_id, reader))",
    "CREATE TABLE IF NOT EXISTS qa_counters (protocol_id TEXT PRIMARY KEY, gold_inserted INTEGER NOT NULL)",
]


class QaRecords:
    def __init__(self, database: Database):
        self.database = database
        database.ensure(*SCHEMA)

    def _query(self, sql: str, *args) -> list:
        with self.database.connect() as db:
            return db.execute(sql, args).fetchall()

    def _write(self, sql: str, *args) -> int:
        with self.database.connect() as db:
            return db.execute(sql, args).rowcount

    # -- gold standard ----------------------------------------------------------------------------
    def add_gold(self, protocol_id: str, task_ids: list[int]) -> list[int]:
        """The tasks that were not gold yet, now gold (in one transaction)."""
        with self.database.connect() as db:
            return [task_id for task_id in task_ids if db.execute(
                "INSERT INTO gold VALUES (?,?,?) ON CONFLICT DO NOTHING", (protocol_id, task_id, time.time())).rowcount]

    def gold(self, protocol_id: str) -> list[int]:
        return [r[0] for r in self._query("SELECT task_id FROM gold WHERE protocol_id=? ORDER BY added, task_id",
                                          protocol_id)]

    # -- QA tasks -------------------------------------------------------------------------------------
    def add_task(self, task_id: int, kind: str, protocol_id: str, reference_task_id: int, reader: int | None) -> None:
        self._write("INSERT INTO qa_tasks VALUES (?,?,?,?,?,?,?)",
                    task_id, kind, protocol_id, reference_task_id, reader, None, time.time())

    def task(self, task_id: int) -> tuple[str, str, int, int | None] | None:
        """(kind, protocol id, reference task, reader) of a calibration case, gold copy or review task."""
        rows = self._query("SELECT kind, protocol_id, reference_task_id, reader FROM qa_tasks WHERE task_id=?", task_id)
        return tuple(rows[0]) if rows else None

    def calibration_cases(self, protocol_id: str, reader: int) -> dict[int, int]:
        """gold task -> the reader's calibration copy of it."""
        return {r[0]: r[1] for r in self._query("SELECT reference_task_id, task_id FROM qa_tasks WHERE kind='calibration'"
                                                " AND protocol_id=? AND reader=?", protocol_id, reader)}

    def calibration_tasks(self, protocol_id: str, reader: int) -> list[int]:
        return [r[0] for r in self._query("SELECT task_id FROM qa_tasks WHERE kind='calibration' AND protocol_id=? "
                                          "AND reader=? ORDER BY task_id", protocol_id, reader)]

    def reviewed(self, final_task_id: int) -> bool:
        return bool(self._query("SELECT task_id FROM qa_tasks WHERE kind='review' AND reference_task_id=?", final_task_id))

    def set_outcome(self, task_id: int, outcome: dict) -> None:
        self._write("UPDATE qa_tasks SET outcome=? WHERE task_id=?", json.dumps(outcome), task_id)

    def reviews(self, protocol_id: str) -> list[dict]:
        return [json.loads(r[0]) for r in self._query(
            "SELECT outcome FROM qa_tasks WHERE kind='review' AND protocol_id=? AND outcome IS NOT NULL", protocol_id)]

    def task_counts(self, protocol_id: str) -> dict[str, int]:
        return dict(self._query("SELECT kind, COUNT(*) FROM qa_tasks WHERE protocol_id=? GROUP BY kind", protocol_id))

    # -- calibration ------------------------------------------------------------------------------------
    def set_tier(self, protocol_id: str, reader: int, tier: str) -> None:
        self._write("INSERT INTO calibration_tiers VALUES (?,?,?) ON CONFLICT (protocol_id, reader) DO UPDATE SET"
                    " tier=excluded.tier", protocol_id, reader, tier)

    def tier(self, protocol_id: str, reader: int) -> str | None:
        rows = self._query("SELECT tier FROM calibration_tiers WHERE protocol_id=? AND reader=?", protocol_id, reader)
        return rows[0][0] if rows else None

    def tiers(self, protocol_id: str) -> dict[int, str]:
        return dict(self._query("SELECT reader, tier FROM calibration_tiers WHERE protocol_id=?", protocol_id))

    def save_certification(self, protocol_id: str, reader: int, tier: str, certified: bool, report: dict) -> None:
        self._write("INSERT INTO certifications VALUES (?,?,?,?,?,?) ON CONFLICT (protocol_id, reader, tier) DO UPDATE SET"
                    " certified=excluded.certified, report=excluded.report, updated=excluded.updated",
                    protocol_id, reader, tier, int(certified), json.dumps(report), time.time())

    def certifications(self, protocol_id: str) -> list[dict]:
        return [json.loads(r[0]) for r in self._query(
            "SELECT report FROM certifications WHERE protocol_id=? ORDER BY reader, tier", protocol_id)]

    def certified_readers(self, protocol_id: str) -> set[int]:
        return {r[0] for r in self._query("SELECT reader FROM certifications WHERE protocol_id=? AND certified=1",
                                          protocol_id)}

    # -- scored reads ----------------------------------------------------------------------------------------
    def record_score(self, protocol_id: str, reader: int, task_id: int, source: str, at: float,
                     lead_time_s: float | None, mean_dice: float | None, detail: dict) -> None:
        self._write("INSERT INTO reader_scores VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (protocol_id, reader, task_id, source)"
                    " DO UPDATE SET at=excluded.at, lead_time_s=excluded.lead_time_s, mean_dice=excluded.mean_dice,"
                    " detail=excluded.detail",
                    protocol_id, reader, task_id, source, at, lead_time_s, mean_dice, json.dumps(detail, default=str))

    def scores(self, protocol_id: str) -> list[dict]:
        rows = self._query("SELECT reader, task_id, source, at, lead_time_s, mean_dice FROM reader_scores "
                           "WHERE protocol_id=? ORDER BY at, task_id", protocol_id)
        return [{"reader": f"reader-{r[0]}", "reader_id": r[0], "task": r[1], "source": r[2], "at": r[3],
                 "lead_time_s": r[4], "mean_dice": r[5]} for r in rows]

    # -- hidden gold ------------------------------------------------------------------------------------------
    def gold_inserted(self, protocol_id: str) -> int:
        rows = self._query("SELECT gold_inserted FROM qa_counters WHERE protocol_id=?", protocol_id)
        return rows[0][0] if rows else 0

    def set_gold_inserted(self, protocol_id: str, count: int) -> None:
        self._write("INSERT INTO qa_counters VALUES (?,?) ON CONFLICT(protocol_id) DO UPDATE SET "
                    "gold_inserted=excluded.gold_inserted", protocol_id, count)
