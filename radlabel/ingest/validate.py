"""Series validation: is this series complete and consistent enough to annotate?

A failing series is quarantined with machine-readable reason codes and a
sentence for people. Nothing of a quarantined series goes further.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from pydicom import Dataset

from radlabel.dicom_files import safe_reason
from radlabel.ingest.series import Frame, frame_pixels, frames_of, is_image, normal_of, sort_frames

POSITION_TOLERANCE_MM = 0.01
ORIENTATION_TOLERANCE = 1e-3
GAP_FACTOR = 1.5  # a step this many times the usual one means slices are missing
SPACING_TOLERANCE = 0.1  # relative deviation tolerated between steps
LINE_TOLERANCE_MM = 0.1  # how far a slice position may sit off the line through the first and last
TILT_TOLERANCE_DEGREES = 0.01  # scanners write positions to ~0.001 mm: anything above this is a real tilt


class Reason(str, Enum):
    NON_IMAGE = "non_image_sop_class"
    MISSING_GEOMETRY = "missing_geometry"
    SIZE_CHANGE = "size_change"
    ORIENTATION_CHANGE = "orientation_change"
    MIXED_ACQUISITION = "mixed_acquisition"
    DUPLICATE_POSITION = "duplicate_position"
    MISSING_SLICES = "missing_slices"
    NON_UNIFORM_SPACING = "non_uniform_spacing"
    UNDECODABLE_PIXELS = "undecodable_pixels"
    TOO_FEW_SLICES = "too_few_slices"
    DAMAGED_FILE = "damaged_file"
    NOT_ON_A_LINE = "positions_not_on_a_line"
    GANTRY_TILT = "gantry_tilt"  # a note: a tilted stack is annotated slice by slice and its SEG references the frames


@dataclass
class Finding:
    reason: Reason
    message: str
    file: str | None = None  # the file a finding is about, where it is about one

    def as_dict(self) -> dict:
        return {"code": self.reason.value, "message": self.message} | ({"file": self.file} if self.file else {})


@dataclass
class SeriesReport:
    series_uid: str
    instances: int
    frames: int
    findings: list[Finding] = field(default_factory=list)
    slice_spacing_mm: float | None = None
    notes: list[Finding] = field(default_factory=list)  # worth knowing, not a reason to quarantine
    tilt_degrees: float | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def reasons(self) -> list[str]:
        return [f.reason.value for f in self.findings]

    def as_dict(self) -> dict:
        return {"series_instance_uid": self.series_uid, "instances": self.instances, "frames": self.frames,
                "ok": self.ok, "reasons": self.reasons, "findings": [f.as_dict() for f in self.findings],
                "slice_spacing_mm": self.slice_spacing_mm, "tilt_degrees": self.tilt_degrees,
                "notes": [n.as_dict() for n in self.notes]}


def _distinct(values) -> int:
    return len({v for v in values})


def _first_two(value) -> tuple:
    """The first two values of a multi-valued attribute (ImageType), whatever VR a damaged file gave it."""
    if value is None or isinstance(value, (str, bytes, int, float)):
        return (str(value),) if value not in (None, "", b"") else ()
    try:
        return tuple(str(v) for v in value)[:2]
    except TypeError:
        return (str(value),)


def validate_series(datasets: list[Dataset], min_slices: int = 1, decode: bool = True) -> tuple[SeriesReport, list[Frame]]:
    """Check one series; return the report and its frames sorted along the normal."""
    series_uid = str(datasets[0].get("SeriesInstanceUID", "")) if datasets else ""
    findings: list[Finding] = []
    non_image = [ds for ds in datasets if not is_image(ds)]
    if non_image:
        sop = str(non_image[0].get("SOPClassUID", "unknown"))
        findings.append(Finding(Reason.NON_IMAGE, f"{len(non_image)} instance(s) are not images (SOP class {sop})."))
    frames = [frame for ds in datasets if is_image(ds) for frame in frames_of(ds)]
    report = SeriesReport(series_uid, len(datasets), len(frames), findings)
    if not frames:
        if datasets and not findings:  # images whose NumberOfFrames promises none
            findings.append(Finding(Reason.TOO_FEW_SLICES, "0 slices; the images hold no frame."))
        return report, []

    if any(f.position is None or f.orientation is None or f.pixel_spacing is None for f in frames):
        missing = sum(1 for f in frames if f.position is None or f.orientation is None or f.pixel_spacing is None)
        findings.append(Finding(Reason.MISSING_GEOMETRY, f"{missing} frame(s) lack position, orientation or pixel spacing."))
    if _distinct((f.rows, f.columns) for f in frames) > 1 or _distinct(f.pixel_spacing for f in frames) > 1:
        findings.append(Finding(Reason.SIZE_CHANGE, "image size or pixel spacing changes inside the series."))
    orientations = [f.orientation for f in frames if f.orientation is not None]
    if orientations and np.max(np.abs(np.asarray(orientations) - orientations[0])) > ORIENTATION_TOLERANCE:
        findings.append(Finding(Reason.ORIENTATION_CHANGE, "slice orientation changes inside the series."))
    acquisition_keys = Counter(
        (str(f.instance.get("FrameOfReferenceUID", "")), _first_two(f.instance.get("ImageType")),
         str(f.instance.get("EchoNumbers", "")))
        for f in frames
    )
    if len(acquisition_keys) > 1:
        findings.append(Finding(Reason.MIXED_ACQUISITION,
                                f"{len(acquisition_keys)} acquisitions are mixed (frame of reference, image type or echo differ)."))
    if len(frames) < min_slices:
        findings.append(Finding(Reason.TOO_FEW_SLICES, f"{len(frames)} slice(s); the protocol needs at least {min_slices}."))

    frames = sort_frames(frames)
    geometric = not any(f.reason in (Reason.MISSING_GEOMETRY, Reason.ORIENTATION_CHANGE) for f in findings)
    if geometric and len(frames) > 1:
        _check_steps(frames, report)
        _check_line(frames, report)
    if decode:
        _check_decoding(frames, findings)
    return report, frames


def _check_steps(frames: list[Frame], report: SeriesReport) -> None:
    """Duplicates, gaps and irregular steps, measured along the slice normal (tilt is _check_line's)."""
    findings = report.findings
    normal = normal_of(frames[0].orientation)
    along = np.array([float(np.dot(normal, f.position)) for f in frames])
    steps = np.diff(along)
    duplicates = int(np.sum(steps < POSITION_TOLERANCE_MM))
    if duplicates:
        findings.append(Finding(Reason.DUPLICATE_POSITION, f"{duplicates} slice position(s) occur twice."))
    real_steps = steps[steps >= POSITION_TOLERANCE_MM]
    if not real_steps.size:
        return
    usual = float(np.median(real_steps))
    report.slice_spacing_mm = round(usual, 4)
    gaps = real_steps[real_steps > GAP_FACTOR * usual]
    if gaps.size:
        missing = int(np.sum(np.round(gaps / usual) - 1))
        findings.append(Finding(Reason.MISSING_SLICES,
                                f"{gaps.size} gap(s) along the slice normal: about {missing} slice(s) missing "
                                f"(usual step {usual:.2f} mm, largest {gaps.max():.2f} mm)."))
    regular = real_steps[real_steps <= GAP_FACTOR * usual]
    if regular.size and np.max(np.abs(regular - usual)) > SPACING_TOLERANCE * usual:
        findings.append(Finding(Reason.NON_UNIFORM_SPACING,
                                f"slice steps vary from {regular.min():.2f} to {regular.max():.2f} mm."))


def _check_line(frames: list[Frame], report: SeriesReport) -> None:
    """Slice positions must lie on one line; a line off the normal is a tilted (sheared) stack: a note."""
    positions = np.array([f.position for f in frames], dtype=float)
    span = positions[-1] - positions[0]
    length = float(np.linalg.norm(span))
    if length < POSITION_TOLERANCE_MM:
        return
    direction = span / length
    offsets = positions - positions[0]
    off_line = np.linalg.norm(offsets - np.outer(offsets @ direction, direction), axis=1)
    if off_line.max() > LINE_TOLERANCE_MM:
        report.findings.append(Finding(Reason.NOT_ON_A_LINE,
                                       f"slice positions do not lie on one line (up to {off_line.max():.2f} mm off): "
                                       "the slices do not form one volume."))
        return
    normal = normal_of(frames[0].orientation)
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(direction @ normal)) / np.linalg.norm(normal)))))
    report.tilt_degrees = round(tilt, 3)
    if tilt > TILT_TOLERANCE_DEGREES:
        report.notes.append(Finding(Reason.GANTRY_TILT,
                                    f"the slices are stacked {tilt:.2f} degrees off their normal (gantry tilt or a "
                                    "sheared stack): SEGs reference the frames as they are; NIfTI exports carry a "
                                    "sheared affine, which some tools do not read."))


def _check_decoding(frames: list[Frame], findings: list[Finding]) -> None:
    broken = 0
    first_error = ""
    for frame in {id(f.instance): f for f in frames}.values():
        try:
            frame_pixels(frame)
        except Exception as exc:  # any decoder failure means the pixels cannot be used
            broken += 1
            first_error = first_error or safe_reason(exc)  # no header values (PHI) in the message
    if broken:
        findings.append(Finding(Reason.UNDECODABLE_PIXELS, f"{broken} instance(s) cannot be decoded ({first_error})."))
