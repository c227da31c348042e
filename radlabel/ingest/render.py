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
