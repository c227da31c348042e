"""``radlabel provision``: a protocol template becomes (or updates) a Label Studio project.

The project records which protocol, version and content fingerprint made it
(last line of its description), so provisioning needs no local state:

- no project yet → created, with the hooks webhook (shared-secret header) and
  the ML backend connected;
- same fingerprint → nothing is written (idempotent);
- same version, other content → refused: a changed protocol needs a new version;
- older version → refused;
- newer version → updated, unless it would orphan annotations (a class that
  has labels is removed or renamed): then refused unless a migration maps each
  such class to a class of the new version (or explicitly drops its labels).
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from connectors.label_studio import as_dict, label_studio_errors
from connectors.database import state_lock
from connectors.projects import find_protocol_project, marked_project
from connectors.service_auth import ML_USER, SECRET_HEADER
from connectors.wiring import Adapters
from radlabel.audit import audit_log
from radlabel.errors import RadlabelError
from radlabel.protocol.instructions import instructions_html
from radlabel.protocol.labelconfig import config_controls, label_config, placed_region
from radlabel.protocol.ohif import ohif_config
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["WEBHOOK_ACTIONS", "ProvisionResult", "Provisioner", "classes_in_config", "parse_migrations",
           "project_description"]

# Result value keys that hold class names, per Label Studio result type.
_LABEL_KEYS = ("brushlabels", "rectanglelabels", "polygonlabels", "keypointlabels", "vectorlabels", "labels", "choices")
WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "TASKS_CREATED"]


@dataclass
class ProvisionResult:
    protocol_id: str
    version: str
    project_id: int
    action: str  # created / unchanged / updated
    url: str
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def project_description(protocol: Protocol) -> str:
    return (" ".join(protocol.description.split()) +
            f"\n\nradlabel-protocol: {protocol.id} {protocol.version} {protocol.fingerprint}")


def classes_in_config(config: str) -> set[str]:
    """Class names a label config offers (label and finding values)."""
    root = ElementTree.fromstring(config)
    names = {label.get("value") for label in root.iter("Label")}
    for choices in root.iter("Choices"):
        if choices.get("name") == "findings":
            names |= {choice.get("value") for choice in choices.iter("Choice")}
    return {n for n in names if n}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def parse_migrations(items: list[str]) -> dict[str, str | None]:
    """``OLD=NEW`` renames a class's labels; ``OLD=`` deletes them."""
    migrations: dict[str, str | None] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise RadlabelError(f"--migrate {item!r} is not OLD=NEW (rename) or OLD= (delete those labels).")
        migrations[old.strip()] = new.strip() or None
    return migrations


class Provisioner:
    def __init__(self, settings: Settings, progress: Callable[[str], None] = lambda message: None, ls=None):
        self.settings = settings
        self.ls = ls or Adapters(settings).label_studio  # the annotation platform (a fake of it in unit tests)
        self.progress = progress

    # -- lookup -----------------------------------------------------------
    def find_project(self, protocol_id: str):
        return find_protocol_project(self.ls, protocol_id)

    def labels_in_use(self, project_id: int) -> Counter:
        """How many regions/choices of each class the project's annotations hold."""
        used: Counter = Counter()
        for annotation in self._annotations(project_id):
            for region in annotation.get("result") or []:
                for key in _LABEL_KEYS:
                    for name in (region.get("value") or {}).get(key, []) or []:
                        used[name] += 1
        return used

    def _annotations(self, project_id: int) -> list[dict]:
        return [a for _, annotations in self._task_annotations(project_id) for a in annotations]

    def _task_annotations(self, project_id: int) -> list[tuple[int, list[dict]]]:
        with label_studio_errors(f"read the annotations of project {project_id}"):
            return [(int(task.id), [as_dict(a) for a in (task.annotations or [])])
                    for task in self.ls.tasks.list(project=project_id, fields="all", page_size=100)]

    # -- the job ----------------------------------------------------------
    def provision(self, protocol: Protocol, migrations: dict[str, str | None] | None = None) -> ProvisionResult:
        # Two provisioners at once (the CLI beside the demo, two admins) must not both find no project and each
        # create one (a protocol with two projects splits its readers), nor write the viewer's files together.
        with state_lock(self.settings, "projects"):
            result = self._provision(protocol, migrations or {})
            self._write_ohif_config(protocol)
        if result.action != "unchanged":
            audit_log(self.settings).append("provision", "admin", f"{protocol.id} {protocol.version}",
                                            project=result.project_id, outcome=result.action, changes=result.changes)
        return result

    def _write_ohif_config(self, protocol: Protocol) -> None:
        """The viewer front serves this to the OHIF extension (protocols/<id>.json)."""
        folder = self.settings.home / "protocols"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{protocol.id}.json"
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(ohif_config(protocol), indent=2))
        partial.replace(target)  # readers never see a half-written file
        # The whole protocol, for the hooks server and workers that only know a project.
        whole = folder / f"{protocol.id}.protocol.json"
        whole.with_suffix(".partial").write_text(protocol.model_dump_json(indent=1))
        whole.with_suffix(".partial").replace(whole)

    def _provision(self, protocol: Protocol, migrations: dict[str, str | None]) -> ProvisionResult:
        project, marker = self.find_project(protocol.id)
        if project is None:
            if migrations:
                raise RadlabelError(f"--migrate applies only when updating; protocol {protocol.id} has no project yet.")
            return self._create(protocol)
        url = f"{self.settings.url('label_studio')}/projects/{project.id}"
        old_version = marker["version"]
        if marker["fingerprint"] == protocol.fingerprint:
            if project.label_config.strip() != label_config(protocol).strip():
                # Same template, newer radlabel: regenerate what radlabel derives from it.
                return self._update(protocol, project, old_version, migrations, url)
            changes = self.connect(project.id)
            return ProvisionResult(protocol.id, protocol.version, project.id, "unchanged", url, changes)
        if old_version == protocol.version:
            raise RadlabelError(
                f"protocol {protocol.id} {protocol.version} is already provisioned (project {project.id}) with other "
                "content: give the changed template a new version."
            )
        if _version(protocol.version) < _version(old_version):
            raise RadlabelError(
                f"protocol {protocol.id} {protocol.version} is older than the provisioned {old_version} "
                f"(project {project.id}): provision a version above {old_version}."
            )
        return self._update(protocol, project, old_version, migrations, url)

    def _create(self, protocol: Protocol) -> ProvisionResult:
        self.progress(f"creating the Label Studio project for {protocol.id} {protocol.version} …")
        with label_studio_errors(f"create the project for protocol {protocol.id}"):
            project = self.ls.projects.create(
                title=protocol.name[:50],
                description=project_description(protocol),
                label_config=label_config(protocol),
                expert_instruction=instructions_html(protocol),
                show_instruction=True,
                show_skip_button=False,
                enable_empty_annotation=True,
                maximum_annotations=protocol.readers.per_study,
                color=protocol.classes[0].color,
                # Active learning: the labelling queue serves the least confident pre-labels first.
                sampling="Uncertainty sampling",
            )
        changes = ["project created"] + self.connect(project.id)
        url = f"{self.settings.url('label_studio')}/projects/{project.id}"
        return ProvisionResult(protocol.id, protocol.version, project.id, "created", url, changes)

    def _update(self, protocol: Protocol, project, old_version: str, migrations: dict[str, str | None],
                url: str) -> ProvisionResult:
        old_classes = classes_in_config(project.label_config)
        new_classes = {c.name for c in protocol.classes}
        for old, new in migrations.items():
            if old not in old_classes:
                raise RadlabelError(f"--migrate {old}=…: {old!r} is not a class of the provisioned {old_version}.")
            if new is not None and new not in new_classes:
                raise RadlabelError(f"--migrate {old}={new}: {new!r} is not a class of {protocol.id} {protocol.version}.")
        used = self.labels_in_use(project.id)
        orphaned = sorted(name for name in old_classes - new_classes if used[name] and name not in migrations)
        if orphaned:
            listing = ", ".join(f"{name!r} ({used[name]} label(s))" for name in orphaned)
            raise RadlabelError(
                f"protocol {protocol.id} {protocol.version} would orphan annotations of project {project.id}: "
                f"{listing} removed or renamed; re-run with --migrate OLD=NEW for each (or OLD= to delete those labels)."
            )
        changes = [f"version {old_version} -> {protocol.version}" if old_version != protocol.version
                   else "configuration regenerated"]
        changes += self._migrate(protocol, project.id, migrations)  # also moves classes whose read_in changed
        self.progress(f"updating project {project.id} to {protocol.id} {protocol.version} …")
        with label_studio_errors(f"update project {project.id}"):
            self.ls.projects.update(
                id=project.id,
                title=protocol.name[:50],
                description=project_description(protocol),
                label_config=label_config(protocol),
                expert_instruction=instructions_html(protocol),
                maximum_annotations=protocol.readers.per_study,
            )
        added, removed = sorted(new_classes - old_classes), sorted(old_classes - new_classes)
        if added:
            changes.append("classes added: " + ", ".join(added))
        if removed:
            changes.append("classes removed: " + ", ".join(removed))
        changes += self.connect(project.id)
        return ProvisionResult(protocol.id, protocol.version, project.id, "updated", url, changes)

    def _migrate(self, protocol: Protocol, project_id: int, migrations: dict[str, str | None]) -> list[str]:
        """Renames (``migrations``) and moves (a class whose ``read_in`` changed goes to its new preset's control and
        image) the labels of every annotation; a verified read stays verified (``rewrite_read``)."""
        from connectors.authorship import Authorship, rewrite_read

        controls = config_controls(label_config(protocol))
        renamed: Counter = Counter()
        moved: Counter = Counter()
        authorship = Authorship(self.settings, self.ls)
        for task_id, annotations in self._task_annotations(project_id):
            records = None
            for annotation in annotations:
                result = _migrated_result(annotation.get("result") or [], migrations, controls, renamed, moved)
                if result is None:
                    continue
                records = records or authorship.records(task_id, annotations)
                rewrite_read(self.settings, self.ls, task_id, annotation, result, records, "provision-migrate")
        return ([f"migrated {count} label(s) {old} -> {new or '(deleted)'}"
                 for (old, new), count in sorted(renamed.items(), key=str)] +
                [f"moved {count} region(s) of {name} from {old} to {new} (its read_in preset)"
                 for (name, old, new), count in sorted(moved.items())])

    def side_project(self, protocol: Protocol, marker_line: str, title: str, description: str,
                     ml_backend: bool) -> int:
        """The project of ours beside a protocol's own (arbitration, calibration, QA review) that carries this
        marker line, created once (one reader at a time, with the protocol's labels) and connected."""
        with state_lock(self.settings, "projects"):
            found = marked_project(self.ls, marker_line)
            if found is not None:
                return found
            with label_studio_errors(f"create the project {title!r}"):
                project = self.ls.projects.create(
                    title=title[:50], description=f"{description}\n{marker_line}", label_config=label_config(protocol),
                    expert_instruction=instructions_html(protocol), show_instruction=True, maximum_annotations=1,
                    show_skip_button=False)
        self.connect(project.id, ml_backend=ml_backend)  # its annotations must reach us too
        return project.id

    def connect(self, project_id: int, ml_backend: bool = True) -> list[str]:
        """Make sure the hooks webhook and (unless told not to) the ML backend are attached (once)."""
        changes = []
        hooks_url = self.settings.url("hooks") + "/webhook"
        secret = self.settings.secrets()["webhook_secret"]
        with label_studio_errors(f"attach the webhook to project {project_id}"):
            existing = [w for w in self.ls.webhooks.list(project=str(project_id)) if w.url == hooks_url]
            if not existing:
                self.ls.webhooks.create(project=project_id, url=hooks_url, send_payload=True, is_active=True,
                                        send_for_all_actions=False, actions=WEBHOOK_ACTIONS,
                                        headers={SECRET_HEADER: secret})
                changes.append("webhook attached")
        if not ml_backend:
            return changes
        with label_studio_errors(f"connect the ML backend to project {project_id}"):
            changes += self._connect_ml_backend(project_id)
        return changes

    def _connect_ml_backend(self, project_id: int) -> list[str]:
        """The ML backend attached with its basic-auth credentials (added to one attached without them), and the
        webhook Label Studio makes for it carrying them too (the ML backend refuses requests without them)."""
        changes = []
        ml_url = self.settings.url("ml_backend")
        password = self.settings.secrets()["ml_backend_password"]
        auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": ML_USER, "basic_auth_pass": password}
        attached = [m for m in self.ls.ml.list(project=project_id) if m.url.rstrip("/") == ml_url]
        if not attached:
            self.ls.ml.create(project=project_id, url=ml_url, title="radlabel pre-labels", is_interactive=True, **auth)
            changes.append("ML backend connected")
        for backend in attached:
            # Label Studio never shows the password back; a backend with ours set was connected by us.
            if (backend.auth_method, backend.basic_auth_user, backend.basic_auth_pass_is_set) != \
                    ("BASIC_AUTH", ML_USER, True):
                self.ls.ml.update(id=backend.id, project=project_id, url=ml_url, **auth)  # PATCH re-runs setup: needs both
                changes.append("ML backend credentials set")
        header = {"Authorization": "Basic " + base64.b64encode(f"{ML_USER}:{password}".encode()).decode()}
        for hook in self.ls.webhooks.list(project=str(project_id)):
            if hook.url == ml_url + "/webhook" and (hook.headers or {}) != header:
                self.ls.webhooks.update(id=hook.id, headers=header)
                changes.append("ML backend webhook credentials set")
        return changes


def _migrated_result(result: list, migrations: dict[str, str | None], controls: dict, renamed: Counter,
                     moved: Counter) -> list | None:
    """The annotation's regions with ``migrations`` applied and each on its class's control in ``controls``
    (counted in ``renamed`` and ``moved``); None when nothing changes."""
    out, touched = [], False
    for region in result:
        value = dict(region.get("value") or {})
        for key in _LABEL_KEYS:
            if key in value and any(name in migrations for name in value[key]):
                for name in value[key]:
                    if name in migrations:
                        renamed[(name, migrations[name])] += 1
                value[key] = [migrations.get(n, n) for n in value[key] if migrations.get(n, n) is not None]
                touched = True
        if any(key in value for key in _LABEL_KEYS) and not any(value.get(k) for k in _LABEL_KEYS):
            continue  # every label of the region was dropped
        placed = placed_region(region | {"value": value}, controls)
        if placed.get("from_name") != region.get("from_name"):
            labels = next((value[k] for k in _LABEL_KEYS if value.get(k)), [placed["from_name"]])
            moved[(",".join(labels), region.get("from_name"), placed["from_name"])] += 1
        touched |= placed.get("to_name") != region.get("to_name") or placed.get("from_name") != region.get("from_name")
        out.append(placed)
    return out if touched else None

