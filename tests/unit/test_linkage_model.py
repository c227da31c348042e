"""The linkage signature holds only values that can be matched to the source (radlabel/ingest/release.py)."""

import json

from radlabel.ingest.deid import Deidentifier
from radlabel.ingest.release import linkage_signature, linking_quasi_identifiers, shape_class
from radlabel.phantom import make_ct_study
from radlabel.protocol.enum import DeidentificationOption as Option

KEY = bytes(range(32))


def _signature(deid, seed: int) -> list:
    return json.loads(linkage_signature([deid.deidentify(ds) for ds in make_ct_study(seed=seed, slices=2, size=32).datasets]))


def test_dates_and_times_shifted_by_the_secret_offset_do_not_link():
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    first, second = _signature(deid, 91), _signature(deid, 92)
    assert not {"StudyDate", "StudyTime", "SeriesTime"} & set(first[0])
    assert first == second  # two patients' series of one kind: one class (k = 2)
    copy = deid.deidentify(make_ct_study(seed=91, slices=1, size=32).datasets[0])
    assert copy.StudyTime and "StudyTime" not in linking_quasi_identifiers(copy)


def test_dates_and_times_kept_verbatim_do_link():
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_FULL_DATES])
    first, second = _signature(deid, 91), _signature(deid, 92)
    assert {"StudyDate", "StudyTime"} <= set(first[0]) and first != second


def _copies(deid, seed: int, slices: int = 2) -> list:
    return [deid.deidentify(ds) for ds in make_ct_study(seed=seed, slices=slices, size=32).datasets]


def test_the_shape_is_measured_in_bands_and_the_copies_keep_it_exactly():
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    copies = _copies(deid, 93)
    thickness, spacing = copies[0].SliceThickness, copies[0].PixelSpacing
    assert shape_class(copies) == ["CT", "32x32", "1.5–3 mm", "0+ mm"]
    for copy in copies:  # 2.5 -> 2.4 mm: the same band, the same class
        copy.SliceThickness = "2.4"
    assert linkage_signature(copies) == linkage_signature(_copies(deid, 93))
    for copy in copies:  # 5 mm: another band, another class
        copy.SliceThickness = "5.0"
    assert linkage_signature(copies) != linkage_signature(_copies(deid, 93))
    # scan length in 100 mm bands: 2 and 3 slices of 2.5 mm are one class, 2 and 48 slices are not
    assert linkage_signature(_copies(deid, 93, 3)) == linkage_signature(_copies(deid, 93))
    assert shape_class(_copies(deid, 93, 48))[3] == "100+ mm"
    fresh = _copies(deid, 93)[0]  # the measure groups; the copy itself keeps every value exactly
    assert (fresh.SliceThickness, fresh.PixelSpacing) == (thickness, spacing)


def test_a_matrix_or_modality_of_its_own_is_its_own_class():
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    wide = [deid.deidentify(ds) for ds in make_ct_study(seed=93, slices=2, size=48).datasets]
    assert linkage_signature(wide) != linkage_signature(_copies(deid, 93))


def test_the_scanner_model_and_software_leave_the_measure_with_the_copy():
    # not clinically needed for labelling; with the manufacturer they name a site's scanner: device identity
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    sources = make_ct_study(seed=95, slices=2, size=32).datasets
    other = make_ct_study(seed=96, slices=2, size=32).datasets
    for ds in other:
        ds.ManufacturerModelName, ds.SoftwareVersions = "Another-Model 9", "v9"
    assert linkage_signature([deid.deidentify(ds) for ds in sources]) == \
        linkage_signature([deid.deidentify(ds) for ds in other])
    device = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_DEVICE_IDENTITY])
    names = json.loads(linkage_signature([device.deidentify(ds) for ds in other]))[0]
    assert {"ManufacturerModelName", "SoftwareVersions"} <= set(names)
    assert linkage_signature([device.deidentify(ds) for ds in sources]) != \
        linkage_signature([device.deidentify(ds) for ds in other])
