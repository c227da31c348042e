"""Agreement for 3 readers x 3 classes on a 512x512x300 volume: radlabel vs MONAI, same metrics.

Dice, HD95 and surface Dice at 1.5 mm for every reader pair and class, spacing 2.0/0.8/0.8 mm.
MONAI's voxel-based definitions are ours (HD95: max of directed 95th percentiles; surface Dice
without sub-voxel surfels), so values must agree. Goal >= 5x. Also STAPLE vs SimpleITK's filter
and SEG encoding vs a plain highdicom call.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_args, report, timed  # noqa: E402

from radlabel.adjudication.consensus import staple  # noqa: E402
from radlabel.adjudication.metrics import pairwise  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402

SPACING = (2.0, 0.8, 0.8)
TOLERANCE = 1.5


def readers(slices: int):
    labelmap = make_ct_study(seed=5, slices=slices, noise_hu=0, slice_spacing=SPACING[0], pixel_spacing=SPACING[1]).labelmap
    rng = np.random.default_rng(0)
    classes = {"liver": labelmap == 4, "liver_lesion": labelmap == 6, "lung_nodule": labelmap == 7}
    reads = []
    for shift in (0, 1, -1):
        read = {}
        for name, truth in classes.items():
            mask = np.roll(truth, shift, axis=2)
            if name == "liver":
                mask = ndimage.binary_dilation(mask) if shift > 0 else mask
            read[name] = mask & (rng.random(mask.shape) > 0.0005) if name == "liver" else mask
        reads.append(read)
    return classes, reads


def ours(classes, reads):
    return {name: pairwise([r[name] for r in reads], SPACING, TOLERANCE) for name in classes}


def monai_metrics(classes, reads):
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice

    out = {}
    for name in classes:
        for i in range(3):
            for j in range(i + 1, 3):
                a = torch.from_numpy(reads[i][name])[None, None]
                b = torch.from_numpy(reads[j][name])[None, None]
                dice = float(compute_dice(a, b, include_background=True))
                hd95 = float(compute_hausdorff_distance(a, b, include_background=True, percentile=95, spacing=SPACING))
                nsd = float(compute_surface_dice(a, b, [TOLERANCE], include_background=True, spacing=SPACING))
                out[(name, i, j)] = (dice, hd95, nsd)
    return out


def main() -> None:
    args = bench_args(__doc__)
    classes, reads = readers(args.slices)
    mine = ours(classes, reads)
    theirs = monai_metrics(classes, reads)
    worst = {"dice": 0.0, "hd95_mm": 0.0, "surface_dice": 0.0}
    for (name, i, j), (dice, hd95, nsd) in theirs.items():
        m = mine[name][(i, j)]
        worst["dice"] = max(worst["dice"], abs(m.dice - dice))
        worst["hd95_mm"] = max(worst["hd95_mm"], abs(m.hd95_mm - hd95))
        worst["surface_dice"] = max(worst["surface_dice"], abs(m.surface_dice - nsd))
    ours_t, theirs_t = [], []
    for _ in range(args.runs):
        ours_t.append(timed(lambda: ours(classes, reads)))
        theirs_t.append(timed(lambda: monai_metrics(classes, reads)))
    report("agreement_3_readers_3_classes", ours_t, theirs_t, "radlabel", "monai", slices=args.slices,
           tolerance_mm=TOLERANCE, max_abs_difference=worst)

    import SimpleITK as sitk

    masks = [r["liver"] for r in reads]
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]
    ref = sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0))
    result = staple(masks)
    s_ours = [timed(lambda: staple(masks)) for _ in range(args.runs)]
    s_theirs = [timed(lambda: sitk.STAPLE(images, 1.0)) for _ in range(args.runs)]
    report("staple_liver_3_readers", s_ours, s_theirs, "radlabel_staple", "simpleitk_staple", slices=args.slices,
           max_probability_difference=float(np.abs(result.probability - ref).max()),
           consensus_equal=bool(np.array_equal(result.consensus, ref >= 0.5)))


if __name__ == "__main__":
    main()
