"""Brush RLE of a 300-slice mask: radlabel.brush_rle.encode vs the SDK's mask2rle (identical output required).

Masks: the liver and the lesions of a 512x512x300 CT phantom (one class each, every slice encoded,
as a task of a 300-slice series needs). Alternating runs; goal >= 5x.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from label_studio_sdk.converter.brush import mask2rle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, timed  # noqa: E402

from radlabel import brush_rle  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402


def main() -> None:
    args = bench_args(__doc__)
    labelmap = make_ct_study(seed=3, slices=args.slices, noise_hu=0).labelmap
    masks = [((labelmap == value) * 255).astype(np.uint8) for value in (4, 6)]  # liver, liver lesions
    theirs_out = [[mask2rle(s) for s in m] for m in masks]
    ours_out = [[brush_rle.encode(s) for s in m] for m in masks]
    assert ours_out == theirs_out, "outputs differ"
    ours, theirs = [], []
    for _ in range(args.runs):
        ours.append(timed(lambda: [[brush_rle.encode(s) for s in m] for m in masks]))
        theirs.append(timed(lambda: [[mask2rle(s) for s in m] for m in masks]))
    report("brush_rle_300_slices", ours, theirs, "radlabel_encode", "sdk_mask2rle", slices=args.slices,
           classes=len(masks), identical_output=True,
           occupied_slices=[int(np.count_nonzero(m.reshape(m.shape[0], -1).any(1))) for m in masks])


if __name__ == "__main__":
    main()
