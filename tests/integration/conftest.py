import json
import os
import subprocess
import sys

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ohif_screenshots(tmp_path_factory):
    """One folder for every OHIF end-to-end screenshot of the session (printed by the tests that write there)."""
    return tmp_path_factory.mktemp("ohif-screenshots")


def radlabel_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m radlabel.cli ARGS`` as an administrator runs it, on this session's state directory."""
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)


def registered_readers(prefix: str, names=("a", "b")) -> dict:
    """Radiologists registered by ``radlabel readers add PREFIX.NAME@hospital.org --json``: name -> what it printed
    (each reader holds only that)."""
    out = {}
    for name in names:
        done = radlabel_cli("readers", "add", f"{prefix}.{name}@hospital.org", "--tier", "radiologist", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        out[name] = json.loads(done.stdout)
    return out


TEMPLATES = __import__("pathlib").Path(__file__).resolve().parents[2] / "protocol_templates"


def protocol_variant(settings, template: str, protocol_id: str, description: str | None = None, provision=True,
                     overrides: dict | None = None, **selection):
    """A shipped template under another id, selecting only this test's series; provisioned.

    ``overrides`` replaces whole top-level sections (``{"qa": {...}}``); the template's ``max_linkage_risk`` is
    dropped unless an override of ``deidentification`` sets it."""
    import yaml

    from connectors.provision import Provisioner
    from radlabel.protocol import parse_template

    data = yaml.safe_load((TEMPLATES / template).read_text())
    data["id"] = protocol_id
    if description is not None:
        data["selection"]["series_description"] = description
    data["selection"].update(selection)
    # a lone series is what most tests sync: the linkage maximum is tested where an override sets it
    data["deidentification"].pop("max_linkage_risk", None)
    data.update(overrides or {})
    protocol = parse_template(yaml.safe_dump(data, sort_keys=False))
    if provision:
        Provisioner(settings).provision(protocol)
    return protocol


def state_rows(settings, sql: str, *params) -> list:
    """Rows of the session's state database (SQLite or PostgreSQL, by profile); [] while the table does not exist."""
    from connectors.database import state_database

    try:
        with state_database(settings).connect() as db:
            return db.execute(sql, params).fetchall()
    except Exception as exc:  # noqa: BLE001 - "no such table" (SQLite) / UndefinedTable (PostgreSQL)
        if "no such table" in str(exc) or type(exc).__name__ == "UndefinedTable":
            return []
        raise


def state_dump(settings) -> bytes:
    """Every row of every table of the state database as text (to scan for PHI and secrets on either engine)."""
    from connectors.database import state_database

    database = state_database(settings)
    listing = ("SELECT name FROM sqlite_master WHERE type='table'" if database.dialect == "sqlite" else
               "SELECT table_name FROM information_schema.tables WHERE table_schema='public'")
    with database.connect() as db:
        return "\n".join(repr(row) for (table,) in db.execute(listing).fetchall()
                         for row in db.execute(f'SELECT * FROM "{table}"').fetchall()).encode()


def restart(service, timeout=90.0):
    """Start a stopped service of the session's stack again (its port can stay unavailable for a moment)."""
    import time

    from radlabel.errors import RadlabelError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return service.start()
        except RadlabelError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def synced_lung_case(settings, protocol, seed: int, description: str):
    """A 24-slice synthetic chest CT with one nodule, stored in the PACS and synced by ``protocol`` (whose
    series-description rule matches ``description``): (its task id, the study). Seeds are unique per test file."""
    from connectors.dicomweb import OrthancDicomWeb
    from connectors.sync import Syncer
    from radlabel.phantom import make_ct_study

    study = make_ct_study(seed=seed, slices=24, size=128, pixel_spacing=3.0, lung_nodules=1)
    for ds in study.datasets:
        ds.SeriesDescription = description
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    summary = Syncer(settings, protocol).run()
    done = [s for s in summary.series if s["status"] == "done"]
    assert len(done) == 1, summary.as_dict()
    return done[0]["task_id"], study
