"""Sync's linkage register: k over every series a protocol has released, so sync can hold one at a time.

``radlabel deid`` sees a whole batch and measures k across it (radlabel/ingest/release.py ``linkage``). Sync
sees one series at a time, so each series' linkage signature (``release.linkage_signature``: kept
quasi-identifiers, their de-identified values, shape class) is remembered here, per protocol, as a
keyed digest with the names of the quasi-identifiers kept: no value at all, de-identified or not, is stored.
A new series' class size k counts the released series with its signature, the series held only for linkage
(they are released together once their class is large enough) and itself.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from connectors.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS linkage_signatures (
    series_key TEXT NOT NULL,
    protocol_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    quasi_identifiers TEXT NOT NULL,
    released INTEGER NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_key, protocol_id)
)
"""


class LinkageRegister:
    def __init__(self, database: Database):
        self.database = database
        database.ensure(SCHEMA)

    def class_size(self, protocol_id: str, series_key: str, signature: str) -> int:
        """k of a series about to be released: the others of the protocol with its signature, and itself."""
        with self.database.connect() as db:
            others = db.execute("SELECT COUNT(*) FROM linkage_signatures WHERE protocol_id=? AND signature=? "
                                "AND series_key<>?", (protocol_id, signature, series_key)).fetchone()[0]
        return int(others) + 1

    def record(self, protocol_id: str, series_key: str, signature: str, quasi_identifiers: list[str],
               released: bool) -> None:
        with self.database.connect() as db:
            db.execute("INSERT INTO linkage_signatures (series_key, protocol_id, signature, quasi_identifiers, "
                       "released, updated) VALUES (?,?,?,?,?,?) ON CONFLICT(series_key, protocol_id) DO UPDATE SET "
                       "signature=excluded.signature, quasi_identifiers=excluded.quasi_identifiers, "
                       "released=excluded.released, updated=excluded.updated",
                       (series_key, protocol_id, signature, json.dumps(quasi_identifiers), int(released), time.time()))

    def summary(self, protocol_id: str, max_risk: float | None) -> dict:
        """The protocol's released series: how many, how many unique on their signature, what they keep."""
        with self.database.connect() as db:
            rows = db.execute("SELECT signature, quasi_identifiers, released FROM linkage_signatures "
                              "WHERE protocol_id=?", (protocol_id,)).fetchall()
        released = [(signature, json.loads(names)) for signature, names, flag in rows if flag]
        sizes = Counter(signature for signature, _ in released)
        kept = Counter(name for _, names in released for name in names)
        return {"series": len(released), "unique_series": sum(1 for signature, _ in released if sizes[signature] == 1),
                "unique_series_keys": sorted(key for key, signature in self._released_keys(protocol_id)
                                             if sizes[signature] == 1),
                "max_risk": max_risk, "quasi_identifiers_kept": dict(sorted(kept.items())),
                "held_for_linkage": sum(1 for _, _, flag in rows if not flag)}

    def _released_keys(self, protocol_id: str) -> list[tuple[str, str]]:
        with self.database.connect() as db:
            return [(key, signature) for key, signature in db.execute(
                "SELECT series_key, signature FROM linkage_signatures WHERE protocol_id=? AND released=1",
                (protocol_id,)).fetchall()]
