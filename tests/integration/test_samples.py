"""Sample studies into the real Orthanc, queried back over QIDO-RS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from connectors.dicomweb import OrthancDicomWeb
from connectors.samples import SampleSizes, load_samples
from radlabel.phantom import make_ct_study


@pytest.fixture(scope="module")
def loaded(settings):
    return load_samples(settings, SampleSizes(ct_slices=30, mr_slices=12))


def test_synthetic_and_real_studies_are_queryable_over_qido(settings, loaded):
    client = OrthancDicomWeb.source_pacs(settings)
    assert {s.source for s in loaded} == {"totalseg-ct-20", "synthetic CT", "synthetic MR"}
    for series in loaded:
        assert series.stored == series.instances
        found = client.search_series(series.study_uid)
        assert [s["0020000E"]["Value"][0] for s in found] == [series.series_uid]
        assert len(client.search_instances(series.study_uid, series.series_uid)) == series.instances
    by_source = {s.source: s for s in loaded}
    assert by_source["synthetic CT"].instances == 30 and by_source["synthetic MR"].modality == "MR"
    assert by_source["totalseg-ct-20"].instances == 20


def test_real_ct_uids_are_repaired_and_its_pixels_decode(settings, loaded):
    series = next(s for s in loaded if s.source == "totalseg-ct-20")
    assert any("SeriesInstanceUID" in note for note in series.notes)
    client = OrthancDicomWeb.source_pacs(settings)
    # as stored (JPEG 2000), decoded here by pylibjpeg-openjpeg
    datasets = client.client.retrieve_series(series.study_uid, series.series_uid,
                                             media_types=(("application/dicom", "*"),))
    assert len(datasets) == 20
    ds = datasets[0]
    assert ds.SOPInstanceUID and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert hu.shape == (512, 512) and hu.min() < -900 and hu.max() > 300  # air and bone


def test_ground_truth_is_kept_beside_the_synthetic_studies(settings, loaded):
    series = next(s for s in loaded if s.source == "synthetic CT")
    truth = json.loads((settings.home / "samples" / series.series_uid / "truth.json").read_text())
    labelmap = np.load(settings.home / "samples" / series.series_uid / "truth_labelmap.npy")
    assert labelmap.shape == tuple(truth["shape"]) == (30, 512, 512)
    assert truth["lesions"] and truth["labels"]["4"]["name"] == "liver"


def test_loading_again_duplicates_nothing(settings, loaded):
    client = OrthancDicomWeb.source_pacs(settings)
    before = len(client.search_studies())
    again = load_samples(settings, SampleSizes(ct_slices=30, mr_slices=12))
    assert [s.series_uid for s in again] == [s.series_uid for s in loaded]
    assert len(client.search_studies()) == before


def test_a_corrupt_file_stores_nothing_and_says_which(settings, loaded, tmp_path):
    client = OrthancDicomWeb.source_pacs(settings)
    before = len(client.search_studies())
    study = make_ct_study(seed=99, slices=3, size=64)
    folder = study.write(tmp_path / "mine")
    victim = sorted(folder.glob("*.dcm"))[1]
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated in the pixel data
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "samples", "load", "--no-synthetic", "--no-real",
                           str(folder)], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 2
    assert str(victim) in done.stderr and "damaged" in done.stderr and "Traceback" not in done.stderr
    assert len(client.search_studies()) == before
    assert client.search_series(study.study_uid) == []
