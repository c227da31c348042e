"""Issue 20: a reader's assisted liver read in Label Studio's editor behind radlabel's gateway (headless Chromium).

With only what ``radlabel readers add --json`` printed, the reader picks the soft-tissue preset the liver must be read
in, clicks inside the liver with the smart keypoints on one slice, the gateway's 3-D assist (the ML backend,
server-side) lands the liver's brush regions on the other slices, the reader measures a lesion with the ruler in the liver window and submits;
the read reaches radlabel with the liver on its slices, painted in soft_tissue, and the diameter in mm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from connectors.label_studio import client
from radlabel.adjudication.metrics import mask_agreement
from radlabel.adjudication.reads import diameters_mm, read_from_annotation
from tests.chromium import ARTIFACTS
from tests.integration.conftest import protocol_variant

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "editor" / "assist_read.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DESCRIPTION = "editor assist liver test"


def liver_plan(study, screenshot: str | None = None) -> dict:
    """One click of the smart keypoints deep inside the liver on its largest slice, then a ruler across a lesion."""
    from scipy import ndimage

    liver = study.labelmap == 4
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    rows, columns = liver.shape[1:]
    depth = ndimage.distance_transform_edt(liver[k])
    j, i = np.unravel_index(np.argmax(depth), depth.shape)
    lesion = study.lesions[0]
    lk, lj, li = np.round(study.geometry.lps_to_index(lesion.centre_lps)).astype(int)
    r = lesion.radius_mm / study.geometry.spacing[2]
    at = lambda x, y: [float((x + 0.5) * 100 / columns), float((y + 0.5) * 100 / rows)]  # noqa: E731
    ruler = {"preset": "liver", "control": "ruler_liver", "image": "image_liver", "label": "liver_lesion", "slice": int(lk),
             "a": at(li - r, lj), "b": at(li + r, lj)}
    click = {"preset": "soft_tissue", "control": "assist_soft_tissue", "image": "image_soft_tissue", "label": "liver",
             "smart": True, "slice": k, "points": [at(i, j)]}
    return {"steps": [click], "ruler": ruler, "screenshot": screenshot}


def drive(settings, credentials: dict, task_id: int, plan: dict, folder: Path, tmp: Path) -> dict:
    tools = (("Chromium", Path(CHROMIUM).exists()), ("node", shutil.which("node")),
             ("playwright-core (npm ci in ohif_extension/)", (REPO / "ohif_extension" / "node_modules" / "playwright-core").exists()))
    missing = [what for what, ok in tools if not ok]
    if missing:
        pytest.fail("the editor test needs " + ", ".join(missing) + ": `make install` sets them up.")
    secret, plan_file = tmp / "credentials.json", tmp / "plan.json"
    secret.touch(mode=0o600)
    secret.write_text(json.dumps(credentials))  # a file, not an argument: tokens stay out of process listings
    plan_file.write_text(json.dumps(plan))
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(secret), str(task_id), str(plan_file), str(folder)],
                          capture_output=True, text=True, timeout=600,
                          env=os.environ | {"RADLABEL_EXTENSION_DIR": str(REPO / "ohif_extension"), "CHROMIUM": CHROMIUM})
    secret.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def liver_case(settings):
    from connectors.dicomweb import OrthancDicomWeb
    from connectors.sync import Syncer
    from radlabel.phantom import make_ct_study

    protocol = protocol_variant(settings, "ct-liver-lesions.yaml", "editor_assist", f"^{DESCRIPTION}$")
    study = make_ct_study(seed=2020, slices=32, size=128, pixel_spacing=3.0, slice_spacing=2.5, liver_lesions=1)
    for ds in study.datasets:
        ds.SeriesDescription = DESCRIPTION
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    summary = Syncer(settings, protocol).run()
    [done] = [s for s in summary.series if s["status"] == "done"]
    return protocol, done["task_id"], study


@pytest.fixture(scope="module")
def reader():
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "readers", "add", "assist.reader@hospital.org",
                           "--tier", "radiologist", "--json"], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_an_assisted_liver_read_in_label_studios_editor(settings, liver_case, reader, tmp_path):
    protocol, task_id, study = liver_case
    report = drive(settings, reader, task_id, liver_plan(study, "assisted-liver-read.png"),
                   ARTIFACTS / "editor-assist", tmp_path)
    result = report["result"]
    assert "error" not in result, report
    clicked = liver_plan(study)["steps"][0]["slice"]
    assert result["assist"]["status"] == 200 and result["assist"]["regions"] > 5, report
    assert len(set(result["slices"]["mask_soft_tissue/liver"]) - {clicked}) >= 5, report  # on other slices too
    assert result["rulers"] == 1 and result["submit"]["status"] == 201, report
    [saved] = [a for a in client(settings).annotations.list(id=task_id) if a.id == result["submit"]["body"]["annotation_id"]]
    read = read_from_annotation(saved.dict(), protocol, study.labelmap.shape)
    truth = study.labelmap == 4
    assert mask_agreement(read.masks["liver"], truth, study.geometry.spacing, 2.0).dice >= 0.85
    assert read.painted_in["liver"] == {"soft_tissue"}  # the class's required preset, recorded
    assert not read.landmarks and all(not r["from_name"].startswith("assist_") for r in saved.result)
    [measured] = diameters_mm(read, study.geometry.spacing[1:])["liver_lesion"]
    assert measured["slice"] == liver_plan(study)["ruler"]["slice"]
    assert abs(measured["mm"] - 2 * study.lesions[0].radius_mm) <= 2 * study.geometry.spacing[2]  # in mm
