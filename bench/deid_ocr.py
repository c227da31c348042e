"""Burned-in text on CT: OCR only inside the text-region prior vs full-frame OCR, same slices, same run.

The real 20-slice CT (radlabel/sample_data/totalseg-ct-20) with a name, record number, hospital and dates
burned into its corners at the slice's top value, and BurnedInAnnotation YES. Each slice goes through
``burned_in.clean_pixels`` twice, alternating: as shipped (OCR reads only the regions
``pixel_regions.text_regions`` finds) and with the prior replaced by one region covering the whole frame (the
stage before the prior). Reported: seconds per slice, and the pixels changed inside the body (anatomy masked)
and text pixels left, for both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, timed  # noqa: E402

from radlabel.ingest import burned_in, pixel_regions  # noqa: E402
from radlabel.phantom import burn_corner_text  # noqa: E402

SLICES = sorted((Path(__file__).resolve().parents[1] / "radlabel" / "sample_data" / "totalseg-ct-20" / "dicom").iterdir())
CORNERS = {(0, 0): ["DOE^JANE", "MRN 48213977"], (0, 1): ["ST MARY HOSPITAL", "2023-04-17 09:41"],
           (1, 0): ["DOB 1961-02-03"], (1, 1): ["ACC 55501234"]}


def with_corner_text(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(path)
    return ds, burn_corner_text(ds, CORNERS)


def whole_frame(grey: np.ndarray) -> list[pixel_regions.Region]:
    return [pixel_regions.Region(0, 0, grey.shape[0], grey.shape[1])]


def run_once(path: Path, prior: bool) -> tuple[float, int, int]:
    """(seconds, anatomy pixels changed, text pixels left) for one slice."""
    ds, text = with_corner_text(path)
    before = ds.pixel_array.copy()
    hu = before * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    body = pixel_regions.ndimage.binary_fill_holes(hu > -500) & ~pixel_regions.ndimage.binary_dilation(text, iterations=12)
    if prior:
        seconds = timed(lambda: burned_in.clean_pixels(ds, path.name))
    else:
        with mock.patch.object(pixel_regions, "text_regions", whole_frame):
            seconds = timed(lambda: burned_in.clean_pixels(ds, path.name))
    after = ds.pixel_array
    return seconds, int((after[body] != before[body]).sum()), int((after[text] == before.max()).sum())


def main() -> None:
    args = bench_args(__doc__)
    slices = SLICES[:min(args.slices, len(SLICES))]
    ours, theirs, damage = [], [], {True: [0, 0], False: [0, 0]}
    for _ in range(args.runs):
        for path in slices:
            for prior in (True, False):
                seconds, anatomy, left = run_once(path, prior)
                (ours if prior else theirs).append(seconds)
                damage[prior][0] += anatomy
                damage[prior][1] += left
    total = args.runs * len(slices)
    report("burned_in_ocr_text_prior_vs_full_frame", ours, theirs, "text_prior_per_slice", "full_frame_per_slice",
           slices=len(slices), frame="512x512 CT", anatomy_pixels_changed_per_slice={
               "text_prior": round(damage[True][0] / total, 1), "full_frame": round(damage[False][0] / total, 1)},
           text_pixels_left_per_slice={"text_prior": round(damage[True][1] / total, 1),
                                       "full_frame": round(damage[False][1] / total, 1)})


if __name__ == "__main__":
    main()
