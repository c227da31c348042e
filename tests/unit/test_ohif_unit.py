"""The OHIF extension's JavaScript unit tests (vitest + jsdom against the real @ohif/core), run by pytest
so that `make test` covers them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "ohif_extension"


def test_ohif_extension_unit_tests_pass():
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed: `make install` (apt-get install npm).")
    if not (EXTENSION / "node_modules" / "vitest").exists():
        pytest.fail("the extension's test packages are missing: run `npm ci` in ohif_extension/ (make install does).")
    done = subprocess.run(["npm", "test", "--silent"], cwd=EXTENSION, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
