"""Reading DICOM from disk: damaged files named, blank UIDs repaired explicitly."""

import pytest

from connectors.samples import SHARED_CT
from radlabel.dicom_files import dicom_paths, read_dicom_files, repair_missing_uids
from radlabel.errors import RadlabelError
from radlabel.phantom import make_ct_study


def test_the_shared_real_ct_gets_its_blank_uids_repaired_repeatably():
    first = read_dicom_files([SHARED_CT / "dicom"])
    assert all(not ds.SeriesInstanceUID for ds in first)
    repairs = {r.attribute: r.count for r in repair_missing_uids(first)}
    assert repairs["SOPInstanceUID"] == 20 and repairs["StudyInstanceUID"] == 20 and repairs["SeriesInstanceUID"] == 20
    assert len({ds.SeriesInstanceUID for ds in first}) == 1
    assert all(ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID for ds in first)
    second = read_dicom_files([SHARED_CT / "dicom"])
    repair_missing_uids(second)
    assert second[0].SeriesInstanceUID == first[0].SeriesInstanceUID  # same UIDs on every load


def test_an_instance_with_no_uid_anywhere_is_refused():
    datasets = read_dicom_files([SHARED_CT / "dicom"])[:2]
    datasets[1].file_meta.MediaStorageSOPInstanceUID = ""
    with pytest.raises(RadlabelError, match="cannot be identified"):
        repair_missing_uids(datasets)


@pytest.fixture
def series_folder(tmp_path):
    return make_ct_study(seed=4, slices=3, size=32).write(tmp_path / "series")


def test_truncated_and_foreign_files_are_named(series_folder):
    files, skipped = dicom_paths([series_folder])
    assert len(files) == 3 and {p.name for p in skipped} == {"truth.json", "truth_labelmap.npy"}
    files[0].write_bytes(files[0].read_bytes()[:-100])
    with pytest.raises(RadlabelError, match=f"{files[0]} is a damaged DICOM file"):
        read_dicom_files([series_folder])
    with pytest.raises(RadlabelError, match="truth.json is not a DICOM file"):
        read_dicom_files([series_folder / "truth.json"])
    with pytest.raises(RadlabelError, match="does not exist"):
        read_dicom_files([series_folder / "nope"])


def test_truncated_jpeg2000_is_caught(tmp_path):
    source = sorted((SHARED_CT / "dicom").iterdir())[0]
    broken = tmp_path / "broken.dcm"
    for cut, reason in ((3000, "without pixel data"), (len(source.read_bytes()) - 5000, "cut short")):
        broken.write_bytes(source.read_bytes()[:cut])
        with pytest.raises(RadlabelError, match=f"damaged DICOM file .*{reason}"):
            read_dicom_files([broken])
