"""Label maps from files (NIfTI or DICOM-SEG from any writer), always with their grid in patient space.

A ``LabelMap`` is the one in-memory form: voxels on a ``VolumeGeometry`` (LPS, any orientation, slice
order or tilt). Maps are compared only after re-indexing onto one grid voxel for voxel
(``on_one_grid``); grids whose voxels do not coincide are refused with the difference named.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from radlabel.errors import RadlabelError
from radlabel.geometry import GridMismatch, VolumeGeometry, common_grid, nifti_geometry, onto_grid

__all__ = ["FRACTIONAL_THRESHOLD", "LabelMap", "class_masks", "on_one_grid", "read_labelmap", "read_labels_file",
           "same_grid"]

FRACTIONAL_THRESHOLD = 0.5  # a fractional segment's voxel counts as inside from this probability on
SEG_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")  # binary/fractional, label map


@dataclass
class LabelMap:
    """Segments on a grid: ``array`` holds integer labels, or ``layers`` one array per segment where
    segments overlap or are fractional (probabilities 0..1) — overlapping segments are never merged."""

    path: Path
    geometry: VolumeGeometry
    names: dict[int, str]
    array: np.ndarray | None = None  # (slice, row, column) integer labels
    layers: dict[int, np.ndarray] = field(default_factory=dict)  # segment number -> (slice, row, column)
    fractional: bool = False
    nifti: object | None = None  # the source image, for writing results beside it
    threshold: float = FRACTIONAL_THRESHOLD

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def values(self) -> list[int]:
        if self.array is None:
            return sorted(v for v, layer in self.layers.items() if np.any(layer))
        return sorted(set(np.unique(self.array).tolist()) - {0})

    def mask(self, value: int) -> np.ndarray:
        if self.array is not None:
            return self.array == value
        layer = self.layers.get(value)
        if layer is None:
            return np.zeros(self.geometry.shape, bool)
        return layer >= self.threshold if self.fractional else layer > 0

    def probability(self, value: int) -> np.ndarray:
        """Per voxel, how likely it belongs to ``value`` (0/1 for binary segments), for STAPLE."""
        if self.array is not None or not self.fractional:
            return self.mask(value).astype(np.float32)
        return self.layers.get(value, np.zeros(self.geometry.shape, np.float32)).astype(np.float32)

    def labels(self) -> np.ndarray:
        """One integer label per voxel; refused where segments overlap (a voxel cannot hold two labels)."""
        if self.array is not None:
            return self.array
        out = np.zeros(self.geometry.shape, np.int32)
        for value in self.values:
            inside = self.mask(value)
            clash = inside & (out != 0)
            if clash.any():
                raise RadlabelError(f"{self.path}: segments {int(out[clash].flat[0])} and {value} overlap in "
                                    f"{int(clash.sum())} voxel(s), so they cannot be one label map; compare them "
                                    "as separate segments (agreement) instead.")
            out[inside] = value
        return out

    def on(self, grid: VolumeGeometry) -> "LabelMap":
        """The same map re-indexed voxel for voxel onto ``grid`` (GridMismatch if it cannot be exact)."""
        if grid == self.geometry:
            return self
        array = None if self.array is None else onto_grid(self.array, self.geometry, grid)
        layers = {v: onto_grid(layer, self.geometry, grid) for v, layer in self.layers.items()}
        return replace(self, geometry=grid, array=array, layers=layers)


def read_labels_file(path: Path | None) -> dict[int, str]:
    """``{"1": "spleen"}`` or the TotalSegmentator form ``{"labels": {"1": {"name": "spleen"}}}``."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RadlabelError(f"{path} is not a readable JSON labels file ({exc.__class__.__name__}).") from None
    data = data.get("labels", data) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise RadlabelError(f"{path}: expected an object mapping label values to names.")
    names = {}
    for key, value in data.items():
        name = value.get("name") if isinstance(value, dict) else value
        if not str(key).isdigit() or not isinstance(name, str) or not name:
            raise RadlabelError(f"{path}: entry {key!r} must map a label value (digits) to a name.")
        names[int(key)] = name
    return names


def _sibling_names(path: Path) -> dict[int, str]:
    """Names from ``<stem>.labels.json`` beside a NIfTI map (written by ``seg to-labelmap``)."""
    sibling = path.parent / (path.name.split(".")[0] + ".labels.json")
    return read_labels_file(sibling) if sibling.exists() else {}


def _key(name: str) -> str:
    """Names compare as SEG segment labels are written (radlabel slugs 'Left kidney' to 'Left_kidney')."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def class_masks(maps: list[LabelMap], default_names: dict[int, str]) -> dict[str, list[np.ndarray]]:
    """Per class, one mask per map (maps on one grid): matched by name where any map names its labels (an
    unnamed value v is 'label_v', as `seg from-labelmap` names it), else by value. Overlapping segments of
    one class are united only within that class."""
    for m in maps:
        if not m.names and default_names:
            m.names = dict(default_names)
    if not any(m.names for m in maps):
        values = sorted(set().union(*(m.values for m in maps)))
        return {str(v): [m.mask(v) for m in maps] for v in values}
    per_map = [m.names | {v: m.names.get(v, f"label_{v}") for v in m.values} for m in maps]
    shown: dict[str, str] = {}
    for names in per_map:
        for name in names.values():
            shown.setdefault(_key(name), name)
    out = {}
    for key, name in sorted(shown.items(), key=lambda item: item[1]):
        out[name] = [np.logical_or.reduce([m.mask(v) for v, n in names.items() if _key(n) == key]
                                          + [np.zeros(m.geometry.shape, bool)]) for m, names in zip(maps, per_map)]
    return out


def read_labelmap(path: Path, geometry: VolumeGeometry | None = None,
                  threshold: float = FRACTIONAL_THRESHOLD) -> LabelMap:
    """A NIfTI label map or a DICOM-SEG with its grid; on ``geometry`` (a series' grid) when given."""
    path = Path(path)
    if not path.exists():
        raise RadlabelError(f"{path} does not exist: give a NIfTI label map (.nii/.nii.gz) or a DICOM-SEG file.")
    labelmap = _read_nifti(path) if path.name.endswith((".nii", ".nii.gz")) else _read_seg(path, threshold)
    if geometry is None:
        return labelmap
    try:
        return labelmap.on(geometry)
    except GridMismatch as exc:
        raise RadlabelError(f"{path} does not lie on the series grid: {exc}.") from None


def _read_nifti(path: Path) -> LabelMap:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        array, geometry = nifti_geometry(image)
        if not np.issubdtype(array.dtype, np.integer) and not np.all(np.mod(array, 1) == 0):
            raise GridMismatch("its voxels are not whole numbers, so it is not a label map")
    except GridMismatch as exc:
        raise RadlabelError(f"{path} is not a usable NIfTI label map: {exc}.") from None
    except Exception as exc:  # nibabel raises many kinds for a bad file
        raise RadlabelError(f"{path} is not a readable NIfTI image ({exc.__class__.__name__}).") from None
    return LabelMap(path, geometry, _sibling_names(path), array=array.astype(np.int32), nifti=image)


def _has_plane_positions(ds) -> bool:
    for groups in (ds.get("SharedFunctionalGroupsSequence"), ds.get("PerFrameFunctionalGroupsSequence")):
        for group in groups or []:
            if "PlanePositionSequence" in group or "PlanePositionSlideSequence" in group:
                return True
    return False


def _open_seg(path: Path):
    """The SEG as a highdicom Segmentation, or a RadlabelError naming the real reason."""
    import highdicom as hd
    import pydicom
    from pydicom.errors import InvalidDicomError

    from radlabel.dicom_files import as_little_endian, check_read, safe_reason

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings quote header values
            ds = pydicom.dcmread(path)
            check_read(ds, path)  # a SEG cut short reads without complaint otherwise
    except InvalidDicomError:
        raise RadlabelError(f"{path} is neither a NIfTI label map (.nii/.nii.gz) nor a DICOM file.") from None
    except Exception as exc:
        raise RadlabelError(f"{path} is a damaged DICOM file ({safe_reason(exc)}).") from None
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class not in SEG_CLASSES:
        raise RadlabelError(f"{path} is a DICOM file but not a segmentation (SOP class {sop_class or 'missing'}).")
    if not _has_plane_positions(ds):
        raise RadlabelError(f"{path} is a projection SEG (its frames have no plane positions, as over a radiograph), "
                            "so it has no voxel grid to compare.")
    try:
        return hd.seg.Segmentation.from_dataset(as_little_endian(ds))
    except Exception as exc:  # highdicom is the reference decoder: its reason is the real one
        raise RadlabelError(f"{path} is not a valid DICOM-SEG ({safe_reason(exc)}).") from None


def _read_seg(path: Path, threshold: float) -> LabelMap:
    from radlabel.dicom_files import safe_reason

    seg = _open_seg(path)
    numbers = list(seg.segment_numbers)
    names = {n: str(seg.get_segment_description(n).segment_label) for n in numbers}
    fractional = str(seg.SegmentationType) == "FRACTIONAL"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not _perpendicular(seg):  # highdicom's volumes are orthogonal: a tilted stack is read per frame
                return _read_tilted_seg(path, seg, names, fractional, threshold)
            try:  # one label per voxel where the segments allow it (no overlap, binary values)
                volume = seg.get_volume(combine_segments=True, relabel=False)
                layers, array = {}, np.asarray(volume.array).astype(np.int32)
                fractional = False
            except (RuntimeError, ValueError):  # overlap, or true fractional values: one layer per segment
                seg = _open_seg(path)  # a failed query leaves highdicom's frame table locked: start afresh
                volume = seg.get_volume(combine_segments=False, segment_numbers=numbers, rescale_fractional=True)
                stack = np.asarray(volume.array)
                layers, array = {n: stack[..., index] for index, n in enumerate(numbers)}, None
            if volume.coordinate_system is not None and str(volume.coordinate_system.value) != "PATIENT":
                raise RadlabelError(f"{path} is a SEG in slide coordinates, not patient space: it has no voxel grid "
                                    "to compare with radiology label maps.")
            geometry = VolumeGeometry.from_affine_kji(volume.affine, volume.spatial_shape)
    except RadlabelError:
        raise
    except Exception as exc:  # e.g. frames that do not form a regular stack
        raise RadlabelError(f"{path} is a DICOM-SEG whose frames do not form a volume ({safe_reason(exc)}).") from None
    return LabelMap(path, geometry, names, array=array, layers=layers, fractional=fractional, threshold=threshold)


def _frame_geometry(seg) -> tuple[np.ndarray, list[float], list[float], list[str]]:
    """Per frame: plane position and source instance; shared: orientation and pixel spacing."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    per_frame = seg.PerFrameFunctionalGroupsSequence

    def attribute(index: int, sequence: str, name: str):
        group = per_frame[index] if sequence in per_frame[index] else shared
        return getattr(getattr(group, sequence)[0], name)

    positions = np.array([[float(v) for v in attribute(i, "PlanePositionSequence", "ImagePositionPatient")]
                          for i in range(len(per_frame))])
    sources = [str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
               if "DerivationImageSequence" in item else "" for item in per_frame]
    return (positions, [float(v) for v in attribute(0, "PlaneOrientationSequence", "ImageOrientationPatient")],
            [float(v) for v in attribute(0, "PixelMeasuresSequence", "PixelSpacing")], sources)


def _perpendicular(seg) -> bool:
    """Do the SEG's frames stack along their normal (what highdicom's get_volume needs)?"""
    try:
        positions, orientation, _, _ = _frame_geometry(seg)
    except (AttributeError, IndexError, KeyError):
        return True  # leave the verdict to highdicom
    unique = np.unique(np.round(positions, 3), axis=0)
    if len(unique) < 2:
        return True
    span = unique[-1] - unique[0]
    normal = np.cross(orientation[:3], orientation[3:])
    return abs(float(span @ normal)) / float(np.linalg.norm(span)) > 1 - 1e-5


def _read_tilted_seg(path: Path, seg, names: dict[int, str], fractional: bool, threshold: float) -> LabelMap:
    """A SEG over a tilted stack: highdicom decodes the frames per source instance; their positions give
    the (sheared) grid."""
    from radlabel.geometry import stack_geometry

    positions, orientation, spacing, sources = _frame_geometry(seg)
    by_source = {uid: tuple(p) for uid, p in zip(sources, positions)}
    if "" in by_source or len(set(by_source.values())) != len(by_source):
        raise RadlabelError(f"{path} is a SEG over a tilted stack whose frames do not each reference one source "
                            "image, so its slices cannot be placed.")
    uids = list(by_source)
    try:
        geometry, slots = stack_geometry([by_source[u] for u in uids], orientation, spacing, seg.Rows, seg.Columns)
    except GridMismatch as exc:
        raise RadlabelError(f"{path} is a DICOM-SEG whose frames do not form a volume: {exc}.") from None
    numbers = list(seg.segment_numbers)
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers, combine_segments=False,
                                               rescale_fractional=True)
    layers = {}
    for index, number in enumerate(numbers):
        layer = np.zeros(geometry.shape, pixels.dtype)
        layer[slots] = pixels[..., index]
        layers[number] = layer
    labelmap = LabelMap(path, geometry, names, layers=layers, fractional=fractional, threshold=threshold)
    if not fractional and not any(np.any(labelmap.mask(a) & labelmap.mask(b)) for a in numbers for b in numbers if a < b):
        labelmap = replace(labelmap, array=labelmap.labels(), layers={})  # one label per voxel, as elsewhere
    return labelmap


def on_one_grid(maps: list[LabelMap], grid: VolumeGeometry | None = None) -> list[LabelMap]:
    """Every map re-indexed onto ``grid`` (default: the first map's, extended to cover all), or a
    RadlabelError naming the two files and how their grids differ — never arrays compared by shape."""
    try:
        target = grid or common_grid([m.geometry for m in maps])
    except GridMismatch as exc:
        other = next(m for m in maps[1:] if _differs(m, maps[0]))
        raise RadlabelError(f"{maps[0].path.name} and {other.path.name} are not on one grid: {exc}; give maps of "
                            "the same series (or --from-dicom SERIES).") from None
    out = []
    for m in maps:
        try:
            out.append(m.on(target))
        except GridMismatch as exc:
            raise RadlabelError(f"{m.path.name} does not fit the comparison grid: {exc}.") from None
    return out


def _differs(a: LabelMap, b: LabelMap) -> bool:
    from radlabel.geometry import grid_difference

    return grid_difference(a.geometry, b.geometry) is not None


def same_grid(maps: list[LabelMap]) -> None:
    """Refuse maps whose grids do not coincide voxel for voxel (the sentence names the difference)."""
    on_one_grid(maps)
