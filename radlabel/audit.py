"""The audit trail: every action appended with actor, time, protocol version and object ids,
hash-chained so that an edit, a deletion or a reordering is detected by ``verify``.

One JSON object per line in ``audit.log``; each line carries the SHA-256 of the previous line's
hash and its own canonical content. No PHI goes in: object ids are pseudonymous UIDs, task and
project numbers, series keys.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64


def _digest(previous: str, entry: dict) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((previous + canonical).encode()).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def append(self, action: str, actor: str, protocol: str | None = None, **objects) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # one writer at a time: the chain must not fork
            handle.seek(0)
            last = GENESIS
            sequence = 0
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    last, sequence = record["hash"], record["seq"]
            entry = {"seq": sequence + 1, "time": round(time.time(), 3), "action": action, "actor": actor,
                     "protocol": protocol, "objects": objects, "previous": last}
            entry["hash"] = _digest(last, entry)
            handle.seek(0, 2)
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
        return entry

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def verify(self) -> VerifyResult:
        previous, expected_seq = GENESIS, 1
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for number, line in enumerate((l for l in lines if l.strip()), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                return VerifyResult(False, number - 1, f"line {number} is not JSON: the log was edited")
            claimed = entry.pop("hash", None)
            if entry.get("seq") != expected_seq:
                return VerifyResult(False, number - 1, f"line {number} has sequence {entry.get('seq')}, expected "
                                                       f"{expected_seq}: an entry was deleted or moved")
            if entry.get("previous") != previous:
                return VerifyResult(False, number - 1, f"line {number} does not follow line {number - 1}: "
                                                       "an entry was deleted, moved or rewritten")
            if _digest(previous, entry) != claimed:
                return VerifyResult(False, number - 1, f"line {number} ({entry.get('action')}) was edited after it "
                                                       "was written")
            previous, expected_seq = claimed, expected_seq + 1
        return VerifyResult(True, expected_seq - 1)


def audit_log(settings) -> AuditLog:
    return AuditLog(settings.home / "audit.log")
