"""The linkage signature holds only values that can be matched to the source (radlabel/ingest/release.py)."""

import json

from radlabel.ingest.deid import Deidentifier
from radlabel.ingest.release import linkage_signature, linking_quasi_identifiers
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


def test_the_series_shape_stays_exact():
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    copies = [deid.deidentify(ds) for ds in make_ct_study(seed=93, slices=2, size=32).datasets]
    for copy in copies:
        copy.SliceThickness = "2.4"
    assert linkage_signature(copies) != json.dumps(_signature(deid, 93), separators=(",", ":"))
    assert linkage_signature(copies[:1]) != linkage_signature(copies)  # the instance count is part of it
