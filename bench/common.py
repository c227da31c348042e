"""Shared bench helpers: throw-away servers, timing, JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def scratch_stack(**environment: str):
    """The whole local stack in a temporary state directory on free ports; yields Settings.

    ``environment`` adds variables (``RADLABEL_PROFILE="scale"``, ``RADLABEL_WORKERS="2"``)."""
    from connectors.stack import Stack
    from radlabel.settings import DEFAULT_PORTS, load_settings

    with tempfile.TemporaryDirectory(prefix="radlabel-bench-") as home:
        ports = {variable: str(_free_port()) for variable, _ in DEFAULT_PORTS.values()}
        with _environment({"RADLABEL_HOME": home} | ports | environment):
            stack = Stack(load_settings())
            stack.up()
            try:
                yield stack.settings
            finally:
                stack.discard()


@contextlib.contextmanager
def scratch_orthanc():
    """A real Orthanc alone in a temporary state directory on a free port; yields Settings."""
    from connectors.stack.services import orthanc, write_orthanc_config
    from radlabel.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="radlabel-bench-") as home:
        with _environment({"RADLABEL_HOME": home, "RADLABEL_ORTHANC_PORT": str(_free_port())}):
            settings = load_settings()
            secrets = settings.secrets()
            write_orthanc_config(settings, secrets)
            service = orthanc(settings, secrets)
            service.start()
            try:
                yield settings
            finally:
                service.stop()


def bench_args(description: str = ""):
    """--slices (default 300) and --runs (default 3), as every benchmark takes them."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def report(name: str, ours: list[float], theirs: list[float], ours_label: str, theirs_label: str, **extra) -> dict:
    """Medians of alternating runs and the ratio theirs/ours (>1: ours is faster)."""
    result = {
        "benchmark": name,
        f"{ours_label}_s": round(statistics.median(ours), 4),
        f"{theirs_label}_s": round(statistics.median(theirs), 4),
        "speedup": round(statistics.median(theirs) / statistics.median(ours), 3),
        "runs": len(ours),
        **extra,
    }
    print(json.dumps(result))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2))
    return result
