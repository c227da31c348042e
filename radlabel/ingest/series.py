"""A series as a stack of frames: classic single-frame instances or enhanced multi-frame.

Every frame knows its source instance, frame number, position, orientation and
pixel spacing, so validation, rendering and SEG code never care which kind of
IOD the scanner wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset

from radlabel.geometry import VolumeGeometry

# Storage SOP classes that hold images we can annotate slice by slice.
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.66",  # segmentation, registration, surface
    "1.2.840.10008.5.1.4.1.1.88",  # structured reports
    "1.2.840.10008.5.1.4.1.1.481",  # RT objects
    "1.2.840.10008.5.1.4.1.1.11",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104",  # encapsulated documents
    "1.2.840.10008.5.1.4.1.1.9",  # waveforms
)


@dataclass
class Frame:
    instance: Dataset
    frame_index: int  # 0-based within the instance
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int

    @property
    def sop_instance_uid(self) -> str:
        return str(self.instance.SOPInstanceUID)


def _floats(value, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        return None
    # NaN or infinite geometry is no geometry (a damaged header): validation reports it missing.
    return numbers if len(numbers) == count and all(math.isfinite(n) for n in numbers) else None


def _functional(ds: Dataset, index: int, sequence: str, attribute: str):
    """An attribute from the per-frame functional group, else the shared one."""
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
        if not groups:
            continue
        group = groups[index] if groups is ds.get("PerFrameFunctionalGroupsSequence") else groups[0]
        items = group.get(sequence)
        if items and attribute in items[0]:
            return items[0].get(attribute)
    return None


def frames_of(ds: Dataset) -> list[Frame]:
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return [
            Frame(ds, i,
                  _floats(_functional(ds, i, "PlanePositionSequence", "ImagePositionPatient"), 3),
                  _floats(_functional(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                  _floats(_functional(ds, i, "PixelMeasuresSequence", "PixelSpacing"), 2),
                  rows, columns)
            for i in range(count)
        ]
    return [Frame(ds, i, _floats(ds.get("ImagePositionPatient"), 3), _floats(ds.get("ImageOrientationPatient"), 6),
                  _floats(ds.get("PixelSpacing"), 2), rows, columns) for i in range(count)]


def is_image(ds: Dataset) -> bool:
    sop_class = str(ds.get("SOPClassUID", ""))
    return "PixelData" in ds and not sop_class.startswith(NON_IMAGE_SOP_PREFIXES)


def normal_of(orientation: tuple[float, ...]) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def sort_frames(frames: list[Frame]) -> list[Frame]:
    """Frames in order along the slice normal (those without geometry keep instance order)."""
    if not frames or any(f.position is None or f.orientation is None for f in frames):
        return sorted(frames, key=lambda f: (int(f.instance.get("InstanceNumber", 0) or 0), f.frame_index))
    normal = normal_of(frames[0].orientation)
    return sorted(frames, key=lambda f: float(np.dot(normal, f.position)))


def frame_pixels(frame: Frame) -> np.ndarray:
    """Modality values (rescaled: HU for CT) of one frame as float32."""
    ds = frame.instance
    array = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        array = array[frame.frame_index]
    slope = _functional(ds, frame.frame_index, "PixelValueTransformationSequence", "RescaleSlope") \
        or ds.get("RescaleSlope", 1) or 1
    intercept = _functional(ds, frame.frame_index, "PixelValueTransformationSequence", "RescaleIntercept") \
        or ds.get("RescaleIntercept", 0) or 0
    return array.astype(np.float32) * float(slope) + float(intercept)


def geometry_of(frames: list[Frame]) -> VolumeGeometry:
    """Geometry of sorted, validated frames (uniform spacing assumed)."""
    first, last = frames[0], frames[-1]
    count = len(frames)
    step = ((np.asarray(last.position) - np.asarray(first.position)) / (count - 1)) if count > 1 else \
        normal_of(first.orientation) * float(first.instance.get("SliceThickness", 1) or 1)
    return VolumeGeometry(tuple(first.position), tuple(first.orientation[:3]), tuple(first.orientation[3:]),
                          tuple(first.pixel_spacing), tuple(float(v) for v in step), (count, first.rows, first.columns))
