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
