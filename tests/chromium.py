"""Headless Debian Chromium for tests: the DOM after scripts ran, and screenshots kept as artefacts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError("Debian's chromium is not installed: run `make install` (apt package chromium).")
    return found


def _run(args: list[str], profile: Path) -> str:
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dump_dom(url: str, profile: Path) -> str:
    return _run(["--virtual-time-budget=5000", "--dump-dom", url], profile)


def screenshot(url: str, name: str, profile: Path, size: str = "1200,3000") -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    _run([f"--screenshot={path}", f"--window-size={size}", "--virtual-time-budget=5000", url], profile)
    return path
