"""Every quarantine reason, triggered on a small synthetic series."""

from __future__ import annotations

from pydicom.uid import generate_uid

from radlabel.ingest.validate import Reason, validate_series
from radlabel.phantom import make_ct_study


def series(slices=12):
    return make_ct_study(seed=21, slices=slices, size=64, pixel_spacing=4.0, slice_spacing=2.5).datasets


def reasons(datasets, **kwargs):
    report, _ = validate_series(datasets, **kwargs)
    return report.reasons


def test_a_good_series_passes_and_is_sorted_along_the_normal():
    datasets = series()
    shuffled = datasets[::-1]
    report, frames = validate_series(shuffled)
    assert report.ok and report.slice_spacing_mm == 2.5
    assert [f.instance.InstanceNumber for f in frames] == list(range(1, 13))


def test_missing_slices():
    datasets = series()
    del datasets[5:7]
    report, _ = validate_series(datasets)
    assert report.reasons == [Reason.MISSING_SLICES.value]
    assert "about 2 slice(s) missing" in report.findings[0].message


def test_duplicate_positions():
    datasets = series()
    datasets[3].ImagePositionPatient = datasets[4].ImagePositionPatient
    assert Reason.DUPLICATE_POSITION.value in reasons(datasets)


def test_non_uniform_spacing():
    datasets = series()
    for k, ds in enumerate(datasets):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], k * 2.5 + (0.6 if k % 2 else 0)]
    assert reasons(datasets) == [Reason.NON_UNIFORM_SPACING.value]


def test_orientation_change():
    datasets = series()
    datasets[2].ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43589]
    assert Reason.ORIENTATION_CHANGE.value in reasons(datasets)


def test_size_change():
    datasets = series()
    datasets[1].PixelSpacing = [3.0, 3.0]
    assert Reason.SIZE_CHANGE.value in reasons(datasets)


def test_mixed_acquisitions():
    datasets = series()
    for ds in datasets[6:]:
        ds.FrameOfReferenceUID = generate_uid()
    assert Reason.MIXED_ACQUISITION.value in reasons(datasets)


def test_truncated_or_undecodable_pixels():
    datasets = series()
    datasets[4].PixelData = datasets[4].PixelData[:100]
    report, _ = validate_series(datasets)
    assert report.reasons == [Reason.UNDECODABLE_PIXELS.value]
    assert report.findings[0].message.startswith("1 instance(s) cannot be decoded")


def test_missing_geometry():
    datasets = series()
    del datasets[0].ImagePositionPatient
    assert Reason.MISSING_GEOMETRY.value in reasons(datasets)


def test_non_image_sop_class():
    datasets = series()
    datasets[0].SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # enhanced SR
    assert Reason.NON_IMAGE.value in reasons(datasets)


def test_too_few_slices_for_the_protocol():
    assert reasons(series(4), min_slices=20) == [Reason.TOO_FEW_SLICES.value]


def enhanced(datasets):
    """The same series as one enhanced multi-frame CT (highdicom's legacy conversion)."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    return LegacyConvertedEnhancedCTImage(datasets, series_instance_uid=generate_uid(), series_number=9,
                                          sop_instance_uid=generate_uid(), instance_number=1)


def test_enhanced_multiframe_frames_are_validated_as_slices():
    ds = enhanced(series())
    report, frames = validate_series([ds])
    assert report.ok and report.frames == int(ds.NumberOfFrames) == len(frames) == 12
    assert report.slice_spacing_mm == 2.5
    gappy = series()
    del gappy[4]
    assert validate_series([enhanced(gappy)])[0].reasons == [Reason.MISSING_SLICES.value]
