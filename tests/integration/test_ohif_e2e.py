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
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.readers import ReaderRegistry, add_reader, pseudonym_from_name
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


# Console errors an end-to-end read may show, each for a reason outside radlabel's control. Everything else fails.
ALLOWED_CONSOLE_ERRORS = {
    # Chromium logs every 4xx answer: a refused token's 401 is what the test asked for (the panel says why).
    "refused token": re.compile(r"^Failed to load resource: the server responded with a status of 401"),
}


def unexpected_console_errors(report: dict, allowed: tuple[str, ...] = ()) -> list[str]:
    return [e for e in report["console_errors"] if not any(ALLOWED_CONSOLE_ERRORS[name].search(e) for name in allowed)]


def drive_reader(settings, shots, token, task_id, bad_token=None, **env) -> dict:
    """One reader in headless Chromium (ohif/read_task.mjs); its JSON report. Tokens travel in 0600 files."""
    _require_browser_tools()
    files = {}
    for name, value in (("token", token), ("bad-token", bad_token)):
        if value:
            files[name] = shots / f"{name}-{task_id}"
            files[name].touch(mode=0o600)
            files[name].write_text(value)  # a file, not an argument: tokens stay out of process listings
    extra = {"RADLABEL_BAD_TOKEN_FILE": str(files["bad-token"])} if bad_token else {}
    try:
        done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(files["token"]), str(task_id), str(shots)],
                              capture_output=True, text=True, timeout=540,
                              env=os.environ | {"RADLABEL_EXTENSION_DIR": str(EXTENSION), "CHROMIUM": CHROMIUM} | extra | env)
    finally:
        for path in files.values():
            path.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def audit_entries(settings, action: str) -> list[dict]:
    return [e for e in map(json.loads, (settings.home / "audit.log").read_text().splitlines()) if e["action"] == action]


def assert_opened_in_default_preset(report: dict) -> None:
    """The task opened in the protocol's default preset (lung), kept after the viewer settled, and shown; nothing
    counted as painted before the reader painted."""
    opened = report["seen"]["opened"]
    assert opened["window"] == {"center": -600, "width": 1500}, opened
    assert [e["type"] for e in opened["events"]] == ["wl"] and opened["events"][0]["preset"] == "lung"
    assert opened["viewing"].startswith("W/L: lung (C -600 / W 1500) · slice ") and "(1 = most inferior)" in opened["viewing"]
    assert opened["warning"] is None and opened["flags"] == []


def test_a_reader_reads_in_ohif_and_the_seg_reaches_orthanc_and_label_studio(settings, task_id, readers, ohif_screenshots):
    reader, token = readers["a"]
    print(f"\nOHIF end-to-end screenshots: {ohif_screenshots}")
    report = drive_reader(settings, ohif_screenshots, token, task_id, RADLABEL_PRESET="mediastinum",
                          RADLABEL_SEGMENT="solid_nodule")
    result = report["result"]
    assert result.get("status") == "imported", report
    assert len(report["screenshots"]) == 4 and all(Path(p).exists() for p in report["screenshots"])
    assert_opened_in_default_preset(report)
    # Painted in the mediastinum window: the nodule class must be read in the lung window. Flagged at once,
    # in the submit answer and in the audit trail.
    assert "solid_nodule" in report["seen"]["painted"]["warning"]
    assert result["viewing"]["out_of_preset"] == [{"class": "solid_nodule", "paint_events": 1, "required": "lung"}]
    assert [e["objects"]["out_of_preset"] for e in audit_entries(settings, "reader_submit")
            if e["objects"].get("seg") == result["seg_key"]] == [["solid_nodule"]]
    # No error toast after the successful submit, no console error.
    assert report["error_toasts"] == [] and report["seen"]["submitStatus"].startswith("Submitted: stored")
    assert unexpected_console_errors(report) == []

    ls = client(settings)
    task = ls.tasks.get(id=task_id)
    [seg] = reader_segs(settings, task, reader.pseudonym)
    assert seg.SOPClassUID == seg_codec_binary() and seg.SegmentationType == "BINARY"
    assert str(seg.ContentDescription).startswith("ohif_e2e_test 1.0.0")
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == ["solid_nodule"]
    assert str(seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue) == "27925004"
    comments = json.loads(seg.ImageComments)
    assert comments["task"] == task_id and any(e["type"] == "wl" and e["preset"] == "mediastinum" for e in comments["wl_log"])
    assert dciodvfy_errors(seg, ohif_screenshots / "reader.seg.dcm") == []
    decoded = {s.label: s.mask for s in seg_codec.decode(seg, task.data["sop_instance_uids"])}
    assert decoded["solid_nodule"].sum() > 20

    annotations = [a for a in ls.annotations.list(id=task_id) if a.completed_by == reader.ls_user_id]
    assert len(annotations) == 1 and result["annotation_id"] == annotations[0].id
    assert {l for r in annotations[0].result for l in r["value"].get("brushlabels", [])} == {"solid_nodule"}
    # Reading time as Label Studio's editor records it (lead_time on the annotation: the QA time figures read it).
    [(lead, active)] = state_rows(settings, "SELECT lead_time_s, active_time_s FROM reader_timing WHERE task_id=? AND "
                                            "reader=?", task_id, reader.ls_user_id)
    assert annotations[0].lead_time == pytest.approx(lead) and 5 < lead < 540 and 0 < active <= lead
    assert lead == pytest.approx(comments["timing"]["lead_time_s"])
    assert state_rows(settings, "SELECT out_of_preset FROM reader_viewing WHERE task_id=? AND reader=?",
                      task_id, reader.ls_user_id)[0][0].count("solid_nodule") == 1
    # A second sync must not import the same SEG again (nor under another user).
    Syncer(settings, load_protocol(settings)).run()
    assert len([a for a in ls.annotations.list(id=task_id)]) == 1


def test_a_compliant_read_with_ohifs_own_tools_carries_no_flag(settings, ohif_screenshots):
    """The careful reader: looks in another window first, paints the nodule in its required lung preset, uses OHIF's
    sphere brush and labelmap interpolation (in reach beside the radlabel panel, open or collapsed): no flag anywhere.
    A revoked token tried first is told it was revoked, apart from the sign-in prompt."""
    protocol = protocol_variant(settings, "ct-lung-nodules.yaml", "ohif_e2e_careful", "^ohif e2e careful$")
    task, _ = synced_lung_case(settings, protocol, 94, "ohif e2e careful")
    reader, token = add_reader(settings, "ohif.e2e.careful@hospital.org", "radiologist")
    _, revoked = add_reader(settings, "ohif.e2e.revoked@hospital.org", "radiologist")
    ReaderRegistry.from_settings(settings).revoke("ohif.e2e.revoked@hospital.org")
    report = drive_reader(settings, ohif_screenshots, token, task, bad_token=revoked, RADLABEL_DETOUR="mediastinum",
                          RADLABEL_PRESET="lung", RADLABEL_SEGMENT="solid_nodule", RADLABEL_TOOLS="1")
    result, seen = report["result"], report["seen"]
    assert result.get("status") == "imported", report
    assert seen["tokenProblem"].startswith("Your reader token was not accepted. This reader token was revoked")
    assert "Sign in with your reader token" in seen["signInAfterProblem"]
    assert_opened_in_default_preset(report)
    # OHIF's segmentation controls are on top at their own place, with the radlabel panel open and collapsed; the
    # collapsed panel still says which window is in effect.
    assert seen["reach"]["expanded"] == seen["reach"]["collapsed"] == {
        "Brush-btn": True, "Eraser-btn": True, "Threshold-btn": True, "InterpolateLabelmap-btn": True,
        "brush-radius": True, "data-row": True}
    assert seen["reach"]["collapsedViewing"].startswith("W/L: lung")
    assert seen["sphereSlices"] >= 3  # the sphere brush painted across slices
    assert seen["interpolation"]["before"][1:4] == [0, 0, 0] and all(seen["interpolation"]["after"])
    # Every stroke in the lung window: no flag in the viewer, the submit answer, the viewing record or the audit trail.
    paints = [e for e in seen["painted"]["events"] if e["type"] == "paint"]
    assert len(paints) >= 4 and {e["preset"] for e in paints} == {"lung"}
    assert seen["painted"]["warning"] is None
    assert result["viewing"]["out_of_preset"] == [] and result["viewing"]["presets_used"] == ["lung", "mediastinum"]
    assert state_rows(settings, "SELECT out_of_preset FROM reader_viewing WHERE task_id=?", task) == [("[]",)]
    [entry] = [e for e in audit_entries(settings, "reader_submit") if e["objects"].get("seg") == result["seg_key"]]
    assert entry["objects"]["out_of_preset"] == [] and entry["objects"]["lead_time_s"] > 0
    assert report["error_toasts"] == []
    assert unexpected_console_errors(report, ("refused token",)) == []
    annotation = next(a for a in client(settings).annotations.list(id=task) if a.completed_by == reader.ls_user_id)
    assert annotation.lead_time and annotation.lead_time > 0


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
