"""Label Studio brush RLE: the one place masks become brush regions and back.

Encoding is our own, vectorised with NumPy: the SDK's ``mask2rle`` builds a
Python string of bits run by run and took 0.33 s per 300-slice class
(bench/brush_rle.py measures both; the output is byte-for-byte the SDK's, its
quirks included: 8 padding bits when already byte-aligned, runs longer than
65,536 split into 65,536-long chunks). Decoding uses the SDK's ``decode_rle``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_HEADER_WORD = 8  # bits per value
_RLE_SIZES = (3, 4, 8, 16)
_CHUNK = 1 << 16


def _header(count: int) -> np.ndarray:
    text = f"{count:032b}{_HEADER_WORD - 1:05b}" + "".join(f"{size - 1:04b}" for size in _RLE_SIZES)
    return np.frombuffer(text.encode(), dtype=np.uint8) - ord("0")


def encode(mask: np.ndarray) -> list[int]:
    """Brush RLE of a 2-D uint8 mask (0/255 or any 8-bit values), as Label Studio stores it."""
    if mask.ndim != 2:
        raise ValueError("a brush mask is 2-D (rows, columns)")
    flat = np.ascontiguousarray(mask, dtype=np.uint8).ravel()
    if flat.size and flat[0] == flat[-1] and not np.any(flat != flat[0]):
        return list(_uniform(mask.shape, int(flat[0])))  # most slices of a volume are empty
    return _encode(flat)


@lru_cache(maxsize=64)
def _uniform(shape: tuple[int, int], value: int) -> tuple[int, ...]:
    return tuple(_encode(np.full(shape[0] * shape[1], value, dtype=np.uint8)))


def _encode(flat: np.ndarray) -> list[int]:
    # The image is RGBA with every channel equal to the mask value: runs are the mask's runs x 4.
    count = flat.size * 4
    change = np.flatnonzero(flat[1:] != flat[:-1])
    ends = np.append(change, flat.size - 1)
    lengths = np.diff(np.append(-1, ends)).astype(np.int64) * 4
    values = flat[ends].astype(np.int64)

    # Runs over 256 use 16-bit lengths; those over 65,536 are cut into chunks of 65,536.
    long = lengths > 256
    extra = np.where(long, (lengths - 1) // _CHUNK, 0)
    repeat = extra + 1
    lengths_r = np.repeat(lengths, repeat)
    values_r = np.repeat(values, repeat)
    first_of_run = np.repeat(np.cumsum(repeat) - repeat, repeat)
    position = np.arange(lengths_r.size) - first_of_run  # chunk index within its run
    last_chunk = position == np.repeat(extra, repeat)
    chunk_length = np.where(long[np.repeat(np.arange(lengths.size), repeat)] & ~last_chunk, _CHUNK,
                            lengths_r - extra.repeat(repeat) * _CHUNK)

    single = chunk_length == 1
    kind = np.select([single, chunk_length <= 8, chunk_length <= 16, chunk_length <= 256], [0, 0, 1, 2], 3)
    size_bits = np.array(_RLE_SIZES)[kind]
    run_flag = (~single).astype(np.int64)
    length_field = np.where(single, 0, chunk_length - 1)
    codes = (((run_flag << 2 | kind) << size_bits | length_field) << 8) | values_r
    widths = 1 + 2 + size_bits + 8

    bits = ((codes[:, None] >> np.arange(26, -1, -1)) & 1).astype(np.uint8)
    keep = np.arange(27)[None, :] >= (27 - widths)[:, None]
    body = bits[keep]
    header = _header(count)
    total = header.size + body.size
    padding = np.zeros(8 - total % 8, dtype=np.uint8)  # the SDK pads 8 bits when already aligned
    stream = np.concatenate([header, body, padding])
    return np.packbits(stream).tolist()


def decode(rle: list[int], rows: int, columns: int) -> np.ndarray:
    """The 2-D mask of a brush RLE (alpha channel)."""
    from label_studio_sdk.converter.brush import decode_rle

    return np.asarray(decode_rle(rle)).reshape(rows, columns, 4)[:, :, 3]


def mask_regions(masks: dict[str, np.ndarray], control: str = "mask", image: str = "image",
                 targets: dict[str, tuple[str, str]] | None = None) -> list[dict]:
    """Label Studio brush regions for class masks (one region per class and slice). ``targets`` gives each
    class its (control, image), as ``labelconfig.class_targets`` makes them: a class is drawn on the image
    of the preset it is read in; classes it does not name use ``control`` and ``image``."""
    regions = []
    for name, mask in masks.items():
        control_here, image_here = (targets or {}).get(name, (control, image))
        for index in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
            plane = mask[index].astype(np.uint8) * 255
            regions.append({
                "id": f"{name[:12]}-{index}", "from_name": control_here, "to_name": image_here, "type": "brushlabels",
                "item_index": int(index), "origin": "manual", "image_rotation": 0,
                "original_width": int(plane.shape[1]), "original_height": int(plane.shape[0]),
                "value": {"format": "rle", "rle": encode(plane), "brushlabels": [name]},
            })
    return regions
