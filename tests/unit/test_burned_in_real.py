"""Burned-in text on a real ultrasound frame (pydicom-data's US1_UNCR.dcm, MIT licence, installed by the test
extra): checked by independent means — pixels inside and outside the text regions measured by hand on the
image, and a differently configured OCR (other page segmentation, other scale, plain string output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from radlabel.ingest import burned_in

# Text regions of US1_UNCR.dcm (x0, y0, x1, y1), measured on the image: hospital name and patient lines
# top-left, scan details top-right, the "LYMPH NODE" caption, the thermal/mechanical index line.
TEXT_REGIONS = [(18, 24, 172, 104), (495, 24, 622, 104), (245, 358, 362, 378), (396, 454, 622, 474)]
WORDS = ["BAPTIST", "MED", "CTR", "LYMPH", "NODE", "MSCSKEL", "CINE"]


def _us_path(name: str = "US1_UNCR.dcm") -> str:
    from pydicom.data import get_testdata_file

    return get_testdata_file(name)


def _bright_in_regions(rgb: np.ndarray) -> int:
    grey = rgb.max(axis=-1)
    return sum(int((grey[y0:y1, x0:x1] > 200).sum()) for x0, y0, x1, y1 in TEXT_REGIONS)


def _independent_words(rgb: np.ndarray) -> set[str]:
    import pytesseract

    grey = Image.fromarray(rgb.max(axis=-1).astype(np.uint8))
    big = grey.resize((grey.width * 3, grey.height * 3), Image.LANCZOS)
    text = pytesseract.image_to_string(big, config="--psm 3")
    return {word for word in WORDS if word in text.upper()}


def test_real_ultrasound_text_is_masked_where_it_is_and_nowhere_readable():
    source = pydicom.dcmread(_us_path())
    before = source.pixel_array.copy()
    assert _bright_in_regions(before) > 1000 and len(_independent_words(before)) >= 3  # the check can fail
    copy = pydicom.dcmread(_us_path())
    outcome = burned_in.clean_pixels(copy, "us/US1_UNCR.dcm")
    assert outcome.status == "masked" and outcome.file == "us/US1_UNCR.dcm" and outcome.masked
    after = copy.pixel_array
    assert _bright_in_regions(after) < 0.02 * _bright_in_regions(before)
    assert _independent_words(after) == set()
    inside = np.zeros(after.shape[:2], bool)
    for box in outcome.masked:
        top, left = max(box["top"] - 3, 0), max(box["left"] - 3, 0)  # mask_boxes' margin
        inside[top:box["top"] + box["height"] + 3, left:box["left"] + box["width"] + 3] = True
    assert np.array_equal(after[~inside], before[~inside])  # nothing changed outside the masked boxes
    assert (~inside).mean() > 0.85  # and the masks are text-sized, not the image


@pytest.mark.parametrize("name", ["US1_J2KR.dcm", "US1_J2KI.dcm"])
def test_the_same_frame_in_jpeg_2000_colour_is_masked_too(name):
    """YBR_RCT (lossless) and YBR_ICT (lossy): JPEG 2000's decoder undoes its colour transform, so the frame is
    read and masked as RGB and stored uncompressed as RGB (it was held before: a colour space not checked)."""
    source = pydicom.dcmread(_us_path(name))
    assert source.PhotometricInterpretation in ("YBR_RCT", "YBR_ICT")
    before = source.pixel_array.copy()
    reference = pydicom.dcmread(_us_path()).pixel_array.astype(int)
    assert np.abs(before.astype(int) - reference).mean() < 2  # decoded to the RGB of the uncompressed file
    assert len(_independent_words(before)) >= 3
    outcome = burned_in.clean_pixels(source, f"us/{name}")
    assert outcome.status == "masked" and outcome.masked
    assert source.PhotometricInterpretation == "RGB" and not source.file_meta.TransferSyntaxUID.is_compressed
    after = source.pixel_array
    assert _bright_in_regions(after) < 0.02 * _bright_in_regions(before)
    assert _independent_words(after) == set()


def test_images_that_cannot_be_checked_are_held_with_a_reason():
    copy = pydicom.dcmread(_us_path())
    held = burned_in.clean_pixels(copy, "a.dcm", ocr=False)
    assert held.status == "held" and "OCR" in held.reason
    odd = pydicom.dcmread(_us_path())
    odd.PhotometricInterpretation = "YBR_ICT"  # JPEG 2000's term on uncompressed pixels: meaning unknown
    assert burned_in.clean_pixels(odd, "b.dcm").status == "held"
    attack = pydicom.dcmread(_us_path())
    attack.PhotometricInterpretation = "SMITH^JOHN"  # free text where a term belongs must not be echoed
    outcome = burned_in.clean_pixels(attack, "d.dcm")
    assert outcome.status == "held" and "SMITH" not in json.dumps(outcome.as_dict())
    strict = pydicom.dcmread(_us_path())
    assert burned_in.clean_pixels(strict, "c.dcm", mask=False).status == "held"
    assert np.array_equal(strict.pixel_array, pydicom.dcmread(_us_path()).pixel_array)  # held: untouched


def test_a_ct_with_no_header_evidence_is_not_at_risk():
    from radlabel.phantom import make_ct_study

    ds = make_ct_study(seed=71, slices=1, size=32).datasets[0]
    assert burned_in.clean_pixels(ds, "ct.dcm").status == "not_at_risk"


def _run_deid(in_dir: Path, out_dir: Path, home: Path, path_env: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"RADLABEL_HOME": str(home)}
    if path_env is not None:
        env["PATH"] = path_env
    return subprocess.run([sys.executable, "-m", "radlabel.cli", "deid", str(in_dir), str(out_dir), "--json"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_deid_cli_masks_the_real_ultrasound_and_names_the_input_file(tmp_path):
    (tmp_path / "in" / "us").mkdir(parents=True)
    (tmp_path / "in" / "us" / "scan.dcm").write_bytes(Path(_us_path()).read_bytes())
    done = _run_deid(tmp_path / "in", tmp_path / "out", tmp_path / "home")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    pixels = report["releases"][0]["pixels"]
    assert [p["file"] for p in pixels] == ["us/scan.dcm"] and pixels[0]["status"] == "masked"
    written = list((tmp_path / "out").rglob("*.dcm"))
    assert len(written) == 1
    assert _independent_words(pydicom.dcmread(written[0]).pixel_array) == set()
    assert "BAPTIST" not in done.stdout


def test_deid_cli_holds_what_it_cannot_check_and_writes_the_rest(tmp_path):
    from radlabel.phantom import make_ct_study

    (tmp_path / "in" / "us").mkdir(parents=True)
    (tmp_path / "in" / "us" / "scan.dcm").write_bytes(Path(_us_path()).read_bytes())
    make_ct_study(seed=72, slices=2, size=32).write(tmp_path / "in" / "ct")
    done = _run_deid(tmp_path / "in", tmp_path / "out", tmp_path / "home", path_env="/nonexistent")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(h["file"], "OCR" in h["reason"]) for h in report["held"]] == [("us/scan.dcm", True)]
    assert report["written"] == 2 and len(list((tmp_path / "out").rglob("*.dcm"))) == 2


@pytest.mark.parametrize("max_risk, held", [(None, 0), (0.5, 1)])
def test_linkage_counts_unique_series_and_holds_above_the_maximum(max_risk, held):
    from radlabel.ingest.deid import DeidReport, Deidentifier
    from radlabel.ingest.release import linkage, prepare_series
    from radlabel.phantom import make_ct_study

    deid = Deidentifier(bytes(32))
    studies = [make_ct_study(seed=s, slices=2, size=32) for s in (81, 82, 83)]
    for ds in studies[2].datasets:
        ds.Rows = ds.Columns = 33  # a different shape: unique
    releases = [prepare_series(deid, s.datasets, [f"{i}/{j}" for j in range(2)], DeidReport())
                for i, s in enumerate(studies)]
    report = linkage(releases, max_risk)
    assert report["series"] == 3 and report["unique_series"] == 1
    assert [r.linkage_class_size for r in releases] == [2, 2, 1]
    assert report["held_for_linkage"] == held and releases[2].is_held == bool(held)
    assert "StudyDate" not in report["quasi_identifiers_kept"]  # the Basic Profile empties it


def _head_with_a_face():
    """The MR head phantom with a nose and chin added in front of its lower half (the phantom has none)."""
    from radlabel.phantom import make_mr_study

    study = make_mr_study(seed=3, slices=50, size=128, pixel_spacing=2.0, slice_spacing=4.0)
    for k, ds in enumerate(study.datasets[:22]):  # the lower 22 of 50 slices
        pixels = ds.pixel_array.copy()
        pixels[14:24, 56:72] = pixels.max()  # a nose: 20-40 mm in front of the head, 32 mm wide
        ds.PixelData = pixels.tobytes()
    return study


def _skin(volume: np.ndarray) -> np.ndarray:
    """Skin surface measured independently of the defacer: the boundary voxels of everything above air."""
    from scipy import ndimage

    tissue = volume > 0.05 * volume.max()
    return tissue & ~ndimage.binary_erosion(tissue)


def test_clean_recognizable_visual_features_removes_the_face_and_keeps_the_brain():
    from radlabel.ingest.deid import DeidReport, Deidentifier
    from radlabel.ingest.release import prepare_series
    from radlabel.protocol.enum import DeidentificationOption as Option

    study = _head_with_a_face()
    before = np.stack([ds.pixel_array for ds in study.datasets]).astype(float)
    deid = Deidentifier(bytes(32), [Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES])
    release = prepare_series(deid, study.datasets, [f"{i}" for i in range(50)], DeidReport())
    after = np.stack([copy.pixel_array for _, copy in release.copies]).astype(float)
    assert release.face["defaced"] and not release.held
    # The face as the test defines it, not as the defacer does: the slices with the nose, the front 48 mm of
    # the field (rows run anterior to posterior, 2 mm each): nose, and the front of the head behind it.
    face = (slice(0, 22), slice(0, 24), slice(None))
    assert _skin(before)[face].sum() > 500
    assert _skin(after)[face].sum() < 0.1 * _skin(before)[face].sum()
    brain = (slice(30, 50), slice(None), slice(None))  # above the brow
    assert np.array_equal(after[brain], before[brain])  # the top of the head is untouched
    assert np.array_equal(after[:, 70:, :], before[:, 70:, :])  # and so is the back of the head
    assert all(copy.RecognizableVisualFeatures == "NO" for _, copy in release.copies)
    codes = {item.CodeValue for item in release.copies[0][1].DeidentificationMethodCodeSequence}
    assert "113102" in codes
    plain = prepare_series(Deidentifier(bytes(32)), study.datasets, [f"{i}" for i in range(50)], DeidReport())
    assert "risk" in plain.face and "defaced" not in plain.face  # flagged, not changed, without the option


def test_sync_goes_through_the_same_stage_and_renders_what_it_stores():
    from radlabel.ingest.deid import Deidentifier
    from radlabel.ingest.release import prepare_synced_series
    from radlabel.ingest.series import frame_pixels, frames_of
    from radlabel.phantom import FakePatient, make_ct_study
    from radlabel.protocol.content import Deidentification

    study = make_ct_study(seed=36, slices=2, size=512, burned_in=True)
    frames = [f for ds in study.datasets for f in frames_of(ds)]
    values = {id(f): frame_pixels(f) for f in frames}
    before = {id(f): values[id(f)].copy() for f in frames}
    flags: list[dict] = []
    research, hold = prepare_synced_series(Deidentifier(bytes(32)), study.datasets, frames, values,
                                           Deidentification(), "key123", flags)
    assert not hold
    masked = [f for f in flags if f["code"] == "burned_in_text"]
    assert [f["file"] for f in masked] == ["key123/instance-0001", "key123/instance-0002"]
    assert "burned_in_header" in {f["code"] for f in flags}
    patient_id = FakePatient.from_seed(36).patient_id
    source = study.datasets[0]  # untouched, and the reference read can fail
    assert patient_id in " ".join(b.text for b in burned_in.find_text(
        burned_in.text_view(source, source.pixel_array), 0, 3, 3))
    for frame, copy in zip(frames, research):
        assert not np.array_equal(values[id(frame)], before[id(frame)])  # what Label Studio shows is masked
        assert np.array_equal(values[id(frame)], frame_pixels(frames_of(copy)[0]))  # and equals the copy
        grey = burned_in.text_view(copy, copy.pixel_array)
        assert patient_id not in " ".join(b.text for b in burned_in.find_text(grey, 0, 3, 3))


def test_deid_json_reports_a_user_error_as_json_too(tmp_path):
    done = _run_deid(tmp_path / "nowhere", tmp_path / "out", tmp_path / "home")
    assert done.returncode == 2 and done.stderr.startswith("radlabel: error: ") and done.stderr.count("\n") == 1
    assert "nowhere" in json.loads(done.stdout)["error"] and not (tmp_path / "out").exists()
