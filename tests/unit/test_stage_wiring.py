"""The stages that used to build their own clients, on in-memory ports handed in as the wiring would:
the readers' SEG delivery (STOW + annotation), reader registration, sample loading."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from connectors.label_studio import user_id
from connectors.readers import ReaderRegistry, issue_credentials, revoke_reader
from connectors.samples import SampleSizes, load_samples
from connectors.seg_import import ImportedSegs
from connectors.viewer.delivery import import_into_task, stow
from connectors.viewer.outbox import Submission
from radlabel import seg as seg_codec
from tests.unit.fakes import FakeArchive, FakeLabelStudio, home_settings, liver_protocol, synced_case
from tests.unit.test_stage_adjudicate import _liver


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


def _reader_seg(case, protocol):
    """A SEG of the task's research copy as the OHIF extension writes it: segments named after the classes."""
    research = case.archive.retrieve_series(case.task.data["study"], case.task.data["series"])
    research.sort(key=lambda ds: case.task.data["sop_instance_uids"].index(str(ds.SOPInstanceUID)))
    return seg_codec.encode(research, _liver(case.task), {"liver": protocol.label_class("liver")},
                            series_description="a read")


def test_a_readers_seg_is_stowed_to_the_given_archive_and_imported_once_into_the_given_label_studio(
        settings, tmp_path):
    protocol = liver_protocol()
    case = synced_case(settings, protocol)
    reader = user_id(case.ls, "dr.a@hospital.org", create_as="dr.a")
    path = tmp_path / "read.dcm"
    _reader_seg(case, protocol).save_as(path)
    stow(case.archive, path)
    assert sum(ds.Modality == "SEG" for series in case.archive.series.values() for ds in series) == 1
    submission = Submission("seg-1", case.task.id, reader, "reads", f"{protocol.id} {protocol.version}")
    adapters = SimpleNamespace(label_studio=case.ls, database=case.database)
    annotation = import_into_task(settings, adapters, submission, path)
    (saved,) = case.task.annotations
    assert (saved["id"], saved["completed_by"]) == (annotation, reader)
    assert ImportedSegs(case.database).get("seg-1")[1] == annotation
    assert import_into_task(settings, adapters, submission, path) == annotation  # once: the table says it is done
    assert len(case.task.annotations) == 1


def test_a_reader_is_registered_in_the_given_label_studio_and_state_and_revoked_there(settings):
    from connectors.database import state_database

    ls, sealed = FakeLabelStudio(), []
    adapters = SimpleNamespace(label_studio=ls, database=state_database(settings))
    credentials = issue_credentials(settings, "Dr.New@Hospital.org", "radiologist",
                                    seal_account=lambda s, user: sealed.append(user), adapters=adapters)
    user = user_id(ls, "dr.new@hospital.org")
    assert credentials["reader"] == f"reader-{user}" and sealed == [user]
    registry = ReaderRegistry(adapters.database)
    assert registry.authenticate(credentials["ohif_token"]).ls_user_id == user
    revoke_reader(settings, "dr.new@hospital.org", seal_account=lambda s, u: sealed.append(u), adapters=adapters)
    assert registry.authenticate(credentials["ohif_token"]) is None and sealed == [user, user]


def test_samples_go_to_the_given_pacs(settings):
    pacs = FakeArchive()
    loaded = load_samples(settings, SampleSizes(ct_slices=4, mr_slices=3), real=False, pacs=pacs)
    assert sorted(s.source for s in loaded) == ["synthetic CT", "synthetic MR"]
    assert {series: len(items) for (_, series), items in pacs.series.items()} == \
        {s.series_uid: s.instances for s in loaded}
