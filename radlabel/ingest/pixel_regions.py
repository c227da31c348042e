"""Where things lie in a frame: Otsu's threshold, the body outline, and the regions where burned-in text can be.

The text prior spares the anatomy and most of the OCR time. Burned-in text is thin strokes of one contrast
grouped into lines, and it sits where the image is not: in the borders, on a text bar, on a flat background.
So OCR reads only regions found by a cheap morphology and connected-component pass:

- strokes: pixels that stand out from their surroundings by a white (or black) top-hat narrower than a bar or
  an organ, at least a share of the frame's strongest stroke;
- glyphs: stroke components of letter size; lines: glyphs joined along a row, at least two per line;
- a line outside the body outline (the large tissue components, holes filled) is a candidate; inside it, only
  on a flat background (a text bar, an overlay box) or drawn at the frame's top value, as overlays are;
- text drawn over the anatomy at one stored value other than the top (``one_value_text``): tissue, noisy at
  the stored precision, never puts hundreds of pixels on one value, so such a spike in the body's histogram
  is drawn, and its letter-sized components in lines are candidates too (with a view that shows only them).

Everything outside the candidate regions is blank to OCR, so it is neither read nor masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radlabel.ingest.render import TEXT_FEATURE_PX

MIN_STROKE_CONTRAST = 24  # of 255: weaker edges are noise, not text anyone reads
STROKE_SHARE = 0.3  # of the frame's strongest stroke: dim text stays, faint texture goes
MIN_GLYPH_PX, MAX_GLYPH_PX = 4, 48  # letter heights in the frame's own pixels
BODY_OPENING_PX = 9  # an opening this wide removes strokes and thin lines, keeps tissue
MIN_BODY_SHARE = 0.005  # a tissue component smaller than this share of the frame is not body
WHOLE_FRAME_SHARE = 0.9  # a "body" this large is a page or a radiograph: no outline to go by
FLAT_GROUND_SHARE = 0.4  # overlay text: most of its background is one value
SATURATED = 250  # of 255: overlays are drawn at the top value
MIN_SPIKE_PX = 40  # pixels on one stored value: two small letters have more
SPIKE_RATIO = 8  # times the typical count of the values around it (tissue's histogram is smooth there)
SPIKE_NEIGHBOURHOOD = 17  # stored values compared with


@dataclass(frozen=True)
class Region:
    top: int
    left: int
    bottom: int  # exclusive
    right: int  # exclusive


def otsu(values: np.ndarray) -> float:
    """The threshold that best splits air (and its noise) from tissue: Otsu's, on a 256-bin histogram."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, grand = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (grand * weight - total * mean) ** 2 / (weight * (total - weight))
    return float(centres[int(np.nanargmax(between[:-1]))]) if np.isfinite(between[:-1]).any() else float(values.min())


def body_outline(grey: np.ndarray) -> np.ndarray:
    """The frame's body (or image area): large tissue components with their holes filled; all False when the
    frame has no outline (a page, a radiograph filling the frame)."""
    tissue = ndimage.binary_opening(grey > otsu(grey), structure=np.ones((BODY_OPENING_PX, BODY_OPENING_PX)))
    labels, count = ndimage.label(tissue)
    if count == 0:
        return tissue
    sizes = ndimage.sum(tissue, labels, np.arange(1, count + 1))
    large = np.flatnonzero(sizes >= MIN_BODY_SHARE * grey.size) + 1
    body = ndimage.binary_fill_holes(np.isin(labels, large))
    return body if body.mean() < WHOLE_FRAME_SHARE else np.zeros_like(body)


def _strokes(grey: np.ndarray) -> list[np.ndarray]:
    """Bright strokes on darker ground and dark strokes on lighter ground, as masks."""
    values = grey.astype(np.int16)
    size = (TEXT_FEATURE_PX, TEXT_FEATURE_PX)
    masks = []
    for strength in (values - ndimage.grey_opening(values, size=size), ndimage.grey_closing(values, size=size) - values):
        peak = int(strength.max())
        if peak >= MIN_STROKE_CONTRAST:
            masks.append(strength >= max(MIN_STROKE_CONTRAST, STROKE_SHARE * peak))
    return masks


def _glyphs(strokes: np.ndarray) -> np.ndarray:
    """Stroke components of letter size (long curves such as a table's edge are not letters)."""
    labels, _ = ndimage.label(strokes, structure=np.ones((3, 3)))
    keep = np.zeros(len(ndimage.find_objects(labels)) + 1, bool)
    for index, found in enumerate(ndimage.find_objects(labels), 1):
        height, width = found[0].stop - found[0].start, found[1].stop - found[1].start
        keep[index] = MIN_GLYPH_PX <= height <= MAX_GLYPH_PX and width <= 3 * height
    return keep[labels]


def _lines(glyphs: np.ndarray) -> list[tuple[slice, slice, int]]:
    """Glyphs joined along rows into lines and nearby lines into blocks: (rows, columns, glyph count)."""
    joined = ndimage.binary_dilation(glyphs, structure=np.ones((7, 15)))
    labels, _ = ndimage.label(joined)
    glyph_labels, _ = ndimage.label(glyphs, structure=np.ones((3, 3)))
    lines = []
    for index, found in enumerate(ndimage.find_objects(labels), 1):
        inside = glyph_labels[found][labels[found] == index]
        lines.append((found[0], found[1], len(np.unique(inside[inside > 0]))))
    return lines


def _overlay_like(grey: np.ndarray, strokes: np.ndarray, rows: slice, columns: slice) -> bool:
    """Text over the body counts only where it looks like an overlay: flat ground or drawn at the top value."""
    patch, stroke = grey[rows, columns], strokes[rows, columns]
    ground = patch[~stroke]
    flat = ground.size > 0 and np.bincount(ground.ravel()).max() / ground.size >= FLAT_GROUND_SHARE
    return flat or (stroke.any() and float(np.median(patch[stroke])) >= SATURATED)


def one_value_text(values: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Pixels inside the body on a stored value its histogram holds far more often than the values around it:
    text drawn over anatomy at one value. The body's lowest and highest values (air, padding, bone or metal at
    the limit, overlays at the top value) are left to the other rules; so are 8-bit frames, whose histograms
    are coarse enough to spike on tissue."""
    flat = np.zeros(values.shape, bool)
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer) or values.dtype.itemsize < 2 or not body.any():
        return flat
    inside = values[body].astype(np.int64)
    low = int(inside.min())
    counts = np.bincount(inside - low)
    if counts.size < 3 or counts.size > 1 << 17:
        return flat
    around = ndimage.median_filter(counts, size=SPIKE_NEIGHBOURHOOD, mode="nearest")
    spikes = np.flatnonzero((counts >= MIN_SPIKE_PX) & (counts >= SPIKE_RATIO * np.maximum(around, 1)))
    spikes = spikes[(spikes > 0) & (spikes < counts.size - 1)] + low
    return body & np.isin(values, spikes) if spikes.size else flat


def drawn_text(frame: np.ndarray, grey: np.ndarray) -> np.ndarray | None:
    """``one_value_text`` of a frame within its body outline when it forms lines of letters; else None."""
    if frame.ndim != 2:
        return None
    strokes = one_value_text(frame, body_outline(grey))
    if not strokes.any() or not any(count >= 2 for _, _, count in _lines(_glyphs(strokes))):
        return None
    return strokes


def text_regions(grey: np.ndarray, one_value: np.ndarray | None = None) -> list[Region]:
    """Regions of an 8-bit frame where burned-in text can be: the only places OCR reads and masks.
    ``one_value``: the frame's ``one_value_text`` strokes, whose lines are candidates wherever they are."""
    body = body_outline(grey)
    regions = []
    if one_value is not None:
        regions += [Region(rows.start, columns.start, rows.stop, columns.stop)
                    for rows, columns, glyph_count in _lines(_glyphs(one_value)) if glyph_count >= 2]
    for strokes in _strokes(grey):
        for rows, columns, glyph_count in _lines(_glyphs(strokes)):
            if glyph_count < 2:
                continue
            if body[rows, columns].mean() >= 0.5 and not _overlay_like(grey, strokes, rows, columns):
                continue
            regions.append(Region(rows.start, columns.start, rows.stop, columns.stop))
    return regions


def merged(regions: list[Region], margin: int, shape: tuple[int, int]) -> list[Region]:
    """The regions grown by a margin (OCR needs ground around letters), overlapping ones joined."""
    painted = np.zeros(shape, bool)
    for r in regions:
        painted[max(r.top - margin, 0):r.bottom + margin, max(r.left - margin, 0):r.right + margin] = True
    labels, _ = ndimage.label(painted)
    return [Region(rows.start, columns.start, rows.stop, columns.stop) for rows, columns in ndimage.find_objects(labels)]


@dataclass(frozen=True)
class Mosaic:
    """Regions cut out of one or more views of a frame and stacked one under another, each on its own ground,
    so that one OCR call reads a small image instead of every view of the whole frame (Tesseract's time goes
    into starting up and into the area it reads)."""

    image: np.ndarray
    placed: list[tuple[int, Region]]  # (first row in the mosaic, region of the frame)
    gap: int

    def to_frame(self, top: int, left: int, height: int) -> tuple[int, int] | None:
        """A box read in the mosaic, back in frame coordinates (None for a box outside every region)."""
        middle = top + height / 2
        for row, region in self.placed:
            if row <= middle < row + region.bottom - region.top:
                return top - row + region.top, left - self.gap + region.left
        return None


def mosaic(pieces: list[tuple[np.ndarray, Region]], gap: int = 16) -> Mosaic:
    """One 8-bit image of the pieces (a view and a region of it), each framed by ``gap`` pixels of its ground."""
    width = max(r.right - r.left for _, r in pieces) + 2 * gap
    bands, placed, row = [], [], 0
    for view, r in pieces:
        cut = view[r.top:r.bottom, r.left:r.right]
        band = np.full((cut.shape[0] + 2 * gap, width), np.bincount(cut.ravel()).argmax(), dtype=np.uint8)
        band[gap:gap + cut.shape[0], gap:gap + cut.shape[1]] = cut
        bands.append(band)
        placed.append((row + gap, r))
        row += band.shape[0]
    return Mosaic(np.concatenate(bands), placed, gap)
