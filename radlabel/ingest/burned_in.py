"""Burned-in text and face risk: PHI that lives in pixels rather than headers.

One stage for the CLI and sync (``clean_pixels``): an image is at risk when its
header says so (BurnedInAnnotation, secondary capture SOP classes, screen-capture
image types, modalities that usually carry overlays: ultrasound, XA, SC...).
Every frame of an image at risk is read by Tesseract (offline) in views that
show text (bright and dark strokes whatever lies behind them, log-stretched,
enlarged), not a reading window, and only inside the regions where burned-in
text can be (``pixel_regions``: borders, text bars, flat ground, never anatomy); every box
found is masked on the frame where it was found; a second, stricter pass on the
masked frames must read nothing. Anything still readable, or any image that
cannot be checked (no OCR, a photometric interpretation we cannot decode), is
held with its reason, never passed.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field

import numpy as np
from pydicom import Dataset

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
OVERLAY_MODALITIES = {"US", "OT", "SC", "XA", "ES", "DOC"}
HEAD_WORDS = re.compile(r"\b(HEAD|BRAIN|SKULL|FACE|ORBIT|SINUS|NECK|NEURO)\b", re.IGNORECASE)
MIN_CONFIDENCE = 60  # a word this sure is text to mask
VERIFY_CONFIDENCE = 75  # after masking, a word of four letters or more this sure is still readable (_readable)
SHORT_WORD_CONFIDENCE = 80  # ... a three-letter one only this sure
MASK_CONFIDENCE = 10  # the masking pass is greedier: masking a speckle costs less than missing a name
MIN_TEXT_PX = 6  # a "word" lower than this is speckle: nobody reads 5-pixel text
MASK_ROUNDS = 3
FLAT_GROUND_SHARE = 0.4  # overlay text: most of its box is one background value
OCR_SCALE = 2  # Tesseract reads 10-12 px ultrasound fonts only when enlarged
REGION_MARGIN = 6  # ground left around a text region for OCR
KNOWN_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
                     "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"}
# JPEG 2000 (lossless, lossy) and HTJ2K (lossless, RPCL lossless, lossy)
JPEG_2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                      "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
SUPPORTED_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "PALETTE COLOR"}
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


def find_text(image: np.ndarray, min_confidence: float = MIN_CONFIDENCE, min_chars: int = 3,
              scale: int = 1) -> list[TextBox]:
    """Words Tesseract reads in an 8-bit image (enlarged ``scale`` times), boxes in the image's own pixels."""
    import pytesseract
    from PIL import Image

    if scale > 1:
        image = np.asarray(Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                                         Image.BICUBIC))
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # Tesseract's own threads only thrash a shared CPU
    data = pytesseract.image_to_data(image, output_type=pytesseract.Output.DICT, config="--psm 11")
    boxes = []
    for i, text in enumerate(data["text"]):
        text = text.strip()
        confidence = float(data["conf"][i])
        if confidence >= min_confidence and _letters(text) >= min_chars:
            left, top = data["left"][i] // scale, data["top"][i] // scale
            width, height = -(-data["width"][i] // scale), -(-data["height"][i] // scale)
            if height >= MIN_TEXT_PX:
                boxes.append(TextBox(text, confidence, left, top, width, height))
    return boxes


def _readable(box: TextBox) -> bool:
    """Would a person read this as a word left after masking? Measured on the synthetic CT with a burned-in name:
    anatomy next to masked boxes reads as 'tan' (60) or 'Paar:' (65), while burned-in words that survive a
    mask read at 80 or more (a name at 79-96 before masking)."""
    letters = _letters(box.text)
    return (letters >= 4 and box.confidence >= VERIFY_CONFIDENCE) or (letters == 3 and box.confidence >= SHORT_WORD_CONFIDENCE)


def _letters(text: str) -> int:
    return len(re.sub(r"[^A-Za-z0-9]", "", text))


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


# -- the shared stage --------------------------------------------------------------------------
@dataclass
class PixelOutcome:
    """What the burned-in text stage did to one file (no PHI: boxes and counts, never the words read)."""

    file: str  # path relative to the input folder
    status: str = "not_at_risk"  # not_at_risk | clean | masked | held
    evidence: list[str] = field(default_factory=list)
    masked: list[dict] = field(default_factory=list)  # {"frame", "left", "top", "width", "height"}
    reason: str = ""  # why held

    def as_dict(self) -> dict:
        return {"file": self.file, "status": self.status, "evidence": self.evidence, "masked": self.masked,
                "reason": self.reason}


def clean_pixels(ds: Dataset, file: str, ocr: bool | None = None, mask: bool = True) -> PixelOutcome:
    """Find and mask burned-in text on every frame of ``ds`` when it is at risk; masks ``ds`` in place.

    ``ds`` is the de-identified copy (its pixels are still the source's). A held outcome means the caller
    must not release it. ``mask=False`` (protocol ``burned_in_text: hold``) holds on any text found.
    """
    outcome = PixelOutcome(file, evidence=header_evidence(ds))
    if not outcome.evidence or "PixelData" not in ds:
        return outcome
    if not (ocr_available() if ocr is None else ocr):
        return _hold(outcome, "OCR (tesseract) is not installed, so the burned-in text cannot be checked")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in SUPPORTED_PHOTOMETRIC and not _colour_undone_by_codec(ds, photometric):
        named = photometric if photometric in KNOWN_PHOTOMETRIC else "(an unrecognised value)"  # never echo free text
        return _hold(outcome, f"photometric interpretation {named} cannot be checked for text")
    try:
        frames = stored_frames(ds)
    except Exception as exc:  # undecodable pixels: cannot be checked, so cannot pass
        return _hold(outcome, f"the pixel data cannot be decoded ({type(exc).__name__})")
    from radlabel.ingest.pixel_regions import drawn_text

    changed = False
    for index, frame in enumerate(frames):
        masked_here = False
        for round_ in range(MASK_ROUNDS + 1):  # masking some words can make others readable (their bar goes)
            reads = _read(ds, frames[index], MASK_CONFIDENCE, 1)
            grey = text_view(ds, frames[index])
            drawn = drawn_text(frames[index], grey)
            boxes = text_lines([b for b in reads if b.height <= max(40, frame.shape[0] // 8)  # lines, not anatomy
                                and (b.confidence >= MIN_CONFIDENCE or _on_flat_ground(grey, b) or _on(drawn, b))])
            if not boxes or round_ == MASK_ROUNDS:
                break
            if not mask:
                return _hold(outcome, f"burned-in text found on frame {index} (the protocol holds rather than masks)")
            frames[index] = mask_boxes(frames[index], boxes, fill=_darkest(ds, frame))
            outcome.masked += [{"frame": index, "left": b.left, "top": b.top, "width": b.width,
                                "height": b.height} for b in boxes]
            changed = masked_here = True
        # The last read is the verifying pass on the masked frame: nothing readable may be left. Taller "words"
        # are anatomy by the same rule that kept them from being masked (a 512-row CT read them in lung vessels).
        left = [b for b in reads if _readable(b) and b.height <= max(40, frame.shape[0] // 8)] if masked_here else []
        if left:
            return _hold(outcome, f"{len(left)} word(s) still readable on frame {index} after masking")
        if drawn is not None:  # letters drawn at one value are left, read or not: they cannot pass
            return _hold(outcome, f"text drawn over the anatomy at one value is left on frame {index}")
    if changed:
        try:
            write_frames(ds, frames)
        except Exception as exc:  # masked but not storable: it must not leave unmasked
            return _hold(outcome, f"the masked pixels cannot be stored ({type(exc).__name__})")
    outcome.status = "masked" if changed else "clean"
    return outcome


def _read(ds: Dataset, frame: np.ndarray, min_confidence: float, min_chars: int) -> list[TextBox]:
    """Words read in any of the frame's text views (full range; bright strokes), only inside the regions where
    burned-in text can be (``pixel_regions.text_regions``): anatomy is neither read nor masked, a frame with
    no such region costs no OCR at all, and one with some costs one OCR call on a mosaic of them."""
    from radlabel.ingest.pixel_regions import drawn_text, merged, mosaic, text_regions
    from radlabel.ingest.render import text_views

    grey = text_view(ds, frame)
    drawn = drawn_text(frame, grey)
    regions = merged(text_regions(grey, drawn), REGION_MARGIN, grey.shape)
    if not regions:
        return []
    views = text_views(grey)
    if drawn is not None:  # text over anatomy at one value reads best alone
        views.append(np.where(drawn, 255, 0).astype(np.uint8))
    cut = mosaic([(view, region) for view in views for region in regions])  # one OCR call
    boxes = []
    for box in find_text(cut.image, min_confidence, min_chars, OCR_SCALE):
        where = cut.to_frame(box.top, box.left, box.height)
        if where is not None:
            box.top, box.left = where
            boxes.append(box)
    return boxes


def _on(drawn: np.ndarray | None, box: TextBox) -> bool:
    """Whether a (weakly) read word lies on letters drawn at one value over the anatomy: text, not tissue."""
    return drawn is not None and bool(drawn[box.top:box.top + box.height, box.left:box.left + box.width].any())


def _on_flat_ground(grey: np.ndarray, box: TextBox) -> bool:
    """Whether a weakly read word stands on an even background, as overlay text does (speckle does not):
    a weak 'word' in tissue is left alone; if it was real text, the verifying pass still holds the image."""
    patch = grey[box.top:box.top + box.height, box.left:box.left + box.width]
    if patch.size == 0:
        return False
    return np.bincount(patch.ravel()).max() / patch.size >= FLAT_GROUND_SHARE


def text_lines(boxes: list[TextBox]) -> list[TextBox]:
    """Words on one line joined into one box when close (gap under two line heights): the letters OCR did
    not read between two words it did (a minute between an hour and a second) are masked too."""
    merged: list[TextBox] = []
    for box in sorted(boxes, key=lambda b: (b.top, b.left)):
        for line in merged:
            same_row = abs((line.top + line.height / 2) - (box.top + box.height / 2)) <= max(line.height, box.height) / 2
            near = box.left - (line.left + line.width) <= 2 * max(line.height, box.height) and \
                line.left - (box.left + box.width) <= 2 * max(line.height, box.height)
            if same_row and near:
                right, bottom = max(line.left + line.width, box.left + box.width), max(line.top + line.height, box.top + box.height)
                line.left, line.top = min(line.left, box.left), min(line.top, box.top)
                line.width, line.height = right - line.left, bottom - line.top
                line.text, line.confidence = "", min(line.confidence, box.confidence)
                break
        else:
            merged.append(TextBox("", box.confidence, box.left, box.top, box.width, box.height))
    return merged


def _hold(outcome: PixelOutcome, reason: str) -> PixelOutcome:
    outcome.status, outcome.reason = "held", reason
    return outcome


def _colour_undone_by_codec(ds: Dataset, photometric: str) -> bool:
    """YBR_ICT and YBR_RCT name JPEG 2000's own colour transforms, which its decoder undoes: the frames come out
    RGB. Anywhere else those terms are not conformant (PS3.3 C.7.6.3.1.2) and the values' meaning is unknown."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    return photometric in ("YBR_ICT", "YBR_RCT") and syntax in JPEG_2000_SYNTAXES


def stored_frames(ds: Dataset) -> list[np.ndarray]:
    """The frames as stored values (palette indices stay indices; YBR decodes to RGB)."""
    array = ds.pixel_array
    single = int(ds.get("NumberOfFrames", 1) or 1) == 1
    return [array] if single else [frame for frame in array]


def text_view(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    """The 8-bit view OCR reads: colour as its brightest channel, palette through its LUT."""
    from pydicom.pixels import apply_color_lut

    from radlabel.ingest.render import full_range

    if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
        frame = apply_color_lut(frame, ds)
    if frame.ndim == 3:
        frame = frame.max(axis=-1)
    view = full_range(frame)
    return 255 - view if str(ds.PhotometricInterpretation) == "MONOCHROME1" else view


def _darkest(ds: Dataset, frame: np.ndarray):
    """The fill for masks: black as displayed (the palette index of the darkest colour)."""
    photometric = str(ds.PhotometricInterpretation)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        indices = np.unique(frame)
        return indices[int(np.argmin(apply_color_lut(indices, ds).sum(axis=-1)))]
    return frame.max() if photometric == "MONOCHROME1" else frame.min()


def write_frames(ds: Dataset, frames: list[np.ndarray]) -> None:
    """Store masked frames uncompressed (decoded YBR is written as RGB: the values pydicom returned)."""
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"
    array = frames[0] if len(frames) == 1 else np.stack(frames)
    store_native(ds, array, photometric)


def store_native(ds: Dataset, array: np.ndarray, photometric: str) -> None:
    """Pixels stored uncompressed little endian (pydicom writes no big-endian pixel data; the file is rewritten
    anyway)."""
    from pydicom.uid import ExplicitVRLittleEndian

    if getattr(ds, "file_meta", None) is not None and ds.file_meta.get("TransferSyntaxUID") == "1.2.840.10008.1.2.2":
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(array, photometric, int(ds.BitsStored), generate_instance_uid=False)
