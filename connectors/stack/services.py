"""The five services of the local stack, each a :class:`ServiceProcess`.

- Orthanc (Debian packages) with DICOMweb, authentication on, DICOM port off;
- Label Studio (PyPI, its own virtual environment), SQLite, admin + token made
  non-interactively, signup closed;
- the ML backend, the hooks server and the viewer front (OHIF + DICOMweb proxy),
  our Flask apps served by gunicorn.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import requests

from connectors.stack.process import ServiceProcess
from radlabel.errors import RadlabelError
from radlabel.settings import DEFAULT_PORTS, Settings

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
REDIS_BINARY = Path("/usr/bin/redis-server")
ORTHANC_PLUGINS = {
    "orthanc-dicomweb": Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    "orthanc-gdcm": Path("/usr/share/orthanc/plugins/libOrthancGdcm.so"),
}

# Variables passed on to child processes. Label Studio reads bare USERNAME,
# PORT, HOST... as settings, so the environment is rebuilt, not inherited.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _base_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}


def _get_ok(url: str, **kwargs) -> bool:
    return requests.get(url, timeout=2, **kwargs).status_code == 200


def _port_hint(service: str) -> str:
    return DEFAULT_PORTS[service][0]


def orthanc(settings: Settings, secrets: dict[str, str]) -> ServiceProcess:
    return ServiceProcess(
        name="orthanc",
        title="Orthanc",
        port=settings.ports["orthanc"],
        url=settings.url("orthanc"),
        command=[str(ORTHANC_BINARY), str(settings.home / "orthanc" / "orthanc.json")],
        run_dir=settings.run,
        log_dir=settings.logs,
        healthy=lambda: _get_ok(
            settings.url("orthanc") + "/system", auth=(settings.orthanc_user, secrets["orthanc_password"])
        ),
        env=_base_env(),
        start_timeout=30,
        port_hint=_port_hint("orthanc"),
    )


def write_orthanc_config(settings: Settings, secrets: dict[str, str]) -> Path:
    """Write Orthanc's configuration (it holds a password: mode 0600)."""
    root = settings.home / "orthanc"
    (root / "storage").mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "radlabel",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "HttpPort": settings.ports["orthanc"],
        # Orthanc 1.10 binds every interface; RemoteAccessAllowed=false refuses
        # non-loopback HTTP clients. The DICOM port is off: nothing needs it
        # (see README, "Exposing Orthanc's DICOM port").
        "RemoteAccessAllowed": False,
        "DicomServerEnabled": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {settings.orthanc_user: secrets["orthanc_password"]},
        # Gzipped frames made WADO-RS ~15x slower (stack notes).
        "HttpCompressionEnabled": False,
        "Plugins": [str(path) for path in ORTHANC_PLUGINS.values()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        "OverwriteInstances": True,
        "SaveJobs": False,
        "HttpThreadsCount": 16,
    }
    path = root / "orthanc.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)
    return path


def label_studio(settings: Settings, secrets: dict[str, str]) -> ServiceProcess:
    executable = settings.label_studio_venv / "bin" / "label-studio"
    data_dir = settings.home / "label-studio"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _base_env() | {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": settings.label_studio_user,
        "LABEL_STUDIO_PASSWORD": secrets["label_studio_password"],
        "LABEL_STUDIO_USER_TOKEN": secrets["label_studio_token"],
        # Legacy tokens are read only at the first start.
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # Our webhook receiver and ML backend listen on 127.0.0.1.
        "SSRF_PROTECTION_ENABLED": "false",
        "ML_BLOCK_LOCAL_IP": "false",
        "LABEL_STUDIO_HOST": settings.url("label_studio"),
        "DJANGO_DB": "sqlite",
        "LOG_LEVEL": "WARNING",
    }
    return ServiceProcess(
        name="label_studio",
        title="Label Studio",
        port=settings.ports["label_studio"],
        url=settings.url("label_studio"),
        command=[
            str(executable), "start", "--no-browser",
            "--internal-host", settings.host, "--port", str(settings.ports["label_studio"]),
            "--data-dir", str(data_dir),
        ],
        run_dir=settings.run,
        log_dir=settings.logs,
        healthy=lambda: _get_ok(settings.url("label_studio") + "/health"),
        env=env,
        cwd=data_dir,
        start_timeout=240,  # the first start runs every migration
        port_hint=_port_hint("label_studio"),
    )


def web_app(settings: Settings, name: str, title: str, app_factory: str, threads: int = 8) -> ServiceProcess:
    """One of our Flask apps under gunicorn, configured through RADLABEL_HOME."""
    env = _base_env() | {"RADLABEL_HOME": str(settings.home), "RADLABEL_TOOLS": str(settings.tools)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return ServiceProcess(
        name=name,
        title=title,
        port=settings.ports[name],
        url=settings.url(name),
        command=[
            sys.executable, "-m", "gunicorn",
            "--bind", f"{settings.host}:{settings.ports[name]}",
            "--workers", "1", "--threads", str(threads), "--timeout", "120",
            "--access-logfile", "-", "--error-logfile", "-",
            app_factory,
        ],
        run_dir=settings.run,
        log_dir=settings.logs,
        healthy=lambda: _get_ok(settings.url(name) + "/health"),
        env=env,
        start_timeout=30,
        port_hint=_port_hint(name),
    )


def check_installed(settings: Settings) -> None:
    """Fail with the install step to run when a part of the stack is missing."""
    if not ORTHANC_BINARY.exists():
        raise RadlabelError(
            f"Orthanc is not installed ({ORTHANC_BINARY} not found): run `make install` "
            "or `apt-get install orthanc orthanc-dicomweb orthanc-gdcm`."
        )
    for package, plugin in ORTHANC_PLUGINS.items():
        if not plugin.exists():
            raise RadlabelError(
                f"the Debian package {package} is missing ({plugin} not found): "
                f"run `make install` or `apt-get install {package}`."
            )
    executable = settings.label_studio_venv / "bin" / "label-studio"
    if not (settings.label_studio_venv / ".radlabel-installed").exists():
        raise RadlabelError(
            f"Label Studio is not installed ({executable} not found): run `make install` or `radlabel install`."
        )
    if not (settings.ohif_dist / "index.html").exists():
        raise RadlabelError(
            f"the OHIF viewer is not installed ({settings.ohif_dist} not found): "
            "run `make install` or `radlabel install`."
        )
    if settings.profile == "scale" and not REDIS_BINARY.exists():
        raise RadlabelError(f"the scale profile needs Redis ({REDIS_BINARY} not found): run `make install` "
                            "or `apt-get install redis-server`.")
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        raise RadlabelError("gunicorn is not installed in radlabel's environment: run `make install`.")


def redis(settings: Settings) -> ServiceProcess:
    """Redis (Debian package) for the job queue: loopback, append-only file under the state directory."""
    folder = settings.home / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = settings.ports["redis"]

    def ping() -> bool:
        from redis import Redis

        return bool(Redis(host=settings.host, port=port, socket_timeout=2).ping())

    return ServiceProcess(
        name="redis", title="Redis (job queue)", port=port, url=settings.redis_url,
        command=[str(REDIS_BINARY), "--bind", settings.host, "--port", str(port), "--protected-mode", "yes",
                 "--dir", str(folder), "--appendonly", "yes", "--save", ""],
        run_dir=settings.run, log_dir=settings.logs, healthy=ping, env=_base_env(), start_timeout=20,
        port_hint=_port_hint("redis"))


def worker(settings: Settings, number: int) -> ServiceProcess:
    """An RQ worker running radlabel's jobs; healthy once it is registered in Redis."""
    name = f"worker-{number}"
    rq_name = f"radlabel-{settings.ports['redis']}-{number}"
    env = _base_env() | {"RADLABEL_HOME": str(settings.home), "RADLABEL_TOOLS": str(settings.tools)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)

    def registered() -> bool:
        from redis import Redis
        from rq import Worker

        return any(w.name == rq_name for w in Worker.all(connection=Redis.from_url(settings.redis_url)))

    return ServiceProcess(
        name=name, title=f"job worker {number}", port=0, url=settings.redis_url,
        command=[sys.executable, "-m", "radlabel.cli", "worker", "--name", rq_name],
        run_dir=settings.run, log_dir=settings.logs, healthy=registered, env=env, start_timeout=30)


def all_services(settings: Settings, secrets: dict[str, str]) -> list[ServiceProcess]:
    """The stack in start order (stop in reverse); the scale profile adds Redis and job workers."""
    queue = [redis(settings)] if settings.profile == "scale" else []
    workers = [worker(settings, n) for n in range(1, settings.workers + 1)] if settings.profile == "scale" else []
    return [
        orthanc(settings, secrets),
        *queue,
        label_studio(settings, secrets),
        web_app(settings, "ml_backend", "ML backend", "ml_backend.app:create_app()"),
        web_app(settings, "hooks", "hooks server", "connectors.hooks.app:create_app()"),
        web_app(settings, "viewer", "viewer front (OHIF)", "connectors.viewer.app:create_app()", threads=16),
        *workers,
    ]
