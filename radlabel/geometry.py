"""Volume geometry: the one place where voxel indices, DICOM LPS and NIfTI RAS meet.

Index order throughout radlabel is ``(slice, row, column)`` = ``(k, j, i)``.
DICOM patient coordinates are LPS (x to the patient's left, y posterior,
z superior); NIfTI is RAS, i.e. x and y negated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["LPS_TO_RAS", "GridMismatch", "VolumeGeometry", "common_grid", "grid_difference", "labelmap_from_nifti",
           "labelmap_to_nifti", "nifti_geometry", "onto_grid", "stack_geometry"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
GRID_TOLERANCE = 1e-3  # in voxels: two grids agree when every voxel centre lands this close to one of the other's


class GridMismatch(ValueError):
    """Two grids whose voxels do not coincide; the message is one sentence naming the difference."""


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

    def affine_kji(self) -> np.ndarray:
        """4x4 matrix from homogeneous (k, j, i) = (slice, row, column) to LPS mm (highdicom's order)."""
        return self.affine_lps()[:, [2, 1, 0, 3]]

    @classmethod
    def from_affine_kji(cls, affine: np.ndarray, shape: Sequence[int]) -> "VolumeGeometry":
        """The grid of a (slice, row, column) array whose (k, j, i) -> LPS matrix is ``affine`` (any shear)."""
        affine = np.asarray(affine, dtype=float)
        column_step, row_step = affine[:3, 1], affine[:3, 2]  # moving one row, one column
        row_spacing, column_spacing = float(np.linalg.norm(column_step)), float(np.linalg.norm(row_step))
        if min(row_spacing, column_spacing) == 0 or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise GridMismatch("the affine is singular (a zero or repeated axis): the file has no usable grid.")
        return cls(tuple(float(v) for v in affine[:3, 3]), tuple(float(v) for v in row_step / column_spacing),
                   tuple(float(v) for v in column_step / row_spacing), (row_spacing, column_spacing),
                   tuple(float(v) for v in affine[:3, 0]), tuple(int(n) for n in shape))

    @property
    def tilt_degrees(self) -> float:
        """Angle between the slice step and the slice normal: 0 for an orthogonal stack (gantry tilt otherwise)."""
        step = np.asarray(self.slice_step)
        cosine = abs(float(np.dot(step, self.normal))) / (np.linalg.norm(step) * np.linalg.norm(self.normal))
        return float(np.degrees(np.arccos(min(1.0, cosine))))

    def padded(self, low: Sequence[int], high: Sequence[int]) -> "VolumeGeometry":
        """The same lattice over index ranges ``low``..``high`` (inclusive, may be negative) along (k, j, i)."""
        origin = self.index_to_lps(low)
        shape = tuple(int(h - lo + 1) for lo, h in zip(low, high))
        return VolumeGeometry(tuple(float(v) for v in origin), self.row_direction, self.column_direction,
                              self.pixel_spacing, self.slice_step, shape)

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



# -- Comparing and resampling grids: exact (voxel centres coincide) or refused with the reason ------------

def _direction(vector) -> str:
    """A direction as its LPS letters and angle off the nearest axis (e.g. 'L', 'P 12.0 deg')."""
    vector = np.asarray(vector, dtype=float) / np.linalg.norm(vector)
    axis = int(np.argmax(np.abs(vector)))
    letter = ("LPS" if vector[axis] > 0 else "RAI")[axis]
    off = float(np.degrees(np.arccos(min(1.0, abs(vector[axis])))))
    return letter if off < 0.05 else f"{letter} {off:.1f} deg"


def grid_difference(source: VolumeGeometry, target: VolumeGeometry) -> str | None:
    """None when every voxel centre of ``source`` is one of ``target``'s lattice points; else what differs."""
    mapping = np.linalg.solve(target.affine_kji(), source.affine_kji())
    rotation, shift = mapping[:3, :3], mapping[:3, 3]
    rounded = np.round(rotation)
    if np.max(np.abs(rotation - rounded)) > GRID_TOLERANCE or not _signed_permutation(rounded):
        tilts = [g.tilt_degrees for g in (source, target)]
        if abs(tilts[0] - tilts[1]) > 0.05:
            return f"the slice stacking differs (tilted {tilts[0]:.1f} against {tilts[1]:.1f} degrees off the normal)"
        sizes = [sorted(np.round(g.spacing, 3)) for g in (source, target)]
        if sizes[0] != sizes[1]:
            return ("the voxel size differs (" + " against ".join(
                "x".join(f"{v:g}" for v in np.round(g.spacing, 3)) for g in (source, target)) + " mm)")
        return ("the orientation differs (rows along " + " against ".join(
            f"{_direction(g.row_direction)}, columns along {_direction(g.column_direction)}"
            for g in (source, target)) + ")")
    if np.max(np.abs(shift - np.round(shift))) > GRID_TOLERANCE:
        offset = float(np.linalg.norm(target.affine_kji()[:3, :3] @ (shift - np.round(shift))))
        return f"the grids are shifted by {offset:.3f} mm, a fraction of a voxel"
    return None


def _signed_permutation(matrix: np.ndarray) -> bool:
    return bool(np.all(np.sum(np.abs(matrix), axis=0) == 1) and np.all(np.sum(np.abs(matrix), axis=1) == 1))


def onto_grid(array: np.ndarray, source: VolumeGeometry, target: VolumeGeometry) -> np.ndarray:
    """``array`` (slice, row, column, ...) on ``source`` re-indexed onto ``target``, voxel for voxel.

    Axes may be permuted or flipped and the extents may differ (voxels outside ``source`` are 0); a grid
    whose voxel centres do not coincide raises GridMismatch naming the difference. A non-zero voxel that
    falls outside ``target`` raises too: cropping would change the map silently.
    """
    reason = grid_difference(source, target)
    if reason:
        raise GridMismatch(reason)
    mapping = np.round(np.linalg.solve(target.affine_kji(), source.affine_kji())).astype(int)
    out = np.zeros(tuple(target.shape) + array.shape[3:], dtype=array.dtype)
    nonzero = np.nonzero(np.any(array != 0, axis=tuple(range(3, array.ndim))) if array.ndim > 3 else array)
    if not nonzero[0].size:
        return out
    index = mapping[:3, :3] @ np.stack(nonzero) + mapping[:3, 3:4]
    inside = np.all((index >= 0) & (index < np.asarray(target.shape)[:, None]), axis=0)
    if not inside.all():
        raise GridMismatch(f"{int((~inside).sum())} labelled voxel(s) lie outside the target grid "
                           f"({'x'.join(map(str, target.shape))} voxels)")
    out[tuple(index)] = array[nonzero]
    return out


def common_grid(geometries: list[VolumeGeometry]) -> VolumeGeometry:
    """The first grid, extended to cover every other (all must share its lattice; GridMismatch otherwise)."""
    base = geometries[0]
    low, high = np.zeros(3), np.asarray(base.shape) - 1
    for other in geometries[1:]:
        reason = grid_difference(other, base)
        if reason:
            raise GridMismatch(reason)
        corners = np.array([[k, j, i] for k in (0, other.shape[0] - 1) for j in (0, other.shape[1] - 1)
                            for i in (0, other.shape[2] - 1)], dtype=float)
        inside = np.round([base.lps_to_index(other.index_to_lps(c)) for c in corners])
        low, high = np.minimum(low, inside.min(axis=0)), np.maximum(high, inside.max(axis=0))
    if np.all(low == 0) and np.all(high == np.asarray(base.shape) - 1):
        return base
    return base.padded(low.astype(int), high.astype(int))


def positions_along_normal(positions, orientation) -> list[float]:
    """Each slice's position in mm along the slice normal (row x column direction of ImageOrientationPatient):
    LPS z for an axial series, so the most inferior slice has the smallest value."""
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    return [float(v) for v in np.asarray(positions, dtype=float).reshape(-1, 3) @ np.cross(row_direction, column_direction)]


def stack_geometry(positions, orientation, pixel_spacing, rows: int, columns: int,
                   tolerance_mm: float = 0.01) -> tuple[VolumeGeometry, np.ndarray]:
    """The grid of slices at ``positions`` (LPS, any order, gaps allowed, stacked along any direction —
    tilted too) and each slice's index on it; GridMismatch when the positions are not a regular stack."""
    positions = np.asarray(positions, dtype=float)
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_direction, column_direction)
    along = positions @ normal
    order = np.argsort(along)
    positions, along = positions[order], along[order]
    if len(positions) == 1:
        step = normal
        indices = np.zeros(1)
    else:
        gaps = np.diff(along)
        if np.min(gaps) < tolerance_mm:
            raise GridMismatch("two frames of one segment share a slice position")
        unit = float(np.min(gaps))
        indices = np.concatenate([[0.0], np.cumsum(gaps)]) / unit
        if np.max(np.abs(indices - np.round(indices))) * unit > tolerance_mm * 10:
            raise GridMismatch("the slice steps are irregular (not multiples of one step)")
        indices = np.round(indices)
        step = (positions[-1] - positions[0]) / indices[-1]
        off = positions - positions[0] - np.outer(indices, step)
        if np.max(np.linalg.norm(off, axis=1)) > tolerance_mm * 10:
            raise GridMismatch("the slice positions do not lie on one line")
    geometry = VolumeGeometry(tuple(float(v) for v in positions[0]), tuple(float(v) for v in row_direction),
                              tuple(float(v) for v in column_direction), tuple(float(v) for v in pixel_spacing),
                              tuple(float(v) for v in step), (int(indices[-1]) + 1, int(rows), int(columns)))
    slots = np.empty(len(order), dtype=int)
    slots[order] = indices.astype(int)
    return geometry, slots


# -- NIfTI (RAS) label maps: the affine converts to and from a (slice, row, column) grid in LPS --------

def nifti_geometry(image) -> tuple[np.ndarray, VolumeGeometry]:
    """A NIfTI image's voxels as a (slice, row, column) array (NIfTI axes k, j, i) and their grid."""
    array = np.asarray(image.dataobj)
    if array.ndim > 3 and all(n == 1 for n in array.shape[3:]):
        array = array.reshape(array.shape[:3])
    if array.ndim != 3:
        raise GridMismatch(f"the image has {array.ndim} dimensions where a label map has 3")
    affine_ijk = LPS_TO_RAS @ np.asarray(image.affine, dtype=float)  # RAS -> LPS; columns are i, j, k
    return np.transpose(array, (2, 1, 0)), VolumeGeometry.from_affine_kji(affine_ijk[:, [2, 1, 0, 3]], array.shape[::-1])


def labelmap_from_nifti(image, geometry: VolumeGeometry) -> np.ndarray:
    """A NIfTI label map re-indexed onto a series grid, voxel for voxel: (slice, row, column)."""
    array, source = nifti_geometry(image)
    return onto_grid(array, source, geometry)


def labelmap_to_nifti(labelmap: np.ndarray, geometry: VolumeGeometry):
    """A (slice, row, column) array on a grid as a NIfTI image (axes i, j, k = column, row, slice).

    The affine is the series' own, sheared for a tilted stack: no voxel is resampled.
    """
    import nibabel as nib

    array = np.asarray(labelmap)
    array = array.astype(np.uint8 if array.dtype == bool else np.int32) if array.dtype in (bool, np.int64) else array
    image = nib.Nifti1Image(np.transpose(array, (2, 1, 0)), geometry.affine_ras())
    image.set_qform(None, code=0) if geometry.tilt_degrees > 0.01 else image.set_qform(geometry.affine_ras(), code=1)
    image.set_sform(geometry.affine_ras(), code=1)
    return image
