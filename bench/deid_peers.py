"""radlabel's de-identification vs its peers, same corpus, one run: dicognito (an established Python
de-identifier) and Orthanc's own ``/instances/{id}/anonymize`` (a real Orthanc, its default profile).

Corpus: pydicom's and pydicom-data's test files as installed with those packages (real DICOM with PHI-like
headers; two ultrasound files with burned-in text; nothing downloaded) plus synthetic CT/MR studies with known
PHI. Measured per tool:
  - header PHI surviving: identifying values of the source (names, IDs, dates, times, institution, device,
    source UIDs) equal to any element value of the output, nested sequences included;
  - pixel PHI surviving: words Tesseract reads confidently in the source's burned-in text that an
    independently configured OCR still reads in the output;
  - clinical attributes kept exactly (geometry, pixel description, rescale, acquisition parameters);
  - linkage-unique output series: series whose linking quasi-identifiers and shape class
    (``release.linkage_signature``, radlabel's measure, applied to every tool's output) no other series shares;
  - instances per second (headers only, and radlabel with its pixel stage; Orthanc's time is its anonymize
    calls alone, after every file was stored in it).
Prints JSON lines, then one line of ratios per radlabel variant and peer. No timing assertions: bench only.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from radlabel.ingest.deid import DeidReport, Deidentifier  # noqa: E402
from radlabel.ingest.release import prepare_series  # noqa: E402
from radlabel.phantom import make_ct_study, make_mr_study  # noqa: E402

PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber",
                "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName",
                "OperatorsName", "StationName", "DeviceSerialNumber", "StudyID", "StudyDate", "StudyTime",
                "SeriesTime", "AcquisitionTime", "ContentTime", "StudyInstanceUID", "SeriesInstanceUID",
                "SOPInstanceUID", "FrameOfReferenceUID")
CLINICAL = ("Modality", "Rows", "Columns", "BitsStored", "PhotometricInterpretation", "PixelSpacing",
            "SliceThickness", "ImageOrientationPatient", "ImagePositionPatient", "RescaleSlope", "RescaleIntercept",
            "KVP", "EchoTime", "RepetitionTime", "FlipAngle", "ConvolutionKernel", "NumberOfFrames")
BURNED_IN = ("US1_UNCR.dcm", "OBXXXX1A.dcm")


def corpus() -> list[tuple[str, pydicom.Dataset]]:
    import data_store

    paths = sorted(glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "**", "*.dcm"),
                             recursive=True))
    paths += sorted(glob.glob(os.path.join(os.path.dirname(data_store.__file__), "data", "*.dcm")))
    items = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
            ds.SOPInstanceUID  # noqa: B018 (a file without one is not an instance)
        except Exception:
            continue
        items.append((Path(path).name, ds))
    for seed in range(4):
        items += [(f"synthetic-ct-{seed}-{i}", ds) for i, ds in enumerate(make_ct_study(seed, 8, 128).datasets)]
        items += [(f"synthetic-mr-{seed}-{i}", ds) for i, ds in enumerate(make_mr_study(seed, 8, 128).datasets)]
    return items


def phi_values(ds: pydicom.Dataset) -> set[str]:
    values = set()
    for name in PHI_KEYWORDS:
        value = str(ds.get(name, "") or "").strip()
        if len(value) >= 4 and value not in ("ANONYMOUS", "ANONYMIZED"):
            values.add(value)
    return values


def values_of(ds: pydicom.Dataset) -> set[str]:
    """Every element value of the output (each value of a multi-valued one), nested sequences included.
    Exact values, not substrings: a StudyID of 1000 is not "found" inside a SOP class UID."""
    found = set()
    for element in ds.iterall():
        # Binary numbers (US, SS, UL, SL, FL, FD, AT) cannot carry a copied name, ID, date or UID: mlut_18.dcm's
        # LUTData holds the number 1200, which the string match took for its StudyTime "1200" (a false positive).
        if element.VR in ("SQ", "OB", "OW", "OF", "OD", "UN", "US", "SS", "UL", "SL", "FL", "FD", "AT", "US or SS",
                          "US or OW", "US or SS or OW", "OB or OW") or element.tag == 0x7FE00010:
            continue
        value = element.value
        for item in (value if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]):
            found.add(str(item).strip())
    return found


def strong_words(ds: pydicom.Dataset) -> set[str]:
    """Words the OCR reads confidently: the reference for pixel PHI (independent of radlabel's settings)."""
    import pytesseract
    from PIL import Image

    array = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        array = array[0]
    if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut
        array = apply_color_lut(array, ds)
    grey = array.max(axis=-1) if array.ndim == 3 else array
    grey = ((grey - grey.min()) / max(float(np.ptp(grey)), 1) * 255).astype(np.uint8)
    image = Image.fromarray(grey).resize((grey.shape[1] * 3, grey.shape[0] * 3), Image.LANCZOS)
    data = pytesseract.image_to_data(image, config="--psm 3", output_type=pytesseract.Output.DICT)
    return {t.strip() for t, c in zip(data["text"], data["conf"])
            if float(c) >= 80 and sum(ch.isalnum() for ch in t) >= 4}


def run_dicognito(items):
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed="bench")
    outputs = []
    started = time.perf_counter()
    for _, ds in items:
        out = copy.deepcopy(ds)
        anonymizer.anonymize(out)
        outputs.append(out)
    return outputs, time.perf_counter() - started


def run_orthanc(items):
    """Every file stored in a scratch Orthanc, then anonymized one by one (the copy comes back in the reply,
    nothing more is stored). A file Orthanc refuses to store or anonymize has no output (``not_processed``)."""
    import io

    import requests
    from common import scratch_orthanc

    with scratch_orthanc() as settings:
        session = requests.Session()
        session.auth = ("admin", settings.secrets()["orthanc_admin_password"])
        base = settings.url("orthanc")
        ids = []
        for _, ds in items:
            reply = session.post(base + "/instances", data=_file_bytes(ds), timeout=60)
            ids.append(reply.json().get("ID") if reply.ok else None)
        outputs = []
        started = time.perf_counter()
        for instance in ids:
            reply = session.post(f"{base}/instances/{instance}/anonymize", json={"Force": True}, timeout=60) \
                if instance else None
            outputs.append(reply.content if reply is not None and reply.ok else None)
        seconds = time.perf_counter() - started
    return [pydicom.dcmread(io.BytesIO(out)) if out else None for out in outputs], seconds


def _file_bytes(ds: pydicom.Dataset) -> bytes:
    """The file as it came (a corpus file), or the synthetic data set written as one."""
    from radlabel.dicom_files import part10_bytes

    if isinstance(getattr(ds, "filename", None), str) and os.path.isfile(ds.filename):
        return Path(ds.filename).read_bytes()
    source = copy.deepcopy(ds)
    source.preamble = b"\x00" * 128
    return part10_bytes(source)


def run_radlabel(items, pixels: bool):
    deid = Deidentifier(b"benchmark-key-0123456789abcdef!!")
    started = time.perf_counter()
    if not pixels:
        return [deid.deidentify(ds, DeidReport()) for _, ds in items], time.perf_counter() - started
    outputs = []
    for name, ds in items:
        release = prepare_series(deid, [copy.deepcopy(ds)], [name], DeidReport())
        outputs.append(None if release.is_held else release.copies[0][1])
    return outputs, time.perf_counter() - started


def _follows_restored_pixels(name: str, ds: pydicom.Dataset, out: pydicom.Dataset) -> bool:
    """A colour image whose masked frames were stored uncompressed: its YBR pixels were decoded to RGB, so an
    RGB PhotometricInterpretation is the pixel data's true description, not a value lost (counted apart)."""
    return (name == "PhotometricInterpretation" and str(ds.get(name, "")).startswith("YBR")
            and str(out.get(name, "")) == "RGB" and not out.file_meta.TransferSyntaxUID.is_compressed)


def linkage_unique(outputs) -> tuple[int, int]:
    """(output series, series alone in their linkage class), by radlabel's measure on each tool's output."""
    from collections import Counter

    from radlabel.ingest.release import linkage_signature

    series: dict[str, list] = {}
    for out in outputs:
        if out is not None:
            series.setdefault(str(out.get("SeriesInstanceUID", "")) or f"no-uid-{id(out)}", []).append(out)
    sizes = Counter(linkage_signature(copies) for copies in series.values())
    return len(series), sum(1 for copies in series.values() if sizes[linkage_signature(copies)] == 1)


def measure(tool: str, items, outputs, seconds: float) -> dict:
    surviving = total = kept = present = restored = 0
    for (_, ds), out in zip(items, outputs):
        if out is None:
            continue  # held: nothing released
        values = phi_values(ds)
        text = values_of(out)
        total += len(values)
        surviving += sum(1 for v in values if v in text)
        for name in CLINICAL:
            if name in ds and not _follows_restored_pixels(name, ds, out):
                present += 1
                kept += int(name in out and out[name].value == ds[name].value)
            restored += int(name in ds and _follows_restored_pixels(name, ds, out))
    series, unique = linkage_unique(outputs)
    pixel_total = pixel_left = 0
    for (name, ds), out in zip(items, outputs):
        if name in BURNED_IN and out is not None:
            words = strong_words(ds)
            pixel_total += len(words)
            pixel_left += len(words & strong_words(out))
    return {"tool": tool, "instances": len(items), "released": sum(o is not None for o in outputs),
            "header_phi_values": total, "header_phi_surviving": surviving, "pixel_phi_words": pixel_total,
            "pixel_phi_surviving": pixel_left, "clinical_present": present, "clinical_kept_exactly": kept,
            "pixel_description_follows_masked_pixels": restored,
            "not_processed_or_held": sum(o is None for o in outputs),
            "output_series": series, "linkage_unique_series": unique,
            "instances_per_s": round(len(items) / seconds, 1)}


def main() -> None:
    warnings.simplefilter("ignore")
    items = corpus()
    results = {}
    for tool, function in (("dicognito", run_dicognito), ("orthanc_anonymize", run_orthanc),
                           ("radlabel_headers", lambda i: run_radlabel(i, False)),
                           ("radlabel_full", lambda i: run_radlabel(i, True))):
        outputs, seconds = function(items)
        results[tool] = measure(tool, items, outputs, seconds)
        print(json.dumps(results[tool]))
    for peer in ("dicognito", "orthanc_anonymize"):
        theirs = results[peer]
        for tool in ("radlabel_headers", "radlabel_full"):
            ours = results[tool]
            print(json.dumps({"ratio": f"{tool}/{peer}",
                              "header_phi_surviving": [ours["header_phi_surviving"], theirs["header_phi_surviving"]],
                              "pixel_phi_surviving": [ours["pixel_phi_surviving"], theirs["pixel_phi_surviving"]],
                              "linkage_unique_series": [ours["linkage_unique_series"], theirs["linkage_unique_series"]],
                              "clinical_kept_share": round(_share(ours) / max(_share(theirs), 1e-9), 3),
                              "speed": round(ours["instances_per_s"] / theirs["instances_per_s"], 3)}))


def _share(result: dict) -> float:
    return result["clinical_kept_exactly"] / max(result["clinical_present"], 1)


if __name__ == "__main__":
    main()
