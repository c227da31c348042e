"""Clean Recognizable Visual Features (PS3.15 113102) for head CT/MR: remove the face with a shear plane.

The head is found by a threshold (CT: soft tissue above -300 HU; MR: Otsu's threshold over the series),
in patient coordinates (LPS: anterior is -y, superior is +z), so any slice orientation works. Voxels in
front of a plane that runs from the brow (FACE_HEIGHT of the head's height above its lowest point, at the
head's front) down and back to FACE_DEPTH of its antero-posterior length at the lowest point are set to the
darkest stored value. The brain, behind and above that plane, is left exactly as it was.
"""

from __future__ import annotations

import numpy as np
from pydicom import Dataset

from radlabel.ingest.burned_in import store_native
from radlabel.ingest.pixel_regions import otsu
from radlabel.ingest.series import Frame, frame_pixels, frames_of

FACE_HEIGHT = 0.55  # the brow, as a share of the head's height from its lowest point
FACE_DEPTH = 0.35  # how deep the plane cuts at the lowest point, as a share of the head's AP length
CT_TISSUE_HU = -300.0


def patient_yz(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """The y (posterior) and z (superior) patient coordinates of every pixel of a frame, in mm."""
    rows, columns = np.mgrid[0:frame.rows, 0:frame.columns]
    row_dir, col_dir = np.array(frame.orientation[:3]), np.array(frame.orientation[3:])
    spacing_row, spacing_col = frame.pixel_spacing  # between rows, between columns
    origin = np.array(frame.position)
    y = origin[1] + columns * spacing_col * row_dir[1] + rows * spacing_row * col_dir[1]
    z = origin[2] + columns * spacing_col * row_dir[2] + rows * spacing_row * col_dir[2]
    return y, z


def deface(copies: list[Dataset]) -> dict:
    """Remove the face from a head series in place; what was done (no PHI), or why it was not."""
    frames = [f for ds in copies for f in frames_of(ds)]
    if not frames or any(f.position is None or f.orientation is None or f.pixel_spacing is None for f in frames):
        return {"defaced": False, "reason": "the series has no usable geometry"}
    modality = str(copies[0].get("Modality", ""))
    values = [frame_pixels(f) for f in frames]
    threshold = CT_TISSUE_HU if modality == "CT" else otsu(np.concatenate([v.ravel() for v in values]))
    coordinates = [patient_yz(f) for f in frames]
    inside = [(y[v > threshold], z[v > threshold]) for v, (y, z) in zip(values, coordinates)]
    ys = np.concatenate([y for y, _ in inside])
    zs = np.concatenate([z for _, z in inside])
    if ys.size == 0:
        return {"defaced": False, "reason": "no head found above the threshold"}
    front, back, bottom, top = float(ys.min()), float(ys.max()), float(zs.min()), float(zs.max())
    brow = bottom + FACE_HEIGHT * (top - bottom)
    depth = FACE_DEPTH * (back - front)
    removed = 0
    stored = {id(ds): ds.pixel_array.copy() for ds in copies}
    for frame, (y, z) in zip(frames, coordinates):
        cut = (z < brow) & (y < front + depth * (brow - z) / max(brow - bottom, 1e-6))
        array = stored[id(frame.instance)]
        plane = array[frame.frame_index] if int(frame.instance.get("NumberOfFrames", 1) or 1) > 1 else array
        plane[cut] = array.min()
        removed += int(cut.sum())
    for ds in copies:
        store_native(ds, stored[id(ds)], str(ds.PhotometricInterpretation))
        ds.RecognizableVisualFeatures = "NO"
    return {"defaced": True, "removed_voxels": removed, "brow_mm": round(brow - bottom, 1),
            "depth_mm": round(depth, 1)}
