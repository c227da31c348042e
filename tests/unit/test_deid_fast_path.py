"""The de-identification fast path: kept elements of a file stay encoded, copies are stored as they are made."""

from __future__ import annotations

import io
import threading

import pytest
from pydicom import dcmread
from pydicom.filewriter import dcmwrite

from connectors.dicomweb import OrthancDicomWeb, StoreResult
from radlabel.ingest.deid import Deidentifier
from radlabel.phantom import FakePatient, make_ct_study
from radlabel.protocol.enum import DeidentificationOption as Option

KEY = bytes(range(32))
OPTIONS = [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.CLEAN_DESCRIPTORS]


def _as_read_from_a_file(ds):
    ds.preamble = b"\0" * 128
    buffer = io.BytesIO()
    dcmwrite(buffer, ds)
    return dcmread(io.BytesIO(buffer.getvalue()))


def _encoded(ds) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds)
    return buffer.getvalue()


def test_a_file_is_de_identified_exactly_as_in_memory_and_kept_elements_are_not_decoded():
    source = make_ct_study(seed=81, slices=1, size=32).datasets[0]
    source.SeriesDescription = f"abdomen of {FakePatient.from_seed(81).name}"
    deid = Deidentifier(KEY, OPTIONS)
    in_memory = deid.deidentify(source)
    from_file = deid.deidentify(_as_read_from_a_file(source))
    raw = {int(tag) for tag, element in from_file._dict.items() if element.is_raw}
    assert 0x7FE00010 in raw and int(from_file.data_element("PixelSpacing").tag) in raw  # passed through encoded
    # the same decisions, value for value (the phantom made in memory leaves its pixel VR ambiguous)
    assert {k: v for k, v in from_file.to_json_dict().items() if k != "7FE00010"} == \
        {k: v for k, v in in_memory.to_json_dict().items() if k != "7FE00010"}
    assert from_file.PixelData == in_memory.PixelData
    assert _encoded(from_file) == _encoded(in_memory)  # and the same bytes once stored
    text = str(from_file)
    for value in FakePatient.from_seed(81).phi_strings():
        assert value not in text, value


def test_no_raw_element_the_table_does_not_keep_survives():
    source = make_ct_study(seed=82, slices=1, size=32).datasets[0]
    source.StationName, source.DeviceSerialNumber = "CT-ROOM-7", "SN-4711"  # device identity: not kept
    copy = Deidentifier(KEY, OPTIONS).deidentify(_as_read_from_a_file(source))
    assert "StationName" not in copy and "DeviceSerialNumber" not in copy
    assert copy.StudyDate != source.StudyDate and copy.PatientID != source.PatientID


class _Recording(OrthancDicomWeb):
    """Our batching logic with the transport replaced: records what each STOW request would carry."""

    def __init__(self, **kwargs):
        super().__init__("http://archive.invalid", "user", "password", **kwargs)
        self.batches: list[list] = []
        self.made_when_sent: list[int] = []
        self.made = 0
        self.lock = threading.Lock()

    def _store_batch(self, batch):
        with self.lock:
            self.batches.append(batch)
            self.made_when_sent.append(self.made)
        return StoreResult(stored=[str(ds) for ds in batch])


def test_copies_are_sent_as_their_batch_fills_not_after_the_last_is_made():
    client = _Recording(stow_batch=4, stow_workers=2)

    def copies():
        for number in range(10):
            client.made = number + 1
            yield f"instance-{number}"

    result = client.store(copies())
    assert sorted(len(batch) for batch in client.batches) == [2, 4, 4]
    assert result.stored == [f"instance-{number}" for number in range(10)]  # every outcome, in order
    assert min(client.made_when_sent) < 10  # the first batch left while later copies were still being made


def test_a_failing_producer_stops_the_sending_and_raises():
    client = _Recording(stow_batch=2, stow_workers=1)

    def copies():
        yield from ("a", "b", "c")
        raise ValueError("a broken source instance")

    with pytest.raises(ValueError, match="broken source"):
        client.store(copies())
    assert sum(len(batch) for batch in client.batches) <= 2  # the incomplete batch is never sent


def test_what_one_deidentifier_remembers_never_changes_a_later_copy():
    """One Deidentifier works out repeated values once (a series repeats most of them); its copies must equal a
    fresh Deidentifier's whatever came before: other patients, other paired times, other identifying strings."""
    base = make_ct_study(seed=32, slices=1, size=32).datasets[0]
    variants = []
    for patient, institution, day, time in (("P1", "St Mary Hospital", "20200101", "000100"),
                                            ("P2", "Other Clinic", "20200101", "000100"),
                                            ("P1", "St Mary Hospital", "20200101", "235900"),
                                            ("P1", "Other Clinic", "20200101", "235900")):
        ds = base.copy()
        ds.file_meta = base.file_meta.copy()
        ds.PatientID, ds.InstitutionName, ds.StudyDate, ds.StudyTime = patient, institution, day, time
        ds.Manufacturer = "St Mary workshop"  # kept free text: cleaned only where it names the institution
        variants.append(_as_read_from_a_file(ds))
    shared = Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES])
    remembered = [shared.deidentify(ds) for ds in variants]
    fresh = [Deidentifier(KEY, [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]).deidentify(ds) for ds in variants]
    assert [_encoded(ds) for ds in remembered] == [_encoded(ds) for ds in fresh]  # byte for byte
    # and the variants do differ where the remembered values could be wrongly reused
    assert remembered[0].StudyTime != remembered[1].StudyTime  # another patient, another offset
    assert remembered[0].StudyDate != remembered[2].StudyDate  # 23:59 plus the offset's hours is the next day
    assert "Mary" not in remembered[0].Manufacturer and remembered[1].Manufacturer == "St Mary workshop"
