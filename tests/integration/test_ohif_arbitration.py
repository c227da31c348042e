"""Arbitration end to end: two readers disagree, a senior arbitrates in OHIF (headless Chromium), the task goes final.

Two registered readers' reads are posted to Label Studio (as the SDK would); the protocol's thresholds send
the task to arbitration. The senior signs in to the viewer, finds the arbitration task on the worklist,
sees every read as an overlay with the agreement figures, hides and shows each, accepts one and submits
the final SEG. The adjudicator (driven by Label Studio's webhook) must make the task final with a
RADLABEL^CONSENSUS SEG in Orthanc equal to the accepted read. A non-senior gets none of it.
Screenshots go to the OHIF end-to-end screenshot folder (printed).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from connectors.dicomweb import OrthancDicomWeb
from connectors.label_studio import client
from connectors.readers import add_reader, pseudonym_from_name
from connectors.sync import Syncer
from radlabel import seg as seg_codec
from radlabel.brush_rle import mask_regions
from connectors.authorship import post_read
from tests.integration.conftest import protocol_variant, state_rows, synced_lung_case
from tests.integration.test_ohif_e2e import (CHROMIUM, EXTENSION, _require_browser_tools, api, dciodvfy_errors,
                                              unexpected_console_errors)

DRIVER = Path(__file__).resolve().parent / "ohif" / "arbitrate_task.mjs"
PROTOCOL_ID = "ohif_arbitration_test"


@pytest.fixture(scope="module")
def protocol(settings):
    strict = {"method": "staple", "arbiter": "senior",
              "thresholds": {"dice": 0.9, "surface_dice": 0.9, "tolerance_mm": 1.5, "hd95_mm": 5}, "class_thresholds": {}}
    return protocol_variant(settings, "ct-lung-nodules.yaml", PROTOCOL_ID, "^ohif arbitration test$",
                            overrides={"adjudication": strict})


@pytest.fixture(scope="module")
def case(settings, protocol):
    return synced_lung_case(settings, protocol, 93, "ohif arbitration test")


@pytest.fixture(scope="module")
def people(settings):
    return {name: add_reader(settings, f"ohif.arbitration.{name}@hospital.org", tier)
            for name, tier in (("a", "radiologist"), ("b", "radiologist"), ("senior", "senior"))}


def adjudication(settings, task_id, wanted, timeout=120):
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = next(iter(state_rows(settings, "SELECT status, seg_sop_uid, arbitration_task_id FROM adjudications "
                                   "WHERE task_id=?", task_id)), None)
        if row and row[0] in wanted:
            return row
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not reach {wanted} in {timeout} s (last: {row})")


def segs_by(settings, study_uid, creator):
    orthanc = OrthancDicomWeb.from_settings(settings)
    return [ds for row in orthanc.search_series(study_uid, Modality="SEG")
            for ds in orthanc.retrieve_series(study_uid, row["0020000E"]["Value"][0])
            if str(ds.get("ContentCreatorName", "")) == creator or pseudonym_from_name(ds.get("ContentCreatorName")) == creator]


def test_a_senior_arbitrates_in_ohif_and_the_accepted_read_becomes_final(settings, protocol, case, people,
                                                                          ohif_screenshots, tmp_path):
    _require_browser_tools()
    ls = client(settings)
    task_id, study = case
    (a, token_a), (b, token_b), (senior, token_s) = people["a"], people["b"], people["senior"]
    lungs, nodule = study.labelmap == 3, study.labelmap == 7
    assert nodule.any()
    misplaced = np.roll(nodule, 14, axis=2)  # b misplaces the nodule
    # One labelmap per read in the viewer: a voxel has one class, so each read's classes do not overlap.
    reads = {"a": {"lung_field": lungs, "solid_nodule": nodule},
             "b": {"lung_field": lungs & ~misplaced, "solid_nodule": misplaced}}
    for name, reader in (("a", a), ("b", b)):
        post_read(settings, ls, task_id, reader.ls_user_id, mask_regions(reads[name]), "simulated")  # vouched
    status, _, arbitration_id = adjudication(settings, task_id, {"arbitration", "final"})
    assert status == "arbitration" and arbitration_id, "the disagreement did not go to arbitration"

    # Seniors only: a radiologist neither lists, opens nor gets the reads of the arbitration task.
    assert arbitration_id not in [t["task_id"] for t in api(settings, token_a, "GET", "worklist").json()["tasks"]]
    assert api(settings, token_a, "GET", f"tasks/{arbitration_id}").status_code in (403, 404)
    reply = api(settings, token_b, "GET", f"tasks/{arbitration_id}/reads")
    assert reply.status_code in (403, 404) and a.pseudonym not in reply.text and "classes" not in reply.text
    detail = api(settings, token_s, "GET", f"tasks/{arbitration_id}").json()
    by_reader = {r["reader"]: r["read"] for r in detail["arbitration"]["reads"]}
    assert set(by_reader) == {a.pseudonym, b.pseudonym}
    accept = by_reader[a.pseudonym]

    shots = ohif_screenshots
    print(f"\nOHIF arbitration screenshots: {shots}")
    token_file = shots / "arbitration-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token_s)  # a file, not an argument: tokens stay out of process listings
    try:
        done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(token_file), str(arbitration_id),
                               str(shots), str(accept)], capture_output=True, text=True, timeout=480,
                              env=os.environ | {"RADLABEL_EXTENSION_DIR": str(EXTENSION), "CHROMIUM": CHROMIUM})
    finally:
        token_file.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result, seen = report["result"], report["seen"]
    assert result.get("status") == "imported", report
    assert all(Path(p).exists() for p in report["screenshots"]) and len(report["screenshots"]) == 6
    assert report["error_toasts"] == [] and unexpected_console_errors(report) == []

    # What the senior saw: the task on the worklist, both reads with their figures, toggleable overlays.
    assert "arbitration" in seen["worklist"]
    assert a.pseudonym in seen["panel"] and b.pseudonym in seen["panel"] and "Dice vs consensus" in seen["panel"]
    nodule_rows = [row for row in seen["agreement"] if row.startswith("solid_nodule:")]
    assert nodule_rows and all("Dice" in row and "surface Dice" in row for row in nodule_rows)
    ohif = json.loads((settings.home / "protocols" / f"{PROTOCOL_ID}.json").read_text())
    number = {s["name"]: str(s["segmentNumber"]) for s in ohif["segments"]}
    for name, n in (("a", by_reader[a.pseudonym]), ("b", by_reader[b.pseudonym])):
        overlay = seen["opened"]["overlays"][str(n)]
        assert overlay["visible"] is True
        assert overlay["voxels"] == {number[c]: int(m.sum()) for c, m in reads[name].items() if m.any()}, name
    assert [(t["hidden"], t["shown"], t["pressedHidden"], t["pressedShown"]) for t in seen["toggles"]] == \
        [(False, True, "false", "true")] * 2
    accepted = seen["accepted"]
    assert accepted["own"] == seen["opened"]["overlays"][str(accept)]["voxels"]  # a's read is now the senior's
    assert accepted["active"] == accepted["ownId"]  # and the brush edits the senior's own segmentation
    assert all(o["visible"] is False for o in accepted["overlays"].values())
    assert a.pseudonym in seen["acceptStatus"]

    # Final: decided by the adjudicator from the senior's annotation, stored as RADLABEL^CONSENSUS.
    status, seg_uid, _ = adjudication(settings, task_id, {"final"})
    assert status == "final" and seg_uid
    decision = json.loads(state_rows(settings, "SELECT decision FROM adjudications WHERE task_id=?", task_id)[0][0])
    assert decision["arbitrated_by"] == senior.ls_user_id
    annotations = ls.annotations.list(id=arbitration_id)
    assert [x.completed_by for x in annotations] == [senior.ls_user_id] and result["annotation_id"] == annotations[0].id
    task = ls.tasks.get(id=task_id)
    [final] = segs_by(settings, task.data["study"], "RADLABEL^CONSENSUS")
    assert str(final.SOPInstanceUID) == seg_uid and "senior_arbitration" in str(final.ContentDescription)
    assert dciodvfy_errors(final, tmp_path / "final.dcm") == []
    decoded = {s.label: s.mask for s in seg_codec.decode(final, task.data["sop_instance_uids"])}
    # The senior's own SEG (as the viewer made it) is the accepted read too, and a valid one.
    [senior_seg] = segs_by(settings, task.data["study"], senior.pseudonym)
    assert str(senior_seg.ContentCreatorName) == senior.person_name
    assert dciodvfy_errors(senior_seg, tmp_path / "senior.dcm") == []
    sent = {s.label: s.mask for s in seg_codec.decode(senior_seg, task.data["sop_instance_uids"])}
    assert {c: int(m.sum()) for c, m in sent.items() if m.any()} == {c: int(m.sum()) for c, m in reads["a"].items() if m.any()}
    assert {c for c, m in decoded.items() if m.any()} == {c for c, m in reads["a"].items() if m.any()}
    for name, mask in reads["a"].items():
        assert np.array_equal(decoded[name], mask), f"the final {name} is not the accepted read"
    assert json.loads(senior_seg.ImageComments)["task"] == arbitration_id
    # The senior's SEG is not imported again as a read of the source task by a later sync.
    Syncer(settings, protocol).run()
    assert {x.completed_by for x in ls.annotations.list(id=task_id) if not x.ground_truth} == {a.ls_user_id, b.ls_user_id}
