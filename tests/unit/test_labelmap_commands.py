"""The standalone agreement, consensus and SEG conversion commands on real and synthetic data."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom

from connectors.samples import SHARED_CT

REFERENCE = SHARED_CT / "reference_seg.nii.gz"
LABELS = SHARED_CT / "labels.json"


def run(*args):
    return subprocess.run([sys.executable, "-m", "radlabel.cli", *map(str, args)], capture_output=True, text=True)


def test_labelmap_to_seg_and_back_is_exact_on_the_real_ct(tmp_path):
    done = run("seg", "from-labelmap", REFERENCE, "--series", SHARED_CT / "dicom", "--labels", LABELS,
               "--out", tmp_path / "ref.dcm")
    assert done.returncode == 0, done.stderr
    seg = pydicom.dcmread(tmp_path / "ref.dcm")
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    assert len(seg.SegmentSequence) == 31
    liver = next(s for s in seg.SegmentSequence if s.SegmentLabel == "liver")
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    done = run("seg", "to-labelmap", tmp_path / "ref.dcm", "--out", tmp_path / "back.nii.gz")
    assert done.returncode == 0, done.stderr
    done = run("agreement", REFERENCE, tmp_path / "back.nii.gz", "--from-dicom", SHARED_CT / "dicom",
               "--labels", LABELS, "--json")
    result = json.loads(done.stdout)
    assert len(result["classes"]) == 31
    assert all(pair["dice"] == 1.0 and pair["hd95_mm"] == 0.0 for pairs in result["classes"].values() for pair in pairs)


def test_consensus_of_three_readers_and_agreement_against_it(tmp_path):
    truth = np.zeros((40, 40, 12), np.uint8)
    truth[10:30, 12:28, 3:9] = 1
    readers = [np.roll(truth, shift, axis=0) for shift in (-1, 0, 1)]
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    paths = []
    for number, reader in enumerate(readers):
        paths.append(tmp_path / f"r{number}.nii.gz")
        nib.save(nib.Nifti1Image(reader, affine), str(paths[-1]))
    for method in ("majority", "staple"):
        done = run("consensus", *paths, "--method", method, "--out", tmp_path / f"{method}.nii.gz")
        assert done.returncode == 0, done.stderr
        consensus = np.asarray(nib.load(str(tmp_path / f"{method}.nii.gz")).dataobj)
        assert np.array_equal(consensus, truth), method
    done = run("agreement", paths[0], paths[2], "--tolerance-mm", "2", "--json")
    pair = json.loads(done.stdout)["classes"]["1"][0]
    assert pair["hd95_mm"] == 1.6 and 0 < pair["dice"] < 1  # two voxels of 0.8 mm apart


def test_agreement_refuses_maps_on_different_grids_naming_the_difference(tmp_path):
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    cases = {"spacing": np.diag([1.0, 1.0, 2.0, 1.0]), "shifted": np.eye(4) + np.eye(4, k=3) * 0.4,
             "rotated": np.array([[0.866, -0.5, 0, 0], [0.5, 0.866, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])}
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(tmp_path / "a.nii.gz"))
    expected = {"spacing": "voxel size differs", "shifted": "shifted by 0.400 mm", "rotated": "orientation differs"}
    for name, affine in cases.items():
        nib.save(nib.Nifti1Image(labels, affine), str(tmp_path / f"{name}.nii.gz"))
        done = run("agreement", tmp_path / "a.nii.gz", tmp_path / f"{name}.nii.gz")
        assert done.returncode == 2 and expected[name] in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = run("agreement", tmp_path / "a.nii.gz", tmp_path / "missing.nii.gz")
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_agreement_of_maps_of_different_extents_on_one_lattice_is_exact(tmp_path):
    """A map cropped to its labels (as SEGs with empty frames omitted are) is the same map."""
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[2:4, 1:5, 2:5] = 3
    nib.save(nib.Nifti1Image(labels, np.diag([0.8, 0.8, 2.0, 1.0])), str(tmp_path / "full.nii.gz"))
    cropped_affine = np.diag([0.8, 0.8, 2.0, 1.0])
    cropped_affine[:3, 3] = [2 * 0.8, 1 * 0.8, 2 * 2.0]
    nib.save(nib.Nifti1Image(labels[2:4, 1:5, 2:5], cropped_affine), str(tmp_path / "cropped.nii.gz"))
    done = run("agreement", tmp_path / "full.nii.gz", tmp_path / "cropped.nii.gz", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["classes"]["3"][0]["dice"] == 1.0
