"""Reading DICOM files from disk, with errors that name the file; writing data sets as DICOM files (Part 10).

Also the explicit repair of exports that left Type 1 UIDs blank (the shared
real CT is one): SOP UIDs come from the file meta, study and series UIDs are
minted deterministically from the instances, and every repair is reported.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pydicom
from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.tag import Tag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32  # length in 4 bytes after 2 reserved (PS3.5 7.1.2)
from pydicom.uid import generate_uid

from radlabel.errors import RadlabelError


@dataclass
class Repair:
    attribute: str
    count: int
    how: str


def has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError as exc:
        raise RadlabelError(f"{path} cannot be read ({exc.strerror}): check its permissions or remove it.") from None


def dicom_paths(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(files to read, files skipped): files named, plus the DICOM files under folders named.

    Inside a folder, files without the DICM preamble (README, DICOMDIR's
    neighbours, JSON...) are skipped; a file named explicitly is always read.
    """
    found: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                (found if has_dicom_preamble(candidate) else skipped).append(candidate)
        elif path.is_file():
            found.append(path)
        else:
            raise RadlabelError(f"{path} does not exist: give DICOM files or folders that hold them.")
    return found, skipped


# A value quoted in an exception's message ('DOE^JANE', "O'HARA"): it may come from a patient's header.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def safe_reason(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message for a user, with quoted values blanked (no PHI)."""
    text = (str(exc).splitlines() or [""])[0]
    return _QUOTED.sub("'…'", text)[:limit] or exc.__class__.__name__


def _cut_short(ds: Dataset, source: Path | bytes) -> str | None:
    """pydicom stops quietly where a file ends early: find a value shorter than its stated length, or the
    first bytes of an element header left at the end of the file (as distinct from zero padding).
    Looks at the raw elements, so call it before any value is read."""
    if not [tag for tag in ds.keys() if tag != 0x00080005]:  # Specific Character Set is read eagerly
        return "no data elements after the file meta: the file ends early"
    end = None
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.length == 0xFFFFFFFF or raw.value is None:
            end = None
            continue
        if len(raw.value) < raw.length:
            return f"element {Tag(tag)} holds {len(raw.value)} of its {raw.length} bytes: the file ends early"
        end = raw.value_tell + raw.length
    if end is not None:
        if isinstance(source, bytes):
            rest = source[end:end + 12]
        else:
            with open(source, "rb") as handle:
                handle.seek(end)
                rest = handle.read(12)
        if 0 < len(rest) < 12 and rest.strip(b"\0"):
            return "the file ends inside an element header"
    return None


def _parse_all(ds: Dataset) -> None:
    """pydicom converts element values on first use: convert every one now, so that a damaged element
    fails here, naming the file, and not later in whichever code touches it first."""
    for part in (getattr(ds, "file_meta", None), ds):
        if part is not None:
            for _ in part.iterall():
                pass


# What reading a damaged file raises, besides InvalidDicomError: NotImplementedError for an unknown VR,
# struct.error for a header cut inside a tag or length, BytesLengthException for a value that does not
# fit its VR (the rest from pydicom's value conversions and from check_read).
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError,
               NotImplementedError, struct.error, BytesLengthException)


def check_read(ds: Dataset, source: Path | bytes) -> None:
    """Raise ValueError (or one of READ_ERRORS) where a data set that pydicom read without complaint is
    damaged: cut short, values that do not parse, pixel data shorter than the header promises.
    ``source`` is the file or the bytes it was read from; call this before any value is used."""
    with warnings.catch_warnings():
        # pydicom's warnings about odd values quote the values (a patient's name, say): not for the terminal.
        warnings.simplefilter("ignore")
        cut_short = _cut_short(ds, source)
        _parse_all(ds)
    if "PixelData" in ds:
        _check_pixel_data_length(ds)
    elif "Rows" in ds:
        raise ValueError("an image without pixel data: the file ends early")
    if cut_short:
        raise ValueError(cut_short)


def read_dicom(path: Path) -> Dataset:
    """Read one Part 10 file, pixel data included, or fail naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # see check_read
            # pydicom only warns when undefined-length data (encapsulated pixels) runs off the end.
            warnings.filterwarnings("error", message="End of file reached before delimiter")
            ds = pydicom.dcmread(path)
        check_read(ds, path)
        return ds
    except InvalidDicomError:
        raise RadlabelError(f"{path} is not a DICOM file (no DICM preamble): remove it or give the right file.") from None
    except UserWarning:
        raise RadlabelError(f"{path} is a damaged DICOM file (encapsulated pixel data cut short): "
                            "replace it with an intact copy.") from None
    except READ_ERRORS as exc:
        raise RadlabelError(f"{path} is a damaged DICOM file ({safe_reason(exc)}): "
                            "replace it with an intact copy.") from None


def _check_pixel_data_length(ds: Dataset) -> None:
    """pydicom reads a truncated file without complaint: compare with what the header promises."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    data = ds.PixelData
    if syntax is not None and syntax.is_encapsulated:
        # pydicom's generate_fragments accepts a short last item, so walk the items here.
        offset, items = 0, 0
        while offset + 8 <= len(data):
            tag, length = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
            if tag == b"\xfe\xff\xdd\xe0":
                break
            if tag != b"\xfe\xff\x00\xe0" or offset + 8 + length > len(data):
                raise ValueError(f"encapsulated pixel data item {items} is cut short")
            offset, items = offset + 8 + length, items + 1
        if items < 2:
            raise ValueError("encapsulated pixel data holds no fragment")
        return
    sizes = (int(ds.Rows), int(ds.Columns), int(ds.get("SamplesPerPixel", 1)), int(ds.get("NumberOfFrames", 1) or 1),
             int(ds.BitsAllocated))
    if min(sizes) < 1:
        raise ValueError("Rows, Columns, SamplesPerPixel, NumberOfFrames and BitsAllocated must be positive")
    expected = (sizes[0] * sizes[1] * sizes[2] * sizes[3] * sizes[4] + 7) // 8
    if len(data) < expected:
        raise ValueError(f"pixel data holds {len(data)} bytes where Rows x Columns x frames need {expected}")


def read_dicom_files(paths: Iterable[Path]) -> list[Dataset]:
    """Read every file first, so that one bad file stops the whole batch before anything is stored."""
    files, _ = dicom_paths(paths)
    if not files:
        raise RadlabelError("no DICOM files found in the paths given: give DICOM files or folders that hold them.")
    return [read_dicom(path) for path in files]


def repair_missing_uids(datasets: list[Dataset]) -> list[Repair]:
    """Fill blank SOP/Study/Series UIDs of one series in place; report what was done.

    Refuses (RadlabelError) when a SOP Instance UID is blank in both the
    dataset and the file meta: such an instance cannot be identified.
    """
    repairs: list[Repair] = []
    for attribute, meta_attribute in (("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
                                      ("SOPClassUID", "MediaStorageSOPClassUID")):
        fixed = 0
        for ds in datasets:
            if not str(ds.get(attribute, "") or "").strip():
                value = str(getattr(getattr(ds, "file_meta", Dataset()), meta_attribute, "") or "").strip()
                if not value:
                    raise RadlabelError(
                        f"an instance has no {attribute} in its dataset or file meta: it cannot be identified, "
                        "so the series is refused."
                    )
                setattr(ds, attribute, value)
                fixed += 1
        if fixed:
            repairs.append(Repair(attribute, fixed, f"copied from the file meta {meta_attribute}"))
    instance_uids = sorted(str(ds.SOPInstanceUID) for ds in datasets)
    for attribute in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        blank = [ds for ds in datasets if not str(ds.get(attribute, "") or "").strip()]
        if not blank:
            continue
        blank_ids = {id(ds) for ds in blank}
        present = {str(ds.get(attribute)) for ds in datasets if id(ds) not in blank_ids}
        value = present.pop() if len(present) == 1 else generate_uid(entropy_srcs=[attribute, *instance_uids])
        for ds in blank:
            setattr(ds, attribute, value)
        repairs.append(Repair(attribute, len(blank), "minted from the series' SOP Instance UIDs (repeatable)"))
    return repairs


def as_little_endian(ds: Dataset) -> Dataset:
    """A big-endian data set re-encoded as Explicit VR Little Endian (highdicom parses only little endian).

    Native pixel data of more than 8 bits is decoded by pydicom and written back in little-endian order;
    1- and 8-bit data (OB) has no byte order. Other data sets are returned as they are.
    """
    import io

    from pydicom.filewriter import dcmwrite
    from pydicom.uid import ExplicitVRLittleEndian

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or syntax.is_little_endian:
        return ds
    copy = pydicom.dcmread(io.BytesIO(part10_bytes(ds)))  # never change the caller's data set
    if "PixelData" in copy and int(copy.get("BitsAllocated", 8)) > 8:
        array = copy.pixel_array
        copy.PixelData = array.astype(array.dtype.newbyteorder("<")).tobytes()
        copy["PixelData"].VR = "OW"
    copy.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, copy, little_endian=True, implicit_vr=False, force_encoding=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def part10_bytes(ds: Dataset) -> bytes:
    """``ds`` as a DICOM file, byte for byte what pydicom's ``dcmwrite`` writes (``write_part10``)."""
    import io

    buffer = io.BytesIO()
    write_part10(buffer, ds)
    return buffer.getvalue()


def write_part10(fp, ds: Dataset) -> None:
    """Write ``ds`` to the binary file ``fp`` as pydicom's ``dcmwrite`` would, faster for raw elements.

    Measured need (bench/deid.py): a de-identified copy is mostly elements kept in their encoded form, and pydicom
    passes each through an intermediate buffer (three copies of the pixel data per instance); here an Explicit VR
    Little Endian element that is still raw is written straight from its bytes, and every other element by
    pydicom. A data set in any other encoding is written by pydicom itself.
    """
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import dcmwrite, write_data_element, write_file_meta_info

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if (ds.original_encoding != (False, True) or syntax is None or syntax.is_implicit_VR
            or not syntax.is_little_endian or syntax.is_deflated or ds.original_character_set != ds._character_set
            or any(tag >> 16 in (0, 2) for tag in ds._dict)):
        dcmwrite(fp, ds)
        return
    out = DicomFileLike(fp)
    out.is_little_endian, out.is_implicit_VR = True, False
    if ds.preamble:
        out.write(ds.preamble)
        out.write(b"DICM")
    write_file_meta_info(out, _shallow_meta(meta), enforce_standard=False)
    encodings = ds.get("SpecificCharacterSet", "iso8859")
    for tag in sorted(ds._dict):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # group lengths: pydicom drops them too
        element = ds._dict[tag]
        # (a raw value of None is one pydicom reads only when asked: an empty or deferred value)
        if not (element.is_raw and element.VR and element.value is not None and not element.is_implicit_VR
                and element.is_little_endian and _write_raw(out, element)):
            write_data_element(out, ds.get_item(tag), encodings)


def _write_raw(out, element: RawDataElement) -> bool:
    """One raw Explicit VR Little Endian element, header and value as read; False where pydicom must decide
    (a short-length VR whose value outgrew 64 KiB)."""
    value, vr = element.value, element.VR
    undefined = element.length == 0xFFFFFFFF
    if vr in EXPLICIT_VR_LENGTH_32 or undefined:
        if vr not in EXPLICIT_VR_LENGTH_32:
            return False
        header = struct.pack("<HH2s2xL", element.tag >> 16, element.tag & 0xFFFF, vr.encode(),
                             0xFFFFFFFF if undefined else len(value))
    elif len(value) > 0xFFFF:
        return False
    else:
        header = struct.pack("<HH2sH", element.tag >> 16, element.tag & 0xFFFF, vr.encode(), len(value))
    out.write(header)
    out.write(value)
    if undefined:
        out.write(_SEQUENCE_DELIMITER)
    return True


def _shallow_meta(meta: Dataset) -> Dataset:
    """A file meta group pydicom may write its group length into without touching the data set's own."""
    from pydicom.dataset import FileMetaDataset

    copy = FileMetaDataset()
    for tag in meta._dict:
        element = meta.get_item(tag)
        copy._dict[tag] = element if element.is_raw else DataElement(element.tag, element.VR, element.value)
    return copy
