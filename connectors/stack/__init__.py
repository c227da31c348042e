"""The local stack: ``radlabel up`` / ``down`` / ``status``."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from connectors.stack.process import ServiceProcess
from connectors.stack.services import all_services, check_installed, postgres_data_dir, write_orthanc_config
from radlabel.errors import RadlabelError
from radlabel.settings import Settings

__all__ = ["ServiceState", "Stack", "make_private"]


@dataclass
class ServiceState:
    name: str
    title: str
    url: str
    pid: int | None
    healthy: bool
    action: str = ""  # what `up` did: started / already running

    @property
    def state(self) -> str:
        if self.pid is None:
            return "stopped"
        return "healthy" if self.healthy else "unhealthy"

    def as_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "pid": self.pid, "state": self.state, "action": self.action}


def make_private(home) -> None:
    """The state directory holds every token and password and the pixel data: owner only (0700), also when an
    older radlabel or another umask made it readable to others."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.secrets = settings.secrets()
        self.services: list[ServiceProcess] = all_services(settings, self.secrets)

    def up(self, progress=lambda message: None) -> list[ServiceState]:
        """Start what is not running; a healthy running stack is left alone."""
        check_installed(self.settings)
        make_private(self.settings.home)
        self._check_profile_switch()
        self.settings.save()
        write_orthanc_config(self.settings, self.secrets)
        if not self.settings.external_pacs_url:
            write_orthanc_config(self.settings, self.secrets, "pacs")
        for service in self.services:  # before anything starts: all or nothing
            if service.pid() is None:
                service.check_port()
        states = []
        for service in self.services:
            pid = service.pid()
            if pid is not None and service.is_healthy():
                states.append(self._state(service, pid, True, "already running"))
                continue
            if pid is not None:  # running but sick: restart it
                progress(f"restarting {service.title} (it was not answering)")
                service.stop()
            else:
                progress(f"starting {service.title} …")
            pid = service.start()
            states.append(self._state(service, pid, True, "started"))
        return states

    def _check_profile_switch(self) -> None:
        """Refuse to change the profile of a state directory that holds data: the other profile's
        databases start empty, so projects, tasks and the PACS index would seem lost."""
        saved_file = self.settings.home / "settings.json"
        try:
            saved = json.loads(saved_file.read_text()).get("profile", "default")
        except (OSError, ValueError):
            return
        if saved == self.settings.profile:
            return
        holds_data = (self.settings.home / "state.sqlite").exists() if saved == "default" else \
            postgres_data_dir(self.settings).exists()
        if holds_data:
            raise RadlabelError(
                f"{self.settings.home} holds a stack of the {saved} profile; the {self.settings.profile} profile keeps "
                f"its state in other databases, which start empty: use another RADLABEL_HOME for the "
                f"{self.settings.profile} profile (nothing was changed).")

    def down(self) -> list[str]:
        """Stop the processes this state directory started; names of those stopped."""
        return [service.name for service in reversed(self.services) if service.stop()]

    def discard(self) -> None:
        """Stop everything and delete what a scratch stack (tests, benchmarks) keeps outside its state
        directory: the scale profile's PostgreSQL cluster when it runs as root."""
        self.down()
        if self.settings.profile == "scale":
            shutil.rmtree(postgres_data_dir(self.settings), ignore_errors=True)

    def status(self) -> list[ServiceState]:
        states = []
        for service in self.services:
            pid = service.pid()
            states.append(self._state(service, pid, pid is not None and service.is_healthy()))
        return states

    @staticmethod
    def _state(service: ServiceProcess, pid: int | None, healthy: bool, action: str = "") -> ServiceState:
        return ServiceState(service.name, service.title, service.url, pid, healthy, action)
