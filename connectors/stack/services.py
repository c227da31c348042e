"""The services of the local stack, each a :class:`ServiceProcess`.

- Orthanc (Debian packages) with DICOMweb, authentication on, DICOM port off;
- Label Studio (PyPI, its own virtual environment), SQLite, admin + token made
  non-interactively, signup closed;
- the ML backend, the hooks server and the viewer front (OHIF + DICOMweb proxy),
  our Flask apps served by gunicorn;
- scale profile: PostgreSQL (Debian package; databases for radlabel's state, Label Studio and
  Orthanc's index), Redis and RQ job workers.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from connectors.stack import orthanc_access
from connectors.stack.process import ServiceProcess
from radlabel.errors import RadlabelError
from radlabel.settings import ARCHIVE_USERS, DEFAULT_PORTS, Settings

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
REDIS_BINARY = Path("/usr/bin/redis-server")
ORTHANC_PLUGINS = {
    "orthanc-dicomweb": Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    "orthanc-gdcm": Path("/usr/share/orthanc/plugins/libOrthancGdcm.so"),
}
ORTHANC_POSTGRESQL_INDEX = Path("/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so")  # scale profile
POSTGRES_DATABASES = {"state": "radlabel", "label_studio": "labelstudio", "orthanc": "orthanc"}

# Variables passed on to child processes. Label Studio reads bare USERNAME,
# PORT, HOST... as settings, so the environment is rebuilt, not inherited.
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _base_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}


def _get_ok(url: str, **kwargs) -> bool:
    return requests.get(url, timeout=2, **kwargs).status_code == 200


def _port_hint(service: str) -> str:
    return DEFAULT_PORTS[service][0]


ORTHANC_PYTHON = Path("/usr/share/orthanc/plugins/libOrthancPython.so")  # the access filter's plugin
ARCHIVE_TITLES = {"orthanc": "Orthanc (research archive)", "pacs": "Orthanc (stand-in for the hospital PACS)"}


def orthanc(settings: Settings, secrets: dict[str, str], archive: str = "orthanc") -> ServiceProcess:
    """One of the two local archives: ``orthanc`` (radlabel's research archive) or ``pacs``."""
    admin = next(user for user, (_, role) in ARCHIVE_USERS[archive].items() if role == "admin")
    admin_auth = (admin, secrets[ARCHIVE_USERS[archive][admin][0]])
    return ServiceProcess(
        name=archive,
        title=ARCHIVE_TITLES[archive],
        port=settings.ports[archive],
        url=settings.url(archive),
        command=[str(ORTHANC_BINARY), str(settings.home / archive / "orthanc.json")],
        run_dir=settings.run,
        log_dir=settings.logs,
        healthy=lambda: _get_ok(settings.url(archive) + "/system", auth=admin_auth),
        env=_base_env(),
        start_timeout=30,
        port_hint=_port_hint(archive),
    )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_orthanc_config(settings: Settings, secrets: dict[str, str], archive: str = "orthanc") -> Path:
    """Write one archive's configuration (it holds passwords: mode 0600) and its access filter."""
    root = settings.home / archive
    (root / "storage").mkdir(parents=True, exist_ok=True, mode=0o700)
    users = ARCHIVE_USERS[archive]
    access = root / "access.py"
    _write_private(access, Path(orthanc_access.__file__).read_text() + "\n_install()\n")
    plugins = [str(path) for path in ORTHANC_PLUGINS.values()] + [str(ORTHANC_PYTHON)]
    research_index = settings.profile == "scale" and archive == "orthanc"
    config = {
        "Name": "radlabel" if archive == "orthanc" else "pacs",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "HttpPort": settings.ports[archive],
        # Orthanc 1.10 binds every interface; RemoteAccessAllowed=false refuses
        # non-loopback HTTP clients. The DICOM port is off: nothing needs it
        # (see README, "Exposing Orthanc's DICOM port").
        "RemoteAccessAllowed": False,
        "DicomServerEnabled": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {user: secrets[secret] for user, (secret, _) in users.items()},
        "RadlabelAccess": {user: role for user, (_, role) in users.items()},
        "PythonScript": str(access),
        "PythonVerbose": False,
        # Gzipped frames made WADO-RS ~15x slower (stack notes).
        "HttpCompressionEnabled": False,
        "Plugins": plugins,
        **(_orthanc_postgresql(settings, secrets, plugins) if research_index else {}),
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
        # In the research archive a stored instance is never replaced: a second STOW of a research copy or a
        # final SEG changes nothing. The PACS stand-in behaves like a hospital PACS taking corrected images.
        "OverwriteInstances": archive == "pacs",
        "SaveJobs": False,
        "HttpThreadsCount": 16,
    }
    path = root / "orthanc.json"
    _write_private(path, json.dumps(config, indent=2))
    return path


def _orthanc_postgresql(settings: Settings, secrets: dict[str, str], plugins: list[str]) -> dict:
    """Orthanc's index in PostgreSQL (the plugin of orthanc-postgresql); files stay in StorageDirectory."""
    return {"Plugins": plugins + [str(ORTHANC_POSTGRESQL_INDEX)],
            "PostgreSQL": {"EnableIndex": True, "EnableStorage": False, "Host": settings.host,
                           "Port": settings.ports["postgres"], "Database": POSTGRES_DATABASES["orthanc"],
                           "Username": "radlabel", "Password": secrets["postgres_password"], "EnableSsl": False,
                           # One Orthanc per database here; several Orthancs sharing one index need false.
                           "Lock": True}}


# Label Studio 1.23's SSRF guard (core/utils/io.py validate_ip) is a deny-list of subnets, with no allow-list of
# hosts or ports. Its defaults, verbatim, except loopback: that is re-banned below all but our own host.
_LABEL_STUDIO_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96", "::ffff:0:0:0/96",
    "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28", "2001:db8::/32", "2002::/16",
    "fc00::/7", "fe80::/10", "ff00::/8")


def label_studio_banned_subnets(host: str) -> list[str]:
    """Label Studio's default banned subnets with 127.0.0.0/8 narrowed to everything but ``host`` (where our
    hooks server and ML backend listen): the strictest list that still lets its webhooks and ML calls reach them."""
    import ipaddress

    allowed = ipaddress.ip_network(f"{host}/32")
    loopback = ipaddress.ip_network("127.0.0.0/8")
    rest = sorted(loopback.address_exclude(allowed)) if allowed.subnet_of(loopback) else [loopback]
    return list(_LABEL_STUDIO_BANNED_SUBNETS) + [str(net) for net in rest]


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
        # SSRF protection on for webhooks, ML backends, imports and exports; only our own loopback address is
        # let through (the hooks server and ML backend listen there), on any port (Label Studio has no port list).
        "SSRF_PROTECTION_ENABLED": "true",
        "ML_BLOCK_LOCAL_IP": "true",
        "USE_DEFAULT_BANNED_SUBNETS": "false",
        "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(label_studio_banned_subnets(settings.host)),
        "LABEL_STUDIO_HOST": settings.url("label_studio"),
        "DJANGO_DB": "sqlite",
        "LOG_LEVEL": "WARNING",
    }
    if settings.profile == "scale":  # Label Studio's own PostgreSQL settings
        env |= {"DJANGO_DB": "default", "POSTGRE_NAME": POSTGRES_DATABASES["label_studio"], "POSTGRE_USER": "radlabel",
                "POSTGRE_PASSWORD": secrets["postgres_password"], "POSTGRE_HOST": settings.host,
                "POSTGRE_PORT": str(settings.ports["postgres"])}
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


# Time, method, path without the query string, status, bytes sent, duration: never %(r)s or %(q)s (query strings
# carry PatientIDs and image URL signatures) nor headers (credentials).
ACCESS_LOG_FORMAT = "%(t)s %(m)s %(U)s %(s)s %(b)s %(M)sms"


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
            "--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT, "--error-logfile", "-",
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
    for package, plugin in {**ORTHANC_PLUGINS, "orthanc-python": ORTHANC_PYTHON}.items():
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
    if settings.profile == "scale" and postgres_binaries() is None:
        raise RadlabelError("the scale profile needs PostgreSQL (no /usr/lib/postgresql/*/bin/postgres): run "
                            "`make install` or `apt-get install postgresql`.")
    if settings.profile == "scale" and not ORTHANC_POSTGRESQL_INDEX.exists():
        raise RadlabelError(f"the scale profile needs Orthanc's PostgreSQL index ({ORTHANC_POSTGRESQL_INDEX} not "
                            "found): run `make install` or `apt-get install orthanc-postgresql`.")
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


def postgres_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian installs it under its major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def postgres_data_dir(settings: Settings) -> Path:
    """The cluster's folder: in the state directory, unless we run as root.

    PostgreSQL refuses to run as root; then it runs as the Debian package's ``postgres`` user, in a
    folder that user owns (state directories are often private to root), one per state directory.
    """
    if os.geteuid() != 0:
        return settings.home / "postgres"
    return Path("/var/lib/postgresql/radlabel") / hashlib.sha256(str(settings.home).encode()).hexdigest()[:16]


def _as_postgres_user() -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []


def _init_postgres_cluster(settings: Settings, secrets: dict[str, str]) -> None:
    """initdb once: password authentication for the one role ``radlabel``, loopback only."""
    data = postgres_data_dir(settings)
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    password_file = data.parent / f".{data.name}.password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets["postgres_password"])
    if os.geteuid() == 0:
        for path in (data.parent, data, password_file):
            shutil.chown(path, "postgres", "postgres")
    try:
        done = subprocess.run(_as_postgres_user() + [
            str(postgres_binaries() / "initdb"), "-D", str(data), "-U", "radlabel", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8"], capture_output=True, text=True)
    finally:
        password_file.unlink(missing_ok=True)
    if done.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)  # nothing half-made is left for the next try
        tail = "\n".join("    " + line for line in (done.stderr or done.stdout).splitlines()[-10:])
        raise RadlabelError(f"PostgreSQL's initdb failed for {data}:\n{tail}")


def _postgres_connect(settings: Settings, secrets: dict[str, str], dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=settings.host, port=settings.ports["postgres"], user="radlabel", dbname=dbname,
                           password=secrets["postgres_password"], connect_timeout=3, autocommit=True)


def _create_databases(settings: Settings, secrets: dict[str, str]) -> None:
    from connectors.database import quoted_identifier

    with _postgres_connect(settings, secrets) as db:
        have = {row[0] for row in db.execute("SELECT datname FROM pg_database")}
        for name in POSTGRES_DATABASES.values():
            if name not in have:
                db.execute(f"CREATE DATABASE {quoted_identifier(name)}")


def postgres(settings: Settings, secrets: dict[str, str]) -> ServiceProcess:
    """PostgreSQL (Debian package), its own cluster per state directory, loopback TCP only."""
    bin_dir = postgres_binaries() or Path("/usr/lib/postgresql/15/bin")
    data = postgres_data_dir(settings)

    def answers() -> bool:
        with _postgres_connect(settings, secrets) as db:
            return db.execute("SELECT 1").fetchone()[0] == 1

    return ServiceProcess(
        name="postgres", title="PostgreSQL", port=settings.ports["postgres"],
        url=f"postgresql://{settings.host}:{settings.ports['postgres']}",
        command=_as_postgres_user() + [
            str(bin_dir / "postgres"), "-D", str(data), "-p", str(settings.ports["postgres"]),
            "-c", f"listen_addresses={settings.host}", "-c", "unix_socket_directories=",
            "-c", "max_connections=300", "-c", "shared_buffers=256MB"],
        run_dir=settings.run, log_dir=settings.logs, healthy=answers, env=_base_env(), start_timeout=60,
        port_hint=_port_hint("postgres"), prepare=lambda: _init_postgres_cluster(settings, secrets),
        ready=lambda: _create_databases(settings, secrets),
        stop_signal=signal.SIGINT)  # "fast" shutdown: SIGTERM would wait for every client to disconnect


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
    database = [postgres(settings, secrets)] if settings.profile == "scale" else []
    queue = [redis(settings)] if settings.profile == "scale" else []
    workers = [worker(settings, n) for n in range(1, settings.workers + 1)] if settings.profile == "scale" else []
    # The local PACS stand-in runs only when no site PACS is configured.
    pacs = [] if settings.external_pacs_url else [orthanc(settings, secrets, "pacs")]
    return [
        *database,
        *pacs,
        orthanc(settings, secrets),
        *queue,
        label_studio(settings, secrets),
        web_app(settings, "ml_backend", "ML backend", "ml_backend.app:create_app()"),
        web_app(settings, "hooks", "hooks server", "connectors.hooks.app:create_app()"),
        web_app(settings, "viewer", "viewer front (OHIF)", "connectors.viewer.app:create_app()", threads=16),
        *workers,
    ]
