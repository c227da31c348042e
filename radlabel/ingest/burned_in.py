"""Burned-in text and face risk: PHI that lives in pixels rather than headers.

Evidence comes from the header (BurnedInAnnotation, secondary capture SOP
classes, screen-capture image types, modalities that usually carry overlays)
and from OCR of the pixels with Tesseract (offline). Flagged images are
masked or held per protocol; never passed silently.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
OVERLAY_MODALITIES = {"US", "OT", "SC", "XA", "ES", "DOC"}
HEAD_WORDS = re.compile(r"\b(HEAD|BRAIN|SKULL|FACE|ORBIT|SINUS|NECK|NEURO)\b", re.IGNORECASE)
MIN_CONFIDENCE = 60
MIN_HEAD_COVERAGE_MM = 100  # a head series this long can reconstruct a face


@dataclass
class TextBox:
    text: str
    confidence: float
    left: int
    top: int
    width: int
    height: int


def header_evidence(ds: Dataset) -> list[str]:
    """Reasons in the header to expect burned-in text (no PHI in them)."""
    reasons = []
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        reasons.append("BurnedInAnnotation is YES")
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
        reasons.append("secondary capture SOP class")
    value = ds.get("ImageType") or []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):  # one value, or a damaged VR
        value = [value]
    image_type = [str(v).upper() for v in value]
    if "SECONDARY" in image_type or any("SCREEN" in v for v in image_type):
        reasons.append("ImageType marks a secondary or screen capture")
    if str(ds.get("Modality", "")).upper() in OVERLAY_MODALITIES:
        reasons.append(f"modality {ds.get('Modality')} usually carries burned-in overlays")
    return reasons


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None


def find_text(image: np.ndarray) -> list[TextBox]:
    """Words Tesseract reads with confidence in an 8-bit image."""
    import pytesseract

    data = pytesseract.image_to_data(image, output_type=pytesseract.Output.DICT, config="--psm 11")
    boxes = []
    for i, text in enumerate(data["text"]):
        text = text.strip()
        confidence = float(data["conf"][i])
        if confidence >= MIN_CONFIDENCE and len(re.sub(r"[^A-Za-z0-9]", "", text)) >= 3:
            boxes.append(TextBox(text, confidence, data["left"][i], data["top"][i], data["width"][i], data["height"][i]))
    return boxes


def mask_boxes(pixels: np.ndarray, boxes: list[TextBox], margin: int = 3, fill=None) -> np.ndarray:
    """A copy of ``pixels`` with every box (plus a margin) filled with the minimum value."""
    out = pixels.copy()
    value = out.min() if fill is None else fill
    for box in boxes:
        top, left = max(box.top - margin, 0), max(box.left - margin, 0)
        out[top:box.top + box.height + margin, left:box.left + box.width + margin] = value
    return out


def face_risk(ds: Dataset, coverage_mm: float, body_parts: list[str] = ()) -> str | None:
    """Why this series could show a recognisable face (head CT/MR of enough extent), or None."""
    if str(ds.get("Modality", "")) not in ("CT", "MR"):
        return None
    text = " ".join(str(ds.get(k, "") or "") for k in ("BodyPartExamined", "StudyDescription", "SeriesDescription"))
    head = bool(HEAD_WORDS.search(text)) or any(HEAD_WORDS.search(p) for p in body_parts)
    if head and coverage_mm >= MIN_HEAD_COVERAGE_MM:
        return f"head {ds.get('Modality')} covering {coverage_mm:.0f} mm may show a recognisable face"
    return None
