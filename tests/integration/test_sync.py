"""Orthanc -> de-identified research copy -> rendered slices -> Label Studio task, for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.samples import shared_ct_datasets
from connectors.sync import Syncer
from tests.integration.conftest import protocol_variant, state_dump
from radlabel.ingest import burned_in
from radlabel.phantom import FakePatient, make_ct_study
from radlabel.protocol import load_template

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"


@pytest.fixture(scope="module")
def liver(settings):
    # The shipped liver template under its own id (the demo provisions the template itself): the real CT and the
    # burned-in CT are each alone in their linkage class, and this file tests sync, not the maximum, which
    # protocol_variant drops.
    return protocol_variant(settings, "ct-liver-lesions.yaml", "sync_liver")


@pytest.fixture(scope="module")
def stored(settings, liver):
    """A CT with the patient's name burned into its pixels, a CT with missing slices, and the real CT (in the PACS)."""
    orthanc = OrthancDicomWeb.pacs_loader(settings)
    good = make_ct_study(seed=41, slices=30, burned_in=True)
    gappy = make_ct_study(seed=42, slices=30)
    gappy.datasets = gappy.datasets[:10] + gappy.datasets[12:]
    real, _ = shared_ct_datasets()
    for datasets in (good.datasets, gappy.datasets, real):
        assert not orthanc.store(datasets).failed
    return {"good": good, "gappy": gappy, "real": real}


@pytest.fixture(scope="module")
def first_run(settings, liver, stored):
    syncer = Syncer(settings, liver)
    return syncer, syncer.run()


def record_of(summary, syncer, series_uid):
    key = syncer.series_key(series_uid)
    return next(s for s in summary.series if s["series_key"] == key)


def test_series_become_tasks_and_bad_ones_are_quarantined(settings, stored, first_run):
    syncer, summary = first_run
    good = record_of(summary, syncer, stored["good"].series_uid)
    assert good["status"] == "done" and good["frames"] == 30
    codes = {f["code"] for f in good["flags"]}
    assert {"burned_in_text", "burned_in_header", "deidentified"} <= codes
    gappy = record_of(summary, syncer, stored["gappy"].series_uid)
    assert gappy["status"] == "quarantined" and gappy["reasons"] == ["missing_slices"]
    assert gappy["task_id"] is None and gappy["pseudo_series_uid"] is None
    real = record_of(summary, syncer, str(stored["real"][0].SeriesInstanceUID))
    assert real["status"] == "done" and real["frames"] == 20

    task = client(settings).tasks.get(id=good["task_id"])
    assert len(task.data["images"]) == 30 and task.data["series"] == good["pseudo_series_uid"]
    assert task.data["preset"] == "liver" and set(task.data["images_by_preset"]) == {"liver", "soft_tissue"}
    positions = [p[2] for p in task.data["slice_positions_mm"]]
    assert positions == sorted(positions) and len(set(task.data["sop_instance_uids"])) == 30
    # the slices are served, windowed, to whoever holds the signed URL, and to nobody else
    reply = requests.get(task.data["images"][15], timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "image/png"
    assert reply.headers["Access-Control-Allow-Origin"] == settings.url("label_studio")
    tampered = task.data["images"][15].replace("/0015.png", "/0016.png")
    assert requests.get(tampered, timeout=10).status_code == 403

    # the research copy is in Orthanc, de-identified, with the same instance count
    orthanc = OrthancDicomWeb.from_settings(settings)
    copies = orthanc.retrieve_series(good["pseudo_study_uid"], good["pseudo_series_uid"])
    assert len(copies) == 30
    assert copies[0].PatientIdentityRemoved == "YES" and copies[0].PatientID.startswith("RL")
    assert copies[0].BurnedInAnnotation == "NO"


def test_resync_is_idempotent_and_pseudonyms_repeat(settings, liver, stored, first_run):
    syncer, summary = first_run
    ls = client(settings)
    project_id = syncer.project_id()
    tasks_before = len(list(ls.tasks.list(project=project_id)))
    again = Syncer(settings, liver).run()
    assert again.synced == 0 and again.already_done == len(summary.series)
    forced = Syncer(settings, liver).run(force=True)
    assert len(list(ls.tasks.list(project=project_id))) == tasks_before
    before = {s["series_key"]: s["pseudo_series_uid"] for s in summary.series}
    assert {s["series_key"]: s["pseudo_series_uid"] for s in forced.series} == before


def test_no_phi_reaches_label_studio_images_or_logs(settings, stored, first_run):
    syncer, summary = first_run
    phi = FakePatient.from_seed(41).phi_strings() + FakePatient.from_seed(42).phi_strings()
    phi += [stored["good"].study_uid, stored["good"].series_uid, str(stored["good"].datasets[0].SOPInstanceUID),
            str(stored["real"][0].SeriesInstanceUID), str(stored["real"][0].SOPInstanceUID)]
    ls_base = settings.url("label_studio")
    token = settings.secrets()["label_studio_token"]
    export = requests.get(f"{ls_base}/api/projects/{syncer.project_id()}/export?exportType=JSON&download_all_tasks=true",
                          headers={"Authorization": f"Token {token}"}, timeout=60).text
    assert "images" in export
    for value in phi:
        assert value not in export, "PHI in Label Studio's export"
    # the images readers see: no identifying words survive OCR
    good = record_of(summary, syncer, stored["good"].series_uid)
    folder = settings.home / "images" / good["series_key"] / "liver"
    for png in sorted(folder.glob("*.png"))[::10]:
        words = " ".join(box.text for box in burned_in.find_text(np.asarray(Image.open(png))))
        assert not any(part in words for part in phi if len(part) >= 4), f"PHI readable in {png.name}"
    # nor in any file name under images/, nor in our logs or state store
    names = " ".join(str(p) for p in (settings.home / "images").rglob("*"))
    assert not any(value in names for value in phi)
    from radlabel.audit import audit_log

    assert audit_log(settings).verify().ok and any(e["action"] == "sync" for e in audit_log(settings).entries())
    for path in list(settings.logs.glob("*.log")) + [settings.home / "audit.log"]:
        data = path.read_bytes()
        for value in phi:
            assert value.encode() not in data, f"PHI in {path.name}"
    rows = state_dump(settings)
    for value in phi:
        assert value.encode() not in rows, "PHI in the state database"


def bad_series() -> dict[str, list]:
    """One small series per quarantine reason, as a scanner or an export could send them."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage
    from pydicom.uid import generate_uid

    def fresh(seed, slices=10):
        return make_ct_study(seed=seed, slices=slices, size=64, pixel_spacing=4.0).datasets

    series = {}
    d = fresh(70); series["missing_slices"] = d[:4] + d[6:]
    d = fresh(71); d[3].ImagePositionPatient = d[4].ImagePositionPatient; series["duplicate_position"] = d
    d = fresh(72)
    for k, ds in enumerate(d):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], k * 2.5 + (0.7 if k % 2 else 0)]
    series["non_uniform_spacing"] = d
    d = fresh(73); d[2].ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43589]; series["orientation_change"] = d
    d = fresh(74); d[1].PixelSpacing = [3.0, 3.0]; series["size_change"] = d
    d = fresh(75)
    other = generate_uid()
    for ds in d[5:]:
        ds.FrameOfReferenceUID = other
    series["mixed_acquisition"] = d
    d = fresh(76); d[4].PixelData = d[4].PixelData[:100]; series["undecodable_pixels"] = d
    d = fresh(77); del d[0].ImagePositionPatient; series["missing_geometry"] = d
    d = fresh(78); d[0].SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"; d[0].file_meta.MediaStorageSOPClassUID = d[0].SOPClassUID
    series["non_image_sop_class"] = d
    few = fresh(79, slices=4)
    series["too_few_slices"] = [LegacyConvertedEnhancedCTImage(few, series_instance_uid=generate_uid(), series_number=3,
                                                               sop_instance_uid=generate_uid(), instance_number=1)]
    for reason, datasets in series.items():
        for ds in datasets:
            ds.SeriesDescription = f"quarantine {reason}"
    return series


def test_every_quarantine_reason_through_the_real_servers(settings, tmp_path):
    protocol = protocol_variant(settings, "ct-liver-lesions.yaml", "quarantine_test", "^quarantine ", min_slices=8,
                                body_parts=[])
    orthanc = OrthancDicomWeb.pacs_loader(settings)
    series = bad_series()
    for datasets in series.values():
        assert not orthanc.store(datasets).failed
    syncer = Syncer(settings, protocol)
    summary = syncer.run()
    assert summary.quarantined == len(series) and summary.synced == 0
    by_key = {s["series_key"]: s for s in summary.series}
    for reason, datasets in series.items():
        record = by_key[syncer.series_key(str(datasets[0].SeriesInstanceUID))]
        assert reason in record["reasons"], (reason, record["reasons"])
        assert record["task_id"] is None and record["pseudo_series_uid"] is None
        assert all(f["message"] for f in record["flags"])
    assert list(client(settings).tasks.list(project=syncer.project_id())) == []


def test_a_seg_put_in_the_archive_is_never_a_read_until_an_administrator_names_its_reader(settings, liver, stored,
                                                                                         first_run, tmp_path):
    from connectors.readers import ReaderRegistry, label_studio_user
    from radlabel import brush_rle, seg

    syncer, summary = first_run
    good = record_of(summary, syncer, stored["good"].series_uid)
    ls = client(settings)
    task = ls.tasks.get(id=good["task_id"])
    orthanc = OrthancDicomWeb.from_settings(settings)
    research = orthanc.retrieve_series(good["pseudo_study_uid"], good["pseudo_series_uid"])
    by_uid = {str(ds.SOPInstanceUID): ds for ds in research}
    ordered = [by_uid[uid] for uid in task.data["sop_instance_uids"]]
    truth = stored["good"].labelmap  # slices in the same (ascending) order as the task
    masks = {"liver": truth == 4, "liver_lesion": truth == 6}
    email = "seg.importer@hospital.org"
    registry = ReaderRegistry.from_settings(settings)
    registry.issue(email, "radiologist", label_studio_user(settings, email))
    reader = next(r for r in registry.readers() if r.email == email)
    # A SEG that claims to be that reader's, stored behind the readers' API: not counted as theirs
    forged = seg.encode(ordered, masks, liver, series_description="reader SEG", content_creator=reader.person_name)
    assert not orthanc.store([forged]).failed
    result = Syncer(settings, liver).run()
    [seen] = [s for s in result.segs if s["task_id"] == good["task_id"]]
    assert seen["outcome"].startswith("not imported") and seen["annotation_id"] is None
    assert len(ls.annotations.list(id=good["task_id"])) == 0

    # an administrator imports it, naming the reader
    path = tmp_path / "seg.dcm"
    forged.save_as(path, enforce_file_format=True)
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "seg", "import", str(path), "--protocol", liver.id,
                           "--reader", email, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    assert imported["outcome"] == "imported" and imported["reader"] == reader.pseudonym
    annotation = ls.annotations.get(id=imported["annotation_id"])
    assert annotation.completed_by == reader.ls_user_id
    rebuilt = {name: np.zeros_like(mask) for name, mask in masks.items()}
    for region in annotation.result:
        label = region["value"]["brushlabels"][0]
        rebuilt[label][region["item_index"]] |= brush_rle.decode(region["value"]["rle"], 512, 512) > 0
    for name, mask in masks.items():
        assert np.array_equal(rebuilt[name], mask), name
    again = Syncer(settings, liver).run()
    assert [s["outcome"] for s in again.segs if s["task_id"] == good["task_id"]] == ["already imported"]
    assert len(ls.annotations.list(id=good["task_id"])) == 1
    unknown = subprocess.run([sys.executable, "-m", "radlabel.cli", "seg", "import", str(path), "--protocol", liver.id,
                              "--reader", "nobody@hospital.org"], capture_output=True, text=True, timeout=300)
    assert unknown.returncode != 0 and "not a registered reader" in unknown.stderr and "Traceback" not in unknown.stderr


def test_an_interrupted_sync_resumes_without_loss_or_duplicates(settings, tmp_path):
    protocol = protocol_variant(settings, "ct-liver-lesions.yaml", "resume_test", "^resume test$")
    template = tmp_path / "resume.yaml"
    template.write_text(yaml.safe_dump(protocol.model_dump(mode="json"), sort_keys=False))
    orthanc = OrthancDicomWeb.pacs_loader(settings)
    for seed in range(51, 55):
        study = make_ct_study(seed=seed, slices=40)
        for ds in study.datasets:
            ds.SeriesDescription = "resume test"
        assert not orthanc.store(study.datasets).failed

    run = subprocess.Popen([sys.executable, "-m", "radlabel.cli", "sync", str(template)], stderr=subprocess.PIPE,
                           stdout=subprocess.DEVNULL, text=True, env=os.environ.copy(), start_new_session=True)
    for line in run.stderr:  # kill it as soon as the first series is done
        if line.startswith("[1/4]"):
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL

    protocol = load_template(template)
    summary = Syncer(settings, protocol).run()
    # every source series once (a research copy stored just before the kill is never taken for a source)
    assert summary.selected == 4 and summary.synced + summary.already_done == 4
    tasks = list(client(settings).tasks.list(project=Syncer(settings, protocol).project_id(), fields="all"))
    assert len(tasks) == 4 and len({t.data["series"] for t in tasks}) == 4
    assert all(len(t.data["images"]) == 40 for t in tasks)
