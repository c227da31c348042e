"""Which radlabel project a Label Studio project is, and the protocols as provisioned.

Every project radlabel makes says what it is on a marker line of its description (protocol projects
also carry the template's fingerprint), so finding one needs no local state. The protocol a project
was provisioned from is kept in the state directory (``protocols/<id>.protocol.json``) for the
servers and workers that only know a project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.label_studio import label_studio_errors
from radlabel.errors import RadlabelError
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["ARBITRATION_MARKER", "CALIBRATION_MARKER", "MARKER", "REVIEW_MARKER", "ProjectKind",
           "find_protocol_project", "load_provisioned", "marked_project", "project_kind"]

MARKER = re.compile(r"^radlabel-protocol: (?P<id>[a-z][a-z0-9_]*) (?P<version>\d+\.\d+\.\d+) (?P<fingerprint>[0-9a-f]+)$",
                    re.MULTILINE)
# The other projects radlabel makes say what they are on a line of their description.
ARBITRATION_MARKER = "radlabel-arbitration:"  # + protocol id, version
CALIBRATION_MARKER = "radlabel-calibration:"  # + protocol id, version, the reader's Label Studio user id
REVIEW_MARKER = "radlabel-qa-review:"  # + protocol id, version
_VERSIONED = r" (?P<id>[a-z][a-z0-9_]*) (?P<version>\d+\.\d+\.\d+)"
_OTHER_MARKERS = (("arbitration", re.compile(rf"^{ARBITRATION_MARKER}{_VERSIONED}\s*$", re.MULTILINE)),
                  ("calibration", re.compile(rf"^{CALIBRATION_MARKER}{_VERSIONED} (?P<user>\d+)\s*$", re.MULTILINE)),
                  ("review", re.compile(rf"^{REVIEW_MARKER}{_VERSIONED}\s*$", re.MULTILINE)))


@dataclass(frozen=True)
class ProjectKind:
    kind: str  # reads / arbitration / calibration / review
    protocol_id: str
    version: str
    reader: int | None = None  # calibration: the one reader it is for


def project_kind(description: str | None) -> ProjectKind | None:
    """Which radlabel project a Label Studio project is, from the marker line of its description."""
    text = description or ""
    if (m := MARKER.search(text)):
        return ProjectKind("reads", m["id"], m["version"])
    for kind, pattern in _OTHER_MARKERS:
        if (m := pattern.search(text)):
            return ProjectKind(kind, m["id"], m["version"], int(m["user"]) if kind == "calibration" else None)
    return None


def find_protocol_project(ls, protocol_id: str):
    """(project, marker match) of the protocol's own reads project in Label Studio, or (None, None)."""
    with label_studio_errors("list projects"):
        for project in ls.projects.list(page_size=100):
            marker = MARKER.search(project.description or "")
            if marker and marker["id"] == protocol_id:
                return project, marker
    return None, None


def marked_project(ls, marker_line: str) -> int | None:
    """The id of the project whose description has this marker line (arbitration, calibration, QA review), or None."""
    with label_studio_errors("list projects"):
        for project in ls.projects.list(page_size=100):
            if marker_line in (project.description or "").splitlines():
                return project.id
    return None


def load_provisioned(settings: Settings, protocol_id: str) -> Protocol:
    """The protocol as last provisioned from this state directory."""
    path = settings.home / "protocols" / f"{protocol_id}.protocol.json"
    if not path.exists():
        raise RadlabelError(f"protocol {protocol_id} was never provisioned from this state directory: run `radlabel provision`.")
    return Protocol.model_validate_json(path.read_text())
