"""What may leave the de-identification boundary: header pass, pixel stage and linkage measure, together.

The CLI (``radlabel deid``) and sync both call ``prepare_series`` for each
series and ``linkage`` over the output series, so a file is released by one
rule wherever it comes from. Reports name input files by their path relative
to the input folder (never by a header value: those are PHI).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pydicom import Dataset

from radlabel.ingest import burned_in
from radlabel.ingest import deid_tables as tables
from radlabel.ingest.deid import DeidReport, Deidentifier


@dataclass
class SeriesRelease:
    """One series after the boundary: the copies that may leave, and every flag, mask and hold by file."""

    series_uid: str  # the pseudonymised series UID
    copies: list[tuple[str, Dataset]] = field(default_factory=list)  # (input file, de-identified copy)
    pixels: list[dict] = field(default_factory=list)  # burned_in.PixelOutcome.as_dict() of files at risk
    held: list[dict] = field(default_factory=list)  # {"file", "reason"}
    quasi_identifiers: list[str] = field(default_factory=list)
    linkage_class_size: int = 0
    face: dict = field(default_factory=dict)  # face risk and, under Clean Recognizable Visual Features, defacing

    @property
    def is_held(self) -> bool:
        return bool(self.held)

    def as_dict(self) -> dict:
        return {"series": self.series_uid, "files": len(self.copies), "pixels": self.pixels, "held": self.held,
                "quasi_identifiers": self.quasi_identifiers, "linkage_class_size": self.linkage_class_size,
                "face": self.face}


def prepare_series(deid: Deidentifier, datasets: list[Dataset], names: list[str], report: DeidReport,
                   mask_text: bool = True, face_policy: str = "flag") -> SeriesRelease:
    """De-identify headers and pixels of one series; a file whose pixels fail the check holds the series.

    ``face_policy`` is the protocol's ``face_risk``: ``hold`` holds a series that may show a face; ``deface``
    (and ``flag`` under Clean Recognizable Visual Features) removes the face and releases the series."""
    copies = [deid.deidentify(ds, report) for ds in datasets]
    release = SeriesRelease(str(copies[0].get("SeriesInstanceUID", "") or ""))
    for name, copy in zip(names, copies):
        outcome = burned_in.clean_pixels(copy, name, mask=mask_text)
        if outcome.status != "not_at_risk":
            release.pixels.append(outcome.as_dict())
        if outcome.status == "held":
            release.held.append({"file": name, "reason": outcome.reason})
        elif outcome.status == "masked":
            _record_clean_pixel_data(copy)
        release.copies.append((name, copy))
    _faces(deid, datasets, release, face_policy)
    return release


def _faces(deid: Deidentifier, datasets: list[Dataset], release: SeriesRelease, policy: str) -> None:
    """Head CT/MR long enough to show a face: held under ``hold``, defaced under Clean Recognizable Visual
    Features, else flagged."""
    from radlabel.ingest.deface import deface
    from radlabel.ingest.series import frames_of, normal_of, sort_frames
    from radlabel.protocol.enum import DeidentificationOption as Option

    try:
        frames = sort_frames([f for ds in datasets for f in frames_of(ds)])
    except (TypeError, ValueError):  # a damaged frame count: validation reports it; no extent to judge here
        frames = []
    coverage = 0.0
    if len(frames) > 1 and all(f.position and f.orientation for f in frames):
        normal = normal_of(frames[0].orientation)
        span = abs(float(np.dot(normal, np.subtract(frames[-1].position, frames[0].position))))
        coverage = span * len(frames) / (len(frames) - 1)
    risk = burned_in.face_risk(datasets[0], coverage)
    if not risk:
        return
    release.face = {"risk": risk}
    if policy == "hold":
        release.held.append({"file": release.copies[0][0], "reason": risk + ": held for review (face_risk: hold)"})
    elif policy == "deface" or Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES in deid.options:
        release.face |= deface([copy for _, copy in release.copies])
        if not release.face["defaced"]:
            release.held.append({"file": release.copies[0][0], "reason": "the face cannot be removed: "
                                 + release.face["reason"]})


def _record_clean_pixel_data(copy: Dataset) -> None:
    """The method sequence says pixels were cleaned (CID 7050 113101)."""
    items = copy.get("DeidentificationMethodCodeSequence") or []
    if not any(str(item.get("CodeValue", "")) == "113101" for item in items):
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "113101", "DCM", "Clean Pixel Data Option"
        items.append(item)
    copy.BurnedInAnnotation = "NO"


def kept_quasi_identifiers(copy: Dataset) -> list[str]:
    return [name for name in tables.QUASI_IDENTIFIERS if str(copy.get(name, "") or "").strip()]


def linking_quasi_identifiers(copy: Dataset) -> list[str]:
    """The kept quasi-identifiers whose output value can be matched to the source: all of them, except dates and
    times moved by the patient's secret offset (Modified Dates), which match nothing without the key."""
    shifted = str(copy.get("LongitudinalTemporalInformationModified", "") or "") == "MODIFIED"
    return [name for name in kept_quasi_identifiers(copy)
            if not (shifted and name in tables.SHIFTED_QUASI_IDENTIFIERS)]


def linkage_signature(copies: list[Dataset]) -> str:
    """What an output series shows an outsider with background knowledge of the patient (demographics, the
    exam's day, its site and scanner, its kind): its linking quasi-identifiers with their (de-identified,
    generalised) values and its shape class (``shape_class``), as canonical JSON. Series with equal signatures
    form one class of size k; the CLI batch and sync's register (connectors/linkage_register.py) both use it."""
    first = copies[0]
    names = linking_quasi_identifiers(first)
    values = [str(first.get(name, "") or "") for name in names]
    return json.dumps([names, values, shape_class(copies)], separators=(",", ":"))


def shape_class(copies: list[Dataset]) -> list[str]:
    """The series' shape as a linker can know it: modality and matrix exactly, slice thickness in the bands the QA
    strata use, scan length (frames x slice step) in 100 mm bands. The copies keep every value exactly (readers
    need them); only the measure groups them, because exact slice counts and thicknesses are known only to whoever
    holds the source images, and they can match the unchanged pixels anyway (README: De-identification, linkage)."""
    from radlabel.qa.representativeness import thickness_band

    first = copies[0]
    thickness = _number(first.get("SliceThickness"))
    step = _number(first.get("SpacingBetweenSlices")) or thickness
    frames = sum(int(_number(copy.get("NumberOfFrames")) or 1) for copy in copies)
    length = f"{int(frames * step // LENGTH_BAND_MM) * LENGTH_BAND_MM}+ mm" if step else f"{frames} frames"
    return [str(first.get("Modality", "") or ""), f"{first.get('Rows', '')}x{first.get('Columns', '')}",
            thickness_band(thickness), length]


LENGTH_BAND_MM = 100


def _number(value) -> float | None:
    try:
        return abs(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _signature(release: SeriesRelease) -> str:
    return linkage_signature([copy for _, copy in release.copies])


def linkage(releases: list[SeriesRelease], max_risk: float | None = None) -> dict:
    """Which quasi-identifiers each output series keeps and how many series are unique on them.

    A series' risk is 1/k, k the number of output series sharing its quasi-identifier values and shape class (``shape_class``).
    Series above ``max_risk`` are held (they stay in the report, not in the output).
    """
    kept = [r for r in releases if r.copies and not r.is_held]
    for release in kept:
        release.quasi_identifiers = kept_quasi_identifiers(release.copies[0][1])
    sizes = Counter(_signature(r) for r in kept)
    for release in kept:
        release.linkage_class_size = sizes[_signature(release)]
        if max_risk is not None and 1.0 / release.linkage_class_size > max_risk:
            release.held.append({"file": release.copies[0][0], "reason":
                                 f"linkage risk 1/{release.linkage_class_size} is above the protocol's maximum "
                                 f"{max_risk} on {len(release.quasi_identifiers)} quasi-identifier(s) and shape"})
    counts = Counter(name for r in kept for name in r.quasi_identifiers)
    return {"series": len(kept), "unique_series": sum(1 for r in kept if r.linkage_class_size == 1),
            "max_risk": max_risk, "quasi_identifiers_kept": dict(sorted(counts.items())),
            "held_for_linkage": sum(1 for r in kept if r.is_held)}


def prepare_synced_series(deid: Deidentifier, datasets: list[Dataset], frames: list, values: dict, policy,
                          series_key: str, flags: list[dict]) -> tuple[list[Dataset], bool]:
    """Sync's entry to the same boundary: (research copies, hold?); rendered values follow the masks.

    Files are named by the series key and instance number (sync has no input folder; UIDs are not shown).
    ``values`` (id(frame) -> modality values) is updated in place for masked frames, so Label Studio's
    slices show what the research copies hold.
    """
    from dataclasses import replace

    from radlabel.ingest.series import frame_pixels

    report = DeidReport()
    names = [f"{series_key}/instance-{index + 1:04d}" for index in range(len(datasets))]
    release = prepare_series(deid, datasets, names, report, policy.burned_in_text == "mask", policy.face_risk)
    linkage([release])  # one series at a time: the kept quasi-identifiers are reported, k needs a batch
    flags.append({"code": "deidentified", "message": ", ".join(f"{k}: {v}" for k, v in sorted(report.changed.items()))
                  + f"; quasi-identifiers kept: {', '.join(release.quasi_identifiers) or 'none'}"})
    evidence = sorted({reason for pixel in release.pixels for reason in pixel["evidence"]})
    if evidence:
        flags.append({"code": "burned_in_header", "message": "; ".join(evidence)})
    for pixel in release.pixels:
        if pixel["status"] == "masked":
            flags.append({"code": "burned_in_text", "file": pixel["file"],
                          "message": f"{len(pixel['masked'])} text box(es) masked and checked"})
    for held in release.held:
        flags.append({"code": "held", "file": held["file"], "message": held["reason"]})
    masked = {p["file"] for p in release.pixels if p["status"] == "masked"}
    if release.face.get("defaced"):
        masked = set(names)
    for (name, copy), source in zip(release.copies, datasets):
        if name in masked:
            for frame in (f for f in frames if f.instance is source):
                values[id(frame)] = frame_pixels(replace(frame, instance=copy))
    if release.face:
        flags.append({"code": "defaced" if release.face.get("defaced") else "face_risk",
                      "message": release.face["risk"]})
    return [copy for _, copy in release.copies], release.is_held
