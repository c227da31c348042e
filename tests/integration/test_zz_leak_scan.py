"""Last of the session (file name): nothing the pipeline wrote holds a secret or a source patient's PHI.

Every file radlabel writes in its state directory is scanned — logs of every service, the audit
trail, the state database, reports, exports, the outbox, rendered-slice folders, protocol
configurations, the research archive's stored files and index — plus the test artefacts. Left out:
the PACS stand-in (it is the hospital's and holds the source studies), the archives' configuration
files (they hold passwords), Label Studio's own database (it keeps its token), the synthetic
studies' ground truth, Redis' files and secrets.json itself. The PHI looked for is what the source
studies in the PACS carry: patient names, IDs, birth dates, accession numbers and institutions.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.integration.conftest import state_dump

EXCLUDED = ("pacs", "label-studio", "samples", "redis", "secrets.json")
CONFIGURATION = ("orthanc.json",)  # the research archive's configuration holds its users' passwords
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def source_phi(settings) -> set[str]:
    auth = (settings.pacs_admin_user, settings.secrets()["pacs_admin_password"])
    base = settings.url("pacs")
    values: set[str] = set()
    for study in requests.get(f"{base}/studies?expand", auth=auth, timeout=60).json():
        patient = study.get("PatientMainDicomTags", {})
        if str(patient.get("PatientID", "")).startswith("RL"):  # a research copy: pseudonyms only
            continue
        tags = study.get("MainDicomTags", {})
        name = str(patient.get("PatientName", ""))
        values |= {name, *name.split("^"), str(patient.get("PatientID", "")), str(patient.get("PatientBirthDate", "")),
                   str(tags.get("AccessionNumber", "")), str(tags.get("InstitutionName", ""))}
    return {v for v in values if len(v) >= 6}  # short parts (initials, "M") would match anywhere


def scanned_files(home: Path) -> list[Path]:
    files = [p for p in home.rglob("*") if p.is_file() and p.relative_to(home).parts[0] not in EXCLUDED
             and not (p.relative_to(home).parts[0] == "orthanc" and p.name in CONFIGURATION)]
    return files + ([p for p in ARTIFACTS.rglob("*") if p.is_file()] if ARTIFACTS.exists() else [])


def test_no_secret_or_phi_in_anything_radlabel_wrote(settings):
    secrets = [v for v in settings.secrets().values() if len(v) >= 12]
    phi = source_phi(settings)
    assert phi, "the session's PACS holds source studies: the scan must have PHI to look for"
    files = scanned_files(settings.home)
    assert any(f.name == "audit.log" for f in files) and any(f.suffix == ".log" for f in files)
    found = []
    for path in files:
        data = path.read_bytes()
        for value in secrets:
            if value.encode() in data:
                found.append(f"{path.relative_to(settings.home.parent)}: a secret")
        for value in phi:
            if value.encode() in data:
                found.append(f"{path.relative_to(settings.home.parent)}: PHI value of length {len(value)}")
    rows = state_dump(settings)  # the state database, whichever engine holds it (PostgreSQL's files are elsewhere)
    assert rows, "the session's state database has rows to scan"
    found += ["state database: a secret" for value in secrets if value.encode() in rows]
    found += [f"state database: PHI value of length {len(value)}" for value in phi if value.encode() in rows]
    assert not found, "\n".join(found[:20])
