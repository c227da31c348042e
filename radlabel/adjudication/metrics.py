"""Agreement metrics between reads, in millimetres on the series' real voxel spacing.

Definitions (stated because implementations differ):

- surface voxels: voxels of a mask with at least one 6-neighbour outside it (the volume's edge
  counts as outside); distances are between surface-voxel centres, in mm;
- HD95: the larger of the two directed 95th percentiles of surface distances (MONAI's
  ``compute_hausdorff_distance(percentile=95)``, voxel-based);
- surface Dice at tolerance τ (normalised surface distance): the fraction of both surfaces lying
  within τ of the other (MONAI's ``compute_surface_dice`` without sub-voxel surfels);
- both masks empty: Dice, IoU and surface Dice 1, distances 0; exactly one empty: Dice, IoU and
  surface Dice 0, distances infinite.

Surface distances use KD-trees over the surface voxels of a crop around both masks: the organ
case costs a fraction of a distance transform of the whole volume.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

_SIX = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class Surface:
    """Surface voxel centres of one mask, in mm, ready for distance queries."""

    points: np.ndarray  # (n, 3)
    voxels: int

    @property
    def empty(self) -> bool:
        return self.voxels == 0

    def tree(self) -> cKDTree:
        return cKDTree(self.points)


def _bounding_box(*masks: np.ndarray) -> tuple[slice, ...] | None:
    union = np.zeros(masks[0].shape, dtype=bool)
    for mask in masks:
        union |= mask
    if not union.any():
        return None
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(present[0] - 1, 0), min(present[-1] + 2, union.shape[axis])))
    return tuple(box)


def surface(mask: np.ndarray, spacing: Sequence[float], box: tuple[slice, ...] | None = None) -> Surface:
    mask = np.asarray(mask, dtype=bool)
    offset = np.zeros(3)
    if box is not None:
        offset = np.array([s.start for s in box], dtype=float)
        mask = mask[box]
    voxels = int(mask.sum())
    if not voxels:
        return Surface(np.zeros((0, 3)), 0)
    inner = ndimage.binary_erosion(mask, structure=_SIX, border_value=0)
    border = np.argwhere(mask & ~inner).astype(float)
    return Surface((border + offset) * np.asarray(spacing, dtype=float), voxels)


@dataclass
class PairAgreement:
    dice: float
    iou: float
    hd95_mm: float
    surface_dice: float
    tolerance_mm: float
    volume_a_mm3: float
    volume_b_mm3: float
    abs_volume_difference_mm3: float

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isinf(v) else round(v, 6)) for k, v in asdict(self).items()}


def mask_agreement(a: np.ndarray, b: np.ndarray, spacing: Sequence[float], tolerance_mm: float) -> PairAgreement:
    """All volumetric metrics for one pair of masks on one class."""
    return pairwise([a, b], spacing, tolerance_mm)[(0, 1)]


def pairwise(masks: Sequence[np.ndarray], spacing: Sequence[float], tolerance_mm: float) -> dict[tuple[int, int], PairAgreement]:
    """Agreement of every pair of readers on one class (surfaces computed once per reader)."""
    masks = [np.asarray(m, dtype=bool) for m in masks]
    box = _bounding_box(*masks)
    surfaces = [surface(m, spacing, box) if box else Surface(np.zeros((0, 3)), 0) for m in masks]
    trees = [s.tree() if not s.empty else None for s in surfaces]
    voxel = float(np.prod(spacing))
    out = {}
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            a, b = surfaces[i], surfaces[j]
            if a.empty and b.empty:
                out[(i, j)] = PairAgreement(1.0, 1.0, 0.0, 1.0, tolerance_mm, 0.0, 0.0, 0.0)
                continue
            if a.empty or b.empty:
                out[(i, j)] = PairAgreement(0.0, 0.0, math.inf, 0.0, tolerance_mm, a.voxels * voxel,
                                            b.voxels * voxel, abs(a.voxels - b.voxels) * voxel)
                continue
            both = int(np.count_nonzero(masks[i][box] & masks[j][box]))
            d_ab, _ = trees[j].query(a.points, k=1)
            d_ba, _ = trees[i].query(b.points, k=1)
            hd95 = float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
            within = (np.count_nonzero(d_ab <= tolerance_mm) + np.count_nonzero(d_ba <= tolerance_mm)) / (d_ab.size + d_ba.size)
            out[(i, j)] = PairAgreement(2 * both / (a.voxels + b.voxels), both / (a.voxels + b.voxels - both), hd95,
                                        float(within), tolerance_mm, a.voxels * voxel, b.voxels * voxel,
                                        abs(a.voxels - b.voxels) * voxel)
    return out


# -- boxes, landmarks, classifications -------------------------------------------

def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two boxes (x, y, width, height), any consistent unit."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 1.0


def landmark_distance_mm(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two raters over the same items (1 when both agree on one category)."""
    categories = sorted(set(a) | set(b), key=str)
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b):
        table[index[x], index[y]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(0) * table.sum(1)).sum()) / n**2
    return 1.0 if expected == 1 else float((observed - expected) / (1 - expected))


def fleiss_kappa(ratings: Sequence[Sequence]) -> float:
    """Fleiss' kappa: ``ratings[item]`` lists the category each rater gave (same rater count per item)."""
    categories = sorted({c for item in ratings for c in item}, key=str)
    counts = np.array([[list(item).count(c) for c in categories] for item in ratings], dtype=float)
    n = counts.sum(1)[0]
    p_item = ((counts**2).sum(1) - n) / (n * (n - 1))
    p_cat = counts.sum(0) / counts.sum()
    expected = float((p_cat**2).sum())
    return 1.0 if expected == 1 else float((p_item.mean() - expected) / (1 - expected))


def krippendorff_alpha_nominal(ratings: Sequence[Sequence]) -> float:
    """Krippendorff's alpha (nominal); ``ratings[item]`` lists the values given (None = missing)."""
    units = [[v for v in item if v is not None] for item in ratings]
    units = [u for u in units if len(u) >= 2]
    values = sorted({v for u in units for v in u}, key=str)
    index = {v: i for i, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in units:
        m = len(unit)
        for i, x in enumerate(unit):
            for j, y in enumerate(unit):
                if i != j:
                    coincidence[index[x], index[y]] += 1 / (m - 1)
    n = coincidence.sum()
    marginals = coincidence.sum(0)
    observed = n - np.trace(coincidence)
    expected = (n**2 - (marginals**2).sum()) / (n - 1)
    return 1.0 if expected == 0 else float(1 - observed / expected)


# -- volumetric continuity --------------------------------------------------------------

def continuity_issues(mask: np.ndarray, spacing: Sequence[float], max_jump_mm: float = 10.0) -> list[str]:
    """Where a class breaks (an empty slice between labelled ones) or drifts (centroid jumps).

    Slices are named in radlabel's one numbering, as Label Studio's "N of M", the OHIF panel and the reports say
    it: 1 = the first of the task's ``sop_instance_uids`` (sorted along the slice normal: the most inferior slice
    of an axial series); ``mask`` is indexed in that order from 0."""
    present = np.flatnonzero(np.asarray(mask, bool).reshape(mask.shape[0], -1).any(axis=1))
    issues = []
    if present.size:
        gaps = [int(k) for k in range(present[0], present[-1] + 1) if k not in set(present.tolist())]
        if gaps:
            issues.append(f"breaks on slice(s) {[k + 1 for k in gaps[:10]]} between labelled slices")
        centroids = {int(k): np.argwhere(mask[k]).mean(0) * np.asarray(spacing[1:]) for k in present}
        for k in present[:-1]:
            if k + 1 in centroids:
                jump = float(np.linalg.norm(centroids[k + 1] - centroids[k]))
                if jump > max_jump_mm:
                    issues.append(f"drifts {jump:.1f} mm between slices {k + 1} and {k + 2}")
    return issues
