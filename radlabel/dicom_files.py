"""Reading DICOM files from disk, with errors that name the file.

Also the explicit repair of exports that left Type 1 UIDs blank (the shared
real CT is one): SOP UIDs come from the file meta, study and series UIDs are
minted deterministically from the instances, and every repair is reported.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from radlabel.errors import RadlabelError


@dataclass
class Repair:
    attribute: str
    count: int
    how: str


def has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM"


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


def read_dicom(path: Path) -> Dataset:
    """Read one Part 10 file, pixel data included, or fail naming the file."""
    try:
        with warnings.catch_warnings():
            # pydicom only warns when undefined-length data (encapsulated pixels) runs off the end.
            warnings.filterwarnings("error", message="End of file reached before delimiter")
            ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            _check_pixel_data_length(ds)
        elif "Rows" in ds:
            raise ValueError("an image without pixel data: the file ends early")
        return ds
    except InvalidDicomError:
        raise RadlabelError(f"{path} is not a DICOM file (no DICM preamble): remove it or give the right file.") from None
    except UserWarning:
        raise RadlabelError(f"{path} is a damaged DICOM file (encapsulated pixel data cut short): "
                            "replace it with an intact copy.") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
        raise RadlabelError(f"{path} is a damaged DICOM file ({reason}): replace it with an intact copy.") from None


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
    expected = (int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
                * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated) + 7) // 8
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
