"""Reading time of an OHIF read, recorded as Label Studio records its own editor's: ``lead_time`` (seconds from
opening the task to submitting it) on the reader's annotation, which the QA time and cost figures read
(``connectors/quality/read_scores.py``), plus the active part of it (time between the reader's inputs, idle gaps left out) in
``reader_timing``. The extension measures both (``ohif_extension/src/clock.js``) and sends
``{"lead_time_s", "active_time_s"}``: in the SEG's radlabel JSON (``timing``) or in the no-findings body.
"""

from __future__ import annotations

import json
import math
import time

from connectors.database import Database

SCHEMA = """CREATE TABLE IF NOT EXISTS reader_timing (
    read_key TEXT PRIMARY KEY, task_id INTEGER NOT NULL, reader INTEGER NOT NULL, protocol TEXT NOT NULL,
    lead_time_s DOUBLE PRECISION NOT NULL, active_time_s DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL)"""

MAX_SECONDS = 7 * 24 * 3600  # a read left open for a week is not a reading time


def _seconds(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"timing.{name} must be a number of seconds from 0 to {MAX_SECONDS}.")
    return round(float(value), 1)


def reading_time(payload: dict) -> dict | None:
    """``{"lead_time_s", "active_time_s"}`` from a read's JSON (``timing``), checked; None when it carries none.
    Raises ValueError with one sentence naming the field when it is malformed."""
    timing = payload.get("timing") if isinstance(payload, dict) else None
    if timing is None:
        return None
    if not isinstance(timing, dict):
        raise ValueError("timing must be an object {lead_time_s, active_time_s}.")
    lead = _seconds(timing.get("lead_time_s"), "lead_time_s")
    active = _seconds(timing.get("active_time_s"), "active_time_s")
    if active > lead:
        raise ValueError("timing.active_time_s cannot exceed timing.lead_time_s.")
    return {"lead_time_s": lead, "active_time_s": active}


def seg_reading_time(ds) -> dict | None:
    """The reading time in a reader SEG's radlabel JSON (ImageComments), already checked when it was submitted."""
    try:
        return reading_time(json.loads(str(ds.get("ImageComments", "") or "{}")))
    except ValueError:
        return None


def record_timing(database: Database, key: str, task_id: int, reader: int, protocol: str, timing: dict) -> None:
    database.ensure(SCHEMA)
    with database.connect() as db:
        db.execute("INSERT INTO reader_timing VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                   (key, task_id, reader, protocol, timing["lead_time_s"], timing["active_time_s"], time.time()))
