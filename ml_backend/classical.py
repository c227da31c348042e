"""Classical pre-labelling in HU space: thresholds, morphology, connected components.

No weights, so it works on any CT: air, lungs, fat, bone, and hypodense lesion candidates
inside an organ mask. Each method returns a boolean mask and a confidence in [0, 1]: the share of
the mask's voxels that sit well away (over 50 HU) from the thresholds that made it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MARGIN_HU = 50.0


def _confidence(values: np.ndarray, mask: np.ndarray, thresholds: tuple[float, ...]) -> float:
    if not mask.any():
        return 0.0
    inside = values[mask]
    near = np.zeros(inside.shape, dtype=bool)
    for threshold in thresholds:
        near |= np.abs(inside - threshold) < MARGIN_HU
    return float(1.0 - near.mean())


def body(values: np.ndarray) -> np.ndarray:
    """The patient: the largest component above -500 HU, holes filled slice by slice."""
    above = values > -500
    labels, count = ndimage.label(above)
    if not count:
        return above
    sizes = ndimage.sum(above, labels, range(1, count + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    return np.stack([ndimage.binary_fill_holes(plane) for plane in largest])


def lungs(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Aerated lung: -950 to -300 HU inside the body, the two largest components."""
    inside = body(values)
    candidate = (values > -950) & (values < -300) & inside
    candidate = ndimage.binary_opening(candidate, iterations=1)
    labels, count = ndimage.label(candidate)
    if not count:
        return candidate, 0.0
    sizes = ndimage.sum(candidate, labels, range(1, count + 1))
    keep = np.argsort(sizes)[::-1][:2] + 1
    mask = np.isin(labels, keep[sizes[keep - 1] > 0.05 * sizes.max()])
    return mask, _confidence(values, mask, (-950.0, -300.0))


def bone(values: np.ndarray) -> tuple[np.ndarray, float]:
    mask = ndimage.binary_opening(values > 250, iterations=1)
    return mask, _confidence(values, mask, (250.0,))


def fat(values: np.ndarray) -> tuple[np.ndarray, float]:
    mask = (values > -190) & (values < -30) & body(values)
    return mask, _confidence(values, mask, (-190.0, -30.0))


def air(values: np.ndarray) -> tuple[np.ndarray, float]:
    mask = (values < -950) & body(values)
    return mask, _confidence(values, mask, (-950.0,))


def organ_threshold(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, float]:
    """An organ by its HU window: in range, inside the body, opened, largest component."""
    candidate = ndimage.binary_opening((values >= low) & (values <= high) & body(values), iterations=2)
    labels, count = ndimage.label(candidate)
    if not count:
        return candidate, 0.0
    sizes = ndimage.sum(candidate, labels, range(1, count + 1))
    mask = labels == (int(np.argmax(sizes)) + 1)
    return mask, _confidence(values, mask, (low, high))


def lesion_candidates(values: np.ndarray, organ: np.ndarray, spacing, min_diameter_mm: float = 5.0) -> tuple[np.ndarray, float]:
    """Hypodense blobs inside an organ: more than 2.5 SD below the organ's median, big enough to measure."""
    if not organ.any():
        return np.zeros_like(organ), 0.0
    organ = np.stack([ndimage.binary_fill_holes(plane) for plane in organ])  # lesions are holes in an organ's label
    inner = ndimage.binary_erosion(organ, iterations=1)
    median = float(np.median(values[inner])) if inner.any() else float(np.median(values[organ]))
    spread = float(np.std(values[inner])) if inner.any() else 20.0
    threshold = median - 2.5 * max(spread, 5.0)
    smooth = ndimage.median_filter(values, size=(1, 3, 3))
    candidate = ndimage.binary_opening((smooth < threshold) & organ, iterations=1)
    labels, count = ndimage.label(candidate)
    voxel = float(np.prod(spacing))
    smallest = (np.pi / 6) * min_diameter_mm**3 / voxel
    sizes = ndimage.sum(candidate, labels, range(1, count + 1)) if count else np.array([])
    mask = np.isin(labels, np.flatnonzero(sizes >= smallest) + 1)
    return mask, _confidence(smooth, mask, (threshold,))


def nodule_candidates(values: np.ndarray, lung: np.ndarray, spacing, min_diameter_mm: float = 3.0,
                      max_diameter_mm: float = 30.0) -> tuple[np.ndarray, float]:
    """Solid blobs (over -300 HU) enclosed by aerated lung, of nodule size."""
    if not lung.any():
        return np.zeros_like(lung), 0.0
    field = np.stack([ndimage.binary_fill_holes(plane) for plane in lung])
    candidate = (values > -300) & field & ~lung
    labels, count = ndimage.label(candidate)
    if not count:
        return candidate, 0.0
    voxel = float(np.prod(spacing))
    sizes = ndimage.sum(candidate, labels, range(1, count + 1)) * voxel
    sphere = lambda d: np.pi / 6 * d**3  # noqa: E731
    keep = []
    for number, box in enumerate(ndimage.find_objects(labels), 1):
        extent = max((s.stop - s.start) * size for s, size in zip(box, spacing))  # mm along the longest axis
        if sphere(min_diameter_mm) <= sizes[number - 1] <= sphere(max_diameter_mm) and extent <= max_diameter_mm:
            keep.append(number)
    mask = np.isin(labels, keep)
    return mask, _confidence(values, mask, (-300.0,))


METHODS = {"lung_threshold": lungs, "bone_threshold": bone, "fat_threshold": fat, "air_threshold": air}
