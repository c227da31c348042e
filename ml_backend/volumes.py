"""Where a model gets its input: the task's research series from Orthanc, in modality values (HU for CT).

Models never read the windowed PNGs Label Studio shows: they get the same pixels readers' labels
refer to, in the task's slice order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from connectors.ports import DicomArchive
from radlabel.errors import RadlabelError
from radlabel.ingest.series import frame_pixels, frames_of


@dataclass
class TaskVolume:
    values: np.ndarray  # (slices, rows, columns) float32
    spacing: tuple[float, float, float]
    modality: str


class VolumeSource:
    """Fetches and caches (a few) task volumes from the research archive."""

    def __init__(self, archive: DicomArchive, capacity: int = 4):
        self.orthanc = archive
        self.capacity = capacity
        self._cache: OrderedDict[str, TaskVolume] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, data: dict) -> TaskVolume:
        for key in ("study", "series", "sop_instance_uids"):
            if key not in data:
                raise RadlabelError(f"the task has no {key!r} in its data: it was not made by `radlabel sync`.")
        with self._lock:
            if data["series"] in self._cache:
                self._cache.move_to_end(data["series"])
                return self._cache[data["series"]]
        try:
            datasets = self.orthanc.retrieve_series(data["study"], data["series"])
        except Exception as exc:  # network, HTTP or decoding: one sentence for the caller
            raise RadlabelError(f"the images of series {data['series'][:24]}… cannot be fetched from Orthanc "
                                f"({exc.__class__.__name__}).") from None
        frames = {(f.sop_instance_uid, f.frame_index + 1): f for ds in datasets for f in frames_of(ds)}
        numbers = data.get("frame_numbers") or [1] * len(data["sop_instance_uids"])
        try:
            ordered = [frames[(uid, n)] for uid, n in zip(data["sop_instance_uids"], numbers)]
        except KeyError:
            raise RadlabelError(f"series {data['series'][:24]}… in Orthanc lacks slices the task lists.") from None
        volume = TaskVolume(np.stack([frame_pixels(f) for f in ordered]),
                            (float(data.get("slice_spacing_mm") or 1.0), *map(float, data["pixel_spacing_mm"])),
                            str(datasets[0].get("Modality", "")))
        with self._lock:
            self._cache[data["series"]] = volume
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return volume
