"""The audit trail: every action appended with actor, time, protocol version and object ids, in a keyed hash
chain, so that ``verify`` detects an edit, a deletion, a reordering, a cut-off tail or a rewrite.

One JSON object per line in ``audit.log``; each line carries HMAC-SHA256 (key: the secret ``audit_key``) of the
previous line's hash and its own canonical content. Without the key nobody can write a line that verifies, so
a log rewritten from scratch fails. The head (last sequence number and hash, itself under the key) is kept
outside the log in ``audit.head``, replaced atomically on each append under the log's lock: a log cut short
no longer matches it. No PHI goes in: object ids are pseudonymous UIDs, task and project numbers, series keys.

Logs of an older radlabel (a plain SHA-256 chain, no ``audit.head``) are refused, not verified: such a chain
can be recomputed by anyone, so it proves nothing. Move the old log aside; a keyed one starts with the next entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from radlabel.errors import RadlabelError

GENESIS = "0" * 64


def _canonical(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def _digest(key: bytes, previous: str, entry: dict) -> str:
    return hmac.new(key, (previous + _canonical(entry)).encode(), hashlib.sha256).hexdigest()


def _plain_digest(previous: str, entry: dict) -> str:
    """The unkeyed chain of radlabel before the keyed log: only to recognise such a log and say so."""
    return hashlib.sha256((previous + _canonical(entry)).encode()).hexdigest()


def _head_mac(key: bytes, sequence: int, last: str) -> str:
    return hmac.new(key, f"audit.head {sequence} {last}".encode(), hashlib.sha256).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""


class AuditLog:
    def __init__(self, path: Path, key: bytes, head_path: Path | None = None):
        if not key:
            raise ValueError("the audit log needs a key")
        self.path = path
        self.key = key
        self.head_path = head_path or path.with_suffix(".head")

    # -- writing ---------------------------------------------------------------------------------------------
    def append(self, action: str, actor: str, protocol: str | None = None, **objects) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "rb+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # one writer at a time: the chain must not fork
            sequence, last = self._tip(handle)
            entry = {"seq": sequence + 1, "time": round(time.time(), 3), "action": action, "actor": actor,
                     "protocol": protocol, "objects": objects, "previous": last}
            entry["hash"] = _digest(self.key, last, entry)
            line = json.dumps(entry, sort_keys=True) + "\n"
            end = handle.seek(0, os.SEEK_END)
            if end:
                handle.seek(end - 1)
                if handle.read(1) != b"\n":
                    line = "\n" + line  # a torn last line stays a line of its own (verify reports it)
            handle.write(line.encode())
            handle.flush()
            os.fsync(handle.fileno())
            self._write_head(entry["seq"], entry["hash"])
        return entry

    def _tip(self, handle) -> tuple[int, str]:
        """(sequence, hash) to chain the next entry on: the head's, or the log's last line when an append was
        interrupted between writing its line and the head (the line verifies under the key and follows the head)."""
        head = self._read_head()
        last_line = _last_line(handle)
        if head is None:
            if last_line:
                raise RadlabelError(f"{self.path} holds entries but {self.head_path.name} is missing: the log was "
                                    "written by an older radlabel (unkeyed) or its head was deleted; run `radlabel "
                                    "audit verify`, then move the log aside to start a new one.")
            return 0, GENESIS
        sequence, last = head
        entry = _json_or_none(last_line)
        if entry and entry.get("seq") == sequence + 1 and entry.get("previous") == last:
            claimed = entry.pop("hash", None)
            if hmac.compare_digest(str(claimed), _digest(self.key, last, entry)):
                return sequence + 1, str(claimed)
        return sequence, last  # a damaged log is chained on from the head; verify reports the damage

    def _write_head(self, sequence: int, last: str) -> None:
        partial = self.head_path.with_name(self.head_path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"seq": sequence, "hash": last, "mac": _head_mac(self.key, sequence, last)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(self.head_path)  # readers see the old head or the new one, never half of one

    # -- reading ---------------------------------------------------------------------------------------------
    def _read_head(self) -> tuple[int, str] | None:
        """(sequence, hash) of the head; None when there is none; RadlabelError when it does not verify."""
        try:
            head = json.loads(self.head_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise RadlabelError(f"{self.head_path.name} is not readable JSON: it was edited or damaged.") from None
        head = head if isinstance(head, dict) else {}
        sequence, last = head.get("seq"), head.get("hash")
        if not (isinstance(sequence, int) and isinstance(last, str) and
                hmac.compare_digest(str(head.get("mac")), _head_mac(self.key, sequence, last))):
            raise RadlabelError(f"{self.head_path.name} does not verify under the audit key: it was edited, or "
                                "written with another key.")
        return sequence, last

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        entries = []
        for number, line in enumerate(_lines(self.path.read_bytes()), 1):
            entry = _json_or_none(line)
            if entry is None:
                raise RadlabelError(f"line {number} of {self.path} is not a JSON object: run `radlabel audit verify`.")
            entries.append(entry)
        return entries

    def verify(self) -> VerifyResult:
        if not self.path.exists() and not self.head_path.exists():
            return VerifyResult(True, 0)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return VerifyResult(False, 0, f"{self.path.name} is missing while {self.head_path.name} records entries: "
                                          "the log was deleted")
        with os.fdopen(fd, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)  # no append between reading the lines and the head
            lines = _lines(handle.read())
            try:
                head = self._read_head()
            except RadlabelError as exc:
                return VerifyResult(False, 0, str(exc).rstrip("."))
        if head is None and not lines:  # an empty log: an append was interrupted before its first line
            return VerifyResult(True, 0)
        if head is None:
            return VerifyResult(False, 0, _headless_problem(self.path, self.head_path, lines))
        result = _verify_chain(self.key, lines)
        return result if not result.ok else _against_head(result, head, lines)


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]


def _json_or_none(line: str | None) -> dict | None:
    try:
        value = json.loads(line) if line else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _last_line(handle) -> str | None:
    """The file's last non-empty line, read from its end (the log only grows)."""
    size = handle.seek(0, os.SEEK_END)
    block, data = 4096, b""
    while size > 0:
        start = max(0, size - block)
        handle.seek(start)
        data = handle.read(size - start) + data
        lines = _lines(data)
        if len(lines) > 1 or start == 0:
            return lines[-1] if lines else None
        size, block = start, block * 2
    return None


def _verify_chain(key: bytes, lines: list[str]) -> VerifyResult:
    previous, expected_seq = GENESIS, 1
    for number, line in enumerate(lines, 1):
        entry = _json_or_none(line)
        if entry is None:
            return VerifyResult(False, number - 1, f"line {number} is not a JSON object: the log was edited")
        claimed = entry.pop("hash", None)
        if entry.get("seq") != expected_seq:
            return VerifyResult(False, number - 1, f"line {number} has sequence {entry.get('seq')}, expected "
                                                   f"{expected_seq}: an entry was deleted or moved")
        if entry.get("previous") != previous:
            return VerifyResult(False, number - 1, f"line {number} does not follow line {number - 1}: "
                                                   "an entry was deleted, moved or rewritten")
        if not hmac.compare_digest(str(claimed), _digest(key, previous, entry)):
            return VerifyResult(False, number - 1, f"line {number} ({entry.get('action')}) does not carry a valid "
                                                   "keyed hash: it was edited, or written without the audit key")
        previous, expected_seq = str(claimed), expected_seq + 1
    return VerifyResult(True, expected_seq - 1)


def _against_head(result: VerifyResult, head: tuple[int, str], lines: list[str]) -> VerifyResult:
    """The intact chain must end where the head says (or one entry beyond: an append interrupted before its head)."""
    sequence, last = head
    tip = json.loads(lines[-1])["hash"] if lines else GENESIS
    if result.entries < sequence:
        return VerifyResult(False, result.entries, f"the log ends at entry {result.entries} but the head records "
                                                   f"{sequence} entries: the entries after {result.entries} were cut off")
    if result.entries == sequence and tip == last:
        return result
    if result.entries == sequence + 1 and json.loads(lines[-1])["previous"] == last:
        return result
    return VerifyResult(False, result.entries, f"the log's last entry ({result.entries}) is not the one the head "
                                               f"records ({sequence}): the log was replaced or rewritten")


def _headless_problem(path: Path, head_path: Path, lines: list[str]) -> str:
    if not lines:
        return f"{head_path.name} is missing while {path.name} exists: the head was deleted"
    previous = GENESIS
    for line in lines:
        entry = _json_or_none(line) or {}
        claimed = entry.pop("hash", None)
        if claimed != _plain_digest(previous, entry):
            return (f"{head_path.name} is missing: the head was deleted, so a cut-off or replaced log cannot be "
                    "told from an intact one")
        previous = claimed
    return (f"{path.name} is an unkeyed chain written by an older radlabel (plain SHA-256, no {head_path.name}), "
            "which anyone can recompute: move it aside (keep it as an archive) and a keyed log starts with the "
            "next entry")


def audit_log(settings) -> AuditLog:
    """The state directory's audit log, keyed with its secret ``audit_key``."""
    return AuditLog(settings.home / "audit.log", bytes.fromhex(settings.secrets()["audit_key"]))
