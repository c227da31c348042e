"""Sync holds what the boundary says to hold, through the real servers: a series too unique on its
quasi-identifiers (linkage k over what the protocol released), and releases a head MR once its face is removed."""

from __future__ import annotations

import io

import numpy as np
import requests
from PIL import Image

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.sync import Syncer
from radlabel.phantom import make_ct_study
from tests.integration.conftest import protocol_variant, state_rows
from tests.unit.test_burned_in_real import _head_with_a_face, _skin

def _linkage_study(settings, seed: int, size: int):
    study = make_ct_study(seed=seed, slices=20, size=size, pixel_spacing=5.0)
    for ds in study.datasets:
        ds.SeriesDescription = "linkage test"
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    return study


def _by_seed(syncer, studies, summary) -> dict:
    keys = {syncer.series_key(study.series_uid): seed for seed, study in studies.items()}
    return {keys[s["series_key"]]: s for s in summary.series if s["series_key"] in keys}


def test_sync_holds_a_series_unique_on_its_quasi_identifiers_until_its_class_grows(settings):
    """Two chest CTs alike on everything the Basic Profile keeps and a third of another shape, at most 1/2;
    then a fourth of the third one's shape."""
    protocol = protocol_variant(settings, "ct-liver-lesions.yaml", "linkage_test", "^linkage test$",
                                overrides={"deidentification": {"options": [], "max_linkage_risk": 0.5}})
    studies = {seed: _linkage_study(settings, seed, 64 if seed != 63 else 80) for seed in (61, 62, 63)}
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    records = _by_seed(syncer, studies, summary)
    assert {seed: r["status"] for seed, r in records.items()} == {61: "done", 62: "done", 63: "held"}
    held = records[63]
    assert held["reasons"] == ["deidentified", "linkage_risk"] and held["task_id"] is None
    message = next(f["message"] for f in held["flags"] if f["code"] == "linkage_risk")
    assert "1/1 is above the protocol's maximum 0.5" in message
    archive = OrthancDicomWeb.from_settings(settings)
    research = {str(row["0020000E"]["Value"][0]) for row in archive.search_series(Modality="CT")}
    assert syncer.deid.uid(studies[63].series_uid) not in research  # nothing of it reached the archive
    assert {syncer.deid.uid(studies[s].series_uid) for s in (61, 62)} <= research
    assert {k: v for k, v in summary.linkage.items() if k != "quasi_identifiers_kept"} == \
        {"series": 2, "unique_series": 0, "max_risk": 0.5, "held_for_linkage": 1}
    # the register keeps keyed digests and attribute names only: no value, de-identified or not
    rows = state_rows(settings, "SELECT signature, quasi_identifiers FROM linkage_signatures WHERE protocol_id=?",
                      "linkage_test")
    assert len(rows) == 3 and all(len(signature) == 64 and int(signature, 16) >= 0 for signature, _ in rows)
    assert not any("RADLABEL" in names or "CHEST" in names for _, names in rows)

    again = syncer.run()
    assert _by_seed(syncer, studies, again)[63]["status"] == "held"  # tried again, not "already done"
    studies[64] = _linkage_study(settings, 64, 80)  # one more of the third one's shape: a class of two
    third = syncer.run()
    records = _by_seed(syncer, studies, third)
    assert records[63]["status"] == records[64]["status"] == "done", third.as_dict()
    assert third.linkage["series"] == 4 and third.linkage["unique_series"] == 0


def test_a_head_mr_is_defaced_and_goes_to_readers_with_no_face_left(settings):
    protocol = protocol_variant(settings, "mr-brain-tumour.yaml", "deface_test", "^deface test$")
    assert protocol.deidentification.face_risk == "deface"
    study = _head_with_a_face()
    for ds in study.datasets:
        ds.SeriesDescription = "deface test"
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    summary = Syncer(settings, protocol).run()
    [record] = [s for s in summary.series if s["status"] != "quarantined"]
    assert record["status"] == "done" and record["task_id"], summary.as_dict()
    assert "defaced" in {f["code"] for f in record["flags"]}

    def by_height(datasets):
        return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))

    before = np.stack([ds.pixel_array for ds in by_height(study.datasets)]).astype(float)
    research = OrthancDicomWeb.from_settings(settings).retrieve_series(record["pseudo_study_uid"],
                                                                       record["pseudo_series_uid"])
    after = np.stack([ds.pixel_array for ds in by_height(research)]).astype(float)
    face = (slice(0, 22), slice(0, 24), slice(None))  # the test's face region (tests/unit/test_burned_in_real.py)
    assert _skin(before)[face].sum() > 500
    assert _skin(after)[face].sum() < 0.1 * _skin(before)[face].sum()  # the research copy has no face
    assert all(ds.RecognizableVisualFeatures == "NO" for ds in research)
    task = client(settings).tasks.get(id=record["task_id"])  # and neither have the slices readers see
    order = np.argsort([position[2] for position in task.data["slice_positions_mm"]])
    shown = np.stack([np.asarray(Image.open(io.BytesIO(requests.get(task.data["images"][i], timeout=10).content)))
                      for i in order]).astype(float)
    assert shown.shape[0] == 50 and _skin(shown)[face].sum() < 0.1 * _skin(before)[face].sum()
    assert _skin(shown)[30:].sum() > 500  # the brain above the brow is still there to read
