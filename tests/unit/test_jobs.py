"""The job queue mechanism on its own: handlers are given to it, a key runs once, failures are kept short."""

from __future__ import annotations

import importlib

import pytest

from connectors import job_handlers
from connectors.jobs import WORKER_ENTRY, InProcessQueue, JobStore
from radlabel.settings import load_settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    monkeypatch.delenv("RADLABEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("RADLABEL_PROFILE", raising=False)
    return load_settings()


def test_a_key_runs_once_and_its_result_is_kept(settings):
    calls = []
    queue = InProcessQueue(settings, {"count": lambda s, n: calls.append(n) or {"n": n}})
    first = queue.submit("count", "count:1", n=1)
    again = queue.submit("count", "count:1", n=1)
    assert queue.wait([first, again]) == [({"n": 1}, None), ({"n": 1}, None)]
    assert calls == [1] and JobStore(settings).counts() == {"done": 1}


def test_a_failed_job_keeps_its_class_and_first_line_and_runs_again(settings):
    calls = []

    def fails(s):
        calls.append(1)
        raise ValueError("no good\nsecond line with detail")

    queue = InProcessQueue(settings, {"fails": fails})
    (result, error), = queue.wait([queue.submit("fails", "fails:1")])
    assert result is None and error.startswith("ValueError: no good")
    assert JobStore(settings).get("fails:1") == ("failed", "ValueError: no good")
    queue.submit("fails", "fails:1")
    assert len(calls) == 2  # a failed key is not done: it runs again


def test_an_unknown_job_name_says_which_ones_exist(settings):
    queue = InProcessQueue(settings, {"a": lambda s: 1, "b": lambda s: 2})
    (_, error), = queue.wait([queue.submit("c", "c:1")])
    assert "unknown job 'c': expected one of a, b." in error


def test_workers_run_the_registered_handlers_by_name(settings):
    module, _, function = WORKER_ENTRY.rpartition(".")
    assert getattr(importlib.import_module(module), function) is job_handlers.run_registered
    assert set(job_handlers.HANDLERS) == {"sync_series", "adjudicate", "predict"}
    assert isinstance(job_handlers.job_queue(settings), InProcessQueue)
