"""The process supervisor: start, health, death at start, stop by PID."""

import json
import os
import socket
import sys

import pytest

from connectors.stack import services
from connectors.stack.process import ServiceProcess, port_in_use
from radlabel.errors import RadlabelError
from radlabel.settings import load_settings


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def service(tmp_path, command, healthy=lambda: True, timeout=5.0):
    return ServiceProcess(name="demo", title="demo service", port=free_port(), url="http://127.0.0.1",
                          command=command, run_dir=tmp_path / "run", log_dir=tmp_path / "logs",
                          healthy=healthy, env=dict(os.environ), start_timeout=timeout, port_hint="DEMO_PORT")


def test_a_service_that_dies_at_start_reports_its_log_tail(tmp_path):
    dying = service(tmp_path, [sys.executable, "-c", "print('config line 3: bad value'); raise SystemExit(3)"],
                    healthy=lambda: False)
    with pytest.raises(RadlabelError) as error:
        dying.start()
    message = str(error.value)
    assert message.startswith("demo service exited during start (code 3)")
    assert "config line 3: bad value" in message
    assert not dying.pid_file.exists()


def test_a_service_that_never_gets_healthy_is_stopped(tmp_path):
    sleeper = service(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"], healthy=lambda: False,
                      timeout=1.0)
    with pytest.raises(RadlabelError, match="did not become healthy within 1 s and was stopped"):
        sleeper.start()
    assert sleeper.pid() is None


def test_start_then_stop_by_pid(tmp_path):
    sleeper = service(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    pid = sleeper.start()
    assert sleeper.pid() == pid
    assert sleeper.stop() is True
    assert sleeper.pid() is None and not sleeper.pid_file.exists()
    assert sleeper.stop() is False


def test_a_pid_file_of_another_process_is_ignored_and_never_signalled(tmp_path):
    sleeper = service(tmp_path, ["true"])
    sleeper.run_dir.mkdir(parents=True)
    # our own test process, with a start time that does not match: a reused PID
    sleeper.pid_file.write_text(json.dumps({"pid": os.getpid(), "start_time": "1"}))
    assert sleeper.pid() is None
    assert sleeper.stop() is False  # and we are still alive to assert it


def test_port_in_use_is_detected(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        blocked = service(tmp_path, ["true"])
        blocked.port = port
        with pytest.raises(RadlabelError, match=f"port {port} for demo service is already in use.*DEMO_PORT"):
            blocked.start()
    assert not port_in_use("127.0.0.1", free_port())


def test_a_missing_debian_package_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    plugins = dict(services.ORTHANC_PLUGINS)
    plugins["orthanc-dicomweb"] = tmp_path / "libOrthancDicomWeb.so"
    monkeypatch.setattr(services, "ORTHANC_PLUGINS", plugins)
    with pytest.raises(RadlabelError, match=r"the Debian package orthanc-dicomweb is missing .*apt-get install orthanc-dicomweb"):
        services.check_installed(load_settings())
    monkeypatch.setattr(services, "ORTHANC_BINARY", tmp_path / "Orthanc")
    with pytest.raises(RadlabelError, match="Orthanc is not installed"):
        services.check_installed(load_settings())
