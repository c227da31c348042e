"""In-memory fakes of the ports, for unit tests of the pipeline's stages (no server, runs in milliseconds).

``FakeLabelStudio`` keeps the part of the Label Studio SDK client that radlabel uses (see
``connectors.ports.AnnotationPlatform``), with the behaviour the stages rely on: ids from 1, a
project's tasks and annotations, webhooks per project, and the webhook Label Studio itself adds when
an ML backend is connected. ``FakeArchive`` is a DICOMweb archive (``connectors.ports.DicomArchive``).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from types import SimpleNamespace

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"


def home_settings(tmp_path, monkeypatch):
    """Settings of a fresh state directory on SQLite (the default profile)."""
    from radlabel.settings import load_settings

    monkeypatch.setenv("RADLABEL_HOME", str(tmp_path))
    monkeypatch.delenv("RADLABEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("RADLABEL_PROFILE", raising=False)
    return load_settings()


def ct_study(seed: int, description: str = "abdomen"):
    """A 4-slice 32x32 CT phantom whose series description the liver protocol selects (or not)."""
    from radlabel.phantom import make_ct_study

    study = make_ct_study(seed=seed, slices=4, size=32, pixel_spacing=10.0, slice_spacing=2.0)
    for ds in study.datasets:
        ds.SeriesDescription = description
    return study


def liver_protocol(**changes):
    """The CT liver protocol for 4-slice phantoms, two readers a study, no QA review sampling, and ``changes``."""
    from radlabel.protocol import load_template

    protocol = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    selection = protocol.selection.model_copy(update={"min_slices": 2})
    readers = protocol.readers.model_copy(update={"per_study": 2})
    qa = protocol.qa.model_copy(update={"sampling_rate": 0.0})
    # one lone series per test: the template's linkage maximum is tested in test_stage_sync
    deidentification = protocol.deidentification.model_copy(update={"max_linkage_risk": None})
    return protocol.model_copy(update={"version": "1.0.1", "readers": readers, "qa": qa, "selection": selection,
                                       "deidentification": deidentification} | changes)


def synced_case(settings, protocol, seed: int = 7):
    """A provisioned protocol with one synced series, on fakes: the Label Studio, the task, the research
    archive and an Adjudicator wired to them."""
    from connectors.adjudicate import Adjudicator
    from connectors.adjudications import Adjudications
    from connectors.database import state_database
    from connectors.provision import Provisioner
    from connectors.sync import Syncer

    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(protocol).project_id
    ports = sync_ports(settings, FakeArchive(ct_study(seed).datasets), ls)
    Syncer(settings, protocol, adapters=ports).run()
    (task,) = ls.tasks.list(project=project_id)
    database = state_database(settings)
    adjudicator = Adjudicator(settings, adapters=SimpleNamespace(
        label_studio=ls, research_archive=ports.research_archive, database=database,
        adjudications=Adjudications(database)))
    return SimpleNamespace(ls=ls, project_id=project_id, task=task, adjudicator=adjudicator,
                           archive=ports.research_archive, ports=ports, database=database)


def sync_ports(settings, pacs, ls):
    """What ``Syncer`` takes from ``connectors.wiring.Adapters``, with fakes for the servers."""
    from connectors.database import state_database
    from connectors.state import StateStore

    database = state_database(settings)
    return SimpleNamespace(source_pacs=pacs, research_archive=FakeArchive(), label_studio=ls, database=database,
                           series_state=StateStore(database), worker_queue=None)  # no workers: synced in turn


class _Resource:
    def __init__(self, ids):
        self.items: dict[int, SimpleNamespace] = {}
        self._ids = ids
        self.writes: list[tuple[str, dict]] = []  # (call, arguments) of every create/update

    def _add(self, **fields) -> SimpleNamespace:
        item = SimpleNamespace(id=next(self._ids), **fields)
        self.items[item.id] = item
        self.writes.append(("create", fields))
        return item

    def get(self, id):
        return self.items[id]

    def update(self, id, **fields):
        self.writes.append(("update", {"id": id} | fields))
        for key, value in fields.items():
            setattr(self.items[id], key, value)
        return self.items[id]


class FakeProjects(_Resource):
    def list(self, page_size=100, **_):
        return list(self.items.values())

    def create(self, **fields):
        return self._add(**fields)


class FakeTasks(_Resource):
    def list(self, project, page_size=100, **_):
        return [t for t in self.items.values() if t.project == project]

    def create(self, project, data):
        return self._add(project=project, data=data, annotations=[], predictions=[])


class FakeAnnotations(_Resource):
    def __init__(self, ids, tasks: FakeTasks):
        super().__init__(ids)
        self.tasks = tasks

    def create(self, id, result, completed_by=None, **fields):
        # Label Studio records who saved it from the request's token: radlabel's service user (id 1) here.
        annotation = {"id": next(self._ids), "result": result, "completed_by": completed_by, "updated_by": 1} | fields
        self.tasks.get(id).annotations.append(annotation)
        self.writes.append(("create", {"task": id, "result": result}))
        return SimpleNamespace(**annotation)

    def list(self, id):
        return [SimpleNamespace(**a) for a in self.tasks.get(id).annotations]

    def update(self, id, **fields):
        self.writes.append(("update", {"id": id} | fields))
        for task in self.tasks.items.values():
            for annotation in task.annotations:
                if annotation["id"] == id:
                    annotation.update(fields)


class FakeWebhooks(_Resource):
    def list(self, project):
        return [w for w in self.items.values() if str(w.project) == str(project)]

    def create(self, project, url, headers=None, **fields):
        return self._add(project=project, url=url, headers=headers or {}, **fields)


class FakeMl(_Resource):
    def __init__(self, ids, webhooks: FakeWebhooks):
        super().__init__(ids)
        self.webhooks = webhooks

    def list(self, project):
        return [m for m in self.items.values() if m.project == project]

    def create(self, project, url, auth_method="NONE", basic_auth_user=None, basic_auth_pass=None, **fields):
        self.webhooks.create(project=project, url=url + "/webhook")  # Label Studio adds it, without our header
        return self._add(project=project, url=url, auth_method=auth_method, basic_auth_user=basic_auth_user,
                         basic_auth_pass_is_set=bool(basic_auth_pass), **fields)


class FakeUsers(_Resource):
    def list(self):
        return list(self.items.values())

    def create(self, email, username):
        return self._add(email=email, username=username)

    def whoami(self):
        return self.items[1]


class FakeLabelStudio:
    def __init__(self):
        ids = itertools.count(1)
        self.projects = FakeProjects(ids)
        self.tasks = FakeTasks(ids)
        self.annotations = FakeAnnotations(ids, self.tasks)
        self.predictions = FakeProjects(ids)
        self.webhooks = FakeWebhooks(ids)
        self.ml = FakeMl(ids, self.webhooks)
        self.users = FakeUsers(ids)
        self.users.create(email="radlabel@service.local", username="radlabel")  # the token's own user

    def writes(self) -> int:
        return sum(len(r.writes) for r in (self.projects, self.tasks, self.annotations, self.webhooks, self.ml))


class FakeArchive:
    """A DICOMweb archive holding datasets by (study, series)."""

    def __init__(self, datasets=()):
        self.series: dict[tuple[str, str], list] = {}
        self.store(datasets)

    def store(self, datasets):
        stored = []
        for ds in datasets:
            self.series.setdefault((str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)), []).append(copy.deepcopy(ds))
            stored.append(str(ds.SOPInstanceUID))
        return SimpleNamespace(stored=stored, failed=[])

    def search_series(self, study_uid=None, fields=None, **filters):
        rows = []
        for (study, series), items in self.series.items():
            first = items[0]
            if any(str(first.get(name, "")) != str(value) for name, value in filters.items()):
                continue
            rows.append({"0020000D": {"Value": [study]}, "0020000E": {"Value": [series]},
                         "00080060": {"Value": [str(first.Modality)]},
                         "0008103E": {"Value": [str(first.get("SeriesDescription", ""))]},
                         "00180015": {"Value": [str(first.get("BodyPartExamined", ""))]},
                         "00201209": {"Value": [len(items)]},
                         "00180050": {"Value": [float(first.get("SliceThickness", 0) or 0)]}})
        return rows

    def retrieve_series(self, study_uid, series_uid, media_types=None):
        return [copy.deepcopy(ds) for ds in self.series.get((study_uid, series_uid), [])]  # as a server: new objects
