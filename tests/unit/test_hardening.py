"""Private state and quiet logs: the umask of radlabel and its services, the state directory's mode, the access
log format of our gunicorn apps and Label Studio's SSRF settings."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import sys

import pytest

from connectors.stack import make_private, services
from connectors.stack.process import ServiceProcess
from radlabel import cli
from radlabel.settings import load_settings


@pytest.fixture
def loose_umask():
    """The caller's umask is the common 022 (group and world may read), restored afterwards."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_service_writes_private_files_whatever_the_callers_umask(tmp_path, loose_umask):
    made = tmp_path / "made-by-the-service"
    writer = ServiceProcess(
        name="writer", title="writer", port=free_port(), url="http://127.0.0.1", run_dir=tmp_path / "run",
        log_dir=tmp_path / "logs", healthy=made.exists, env=dict(os.environ), start_timeout=10,
        command=[sys.executable, "-c", f"import os, time; os.mkdir({str(made)!r}); print('up', flush=True); "
                                       "time.sleep(60)"])
    writer.start()
    try:
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
        for path in (writer.log_file, writer.pid_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for folder in (writer.log_dir, writer.run_dir):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        writer.stop()


def test_the_cli_sets_a_private_umask(loose_umask):
    assert cli.main(["templates", "schema"]) == 0
    assert os.umask(0o022) == 0o077


def test_up_makes_an_existing_state_directory_private(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    make_private(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def web_app_command(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    return services.web_app(load_settings(), "ml_backend", "ML backend", "ml_backend.app:create_app()").command


def test_gunicorn_logs_the_path_without_query_string_or_headers(tmp_path, monkeypatch):
    command = web_app_command(tmp_path, monkeypatch)
    log_format = command[command.index("--access-logformat") + 1]
    assert "%(U)s" in log_format and "%(m)s" in log_format and "%(s)s" in log_format
    for leaky in ("%(r)s", "%(q)s", "}i)", "}e)", "%(f)s", "%(a)s", "%(u)s"):  # request line, query, headers, env
        assert leaky not in log_format


def test_gunicorns_own_formatter_drops_the_query(tmp_path, monkeypatch):
    """The format through gunicorn's access logger, with the atoms a request with a query string yields."""
    import datetime
    import logging
    from types import SimpleNamespace

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    command = web_app_command(tmp_path, monkeypatch)
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    config.set("access_log_format", command[command.index("--access-logformat") + 1])
    logger = Logger(config)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/dicomweb/x?PatientID=SECRETPID&sig=abc", "PATH_INFO": "/dicomweb/x",
               "QUERY_STRING": "PatientID=SECRETPID&sig=abc", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_AUTHORIZATION": "Basic c2VjcmV0"}
    request = SimpleNamespace(headers=[("AUTHORIZATION", "Basic c2VjcmV0")])
    response = SimpleNamespace(status="200 OK", sent=12, headers=[])
    logger.access(response, request, environ, datetime.timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    written = (tmp_path / "access.log").read_text()
    logging.shutdown()
    assert " GET /dicomweb/x 200 12 3ms" in written
    assert "SECRETPID" not in written and "sig=" not in written and "c2VjcmV0" not in written


def test_label_studio_keeps_ssrf_protection_and_lets_only_our_host_through(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    settings = load_settings()
    env = services.label_studio(settings, {"label_studio_password": "p", "label_studio_token": "t"}).env
    assert env["SSRF_PROTECTION_ENABLED"] == "true" and env["ML_BLOCK_LOCAL_IP"] == "true"
    assert env["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = [ipaddress.ip_network(net) for net in env["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")]

    def is_banned(address: str) -> bool:
        return any(ipaddress.ip_address(address) in net for net in banned)

    assert settings.host == "127.0.0.1" and not is_banned(settings.host)
    for address in ("127.0.0.0", "127.0.0.2", "127.1.2.3", "127.255.255.255", "0.0.0.0", "10.0.0.1", "172.16.5.4",
                    "192.168.1.1", "169.254.169.254", "100.64.0.1", "::1", "::ffff:127.0.0.1", "fe80::1", "fc00::1"):
        assert is_banned(address), address
    assert not is_banned("93.184.216.34")  # the internet stays reachable, as with Label Studio's defaults
