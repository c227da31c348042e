"""Two readers, consensus and arbitration through the real Label Studio, ending in Orthanc as a valid SEG."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from scipy import ndimage

from connectors.adjudicate import Adjudicator
from connectors.dicomweb import OrthancDicomWeb
from connectors.hooks.app import MAX_ATTEMPTS, SECRET_HEADER
from connectors.label_studio import client
from connectors.sync import Syncer
from tests.integration.conftest import TEMPLATES, protocol_variant, state_rows
from radlabel import seg
from radlabel.adjudication.consensus import staple
from radlabel.brush_rle import mask_regions
from radlabel.phantom import make_ct_study

@pytest.fixture(scope="module")
def protocol(settings):
    return protocol_variant(settings, "ct-lung-nodules.yaml", "adjudication_test", "^adjudication test$")


@pytest.fixture(scope="module")
def tasks(settings, protocol):
    """Two synced series of 24 slices and their known truth."""
    orthanc = OrthancDicomWeb.pacs_loader(settings)
    studies = {}
    for seed in (81, 82):
        study = make_ct_study(seed=seed, slices=24, size=128, pixel_spacing=3.2, lung_nodules=2)
        for ds in study.datasets:
            ds.SeriesDescription = "adjudication test"
        assert not orthanc.store(study.datasets).failed
        studies[seed] = study
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    out = {}
    for seed, study in studies.items():
        record = next(s for s in summary.series if s["series_key"] == syncer.series_key(study.series_uid))
        out[seed] = (record["task_id"], study)
    return out


def reader(ls, name):
    email = f"{name}@readers.radlabel.local"
    found = [u.id for u in ls.users.list() if u.email == email]
    return found[0] if found else ls.users.create(email=email, username=name).id


def annotate(ls, task_id, user, masks):
    from connectors.authorship import post_read
    from radlabel.settings import load_settings

    return post_read(load_settings(), ls, task_id, user, mask_regions(masks), "simulated")  # a vouched simulated read


def wait_final(settings, task_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next(iter(state_rows(settings, "SELECT status, seg_sop_uid, arbitration_task_id FROM adjudications "
                                   "WHERE task_id=?", task_id)), None)
        if row and row[0] in ("final", "arbitration"):
            return row
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} was not adjudicated in {timeout} s")


def final_segs(settings, task):
    orthanc = OrthancDicomWeb.from_settings(settings)
    series = orthanc.search_series(task.data["study"], Modality="SEG")
    return [ds for row in series for ds in orthanc.retrieve_series(task.data["study"], row["0020000E"]["Value"][0])
            if str(ds.get("ContentCreatorName", "")) == "RADLABEL^CONSENSUS"]


def check_seg(settings, ls, task_id, expected, tmp_path):
    task = ls.tasks.get(id=task_id)
    [final] = final_segs(settings, task)
    path = tmp_path / f"final-{task_id}.dcm"
    final.save_as(path, enforce_file_format=True)
    dciodvfy = shutil.which("dciodvfy") or str(Path(__import__("sys").executable).parent / "dciodvfy")
    report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True)
    errors = [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
    assert errors == [], errors
    decoded = {s.label: s.mask for s in seg.decode(final, task.data["sop_instance_uids"])}
    for name, mask in expected.items():
        if mask.any():
            assert np.array_equal(decoded[name], mask), name
    assert "adjudication_test" in final.ImageComments and "reader-" in final.ImageComments
    return final


def test_agreeing_readers_get_consensus_in_label_studio_and_orthanc(settings, protocol, tasks, tmp_path):
    ls = client(settings)
    task_id, study = tasks[81]
    truth = {"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7}
    first = {k: v.copy() for k, v in truth.items()}
    second = {"lung_field": ndimage.binary_erosion(truth["lung_field"], iterations=1) | (truth["lung_field"] & False),
              "solid_nodule": truth["solid_nodule"].copy()}
    second["lung_field"] = truth["lung_field"].copy()
    second["lung_field"][:, :, :2] = False  # a sliver of disagreement
    annotate(ls, task_id, reader(ls, "reader-a"), first)
    annotate(ls, task_id, reader(ls, "reader-b"), second)
    status, seg_uid, _ = wait_final(settings, task_id)  # driven by Label Studio's webhooks
    assert status == "final"
    expected = {name: staple([first[name], second[name]]).consensus for name in truth}
    check_seg(settings, ls, task_id, expected, tmp_path)
    ground_truth = [a for a in ls.annotations.list(id=task_id) if a.ground_truth]
    assert len(ground_truth) == 1


def test_disagreement_goes_to_the_senior_whose_labels_become_final(settings, protocol, tasks, tmp_path):
    ls = client(settings)
    task_id, study = tasks[82]
    truth = {"lung_field": study.labelmap == 3, "solid_nodule": study.labelmap == 7}
    wrong = {"lung_field": truth["lung_field"], "solid_nodule": np.roll(truth["solid_nodule"], 12, axis=2)}
    annotate(ls, task_id, reader(ls, "reader-a"), truth)
    annotate(ls, task_id, reader(ls, "reader-b"), wrong)
    status, _, arbitration_id = wait_final(settings, task_id)
    assert status == "arbitration" and arbitration_id
    arbitration = ls.tasks.get(id=arbitration_id)
    assert arbitration.data["source_task"] == task_id and any("solid_nodule" in r for r in arbitration.data["disagreement"])
    assert len(ls.predictions.list(task=arbitration_id)) == 2  # every reader's labels, to toggle
    senior = {"lung_field": truth["lung_field"], "solid_nodule": truth["solid_nodule"]}
    annotate(ls, arbitration_id, reader(ls, "senior-a"), senior)
    deadline = time.monotonic() + 90
    while wait_final(settings, task_id)[0] != "final" and time.monotonic() < deadline:
        time.sleep(0.5)
    check_seg(settings, ls, task_id, senior, tmp_path)


def test_duplicate_and_out_of_order_webhooks_make_one_final_seg(settings, protocol, tasks):
    ls = client(settings)
    task_id, _ = tasks[81]
    task = ls.tasks.get(id=task_id)
    annotation = ls.annotations.list(id=task_id)[0]
    body = {"action": "ANNOTATION_CREATED", "task": {"id": task_id}, "project": {"id": task.project},
            "annotation": {"id": annotation.id}}
    headers = {SECRET_HEADER: settings.secrets()["webhook_secret"]}
    for action in ("ANNOTATION_UPDATED", "ANNOTATION_CREATED", "ANNOTATION_CREATED"):
        reply = requests.post(settings.url("hooks") + "/webhook", json=body | {"action": action}, headers=headers, timeout=5)
        assert reply.status_code == 202
    outcomes = Adjudicator(settings).reconcile()  # and a reconcile racing the worker
    assert any(o.task_id == task_id and o.status == "already final" for o in outcomes)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if state_rows(settings, "SELECT COUNT(*) FROM events WHERE done=0 AND attempts<?", MAX_ATTEMPTS)[0][0] == 0:
            break
        time.sleep(0.5)
    assert len(final_segs(settings, task)) == 1


def test_disagreement_analytics_name_the_class_and_pair(settings, protocol, tasks):
    from radlabel.adjudication.analytics import disagreement_report

    report = disagreement_report(Adjudicator(settings).decisions(protocol.id))
    assert report["decisions"] >= 2 and report["arbitrated"] >= 1
    assert report["classes"]["solid_nodule"]["failed_pairs"] >= 1
    assert report["classes"]["lung_field"]["mean_dice"] > 0.9
    assert len(report["reader_pairs"]) >= 1


def test_the_backend_learns_from_final_labels_and_predicts_with_the_checkpoint(settings, protocol, tasks):
    from ml_backend.prelabel import ProtocolPrelabeller
    from ml_backend.trainer import Trainer
    from radlabel.protocol.labelconfig import label_config

    learning = protocol.model_copy(update={"ml": {"prelabel": {"lung_field": {"model": "trained"}}}})
    trainer = Trainer(settings, learning)
    volumes, labels, task_ids = trainer.collect()
    assert set(task_ids) >= {tasks[81][0], tasks[82][0]}  # both final: by consensus and by arbitration
    checkpoint = trainer.train(force=True, epochs=3)
    assert checkpoint.name == "v1.pt" and trainer.latest()[1]["tasks"] == task_ids
    assert trainer.train() is None  # nothing new since v1
    ls = client(settings)
    task = ls.tasks.get(id=tasks[81][0])
    prelabeller = ProtocolPrelabeller(settings)
    prelabeller.protocol_for = lambda config: learning
    prediction = prelabeller.predict_one({"id": task.id, "data": task.data}, label_config(learning))
    assert "radlabel-unet-adjudication_test-v1" in prediction.model_version


@pytest.mark.parametrize("fmt", ["nifti", "dicom-seg"])
def test_export_writes_final_labels_with_provenance_and_no_phi(settings, protocol, tasks, tmp_path, fmt):
    import json

    import nibabel as nib

    from connectors.export import export_dataset
    from radlabel.phantom import FakePatient

    result = export_dataset(settings, protocol, tmp_path / "dataset", fmt)
    assert result.cases >= 2 and sum(result.splits.values()) == result.cases
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert manifest["protocol"]["id"] == "adjudication_test" and manifest["labels"]["1"] == "solid_nodule"
    patients = {}
    for case in manifest["cases"]:
        patients.setdefault(case["patient"], set()).add(case["split"])
        assert case["readers"] and case["method"] and case["agreement"]
    assert all(len(splits) == 1 for splits in patients.values())  # no patient in two splits
    by_task = {c["task"]: c for c in manifest["cases"]}
    arbitrated = by_task[tasks[82][0]]
    assert arbitrated["arbitrated_by"] is not None
    if fmt == "nifti":
        label = np.asarray(nib.load(str(tmp_path / "dataset" / arbitrated["files"][1])).dataobj)
        image = nib.load(str(tmp_path / "dataset" / arbitrated["files"][0]))
        study = tasks[82][1]
        assert label.shape == image.shape and int((label == 4).sum()) == int((study.labelmap == 3).sum())
    phi = FakePatient.from_seed(81).phi_strings() + FakePatient.from_seed(82).phi_strings()
    phi += [tasks[81][1].study_uid, tasks[82][1].series_uid]
    for path in (tmp_path / "dataset").rglob("*"):
        assert not any(value in str(path) for value in phi)
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                import gzip
                data = gzip.decompress(data)
            assert not any(value.encode() in data for value in phi), path.name
    again = __import__("subprocess").run([__import__("sys").executable, "-m", "radlabel.cli", "export",
                                          str(TEMPLATES / "ct-lung-nodules.yaml"), "--out", str(tmp_path / "dataset")],
                                         capture_output=True, text=True)
    assert again.returncode == 2 and "is not empty" in again.stderr
