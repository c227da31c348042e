"""SEG import and training export as stages, on in-memory ports: an administrator's SEG becomes the named
reader's verified read once; a final task becomes a NIfTI case with its provenance and no PHI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel
import numpy as np
import pytest

from connectors.authorship import Authorship, post_read
from connectors.export import export_dataset
from connectors.label_studio import user_id
from connectors.readers import ReaderRegistry
from connectors.seg_import import SegImporter
from connectors.sync import Syncer
from radlabel import seg as seg_codec
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from tests.unit.fakes import home_settings, liver_protocol, synced_case
from tests.unit.test_stage_adjudicate import _liver, _reader


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def protocol():
    return liver_protocol()


@pytest.fixture
def case(settings, protocol):
    return synced_case(settings, protocol)


def _foreign_seg(case, protocol):
    """A SEG of the task's research copy as another tool writes it: the liver labelled "Liver"."""
    research = case.archive.retrieve_series(case.task.data["study"], case.task.data["series"])
    research.sort(key=lambda ds: case.task.data["sop_instance_uids"].index(str(ds.SOPInstanceUID)))
    foreign = {"Liver": protocol.label_class("liver").model_copy(update={"name": "Liver"})}
    return seg_codec.encode(research, {"Liver": _liver(case.task)["liver"]}, foreign, series_description="a read")


def test_an_administrators_seg_import_is_the_named_readers_verified_read_once(settings, protocol, case):
    reader = user_id(case.ls, "dr.a@hospital.org", create_as="dr.a")
    ReaderRegistry(case.database).issue("dr.a@hospital.org", "radiologist", reader)
    seg = _foreign_seg(case, protocol)
    case.archive.store([seg])
    reported = Syncer(settings, protocol, adapters=case.ports).run().segs
    assert [s["outcome"].split(":")[0] for s in reported] == ["not imported"]  # not through the readers' API
    importer = SegImporter.for_syncer(Syncer(settings, protocol, adapters=case.ports))
    result = importer.import_file(seg, "dr.a@hospital.org")
    assert (result.outcome, result.task_id, result.skipped_segments) == ("imported", case.task.id, [])
    (annotation,) = case.task.annotations
    assert annotation["completed_by"] == reader and annotation["id"] == result.annotation_id
    assert Authorship(settings, case.ls, case.database).verified(case.task.id, [annotation], protocol.id) == [annotation]
    assert importer.import_file(seg, "reader-%d" % reader).outcome == "already imported"
    assert len(case.task.annotations) == 1
    with pytest.raises(RadlabelError, match="is not a registered reader"):
        importer.import_file(seg, "someone@else.org")


def test_a_final_task_exports_as_a_nifti_case_with_provenance_and_no_phi(settings, protocol, case, tmp_path):
    for n in (1, 2):
        post_read(settings, case.ls, case.task.id, _reader(case.ls, n), mask_regions(_liver(case.task)), "simulated")
    final = case.adjudicator.handle(case.project_id, case.task.id)
    adjudicator = case.adjudicator  # the export reads through the same fakes
    adapters = SimpleNamespace(label_studio=adjudicator.ls, research_archive=adjudicator.orthanc,
                               database=adjudicator.database, adjudications=adjudicator.adjudications)
    result = export_dataset(settings, protocol, tmp_path / "out", adapters=adapters)
    assert result.cases == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (entry,) = manifest["cases"]
    assert (entry["task"], entry["final_seg"]) == (case.task.id, final.seg_sop_uid)
    assert entry["method"].startswith(f"{protocol.id} {protocol.version}") and entry["split"] in ("train", "validation", "test")
    label = np.asarray(nibabel.load(tmp_path / "out" / entry["files"][1]).dataobj)
    assert int((label == 1).sum()) == int(_liver(case.task)["liver"].sum())  # label 1: the liver class
    text = (tmp_path / "out" / "manifest.json").read_text()
    source = case.ports.source_pacs.retrieve_series(*next(iter(case.ports.source_pacs.series)))[0]
    assert str(source.PatientID) not in text and str(source.PatientName) not in text
    with pytest.raises(RadlabelError, match="is not empty"):
        export_dataset(settings, protocol, tmp_path / "out", adapters=adapters)
