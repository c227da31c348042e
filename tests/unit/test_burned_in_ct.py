"""Burned-in text on a real CT slice (radlabel's TotalSegmentator sample, Apache-2.0) whose header says
BurnedInAnnotation YES: the text in its corners goes, the anatomy stays bit for bit. Checked independently of
the code under test: the body is the test's own HU threshold, and a differently configured OCR reads the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from radlabel.ingest import burned_in

SLICES = sorted((Path(__file__).resolve().parents[2] / "radlabel" / "sample_data" / "totalseg-ct-20" / "dicom").iterdir())
CORNER_TEXT = {"tl": ["DOE^JANE", "MRN 48213977"], "tr": ["ST MARY HOSPITAL", "2023-04-17 09:41"],
               "bl": ["DOB 1961-02-03"], "br": ["ACC 55501234"]}
WORDS = ["DOE", "JANE", "48213977", "MARY", "HOSPITAL", "1961", "55501234"]


def _slice_with_corner_text(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    """The slice with its corners written at the slice's top value, as a scanner burns in its overlay."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    canvas = Image.new("L", (pixels.shape[1], pixels.shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=16)
    for corner, lines in CORNER_TEXT.items():
        for number, line in enumerate(lines):
            x = 6 if corner[1] == "l" else pixels.shape[1] - 6 - draw.textlength(line, font=font)
            y = (6 if corner[0] == "t" else pixels.shape[0] - 6 - 20 * len(lines)) + 20 * number
            draw.text((x, y), line, fill=255, font=font)
    text = np.asarray(canvas) > 127
    pixels[text] = pixels.max()
    burned_in.store_native(ds, pixels, "MONOCHROME2")
    ds.BurnedInAnnotation = "YES"
    return ds, text


def _body(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    """The patient as the test sees it: tissue above -500 HU, large components, holes (lungs, bowel) filled."""
    hu = pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    labels, count = ndimage.label(hu > -500)
    sizes = ndimage.sum(np.ones_like(labels), labels, np.arange(1, count + 1))
    return ndimage.binary_fill_holes(np.isin(labels, np.flatnonzero(sizes > 2000) + 1))


def _independent_words(ds: pydicom.Dataset, pixels: np.ndarray) -> set[str]:
    import pytesseract

    grey = (pixels - pixels.min()) / max(float(pixels.max() - pixels.min()), 1.0) * 255
    big = Image.fromarray(grey.astype(np.uint8)).resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.LANCZOS)
    text = pytesseract.image_to_string(big, config="--psm 3").upper()
    return {word for word in WORDS if word in text}


@pytest.mark.parametrize("index", [0, 10, 19])
def test_corner_text_on_a_real_ct_is_removed_and_the_anatomy_is_untouched(index):
    ds, text = _slice_with_corner_text(SLICES[index])
    before = ds.pixel_array.copy()
    body = _body(ds, before)
    assert body.mean() > 0.2 and not (body & text).any()  # the check can fail: a patient, text outside it
    assert len(_independent_words(ds, before)) >= 4
    outcome = burned_in.clean_pixels(ds, f"ct/{index}.dcm")
    after = ds.pixel_array
    assert outcome.status == "masked"
    assert np.array_equal(after[body], before[body])  # no pixel of the anatomy changed
    near_text = ndimage.binary_dilation(text, iterations=12)
    assert np.array_equal(after[~near_text], before[~near_text])  # nor anything else away from the text
    assert not (after[text] == before.max()).any()  # every stroke of the text is gone
    assert _independent_words(ds, after) == set()


def test_a_ct_slice_marked_burned_in_but_without_text_is_left_as_it_is():
    ds = pydicom.dcmread(SLICES[10])
    ds.BurnedInAnnotation = "YES"
    before = ds.pixel_array.copy()
    outcome = burned_in.clean_pixels(ds, "ct/10.dcm")
    assert outcome.status == "clean" and outcome.masked == []
    assert np.array_equal(ds.pixel_array, before)
