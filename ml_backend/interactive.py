"""Interactive assist: one click or box on one slice becomes a 3-D mask through the neighbouring slices.

Region growing in modality values from the click (or the box centre): voxels within a tolerance of
the seed's local median, connected to it, inside a cube of ``max_radius_mm`` (and, for a box, the
box's in-plane extent, widened by a fifth).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def grow(values: np.ndarray, seed: tuple[int, int, int], spacing, max_radius_mm: float = 40.0,
         limits: tuple[int, int, int, int] | None = None) -> np.ndarray:
    k, j, i = seed
    reach = [max(int(np.ceil(max_radius_mm / s)), 1) for s in spacing]
    box = tuple(slice(max(c - r, 0), min(c + r + 1, n)) for c, r, n in zip(seed, reach, values.shape))
    block = ndimage.median_filter(values[box], size=(1, 3, 3))  # noise would bridge neighbouring tissues
    sk, sj, si = k - box[0].start, j - box[1].start, i - box[2].start
    local = block[sk, max(sj - 2, 0):sj + 3, max(si - 2, 0):si + 3]
    centre, spread = float(np.median(local)), float(np.std(local))
    tolerance = max(2.5 * spread, 15.0)
    candidate = np.abs(block - centre) <= tolerance
    if limits is not None:  # (row0, row1, col0, col1) of a box, in the volume's coordinates
        window = np.zeros_like(candidate)
        r0, r1, c0, c1 = (limits[0] - box[1].start, limits[1] - box[1].start, limits[2] - box[2].start,
                          limits[3] - box[2].start)
        window[:, max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
        candidate &= window
    labels, _ = ndimage.label(candidate)
    here = labels[sk, sj, si]
    mask = np.zeros(values.shape, dtype=bool)
    if here:
        mask[box] = ndimage.binary_fill_holes(labels == here)
    return mask


def from_context(values: np.ndarray, spacing, context: dict) -> dict[str, np.ndarray]:
    """Masks per label for the clicks/boxes in a Label Studio interactive request."""
    masks: dict[str, np.ndarray] = {}
    rows, columns = values.shape[1:]
    for region in (context or {}).get("result", []) or []:
        value = region.get("value") or {}
        k = int(region.get("item_index") or 0)
        kind = region.get("type")
        if kind == "keypointlabels":
            labels = value.get("keypointlabels", [])
            j, i = int(value["y"] * rows / 100), int(value["x"] * columns / 100)
            mask = grow(values, (k, j, i), spacing)
        elif kind == "rectanglelabels":
            labels = value.get("rectanglelabels", [])
            x, y, w, h = (value[key] for key in ("x", "y", "width", "height"))
            j, i = int((y + h / 2) * rows / 100), int((x + w / 2) * columns / 100)
            widen = 0.1
            limits = (int((y - h * widen) * rows / 100), int((y + h * (1 + widen)) * rows / 100) + 1,
                      int((x - w * widen) * columns / 100), int((x + w * (1 + widen)) * columns / 100) + 1)
            mask = grow(values, (k, j, i), spacing, limits=limits)
        else:
            continue
        for label in labels:
            masks[label] = masks[label] | mask if label in masks else mask
    return masks
