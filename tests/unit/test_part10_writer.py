"""radlabel's Part 10 writer (``dicom_files.write_part10``) against pydicom's ``dcmwrite``, the reference: byte for
byte on every DICOM file the pydicom package ships (big endian, implicit, deflated, compressed, enhanced, private,
odd ones), our test data and the real CT, as read and once de-identified."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.filewriter import dcmwrite

from radlabel import dicom_files
from radlabel.dicom_files import part10_bytes
from radlabel.ingest.deid import Deidentifier
from radlabel.protocol.enum import DeidentificationOption as Option

DATA = Path(__file__).resolve().parents[1] / "data"


def _readable(paths):
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                reference = io.BytesIO()
                dcmwrite(reference, ds)
        except Exception:  # noqa: BLE001 - pydicom itself cannot read or write it back: no reference to compare
            continue
        yield path


PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"  # installed with pydicom: nothing downloaded
REAL_CT = Path(dicom_files.__file__).parent / "sample_data" / "totalseg-ct-20"
CORPUS = list(_readable(sorted(PYDICOM_FILES.rglob("*.dcm")) + sorted(DATA.rglob("*.dcm"))
                        + sorted(REAL_CT.rglob("*.dcm"))[:3]))


def _reference(ds) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcmwrite(buffer, ds)
    return buffer.getvalue()


def _ours(ds) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return part10_bytes(ds)


def test_the_corpus_is_broad():
    syntaxes = {str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.get("TransferSyntaxUID", ""))
                for path in CORPUS}
    assert len(CORPUS) >= 60
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
            "1.2.840.10008.1.2.5"} <= syntaxes


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: str(path.relative_to(path.parents[1])))
def test_a_file_as_read_is_written_as_pydicom_writes_it(path):
    ds = pydicom.dcmread(path)
    assert _ours(ds) == _reference(ds)


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: str(path.relative_to(path.parents[1])))
def test_a_de_identified_copy_is_written_as_pydicom_writes_it(path):
    deid = Deidentifier(b"test-key-0123456789abcdef", [Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
                                                       Option.RETAIN_SAFE_PRIVATE])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copy = deid.deidentify(pydicom.dcmread(path))
    copy.preamble = b"\x00" * 128
    assert _ours(copy) == _reference(copy)


def test_explicit_little_endian_copies_take_the_raw_path_not_pydicom(monkeypatch):
    path = DATA / "pydicom" / "liver.dcm"
    expected = _reference(pydicom.dcmread(path))  # (pydicom's writer decodes the pixel data element it writes)
    ds = pydicom.dcmread(path)
    assert ds.original_encoding == (False, True)
    written = []
    real = dicom_files._write_raw
    monkeypatch.setattr(dicom_files, "_write_raw",
                        lambda out, element: written.append(element.tag) or real(out, element))
    monkeypatch.setattr("pydicom.filewriter.dcmwrite", lambda *a, **k: pytest.fail("pydicom's dcmwrite was used"))
    assert part10_bytes(ds) == expected
    assert 0x7FE00010 in written and len(written) > 20  # the pixel data and the other elements, straight


def test_the_data_set_and_its_file_meta_are_left_as_they_were():
    ds = pydicom.dcmread(DATA / "pydicom" / "liver.dcm")
    before = {tag: repr(ds.file_meta.get_item(tag)) for tag in ds.file_meta._dict}
    raw_before = sum(ds.get_item(tag).is_raw for tag in ds._dict)
    part10_bytes(ds)
    assert {tag: repr(ds.file_meta.get_item(tag)) for tag in ds.file_meta._dict} == before
    assert sum(ds.get_item(tag).is_raw for tag in ds._dict) == raw_before  # nothing decoded on the way
