"""Interactive assist: a reader's scribbles, clicks or boxes on a few slices become a 3-D mask of their class.

What Label Studio's smart tools send (``params.context.result``, every dynamic region of the class with
its slice ``item_index``) is read per class into seeds:

- **brush scribbles** (decoded per slice with ``radlabel.brush_rle``): the class's intensity is taken
  from the voxels under the strokes (median and robust spread, on a lightly smoothed volume, in
  modality values: HU for CT); connected voxels within that band are grown through the volume from the
  strokes, holes filled slice by slice. Strokes that outline or fill the class on several slices are *key
  slices*: their shapes are interpolated between them (signed distances), refined by the growth only where
  the growth reproduces them;
- **positive keypoints / boxes** without strokes: region growing from the click (or box centre) in a
  cube of ``max_radius_mm`` (a box also bounds it in-plane) — lesion-sized structures; a click whose growth
  fills its cube is on an organ and is grown through the volume as a scribble;
- **negative keypoints** (``is_positive: false``) constrain: the intensity band stops halfway to the
  values under them, and a small ball around each is never part of the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from radlabel.brush_rle import decode

SMOOTHING_SLICES = 0  # never across slices: an organ's cross-section changes fast at its ends
SMOOTHING_PX = 2.0  # in-plane Gaussian sigma: noise would bridge neighbouring tissues of close values
MIN_TOLERANCE = 8.0  # modality units: a band never narrower than this either side of the class's median
NEGATIVE_BALL_PX = 3
KEY_SNAP_PX = 3  # growth between key slices stays this close to the interpolated shapes
OUTLINED = 0.5  # a key slice whose filled strokes cover half its growth was outlined (or filled) by the reader
OUTLINE_WIDTH_PX = 6  # filled strokes this many pixels deep are an area, not a scribble line
TRUSTED_GROWTH = 0.8  # Dice of the growth with the reader's key-slice shapes above which it refines them


@dataclass
class Seeds:
    """What the reader drew for one class, in volume indices."""
    strokes: dict[int, np.ndarray] = field(default_factory=dict)  # slice → 2-D bool mask
    points: list[tuple[int, int, int]] = field(default_factory=list)
    negatives: list[tuple[int, int, int]] = field(default_factory=list)
    boxes: list[tuple[tuple[int, int, int], tuple[int, int, int, int]]] = field(default_factory=list)


def grow(values: np.ndarray, seed: tuple[int, int, int], spacing, max_radius_mm: float = 40.0,
         limits: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Region growing from one click, inside a cube of ``max_radius_mm`` (and a box's in-plane ``limits``)."""
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


def _labels_of(region: dict) -> list[str]:
    value = region.get("value") or {}
    return [label for label in value.get(str(region.get("type")), []) if isinstance(label, str)]


def _point(value: dict, k: int, shape) -> tuple[int, int, int]:
    rows, columns = shape[1:]
    return (k, min(max(int(value["y"] * rows / 100), 0), rows - 1), min(max(int(value["x"] * columns / 100), 0), columns - 1))


def _is_positive(region: dict) -> bool:
    flag = region.get("is_positive", (region.get("value") or {}).get("is_positive", True))
    return flag is not False


def seeds_from_context(context: dict, shape) -> dict[str, Seeds]:
    """Seeds per class from a Label Studio interactive request's ``result`` (brush, keypoints, boxes)."""
    found: dict[str, Seeds] = {}
    rows, columns = shape[1:]
    for region in (context or {}).get("result", []) or []:
        value, kind = region.get("value") or {}, region.get("type")
        k = int(region.get("item_index") or 0)
        if not 0 <= k < shape[0]:
            continue
        for label in _labels_of(region):
            seeds = found.setdefault(label, Seeds())
            if kind == "brushlabels" and value.get("format") == "rle":
                stroke = decode(value["rle"], rows, columns) > 0
                seeds.strokes[k] = seeds.strokes[k] | stroke if k in seeds.strokes else stroke
            elif kind == "keypointlabels":
                (seeds.points if _is_positive(region) else seeds.negatives).append(_point(value, k, shape))
            elif kind == "rectanglelabels":
                x, y, w, h = (value[key] for key in ("x", "y", "width", "height"))
                widen = 0.1
                limits = (int((y - h * widen) * rows / 100), int((y + h * (1 + widen)) * rows / 100) + 1,
                          int((x - w * widen) * columns / 100), int((x + w * (1 + widen)) * columns / 100) + 1)
                seeds.boxes.append((_point({"x": x + w / 2, "y": y + h / 2}, k, shape), limits))
    return found


def _seed_volume(seeds: Seeds, shape) -> np.ndarray:
    volume = np.zeros(shape, bool)
    for k, stroke in seeds.strokes.items():
        volume[k] |= stroke
    for k, j, i in seeds.points:
        volume[k, j, i] = True
    return volume


def _band(smooth: np.ndarray, inside: np.ndarray, negatives: list[tuple[int, int, int]]) -> tuple[float, float]:
    """(centre, tolerance) of the class's values: robust statistics under the strokes, bounded by negatives."""
    under = smooth[inside]
    centre = float(np.median(under))
    spread = 1.4826 * float(np.median(np.abs(under - centre)))
    tolerance = max(3.0 * spread, MIN_TOLERANCE)
    for k, j, i in negatives:
        tolerance = min(tolerance, abs(float(smooth[k, j, i]) - centre) / 2)
    return centre, tolerance


def _without_negatives(candidate: np.ndarray, negatives: list[tuple[int, int, int]]) -> np.ndarray:
    """The candidate less a small ball around every negative click (its slice and the two beside it)."""
    rows, columns = np.ogrid[:candidate.shape[1], :candidate.shape[2]]
    for k, j, i in negatives:
        disc = (rows - j) ** 2 + (columns - i) ** 2 <= NEGATIVE_BALL_PX ** 2
        candidate[max(k - 1, 0):k + 2] &= ~disc
    return candidate


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    return np.stack([ndimage.binary_fill_holes(plane) for plane in mask])


def _signed_distance(plane: np.ndarray, sampling) -> np.ndarray:
    """Negative inside, positive outside (mm)."""
    if not plane.any():
        return np.full(plane.shape, 1e6, np.float32)
    return (ndimage.distance_transform_edt(~plane, sampling) - ndimage.distance_transform_edt(plane, sampling)).astype(np.float32)


def interpolate_key_slices(keys: dict[int, np.ndarray], depth: int, sampling) -> np.ndarray:
    """Shape-based interpolation between key-slice masks (linear in signed distance); empty outside them."""
    result = np.zeros((depth, *next(iter(keys.values())).shape), bool)
    order = sorted(keys)
    for k in order:
        result[k] = keys[k]
    for a, b in zip(order, order[1:]):
        da, db = _signed_distance(keys[a], sampling), _signed_distance(keys[b], sampling)
        for k in range(a + 1, b):
            t = (k - a) / (b - a)
            result[k] = (1 - t) * da + t * db <= 0
    return result


def grow_strokes(values: np.ndarray, spacing, seeds: Seeds, smooth: np.ndarray | None = None) -> np.ndarray:
    """The class's 3-D mask from brush strokes (plus positive clicks), constrained by negative clicks."""
    smooth = _smoothed(values) if smooth is None else smooth
    inside = _seed_volume(seeds, values.shape)
    centre, tolerance = _band(smooth, inside, seeds.negatives)
    candidate = _without_negatives((np.abs(smooth - centre) <= tolerance) | inside, seeds.negatives)
    candidate = ndimage.binary_opening(candidate, np.ones((1, 3, 3), bool)) | inside  # thin bridges of noise
    components, _ = ndimage.label(candidate)
    touched = np.unique(components[inside & candidate])
    grown = _fill_slices(np.isin(components, touched[touched > 0]))
    outlines = {k: ndimage.binary_fill_holes(stroke) for k, stroke in seeds.strokes.items()}
    outlines = {k: shape for k, shape in outlines.items() if _outlined(shape, grown[k])}
    return _between_outlines(grown, outlines, spacing) if len(outlines) >= 2 else grown


def _outlined(shape: np.ndarray, grown: np.ndarray) -> bool:
    """Did the reader outline or fill the class on this slice (rather than scribble in it)? Either the filled
    strokes cover much of the growth, or they hold a disc wider than a brush stroke."""
    wide = ndimage.binary_erosion(shape, iterations=OUTLINE_WIDTH_PX).any()
    return bool(wide or shape.sum() >= OUTLINED * grown.sum())


def _between_outlines(grown: np.ndarray, outlines: dict[int, np.ndarray], spacing) -> np.ndarray:
    """Key slices the reader outlined (or filled): their shapes interpolated between them, and nothing beyond.
    The growth is kept near the interpolation only where it reproduces the reader's own key-slice shapes."""
    between = interpolate_key_slices(outlines, grown.shape[0], spacing[1:])
    agreement = np.mean([2 * np.count_nonzero(grown[k] & shape) / (grown[k].sum() + shape.sum())
                         for k, shape in outlines.items()])
    if agreement >= TRUSTED_GROWTH:
        near = ndimage.binary_dilation(between, np.ones((1, 3, 3), bool), iterations=KEY_SNAP_PX)
        between |= grown & near
    first, last = min(outlines), max(outlines)
    between[:first] = False
    between[last + 1:] = False
    return between


def _smoothed(values: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(values.astype(np.float32), (SMOOTHING_SLICES, SMOOTHING_PX, SMOOTHING_PX))


def _reaches_cube(mask: np.ndarray, seed: tuple[int, int, int], spacing, max_radius_mm: float = 40.0) -> bool:
    """Does a click's local growth touch the in-plane sides of its cube (the structure is larger than a lesion)?"""
    k, j, i = seed
    plane = mask[k]
    reach = [max(int(np.ceil(max_radius_mm / s)), 1) for s in spacing[1:]]
    rows, columns = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return bool(len(rows)) and (rows.min() <= max(j - reach[0], 0) or rows.max() >= min(j + reach[0], plane.shape[0] - 1)
                                or columns.min() <= max(i - reach[1], 0) or columns.max() >= min(i + reach[1], plane.shape[1] - 1))


def _clicks(values: np.ndarray, spacing, seeds: Seeds, smooth: np.ndarray) -> np.ndarray:
    """Clicks and boxes: grown locally (lesions); a click whose growth fills its cube is an organ, grown through the
    volume from a small disc around it like a scribble."""
    mask = np.zeros(values.shape, bool)
    for point in seeds.points:
        local = grow(values, point, spacing)
        if _reaches_cube(local, point, spacing):
            k, j, i = point
            disc = np.zeros(values.shape[1:], bool)
            disc[max(j - 1, 0):j + 2, max(i - 1, 0):i + 2] = True
            local = grow_strokes(values, spacing, Seeds(strokes={k: disc}, negatives=seeds.negatives), smooth)
        mask |= local
    for centre, limits in seeds.boxes:
        mask |= grow(values, centre, spacing, limits=limits)
    return _without_negatives(mask, seeds.negatives) if seeds.negatives else mask


def from_context(values: np.ndarray, spacing, context: dict) -> dict[str, np.ndarray]:
    """Masks per class for the scribbles/clicks/boxes in a Label Studio interactive request."""
    masks: dict[str, np.ndarray] = {}
    smooth = None
    for label, seeds in seeds_from_context(context, values.shape).items():
        if seeds.strokes:
            smooth = _smoothed(values) if smooth is None else smooth
            masks[label] = grow_strokes(values, spacing, seeds, smooth)
        elif seeds.points or seeds.boxes:
            smooth = _smoothed(values) if smooth is None else smooth
            masks[label] = _clicks(values, spacing, seeds, smooth)
    return masks
