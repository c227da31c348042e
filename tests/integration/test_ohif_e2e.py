"""OHIF extension end to end: a reader in headless Chromium against the real stack.

Sign in with a reader token → worklist → open the task in OHIF → apply a preset → paint → submit.
The binary SEG must be in Orthanc, pass dciodvfy, decode with highdicom, and be the reader's
annotation in Label Studio. Also through the real servers: a reader cannot fetch another reader's
task or labels, and a submit while Orthanc is down is kept and delivered once it is back.
Screenshots are kept under the directory printed by the test (pytest's temporary folder).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.readers import add_reader, pseudonym_from_name
from connectors.sync import Syncer
from radlabel import seg as seg_codec
from tests.integration.conftest import protocol_variant, restart, state_rows, synced_lung_case

REPO = Path(__file__).resolve().parents[2]
EXTENSION = REPO / "ohif_extension"
DRIVER = Path(__file__).resolve().parent / "ohif" / "read_task.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _require_browser_tools():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium ({CHROMIUM}: apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install nodejs npm)")
    if not (EXTENSION / "node_modules" / "playwright-core").exists():
        missing.append("playwright-core (run `npm ci` in ohif_extension/)")
    if missing:
        pytest.fail("the OHIF end-to-end test needs " + ", ".join(missing) + ": `make install` sets them up.")


@pytest.fixture(scope="module")
def protocol(settings):
    return protocol_variant(settings, "ct-lung-nodules.yaml", "ohif_e2e_test", "^ohif e2e test$")


@pytest.fixture(scope="module")
def task_id(settings, protocol):
    return synced_lung_case(settings, protocol, 92, "ohif e2e test")[0]


@pytest.fixture(scope="module")
def readers(settings):
    out = {}
    for name in ("a", "b"):
        reader, token = add_reader(settings, f"ohif.e2e.{name}@hospital.org", "radiologist")
        out[name] = (reader, token)
    return out


def api(settings, token, method, path, **kwargs):
    return requests.request(method, f"{settings.url('viewer')}/radlabel/api/{path}",
                            headers={"Authorization": f"Bearer {token}"} | kwargs.pop("headers", {}), timeout=120, **kwargs)


def reader_segs(settings, task, pseudonym):
    orthanc = OrthancDicomWeb.from_settings(settings)
    return [ds for row in orthanc.search_series(task.data["study"], Modality="SEG")
            for ds in orthanc.retrieve_series(task.data["study"], row["0020000E"]["Value"][0])
            if pseudonym_from_name(ds.get("ContentCreatorName", "")) == pseudonym]


def dciodvfy_errors(ds, path: Path) -> list[str]:
    ds.save_as(path, enforce_file_format=True)
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    report = subprocess.run([tool, str(path)], capture_output=True, text=True)
    return [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]


def test_a_reader_reads_in_ohif_and_the_seg_reaches_orthanc_and_label_studio(settings, task_id, readers, ohif_screenshots):
    _require_browser_tools()
    reader, token = readers["a"]
    shots = ohif_screenshots
    print(f"\nOHIF end-to-end screenshots: {shots}")
    token_file = shots / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)  # a file, not an argument: tokens stay out of process listings
    done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(token_file), str(task_id), str(shots)],
                          capture_output=True, text=True, timeout=420,
                          env=os.environ | {"RADLABEL_EXTENSION_DIR": str(EXTENSION), "CHROMIUM": CHROMIUM,
                                            "RADLABEL_PRESET": "mediastinum", "RADLABEL_SEGMENT": "solid_nodule"})
    token_file.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert result.get("status") == "imported", report
    assert len(report["screenshots"]) == 4 and all(Path(p).exists() for p in report["screenshots"])
    # Painted in the mediastinum window: the nodule class must be read in the lung window.
    assert result["viewing"]["out_of_preset"] == [{"class": "solid_nodule", "paint_events": 1, "required": "lung"}]

    ls = client(settings)
    task = ls.tasks.get(id=task_id)
    [seg] = reader_segs(settings, task, reader.pseudonym)
    assert seg.SOPClassUID == seg_codec_binary() and seg.SegmentationType == "BINARY"
    assert str(seg.ContentDescription).startswith("ohif_e2e_test 1.0.0")
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == ["solid_nodule"]
    assert str(seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue) == "27925004"
    comments = json.loads(seg.ImageComments)
    assert comments["task"] == task_id and any(e["type"] == "wl" and e["preset"] == "mediastinum" for e in comments["wl_log"])
    assert dciodvfy_errors(seg, shots / "reader.seg.dcm") == []
    decoded = {s.label: s.mask for s in seg_codec.decode(seg, task.data["sop_instance_uids"])}
    assert decoded["solid_nodule"].sum() > 20

    annotations = [a for a in ls.annotations.list(id=task_id) if a.completed_by == reader.ls_user_id]
    assert len(annotations) == 1 and result["annotation_id"] == annotations[0].id
    assert {l for r in annotations[0].result for l in r["value"].get("brushlabels", [])} == {"solid_nodule"}
    assert state_rows(settings, "SELECT out_of_preset FROM reader_viewing WHERE task_id=? AND reader=?",
                      task_id, reader.ls_user_id)[0][0].count("solid_nodule") == 1
    # A second sync must not import the same SEG again (nor under another user).
    Syncer(settings, load_protocol(settings)).run()
    assert len([a for a in ls.annotations.list(id=task_id)]) == 1


def seg_codec_binary() -> str:
    return "1.2.840.10008.5.1.4.1.1.66.4"


def load_protocol(settings):
    from connectors.projects import load_provisioned

    return load_provisioned(settings, "ohif_e2e_test")


def test_a_reader_cannot_fetch_another_readers_task_or_labels(settings, task_id, readers):
    (a, token_a), (b, token_b) = readers["a"], readers["b"]
    ls = client(settings)
    # Reader b's calibration project: a task for b alone.
    from radlabel.protocol.labelconfig import label_config

    project = ls.projects.create(title="calibration e2e", label_config=label_config(load_protocol(settings)),
                                 description=f"Calibration.\nradlabel-calibration: ohif_e2e_test 1.0.0 {b.ls_user_id}")
    calibration = ls.tasks.create(project=project.id, data=dict(ls.tasks.get(id=task_id).data))
    assert api(settings, token_a, "GET", f"tasks/{calibration.id}").status_code == 404
    assert api(settings, token_b, "GET", f"tasks/{calibration.id}").status_code == 200
    assert calibration.id not in [t["task_id"] for t in api(settings, token_a, "GET", "worklist").json()["tasks"]]
    assert calibration.id in [t["task_id"] for t in api(settings, token_b, "GET", "worklist").json()["tasks"]]
    # Any labels a has made on the shared task stay invisible to b.
    annotation = ls.annotations.create(id=task_id, result=[], completed_by=a.ls_user_id)
    detail = api(settings, token_b, "GET", f"tasks/{task_id}")
    assert detail.status_code == 200 and detail.json()["own_annotations"] == []
    assert str(annotation.id) not in json.dumps(detail.json()["own_annotations"]) and a.pseudonym not in detail.text
    assert api(settings, token_b, "GET", f"tasks/{task_id}/reads").status_code == 403
    assert api(settings, "rlr_forged", "GET", f"tasks/{task_id}").status_code == 401
    ls.annotations.delete(id=annotation.id)
    ls.projects.delete(id=project.id)


def test_a_submit_while_orthanc_is_down_is_kept_and_delivered_when_it_is_back(settings, stack, task_id, readers):
    b, token = readers["b"]
    ls = client(settings)
    task = ls.tasks.get(id=task_id)
    research = OrthancDicomWeb.from_settings(settings).retrieve_series(task.data["study"], task.data["series"])
    by_uid = {str(ds.SOPInstanceUID): ds for ds in research}
    source = [by_uid[uid] for uid in task.data["sop_instance_uids"]]
    mask = __import__("numpy").zeros((len(source), int(task.data["rows"]), int(task.data["columns"])), dtype=bool)
    mask[10:12, 40:60, 40:60] = True
    seg = seg_codec.encode(source, {"lung_field": mask}, load_protocol(settings), series_description="radlabel read",
                           content_creator=b.person_name, content_description="ohif_e2e_test 1.0.0")
    seg.ImageComments = json.dumps({"task": task_id, "wl_log": [{"type": "wl", "preset": "lung", "center": -600,
                                                                 "width": 1500}]})
    body = io.BytesIO()
    seg.save_as(body, enforce_file_format=True)
    orthanc = next(s for s in stack.services if s.name == "orthanc")
    orthanc.stop()
    try:
        reply = api(settings, token, "POST", f"tasks/{task_id}/seg", data=body.getvalue(),
                    headers={"Content-Type": "application/dicom"})
        assert reply.status_code == 202 and reply.json()["status"] == "queued", reply.text
        key = reply.json()["seg_key"]
        assert (settings.home / "outbox" / f"{key}.dcm").exists()
    finally:
        restart(orthanc)
    deadline = time.monotonic() + 90  # the viewer front's retry thread runs every 10 s
    status = None
    while time.monotonic() < deadline:
        status = state_rows(settings, "SELECT status FROM reader_submissions WHERE seg_key=?", key)[0][0]
        if status == "imported":
            break
        time.sleep(1)
    assert status == "imported"
    assert not (settings.home / "outbox" / f"{key}.dcm").exists()
    assert len(reader_segs(settings, task, b.pseudonym)) == 1
    assert [a for a in ls.annotations.list(id=task_id) if a.completed_by == b.ls_user_id]
