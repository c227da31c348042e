"""Label maps from files (NIfTI or DICOM-SEG) for the standalone agreement and consensus commands."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radlabel.errors import RadlabelError
from radlabel.geometry import VolumeGeometry, labelmap_from_nifti


@dataclass
class LabelMap:
    path: Path
    array: np.ndarray  # integer labels
    spacing: tuple[float, float, float]  # mm along the array's axes
    names: dict[int, str]
    nifti: object | None = None  # the source image, for writing results beside it


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


def class_masks(maps: list[LabelMap], default_names: dict[int, str]) -> dict[str, list[np.ndarray]]:
    """Per class, one mask per map: matched by name where every map names its labels, else by value."""
    for m in maps:
        if not m.names and default_names:
            m.names = dict(default_names)
    if all(m.names for m in maps):
        names = sorted(set().union(*(m.names.values() for m in maps)))
        out = {}
        for name in names:
            out[name] = [np.isin(m.array, [v for v, n in m.names.items() if n == name]) for m in maps]
        return out
    values = sorted(set().union(*(np.unique(m.array).tolist() for m in maps)) - {0})
    return {default_names.get(v, str(v)): [m.array == v for m in maps] for v in values}


def read_labelmap(path: Path, geometry: VolumeGeometry | None = None) -> LabelMap:
    path = Path(path)
    if not path.exists():
        raise RadlabelError(f"{path} does not exist: give a NIfTI label map (.nii/.nii.gz) or a DICOM-SEG file.")
    if path.name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        try:
            image = nib.load(str(path))
            if geometry is not None:
                return LabelMap(path, labelmap_from_nifti(image, geometry).astype(np.int32), geometry.spacing,
                                _sibling_names(path), image)
            array = np.asarray(image.dataobj).astype(np.int32)
        except Exception as exc:  # nibabel raises many kinds for a bad file
            raise RadlabelError(f"{path} is not a readable NIfTI image ({exc.__class__.__name__}).") from None
        return LabelMap(path, array, tuple(float(z) for z in image.header.get_zooms()[:3]), _sibling_names(path), image)
    import highdicom as hd
    import pydicom

    try:
        seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(path))
        volume = seg.get_volume(combine_segments=True, relabel=False)
    except Exception as exc:
        raise RadlabelError(f"{path} is neither a NIfTI label map nor a readable DICOM-SEG ({exc.__class__.__name__}).") from None
    names = {n: str(seg.get_segment_description(n).segment_label) for n in seg.segment_numbers}
    return LabelMap(path, np.asarray(volume.array).astype(np.int32), tuple(float(s) for s in volume.spacing), names)


def same_grid(maps: list[LabelMap]) -> None:
    shapes = {m.array.shape for m in maps}
    if len(shapes) > 1:
        listing = ", ".join(f"{m.path.name} {m.array.shape}" for m in maps)
        raise RadlabelError(f"the label maps are on different grids ({listing}): give maps of the same series, "
                            "or --from-dicom SERIES to put NIfTI maps on that series' grid.")
