"""Consensus of several reads of one class: majority vote and STAPLE.

STAPLE (Warfield et al., 2004) is our own NumPy EM, because SimpleITK's filter runs over the whole
volume (36 s for 3 readers on 512x512x300, stack notes). It works on the bounding box of the reads
and accounts for the voxels outside it — where every reader says background — in closed form, so
it estimates exactly what the whole-volume EM estimates. Each reader's sensitivity and specificity
are returned: they feed calibration. bench/staple.py compares it with SimpleITK's STAPLE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INITIAL = 0.99999  # ITK's initial sensitivity and specificity


@dataclass
class StapleResult:
    probability: np.ndarray  # posterior foreground probability, full volume
    consensus: np.ndarray  # probability >= 0.5
    sensitivity: list[float]
    specificity: list[float]
    iterations: int


def majority(masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(consensus: more than half the readers, ties: exactly half — for arbitration)."""
    votes = np.sum([np.asarray(m, dtype=np.uint8) for m in masks], axis=0)
    readers = len(masks)
    return votes * 2 > readers, votes * 2 == readers


def _box(masks: list[np.ndarray]) -> tuple[slice, ...] | None:
    union = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks])
    if not union.any():
        return None
    return tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(union))


def staple(masks: list[np.ndarray], max_iterations: int = 200, tolerance: float = 1e-8) -> StapleResult:
    # Fractional SEG segments come as probabilities (0..1): STAPLE's EM takes soft decisions as they are.
    masks = [np.clip(np.asarray(m, dtype=np.float64), 0, 1) if np.asarray(m).dtype.kind == "f"
             else np.asarray(m, dtype=bool) for m in masks]
    readers, total = len(masks), masks[0].size
    box = _box(masks)
    if box is None:
        zero = np.zeros(masks[0].shape)
        return StapleResult(zero, zero.astype(bool), [1.0] * readers, [1.0] * readers, 0)
    decisions = np.stack([m[box].ravel() for m in masks]).astype(np.float64)  # (readers, voxels in box)
    outside = total - decisions.shape[1]  # every reader says background there
    prior = sum(int(m.sum()) for m in masks) / (readers * total)
    p = np.full(readers, _INITIAL)
    q = np.full(readers, _INITIAL)
    for iteration in range(1, max_iterations + 1):
        log_p, log_1p = np.log(p), np.log1p(-p)
        log_q, log_1q = np.log(q), np.log1p(-q)
        fore = np.log(prior) + log_p @ decisions + log_1p @ (1 - decisions)
        back = np.log1p(-prior) + log_1q @ decisions + log_q @ (1 - decisions)
        weight = 1.0 / (1.0 + np.exp(back - fore))
        fore0 = np.log(prior) + log_1p.sum()
        back0 = np.log1p(-prior) + log_q.sum()
        weight0 = 1.0 / (1.0 + np.exp(back0 - fore0))  # posterior of an all-background voxel
        sum_w = weight.sum() + outside * weight0
        sum_not = (1 - weight).sum() + outside * (1 - weight0)
        new_p = (decisions @ weight) / sum_w
        new_q = ((1 - decisions) @ (1 - weight) + outside * (1 - weight0)) / sum_not
        new_p = np.clip(new_p, 1e-12, 1 - 1e-12)
        new_q = np.clip(new_q, 1e-12, 1 - 1e-12)
        change = max(np.abs(new_p - p).max(), np.abs(new_q - q).max())
        p, q = new_p, new_q
        if change < tolerance:
            break
    probability = np.full(masks[0].shape, weight0, dtype=np.float64)
    probability[box] = weight.reshape(tuple(s.stop - s.start for s in box))
    return StapleResult(probability, probability >= 0.5, p.tolist(), q.tolist(), iteration)
