"""The audit trail detects edits, deletions and reordering."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from radlabel.audit import AuditLog


def filled(tmp_path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.log")
    for number in range(5):
        log.append("sync", "radlabel-sync", "ct_liver_lesions 1.0.0", series=f"key{number}", status="done")
    return log


def test_an_untouched_log_verifies(tmp_path):
    log = filled(tmp_path)
    result = log.verify()
    assert result.ok and result.entries == 5
    assert [e["seq"] for e in log.entries()] == [1, 2, 3, 4, 5]


def test_an_edit_is_detected(tmp_path):
    log = filled(tmp_path)
    lines = log.path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["objects"]["status"] = "quarantined"
    lines[2] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(lines) + "\n")
    result = log.verify()
    assert not result.ok and "line 3 (sync) was edited" in result.problem


def test_a_deletion_and_a_reordering_are_detected(tmp_path):
    log = filled(tmp_path)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert "deleted or moved" in log.verify().problem
    log.path.write_text("\n".join([lines[0], lines[2], lines[1]] + lines[3:]) + "\n")
    assert not log.verify().ok
    log.path.write_text("\n".join(lines[:-1]) + "\n")  # the tail cut off is still a valid (shorter) chain
    assert log.verify().ok and log.verify().entries == 4


def test_the_cli_reports_tampering_with_exit_1(tmp_path):
    home = tmp_path / "home"
    log = AuditLog(home / "audit.log")
    log.append("provision", "admin", "x 1.0.0", project=1)
    log.append("sync", "radlabel-sync", "x 1.0.0", series="k")
    env = os.environ | {"RADLABEL_HOME": str(home)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "radlabel.cli", "audit", *a], capture_output=True, text=True, env=env)
    assert run("verify").returncode == 0
    log.path.write_text(log.path.read_text().replace('"project": 1', '"project": 2'))
    done = run("verify")
    assert done.returncode == 1 and "TAMPERED" in done.stdout
