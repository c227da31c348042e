"""Shared fixtures.

``stack`` starts the real Orthanc, Label Studio and our servers once per test
session, in a temporary state directory on free ports, and stops them at the end.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SERVICE_PORT_VARIABLES = ("RADLABEL_PACS_PORT", "RADLABEL_ORTHANC_PORT", "RADLABEL_LABEL_STUDIO_PORT", "RADLABEL_ML_BACKEND_PORT",
                          "RADLABEL_HOOKS_PORT", "RADLABEL_VIEWER_PORT", "RADLABEL_REDIS_PORT", "RADLABEL_POSTGRES_PORT")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every probe stays bound until all are drawn (probes released one by one can
    be handed the same port: a clean-clone CI run gave the hooks server the research Orthanc's port)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory):
    """Environment of the session stack: its own RADLABEL_HOME and free ports."""
    home = tmp_path_factory.mktemp("radlabel-home")
    env = {"RADLABEL_HOME": str(home)} | dict(zip(SERVICE_PORT_VARIABLES, map(str, free_ports(len(SERVICE_PORT_VARIABLES)))))
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    umask = os.umask(0o077)  # as the radlabel command sets it: what the tests write in-process stays private too
    yield env
    os.umask(umask)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def stack(stack_env):
    from connectors.stack import Stack
    from radlabel.settings import load_settings

    settings = load_settings()
    running = Stack(settings)
    running.up()
    yield running
    running.discard()


@pytest.fixture(scope="session")
def settings(stack):
    return stack.settings
