"""Volume geometry: the one place where voxel indices, DICOM LPS and NIfTI RAS meet.

Index order throughout radlabel is ``(slice, row, column)`` = ``(k, j, i)``.
DICOM patient coordinates are LPS (x to the patient's left, y posterior,
z superior); NIfTI is RAS, i.e. x and y negated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class VolumeGeometry:
    """Where each voxel of a ``(slices, rows, columns)`` array lies in LPS mm.

    ``row_direction`` is the direction of increasing column index (DICOM
    ImageOrientationPatient[0:3]); ``column_direction`` that of increasing row
    index (IOP[3:6]); ``slice_step`` the LPS vector from one slice to the next.
    ``pixel_spacing`` is DICOM's (between rows, between columns).
    """

    origin: tuple[float, float, float]
    row_direction: tuple[float, float, float]
    column_direction: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    slice_step: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def slice_spacing(self) -> float:
        return float(np.linalg.norm(self.slice_step))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (slice, row, column) index axes."""
        return (self.slice_spacing, float(self.pixel_spacing[0]), float(self.pixel_spacing[1]))

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_direction, self.column_direction)

    @property
    def image_orientation(self) -> list[float]:
        return [float(v) for v in (*self.row_direction, *self.column_direction)]

    def slice_position(self, k: int) -> list[float]:
        """ImagePositionPatient of slice ``k`` (centre of its first pixel)."""
        return [float(v) for v in np.asarray(self.origin) + k * np.asarray(self.slice_step)]

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix from homogeneous (i, j, k) = (column, row, slice) to LPS mm."""
        affine = np.eye(4)
        affine[:3, 0] = np.asarray(self.row_direction) * self.pixel_spacing[1]
        affine[:3, 1] = np.asarray(self.column_direction) * self.pixel_spacing[0]
        affine[:3, 2] = self.slice_step
        affine[:3, 3] = self.origin
        return affine

    def affine_ras(self) -> np.ndarray:
        """The NIfTI affine for an array laid out as (column, row, slice)."""
        return LPS_TO_RAS @ self.affine_lps()

    def index_to_lps(self, kji: Sequence[float]) -> np.ndarray:
        k, j, i = kji
        return (self.affine_lps() @ np.array([i, j, k, 1.0]))[:3]

    def lps_to_index(self, xyz: Sequence[float]) -> np.ndarray:
        """Continuous (k, j, i) index of an LPS point."""
        i, j, k, _ = np.linalg.solve(self.affine_lps(), np.array([*xyz, 1.0]))
        return np.array([k, j, i])

    @classmethod
    def axial(cls, shape: tuple[int, int, int], pixel_spacing: tuple[float, float], slice_spacing: float,
              centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> "VolumeGeometry":
        """Axial slices, inferior to superior, centred on ``centre`` (LPS mm)."""
        slices, rows, columns = shape
        origin = (
            centre[0] - (columns - 1) / 2 * pixel_spacing[1],
            centre[1] - (rows - 1) / 2 * pixel_spacing[0],
            centre[2] - (slices - 1) / 2 * slice_spacing,
        )
        return cls(origin, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), pixel_spacing, (0.0, 0.0, slice_spacing), shape)

    def voxel_centres(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LPS x, y, z of every pixel centre of slice ``k`` as (rows, columns) arrays."""
        rows, columns = self.shape[1:]
        j, i = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
        affine = self.affine_lps()
        points = [affine[axis, 0] * i + affine[axis, 1] * j + affine[axis, 2] * k + affine[axis, 3] for axis in range(3)]
        return points[0], points[1], points[2]


# -- NIfTI (RAS) label maps on a DICOM series' grid, through highdicom's Volume ---------------

def highdicom_geometry(geometry: VolumeGeometry):
    """The same grid as a highdicom VolumeGeometry (its index order is ours: slice, row, column)."""
    import highdicom as hd

    return hd.VolumeGeometry(geometry.affine_lps()[:, [2, 1, 0, 3]], geometry.shape, "PATIENT")


def labelmap_from_nifti(image, geometry: VolumeGeometry) -> np.ndarray:
    """A NIfTI label map resampled (nearest, exact on the same grid) onto a series: (slice, row, column)."""
    import highdicom as hd

    volume = hd.Volume.from_nibabel(image)
    return np.asarray(volume.match_geometry(highdicom_geometry(geometry)).array)


def labelmap_to_nifti(labelmap: np.ndarray, geometry: VolumeGeometry):
    """A (slice, row, column) label map on a series grid as a NIfTI image with its RAS affine."""
    import highdicom as hd

    affine = highdicom_geometry(geometry).affine
    return hd.Volume(np.asarray(labelmap), affine, "PATIENT").to_nibabel()
