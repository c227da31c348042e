"""The state database: every table radlabel keeps (sync state, jobs, adjudications, QA, readers, reader
submissions, webhook events), on SQLite in the state directory (default profile) or on PostgreSQL (scale
profile, or any ``RADLABEL_DATABASE_URL``).

Statements are written once, in the SQL both engines accept (``INSERT … ON CONFLICT``, ``RETURNING``,
``DOUBLE PRECISION``), with ``?`` placeholders; this module turns them into PostgreSQL's ``%s`` style.
It is the only module that knows which engine is behind the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from radlabel.errors import RadlabelError
from radlabel.settings import Settings

LOCK_TIMEOUT_S = 30.0  # how long a writer waits for another one before giving up with a clear error


class Connection:
    """One transaction: committed when the ``with`` block ends normally, rolled back otherwise."""

    def __init__(self, raw, dialect: str):
        self.raw = raw
        self.dialect = dialect

    def execute(self, sql: str, params: tuple | list = ()):
        if self.dialect == "postgresql":
            sql = sql.replace("%", "%%").replace("?", "%s")
            if "AUTOINCREMENT" in sql:
                sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        return self.raw.execute(sql, tuple(params))


class Database:
    """Where the state lives; :meth:`connect` opens one transaction on it."""

    def __init__(self, url: str, password: str | None = None):
        self.url = url
        self.dialect = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._password = password
        self._ensured: set[str] = set()
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            self.path = Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url)
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def where(self) -> str:
        """The database named for messages: a file, or host:port/name (never a password)."""
        if self.dialect == "sqlite":
            return str(self.path)
        parts = urlsplit(self.url)
        return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"

    def _open(self):
        if self.dialect == "sqlite":
            # Rollback journal (SQLite's default): several processes share the file, and a WAL database
            # gave "disk I/O error" once under that load.
            return sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S)
        import psycopg

        extra = {"password": self._password} if self._password else {}
        return psycopg.connect(self.url, connect_timeout=10, **extra)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            raw = self._open()
        except Exception as exc:  # noqa: BLE001 - engine-specific connection errors, named below
            raise self._error(exc) from None
        if self.dialect == "postgresql":
            raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_S * 1000)}")
        try:
            yield Connection(raw, self.dialect)
            raw.commit()
        except Exception as exc:
            raw.rollback()
            translated = self._error(exc)
            if translated is exc:
                raise
            raise translated from None
        finally:
            raw.close()

    def ensure(self, *statements: str) -> None:
        """Create tables once per process (``CREATE TABLE IF NOT EXISTS``)."""
        todo = [s for s in statements if s not in self._ensured]
        if not todo:
            return
        with self._lock:
            for attempt in range(3):
                try:
                    with self.connect() as db:
                        for statement in todo:
                            db.execute(statement)
                    break
                except RadlabelError:
                    raise
                except Exception:  # noqa: BLE001 - two processes creating one table at once (PostgreSQL)
                    if attempt == 2:
                        raise
                    time.sleep(0.2)
            self._ensured.update(todo)

    def _error(self, exc: Exception) -> Exception:
        """Engine errors a user can act on become one clear sentence; anything else is left as it is."""
        if not type(exc).__module__.startswith(("sqlite3", "psycopg")):
            return exc
        message = str(exc).lower()
        name = type(exc).__name__
        if "locked" in message or (name in ("LockNotAvailable", "QueryCanceled") and "lock" in message):
            return RadlabelError(f"the state database ({self.where}) stayed locked by another process for "
                                 f"{LOCK_TIMEOUT_S:.0f} s; nothing was changed: run the command again.")
        if name == "OperationalError" and self.dialect == "postgresql":
            return RadlabelError(f"the state database ({self.where}) is not reachable: start it with "
                                 "`radlabel up --profile scale` or check RADLABEL_DATABASE_URL.")
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in message:
            return RadlabelError(f"the state database {self.where} cannot be opened: check that the state "
                                 "directory is writable.")
        return exc


_databases: dict[str, Database] = {}


def state_database(settings: Settings) -> Database:
    """The state database of these settings (one object per URL and process, so tables are created once)."""
    url = settings.database_url
    if url not in _databases:
        password = settings.secrets().get("postgres_password") if url == settings.local_postgres_url else None
        _databases[url] = Database(url, password)
    return _databases[url]


@contextlib.contextmanager
def file_lock(home: Path, name: str):
    """An exclusive lock across processes (hooks worker, job workers, CLI) on one state directory."""
    folder = home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def state_lock(settings: Settings, name: str):
    """An exclusive lock across processes and machines sharing this state: a PostgreSQL advisory lock
    (released by the server if the holder dies), or a file lock in the state directory with SQLite."""
    database = state_database(settings)
    if database.dialect == "sqlite":
        with file_lock(settings.home, name):
            yield
        return
    import psycopg

    extra = {"password": database._password} if database._password else {}
    try:
        holder = psycopg.connect(database.url, connect_timeout=10, autocommit=True, **extra)
    except psycopg.Error as exc:
        raise database._error(exc) from None
    try:
        holder.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"radlabel:{name}",))
        yield
    finally:
        holder.close()  # closing the session releases its advisory locks


def quoted_identifier(name: str) -> str:
    """A database or role name we create ourselves: letters, digits and underscores only."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise RadlabelError(f"{name!r} is not a valid database name: use lower-case letters, digits and '_'.")
    return f'"{name}"'
