"""Start, watch and stop one local service process, by PID.

Each service writes ``run/NAME.pid`` holding its PID and the process start
time read from /proc, so that ``down`` never signals a process that merely
reused the PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from radlabel.errors import RadlabelError

# Services write tokens, pixel data and logs into the state directory: nothing they make is for other users.
PRIVATE_UMASK = 0o077


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[19]


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on host:port or holds the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: connections of a just-stopped service in TIME_WAIT (~60 s) do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log written)"
    return "\n".join("    " + line for line in text[-lines:])


@dataclass
class ServiceProcess:
    """A service radlabel starts: its command, environment, log and health probe."""

    name: str
    title: str
    port: int
    url: str
    command: list[str]
    run_dir: Path
    log_dir: Path
    healthy: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    start_timeout: float = 60.0
    port_hint: str = ""
    prepare: Callable[[], None] | None = None  # before each start (e.g. create a database cluster once)
    ready: Callable[[], None] | None = None  # once healthy after a start (e.g. create databases)
    stop_signal: int = signal.SIGTERM

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """PID of our running process, or None (stale PID files are removed)."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record.get("pid", 0))
        if pid and _start_time(pid) == record.get("start_time"):
            try:
                os.waitpid(pid, os.WNOHANG)  # reap if it is our own dead child
            except ChildProcessError:
                pass
            if _start_time(pid) is not None and not _is_zombie(pid):
                return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def is_healthy(self) -> bool:
        try:
            return bool(self.healthy())
        except Exception:  # a probe that fails for any reason means "not healthy"
            return False

    def check_port(self) -> None:
        if self.port and port_in_use("127.0.0.1", self.port):
            raise RadlabelError(
                f"port {self.port} for {self.title} is already in use by another program: "
                f"stop that program or choose another port with {self.port_hint}."
            )

    def start(self) -> int:
        """Start the process and wait until its health probe answers."""
        self.check_port()
        if self.prepare:
            self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = os.fdopen(os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        try:
            process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: down stops its children too
                umask=PRIVATE_UMASK,  # whatever umask the caller has
            )
        except OSError as exc:
            raise RadlabelError(f"{self.title} could not be started ({exc.strerror}: {self.command[0]}).") from None
        finally:
            log.close()
        fd = os.open(self.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({"pid": process.pid, "start_time": _start_time(process.pid)}))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RadlabelError(
                    f"{self.title} exited during start (code {process.returncode}); "
                    f"the end of {self.log_file} says:\n{log_tail(self.log_file)}"
                )
            if self.is_healthy():
                if self.ready:
                    self.ready()
                return process.pid
            time.sleep(0.25)
        self.stop()
        raise RadlabelError(
            f"{self.title} did not become healthy within {self.start_timeout:.0f} s and was stopped; "
            f"the end of {self.log_file} says:\n{log_tail(self.log_file)}"
        )

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop our process group; True when something was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.killpg(pid, self.stop_signal)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.1)
        try:  # whatever is left of the group (workers, reloaders) goes too
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid_file.unlink(missing_ok=True)
        return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
