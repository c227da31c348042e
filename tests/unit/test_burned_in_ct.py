"""Burned-in text on a real CT slice (radlabel's TotalSegmentator sample, Apache-2.0) whose header says
BurnedInAnnotation YES: the text in its corners goes, the anatomy stays bit for bit. Checked independently of
the code under test: the body is the test's own HU threshold, and a differently configured OCR reads the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from radlabel.ingest import burned_in
from radlabel.phantom import burn_corner_text

SLICES = sorted((Path(__file__).resolve().parents[2] / "radlabel" / "sample_data" / "totalseg-ct-20" / "dicom").iterdir())
# (bottom?, right?) → lines
CORNER_TEXT = {(False, False): ["DOE^JANE", "MRN 48213977"], (False, True): ["ST MARY HOSPITAL", "2023-04-17 09:41"],
               (True, False): ["DOB 1961-02-03"], (True, True): ["ACC 55501234"]}
WORDS = ["DOE", "JANE", "48213977", "MARY", "HOSPITAL", "1961", "55501234"]


def _slice_with_corner_text(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    """The slice with its corners written at the slice's top value, as a scanner burns in its overlay."""
    ds = pydicom.dcmread(path)
    return ds, burn_corner_text(ds, CORNER_TEXT)


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


def _text_over_anatomy(path: Path) -> tuple[pydicom.Dataset, np.ndarray, int]:
    """Two lines drawn across the liver and spine at one stored value well inside the tissue range (the 97th
    percentile of the body: about 380 HU), not the top value: what a workstation annotation leaves."""
    from PIL import ImageDraw, ImageFont

    from radlabel.ingest.burned_in import store_native

    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.copy()
    canvas = Image.new("L", (pixels.shape[1], pixels.shape[0]), 0)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=16)
    for number, line in enumerate(["DOE^JANE", "MRN 48213977"]):
        draw.text((180, 250 + 20 * number), line, fill=255, font=font)
    text = np.asarray(canvas) > 127
    value = int(np.percentile(pixels[_body(ds, pixels)], 97))
    pixels[text] = value
    store_native(ds, pixels, "MONOCHROME2")
    ds.BurnedInAnnotation = "YES"
    return ds, text, value


def _words_at(pixels: np.ndarray, value: int) -> set[str]:
    """An independent reader: Tesseract (another page mode, 3x) on the pixels that hold exactly ``value``."""
    import pytesseract

    view = Image.fromarray(np.where(pixels == value, 0, 255).astype(np.uint8))
    big = view.resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.NEAREST)
    text = pytesseract.image_to_string(big, config="--psm 11").upper()
    return {word for word in ("DOE", "JANE", "48213977") if word in text}


@pytest.mark.parametrize("index", [0, 10, 19])
def test_text_drawn_over_the_anatomy_at_one_value_is_found_and_masked(index):
    ds, text, value = _text_over_anatomy(SLICES[index])
    before = ds.pixel_array.copy()
    body = _body(ds, before)
    assert (body & text).sum() > 0.9 * text.sum() and value < before.max()  # over the patient, not the top value
    assert len(_words_at(before, value)) >= 2  # the check can fail: the text is readable before
    outcome = burned_in.clean_pixels(ds, f"ct/{index}.dcm")
    after = ds.pixel_array
    assert outcome.status == "masked"
    assert not (after[text] == value).any()  # every stroke of the text is gone
    # masks are boxes around the words read: the anatomy beyond the text's block (16 px around) is untouched
    rows, columns = np.nonzero(text)
    block = np.zeros_like(text)
    block[max(rows.min() - 16, 0):rows.max() + 17, max(columns.min() - 16, 0):columns.max() + 17] = True
    assert np.array_equal(after[~block], before[~block])
    assert (after != before).sum() < 0.6 * block.sum()
    assert _words_at(after, value) == set()


def test_no_slice_of_the_real_ct_has_strokes_at_one_value_without_text():
    from radlabel.ingest.pixel_regions import drawn_text
    from radlabel.ingest.burned_in import text_view

    for path in SLICES:
        ds = pydicom.dcmread(path)
        assert drawn_text(ds.pixel_array, text_view(ds, ds.pixel_array)) is None, path.name


def test_text_drawn_at_one_value_that_ocr_cannot_read_is_held(monkeypatch):
    ds, _, _ = _text_over_anatomy(SLICES[10])
    monkeypatch.setattr(burned_in, "_read", lambda *args: [])  # an OCR that reads nothing
    outcome = burned_in.clean_pixels(ds, "ct/10.dcm")
    assert outcome.status == "held" and "drawn over the anatomy" in outcome.reason
