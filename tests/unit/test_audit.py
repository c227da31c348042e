"""The keyed audit trail detects edits, deletions, reordering, a cut-off tail and a rewrite."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest

from radlabel.audit import GENESIS, AuditLog, audit_log
from radlabel.errors import RadlabelError
from radlabel.settings import load_settings

KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233")


def filled(tmp_path, entries: int = 6) -> AuditLog:
    log = AuditLog(tmp_path / "audit.log", KEY)
    for number in range(entries):
        log.append("sync", "radlabel-sync", "ct_liver_lesions 1.0.0", series=f"key{number}", status="done")
    return log


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def write(log: AuditLog, kept: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in kept))


def plain_chain(entries: list[dict]) -> list[str]:
    """The entries chained as radlabel did before the key: plain SHA-256, computable by anyone."""
    previous, out = GENESIS, []
    for entry in entries:
        entry = {k: v for k, v in entry.items() if k != "hash"} | {"previous": previous}
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        entry["hash"] = previous = hashlib.sha256((previous + canonical).encode()).hexdigest()
        out.append(json.dumps(entry, sort_keys=True))
    return out


def test_a_fresh_log_verifies_and_is_private(tmp_path):
    log = filled(tmp_path)
    result = log.verify()
    assert result.ok and result.entries == 6
    assert [e["seq"] for e in log.entries()] == [1, 2, 3, 4, 5, 6]
    for path in (log.path, log.head_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert AuditLog(tmp_path / "never-written.log", KEY).verify().ok


def test_an_edit_is_detected(tmp_path):
    log = filled(tmp_path)
    kept = lines(log)
    entry = json.loads(kept[2])
    entry["objects"]["status"] = "quarantined"
    kept[2] = json.dumps(entry, sort_keys=True)
    write(log, kept)
    result = log.verify()
    assert not result.ok and result.entries == 2
    assert result.problem == "line 3 (sync) does not carry a valid keyed hash: it was edited, or written without the audit key"


def test_a_deletion_is_detected(tmp_path):
    log = filled(tmp_path)
    kept = lines(log)
    write(log, kept[:2] + kept[3:])
    assert log.verify().problem == "line 3 has sequence 4, expected 3: an entry was deleted or moved"


def test_a_reordering_is_detected(tmp_path):
    log = filled(tmp_path)
    kept = lines(log)
    write(log, [kept[0], kept[2], kept[1]] + kept[3:])
    result = log.verify()
    assert not result.ok and "line 2 has sequence 3, expected 2" in result.problem


@pytest.mark.parametrize("kept", [5, 3, 1, 0])
def test_a_cut_off_tail_is_detected(tmp_path, kept):
    log = filled(tmp_path)
    write(log, lines(log)[:kept])
    result = log.verify()
    assert not result.ok
    assert result.problem == (f"the log ends at entry {kept} but the head records 6 entries: the entries after {kept} "
                              "were cut off")


def test_a_rewrite_as_a_recomputed_plain_chain_is_detected(tmp_path):
    log = filled(tmp_path)
    forged = plain_chain([entry | {"objects": {"series": "other"}} for entry in log.entries()])
    write(log, forged)
    assert log.verify().problem.startswith("line 1 (sync) does not carry a valid keyed hash")
    log.head_path.unlink()  # and with the head out of the way too
    result = log.verify()
    assert not result.ok and "unkeyed chain written by an older radlabel" in result.problem


def test_a_rewrite_under_another_key_with_its_own_head_is_detected(tmp_path):
    log = filled(tmp_path)
    forger = AuditLog(tmp_path / "forged" / "audit.log", b"attacker's own key")
    for entry in log.entries()[:3]:
        forger.append(entry["action"], entry["actor"], entry["protocol"], **entry["objects"])
    log.path.write_bytes(forger.path.read_bytes())
    log.head_path.write_bytes(forger.head_path.read_bytes())
    result = log.verify()
    assert not result.ok
    assert result.problem == "audit.head does not verify under the audit key: it was edited, or written with another key"


def test_a_head_edited_to_match_a_cut_log_is_detected(tmp_path):
    log = filled(tmp_path)
    kept = lines(log)[:3]
    write(log, kept)
    head = json.loads(log.head_path.read_text())
    log.head_path.write_text(json.dumps(head | {"seq": 3, "hash": json.loads(kept[-1])["hash"]}))
    assert "does not verify under the audit key" in log.verify().problem


def test_a_deleted_head_is_detected(tmp_path):
    log = filled(tmp_path)
    log.head_path.unlink()
    result = log.verify()
    assert not result.ok and result.problem.startswith("audit.head is missing: the head was deleted")
    with pytest.raises(RadlabelError, match="audit.head is missing"):
        log.append("sync", "radlabel-sync")


def test_an_old_unkeyed_log_is_refused_with_a_clear_sentence(tmp_path):
    log = AuditLog(tmp_path / "audit.log", KEY)
    write(log, plain_chain([{"seq": n, "time": 1.0, "action": "sync", "actor": "a", "protocol": None, "objects": {}}
                            for n in (1, 2)]))
    result = log.verify()
    assert not result.ok and result.problem == (
        "audit.log is an unkeyed chain written by an older radlabel (plain SHA-256, no audit.head), which anyone can "
        "recompute: move it aside (keep it as an archive) and a keyed log starts with the next entry")
    with pytest.raises(RadlabelError, match="written by an older radlabel .*move the log aside"):
        log.append("sync", "radlabel-sync")
    log.path.rename(tmp_path / "audit.unkeyed.log")
    log.append("sync", "radlabel-sync")
    assert log.verify().ok


def test_an_append_interrupted_before_its_head_still_verifies_and_chains_on(tmp_path):
    log = filled(tmp_path, 3)
    old_head = log.head_path.read_bytes()
    log.append("sync", "radlabel-sync")
    log.head_path.write_bytes(old_head)  # as if the process died between the line and the head
    assert log.verify().ok and log.verify().entries == 4
    log.append("export", "admin")
    assert log.verify().ok and [e["seq"] for e in log.entries()] == [1, 2, 3, 4, 5]


def test_a_torn_last_line_is_reported_and_never_merged_into_the_next_entry(tmp_path):
    log = filled(tmp_path, 2)
    with open(log.path, "a") as handle:
        handle.write('{"seq": 3, "act')
    log.append("sync", "radlabel-sync")
    result = log.verify()
    assert not result.ok and result.problem == "line 3 is not a JSON object: the log was edited"


def test_the_state_directory_log_is_keyed_with_its_audit_key(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    settings = load_settings()
    log = audit_log(settings)
    log.append("provision", "admin", "x 1.0.0", project=1)
    assert log.key == bytes.fromhex(settings.secrets()["audit_key"]) and len(log.key) == 20
    assert not AuditLog(log.path, KEY).verify().ok  # another key cannot vouch for it


def test_the_cli_reports_tampering_with_exit_1_in_one_sentence(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RADLABEL_HOME", str(home))
    run = lambda *a: subprocess.run([sys.executable, "-m", "radlabel.cli", "audit", *a], capture_output=True, text=True,
                                    env=dict(os.environ))
    assert run("verify").returncode == 0  # nothing audited yet
    log = audit_log(load_settings())
    log.append("provision", "admin", "x 1.0.0", project=1)
    log.append("sync", "radlabel-sync", "x 1.0.0", series="k")
    intact = run("verify")
    assert intact.returncode == 0 and intact.stdout.startswith("audit log intact: 2 entries")
    write(log, lines(log)[:1])
    done = run("verify")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stdout.strip() == ("audit log TAMPERED: the log ends at entry 1 but the head records 2 entries: the "
                                   "entries after 1 were cut off.")
    secrets = json.loads((home / "secrets.json").read_text())
    assert secrets["audit_key"] not in done.stdout + done.stderr
