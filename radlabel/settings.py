"""Where radlabel keeps its state, which ports it uses, and its secrets.

State lives in ``RADLABEL_HOME`` (default ``./.radlabel``). Installed tools that
are too big for the state directory (the Label Studio virtual environment, the
prebuilt OHIF viewer) live in ``RADLABEL_TOOLS`` (default ``~/.cache/radlabel``)
so that many state directories (tests, demos) share one install.

Secrets are generated on first use and stored in ``secrets.json`` with mode
0600; they are never printed in full (see :func:`redact`).
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from dataclasses import dataclass, field
from pathlib import Path

from radlabel.errors import RadlabelError

LABEL_STUDIO_VERSION = "1.23.2"
OHIF_VERSION = "3.13.2"

# Service name -> (environment variable, default port). All bind to loopback.
DEFAULT_PORTS = {
    "pacs": ("RADLABEL_PACS_PORT", 8043),  # the local stand-in for the hospital PACS (source studies, PHI)
    "orthanc": ("RADLABEL_ORTHANC_PORT", 8042),  # radlabel's research archive (de-identified copies, SEGs)
    "label_studio": ("RADLABEL_LABEL_STUDIO_PORT", 8080),
    "ml_backend": ("RADLABEL_ML_BACKEND_PORT", 9090),
    "hooks": ("RADLABEL_HOOKS_PORT", 9091),
    "viewer": ("RADLABEL_VIEWER_PORT", 3000),
    "redis": ("RADLABEL_REDIS_PORT", 6379),  # scale profile only: the job queue
    "postgres": ("RADLABEL_POSTGRES_PORT", 5432),  # scale profile only: state, Label Studio and Orthanc
}
# default: jobs run in-process, SQLite everywhere; scale: Redis + RQ workers, PostgreSQL everywhere
PROFILES = ("default", "scale")

SECRET_NAMES = ("orthanc_password", "label_studio_password", "label_studio_token", "webhook_secret",
                "pseudonym_key", "image_url_key", "postgres_password", "ml_backend_password", "audit_key",
                # one credential per caller of each archive (see ARCHIVE_USERS)
                "orthanc_admin_password", "gateway_password", "pacs_admin_password", "pacs_sync_password")

# Who may knock on which archive, with which secret, for what (enforced by Orthanc's access filter,
# connectors/stack/orthanc_access.py):
#   research archive ("orthanc"): the pipeline reads and stores (never deletes or overwrites), the viewer
#   front's gateway only reads DICOMweb, the administrator does everything;
#   PACS: radlabel's sync only reads DICOMweb; the hospital (here: samples load, the demo) stores.
ARCHIVE_USERS = {
    "orthanc": {"radlabel": ("orthanc_password", "pipeline"), "radlabel-gateway": ("gateway_password", "gateway"),
                "admin": ("orthanc_admin_password", "admin")},
    "pacs": {"radlabel-sync": ("pacs_sync_password", "reader"), "hospital": ("pacs_admin_password", "admin")},
}


def redact(secret: str) -> str:
    """Show only enough of a secret to tell two apart."""
    return secret[:4] + "…" if secret else ""


@dataclass
class Settings:
    home: Path
    tools: Path
    ports: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    profile: str = "default"
    workers: int = 2  # RQ worker processes in the scale profile

    # -- locations -------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def label_studio_venv(self) -> Path:
        return self.tools / f"label-studio-{LABEL_STUDIO_VERSION}"

    @property
    def ohif_dist(self) -> Path:
        return self.tools / f"ohif-{OHIF_VERSION}" / "dist"

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    @property
    def dicomweb_url(self) -> str:
        """The research archive's DICOMweb root."""
        return self.url("orthanc") + "/dicom-web"

    @property
    def pacs_url(self) -> str:
        """The clinical PACS: a site's own DICOMweb server (RADLABEL_PACS_URL or ``pacs_url`` in settings.json),
        else the local Orthanc that stands in for it. Nothing that faces readers is given this address."""
        return (self.external_pacs_url or self.url("pacs") + "/dicom-web").rstrip("/")

    @property
    def external_pacs_url(self) -> str:
        return os.environ.get("RADLABEL_PACS_URL") or self.saved_pacs_url

    saved_pacs_url: str = ""
    orthanc_user = "radlabel"
    gateway_user = "radlabel-gateway"
    pacs_sync_user = "radlabel-sync"
    pacs_admin_user = "hospital"
    label_studio_user = "admin@radlabel.local"

    # -- secrets ---------------------------------------------------------
    @property
    def secrets_file(self) -> Path:
        return self.home / "secrets.json"

    def secrets(self) -> dict[str, str]:
        """Read the secrets, creating them (mode 0600) on first use."""
        path = self.secrets_file
        if path.exists():
            try:
                values = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise RadlabelError(
                    f"{path} is not readable JSON ({exc.__class__.__name__}): restore it or move it away "
                    "to generate new secrets (the stack must then be set up again)."
                ) from None
            missing = [name for name in SECRET_NAMES if not values.get(name)]
            if missing:  # secrets added by a newer radlabel: made once, kept from then on
                values |= {name: _secrets.token_hex(20) for name in missing}
                partial = path.with_suffix(".partial")
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    json.dump(values, handle)
                partial.replace(path)
            return values
        self.home.mkdir(parents=True, exist_ok=True)
        values = {name: _secrets.token_hex(20) for name in SECRET_NAMES}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
        return values

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        saved = {"ports": self.ports, "profile": self.profile, "workers": self.workers}
        if self.saved_pacs_url:
            saved["pacs_url"] = self.saved_pacs_url
        (self.home / "settings.json").write_text(json.dumps(saved, indent=2))

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.ports['redis']}/0"

    @property
    def local_postgres_url(self) -> str:
        """The scale profile's own PostgreSQL (password from the secrets, never in the URL)."""
        return f"postgresql://radlabel@{self.host}:{self.ports.get('postgres', 5432)}/radlabel"

    @property
    def database_url(self) -> str:
        """Where the state database lives: RADLABEL_DATABASE_URL, else by profile."""
        if os.environ.get("RADLABEL_DATABASE_URL"):
            return os.environ["RADLABEL_DATABASE_URL"]
        if self.profile == "scale":
            return self.local_postgres_url
        return f"sqlite:///{self.home / 'state.sqlite'}"


def _port_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise RadlabelError(f"{variable}={raw!r} is not a TCP port: give a number between 1 and 65535.")
    return int(raw)


def load_settings() -> Settings:
    """Settings of the current state directory.

    Ports chosen at the first ``up`` are kept in ``settings.json`` so that a
    stack started with overrides is found again without them; an environment
    variable set now still wins.
    """
    home = Path(os.environ.get("RADLABEL_HOME") or ".radlabel").resolve()
    tools = Path(os.environ.get("RADLABEL_TOOLS") or Path.home() / ".cache" / "radlabel").resolve()
    saved: dict = {}
    settings_file = home / "settings.json"
    if settings_file.exists():
        try:
            saved = json.loads(settings_file.read_text())
        except ValueError:
            raise RadlabelError(f"{settings_file} is not valid JSON: fix it or delete it to use default ports.") from None
    stored = saved.get("ports", {})
    ports = {}
    for service, (variable, default) in DEFAULT_PORTS.items():
        ports[service] = _port_from_env(variable, int(stored.get(service, default)))
    profile = os.environ.get("RADLABEL_PROFILE") or saved.get("profile") or "default"
    if profile not in PROFILES:
        raise RadlabelError(f"RADLABEL_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}.")
    workers = os.environ.get("RADLABEL_WORKERS") or str(saved.get("workers", 2))
    if not workers.isdigit() or not 1 <= int(workers) <= 64:
        raise RadlabelError(f"RADLABEL_WORKERS={workers!r}: expected a number of worker processes from 1 to 64.")
    return Settings(home=home, tools=tools, ports=ports, profile=profile, workers=int(workers),
                    saved_pacs_url=str(saved.get("pacs_url") or ""))
