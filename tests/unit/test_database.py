"""The state database layer on SQLite (PostgreSQL is exercised by the scale-profile integration session)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from connectors import database as database_module
from connectors.database import Connection, Database, state_database
from connectors.state import SeriesRecord, StateStore
from radlabel.errors import RadlabelError
from radlabel.settings import load_settings


def test_statements_are_written_once_and_turned_into_postgresql_placeholders():
    seen = []

    class Raw:
        def execute(self, sql, params):
            seen.append((sql, params))

    Connection(Raw(), "postgresql").execute("SELECT 1 FROM jobs WHERE key LIKE 'a:%' AND name=?", ["x"])
    Connection(Raw(), "postgresql").execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    Connection(Raw(), "sqlite").execute("SELECT ? LIKE 'a%'", ["x"])
    assert seen[0] == ("SELECT 1 FROM jobs WHERE key LIKE 'a:%%' AND name=%s", ("x",))
    assert seen[1][0] == "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT)"
    assert seen[2] == ("SELECT ? LIKE 'a%'", ("x",))  # SQLite gets the statement untouched


def test_default_profile_keeps_state_in_sqlite_and_scale_profile_in_postgresql(monkeypatch, tmp_path):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    monkeypatch.delenv("RADLABEL_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'state.sqlite'}"
    settings.profile = "scale"
    assert settings.database_url.startswith("postgresql://radlabel@127.0.0.1:")
    assert settings.secrets()["postgres_password"] not in settings.database_url  # the password stays in secrets
    monkeypatch.setenv("RADLABEL_DATABASE_URL", "postgresql://app@db.internal:6432/radlabel")
    assert settings.database_url == "postgresql://app@db.internal:6432/radlabel"
    assert Database(settings.database_url).where == "PostgreSQL at db.internal:6432/radlabel"


def test_a_transaction_is_all_or_nothing(tmp_path):
    store = StateStore(Database(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    with pytest.raises(ZeroDivisionError):
        with store.database.connect() as db:
            db.execute("INSERT INTO series (series_key, protocol_id, status, updated) VALUES ('k', 'p', 'done', 1)")
            1 / 0
    assert store.get("k", "p") is None
    store.put(SeriesRecord("k", "p", "done", reasons=["r"]))
    assert store.get("k", "p").reasons == ["r"]


def test_a_writer_waits_for_a_short_lock_and_gives_up_on_a_long_one_with_one_sentence(tmp_path, monkeypatch):
    path = tmp_path / "state.sqlite"
    store = StateStore(Database(f"sqlite:///{path}"))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.8, lambda: holder.execute("COMMIT")).start()
    started = time.monotonic()
    store.put(SeriesRecord("a", "p", "done"))  # waits for the lock, then writes
    assert time.monotonic() - started >= 0.7 and store.get("a", "p").status == "done"

    monkeypatch.setattr(database_module, "LOCK_TIMEOUT_S", 0.5)
    store = StateStore(Database(f"sqlite:///{path}"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RadlabelError) as caught:
            store.put(SeriesRecord("b", "p", "done"))
    finally:
        holder.execute("COMMIT")
    message = str(caught.value)
    assert "stayed locked" in message and "nothing was changed" in message and "\n" not in message
    assert store.get("b", "p") is None  # nothing half-written; a rerun writes it
    store.put(SeriesRecord("b", "p", "done"))
    assert store.get("b", "p").status == "done"


def test_an_unreachable_postgresql_is_one_sentence_without_the_password():
    database = Database("postgresql://radlabel@127.0.0.1:1/radlabel", password="s3cret-value-123")
    with pytest.raises(RadlabelError) as caught:
        with database.connect():
            pass
    assert "(PostgreSQL at 127.0.0.1:1/radlabel) is not reachable" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_tables_are_created_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    database = state_database(load_settings())
    assert state_database(load_settings()) is database
    database.ensure("CREATE TABLE IF NOT EXISTS once (x INTEGER)")
    opened = []
    monkeypatch.setattr(database, "_open", lambda: opened.append(1))
    database.ensure("CREATE TABLE IF NOT EXISTS once (x INTEGER)")
    assert not opened


def test_switching_the_profile_of_a_state_directory_with_data_is_refused(monkeypatch, tmp_path):
    from connectors.stack import Stack

    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    settings = load_settings()
    settings.save()
    StateStore(state_database(settings)).put(SeriesRecord("k", "p", "done"))
    settings.profile = "scale"
    with pytest.raises(RadlabelError, match="holds a stack of the default profile.*nothing was changed"):
        Stack(settings)._check_profile_switch()
    assert json.loads((tmp_path / "settings.json").read_text())["profile"] == "default"
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("RADLABEL_HOME", str(fresh))
    other = load_settings()
    other.save()
    other.profile = "scale"
    Stack(other)._check_profile_switch()  # no data yet: a new directory may take either profile
