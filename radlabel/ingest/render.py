"""Rendering slices to 8-bit PNG with a protocol's window presets.

Every annotator sees the same viewing conditions because the window is
burned into the images Label Studio shows; the file names carry only the
preset and the slice index.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear window (DICOM PS3.3 C.11.2.1.2, 'LINEAR') to uint8."""
    low = center - 0.5 - (width - 1) / 2
    scaled = (values - low) / max(width - 1, 1) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit greyscale or RGB PNG; fast zlib level (rendering is on the sync path)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def full_range(values: np.ndarray) -> np.ndarray:
    """The frame's own minimum to maximum as 0-255: the view where burned-in text shows (not a reading window)."""
    values = values.astype(np.float64)
    low, high = float(values.min()), float(values.max())
    return np.clip(np.rint((values - low) / max(high - low, 1e-9) * 255.0), 0, 255).astype(np.uint8)


TEXT_FEATURE_PX = 11  # wider than a glyph stroke, narrower than a bar or an organ


def text_views(grey: np.ndarray) -> list[np.ndarray]:
    """Views where burned-in text shows: the frame's full range (dark text on a light screen capture), and
    its bright strokes whatever lies behind them (a white top-hat: a grey bar or an image behind the text
    drops out), log-stretched so dim text reads too."""
    from scipy import ndimage

    values = grey.astype(np.int16)
    strokes = values - ndimage.grey_opening(values, size=(TEXT_FEATURE_PX, TEXT_FEATURE_PX))
    logged = np.log1p(strokes.astype(np.float64))
    bright = np.clip(np.rint(logged / max(float(logged.max()), 1e-9) * 255.0), 0, 255).astype(np.uint8)
    return [full_range(grey), bright]
