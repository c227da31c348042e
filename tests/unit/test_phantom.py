"""The generator's geometry, pixels and headers, checked by reading the files back with pydicom."""

import json

import numpy as np
import pydicom
import pytest

from radlabel.phantom import CT_HU, FakePatient, make_ct_study, make_mr_study, study_digest


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory):
    study = make_ct_study(seed=3, slices=24, size=256, pixel_spacing=1.5, slice_spacing=3.0, noise_hu=0.0)
    folder = study.write(tmp_path_factory.mktemp("ct"))
    files = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    files.sort(key=lambda ds: int(ds.InstanceNumber))
    return study, files, folder


def test_positions_orientation_spacing_read_back(ct_files):
    study, files, _ = ct_files
    assert len(files) == 24
    normal = np.cross(files[0].ImageOrientationPatient[:3], files[0].ImageOrientationPatient[3:])
    along = [float(np.dot(normal, ds.ImagePositionPatient)) for ds in files]
    assert np.diff(along) == pytest.approx(np.full(23, 3.0))
    assert [float(v) for v in files[0].PixelSpacing] == [1.5, 1.5]
    assert [float(v) for v in files[0].ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    # the first pixel of slice k is where the geometry says
    for k in (0, 11, 23):
        assert [float(v) for v in files[k].ImagePositionPatient] == pytest.approx(study.geometry.slice_position(k))
    assert float(files[0].SliceThickness) == 3.0


def test_rescale_gives_hounsfield_units_of_each_tissue(ct_files):
    study, files, _ = ct_files
    volume = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in files])
    for value, hu in CT_HU.items():
        voxels = volume[study.labelmap == value]
        if voxels.size:
            assert np.all(voxels == hu), f"label {value}"
    assert files[0].BitsStored == 12 and files[0].RescaleIntercept == -1024


def test_lesions_sit_where_the_truth_says(ct_files):
    study, files, folder = ct_files
    truth = json.loads((folder / "truth.json").read_text())
    assert len(truth["lesions"]) == 4
    for lesion in study.lesions:
        k, j, i = np.round(study.geometry.lps_to_index(lesion.centre_lps)).astype(int)
        expected = 6 if lesion.label == "liver_lesion" else 7
        assert study.labelmap[k, j, i] == expected
        # the centre voxel, read from the DICOM file, has the lesion's HU
        hu = files[k].pixel_array[j, i] + float(files[k].RescaleIntercept)
        assert hu == CT_HU[expected]
        # its voxels are exactly those whose centres lie within the radius
        kk, jj, ii = np.meshgrid(*(np.arange(n) for n in study.labelmap.shape), indexing="ij")
        points = study.geometry.affine_lps() @ np.stack([ii.ravel(), jj.ravel(), kk.ravel(), np.ones(ii.size)])
        inside = np.linalg.norm(points[:3].T - lesion.centre_lps, axis=1) <= lesion.radius_mm
        assert inside.sum() == lesion.voxels
        assert np.all(study.labelmap.ravel()[inside] == expected)


def test_liver_is_on_the_patients_right_and_lungs_superior(ct_files):
    study, _, _ = ct_files
    liver = np.argwhere(study.labelmap == 4)
    lung = np.argwhere(study.labelmap == 3)
    liver_x = np.mean([study.geometry.index_to_lps(v)[0] for v in liver[::500]])
    assert liver_x < 0  # LPS: negative x is the patient's right
    assert lung[:, 0].mean() > liver[:, 0].mean()  # later slices are superior


def test_headers_carry_fake_phi_and_full_iod_attributes(ct_files):
    _, files, _ = ct_files
    ds = files[0]
    patient = FakePatient.from_seed(3)
    assert str(ds.PatientName) == patient.name and ds.PatientID == patient.patient_id
    for keyword in ("PatientBirthDate", "InstitutionName", "AccessionNumber", "ReferringPhysicianName",
                    "KVP", "ConvolutionKernel", "FrameOfReferenceUID", "Manufacturer", "ImageType"):
        assert ds.get(keyword), keyword
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert len({d.SeriesInstanceUID for d in files}) == 1
    assert len({d.SOPInstanceUID for d in files}) == 24


def test_same_seed_same_study_other_seed_other_study():
    a = make_ct_study(seed=5, slices=4, size=64)
    b = make_ct_study(seed=5, slices=4, size=64)
    c = make_ct_study(seed=6, slices=4, size=64)
    assert study_digest(a) == study_digest(b) and a.series_uid == b.series_uid
    assert study_digest(a) != study_digest(c) and a.series_uid != c.series_uid


def test_other_sizes_make_another_study_never_more_instances_of_the_same_series():
    """Loading samples of another size must not add slices to a series already in the PACS."""
    for make in (make_ct_study, make_mr_study):
        small, large = make(seed=1, slices=3, size=32), make(seed=1, slices=4, size=32)
        assert small.datasets[0].StudyInstanceUID != large.datasets[0].StudyInstanceUID
        assert small.series_uid != large.series_uid
        assert not {ds.SOPInstanceUID for ds in small.datasets} & {ds.SOPInstanceUID for ds in large.datasets}


def test_mr_tumour_subregions_are_nested():
    study = make_mr_study(seed=2, slices=16, size=128, pixel_spacing=2.0, slice_spacing=4.0)
    assert study.datasets[0].SOPClassUID == pydicom.uid.MRImageStorage
    assert study.datasets[0].MagneticFieldStrength == 3
    core, rim, oedema = (np.argwhere(study.labelmap == v) for v in (4, 5, 3))
    assert len(core) and len(rim) and len(oedema)
    # the core lies inside the enhancing rim, which lies inside the oedema
    centre = study.geometry.lps_to_index(study.lesions[0].centre_lps)
    distance = lambda idx: np.linalg.norm((idx - centre) * np.asarray(study.geometry.spacing), axis=1)
    assert distance(core).max() < distance(rim).max() < distance(oedema).max()
