"""Simulated readers of known skill, for campaigns in the demo and the tests.

A reader's error rate ``error`` is the probability that each voxel of a mask's boundary band
(one voxel either side of the true boundary, in plane) is read wrong, and the probability of
missing a whole small component (a lesion). A drifting reader's error grows by ``drift`` per read
after ``drift_after`` reads. Everything is seeded: a campaign repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_PLANE = np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool)[1:2]  # 4-neighbourhood within a slice


@dataclass
class SimulatedReader:
    name: str
    error: float
    seed: int = 0
    drift_after: int | None = None
    drift: float = 0.0
    reads: int = 0

    def error_now(self) -> float:
        if self.drift_after is None or self.reads <= self.drift_after:
            return self.error
        return min(0.95, self.error + self.drift * (self.reads - self.drift_after))

    def read(self, truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One read of a study whose true masks are ``truth`` (class -> bool array)."""
        self.reads += 1
        error = self.error_now()
        rng = np.random.default_rng([self.seed, self.reads])
        out = {}
        for name, mask in truth.items():
            mask = mask.astype(bool)
            read = mask.copy()
            components, count = ndimage.label(mask)
            sizes = ndimage.sum(mask, components, range(1, count + 1)) if count else []
            for number, size in enumerate(sizes, 1):
                if size < 0.2 * mask.sum() and rng.random() < error / 2:
                    read[components == number] = False  # a missed lesion
            band = ndimage.binary_dilation(mask, _PLANE) & ~ndimage.binary_erosion(mask, _PLANE)
            flips = band & (rng.random(mask.shape) < error)
            read ^= flips
            out[name] = read
        return out
