"""``radlabel export``: the training dataset of a protocol — final labels only, no PHI.

Every task whose adjudication is final contributes one case: the research series (de-identified
in Orthanc) and its final DICOM-SEG, written as NIfTI volume + label map, or as the DICOM series
with its SEG. A manifest records provenance (protocol version and fingerprint, method, reader
pseudonyms, agreement figures, model versions) and train/validation/test splits stratified by
site and scanner with no patient in two splits. Written into a staging folder renamed at the
end: all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connectors.adjudicate import Adjudicator
from connectors.label_studio import label_studio_errors
from radlabel import seg as seg_codec
from radlabel.audit import audit_log
from radlabel.errors import RadlabelError
from radlabel.geometry import labelmap_to_nifti
from radlabel.ingest.series import frame_pixels, frames_of, geometry_of
from radlabel.protocol.ohif import segment_classes
from radlabel.protocol.template import Protocol
from radlabel.qa.representativeness import acquisition_profile
from radlabel.settings import Settings

__all__ = ["SPLITS", "ExportResult", "assign_splits", "export_dataset"]

SPLITS = (("train", 0.7), ("validation", 0.15), ("test", 0.15))


def _short(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def assign_splits(cases: list[dict], seed: int = 0) -> dict[str, str]:
    """case id -> split; patients never straddle splits; each site/scanner stratum is split on its own."""
    strata: dict[tuple, dict[str, list[str]]] = {}
    for case in cases:
        key = (case["site"], case["scanner"])
        strata.setdefault(key, {}).setdefault(case["patient"], []).append(case["case"])
    out = {}
    for patients in strata.values():
        ordered = sorted(patients, key=lambda p: _short(f"{seed}:{p}"))
        edges = np.cumsum([fraction for _, fraction in SPLITS]) * len(ordered)
        for position, patient in enumerate(ordered):
            split = next(name for (name, _), edge in zip(SPLITS, edges) if position < edge - 1e-9)
            for case in patients[patient]:
                out[case] = split
    return out


@dataclass
class ExportResult:
    folder: Path
    cases: int
    splits: dict[str, int]


def export_dataset(settings: Settings, protocol: Protocol, out: Path, fmt: str = "nifti", seed: int = 0,
                   adapters=None) -> ExportResult:
    """The protocol's final labels as a training set in ``out`` (``adapters``: ``wiring.Adapters``, or fakes)."""
    if fmt not in ("nifti", "dicom-seg"):
        raise RadlabelError(f"--format {fmt!r}: expected nifti or dicom-seg.")
    if out.exists() and any(out.iterdir()):
        raise RadlabelError(f"{out} is not empty: give a new or empty folder (nothing is overwritten).")
    adjudicator = Adjudicator(settings, adapters=adapters)
    final = adjudicator.adjudications.final(protocol.id)
    if not final:
        raise RadlabelError(f"protocol {protocol.id} has no final labels yet: adjudicate first (`radlabel reconcile`).")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cases = [_export_case(adjudicator, protocol, task_id, decision, staging, fmt) for task_id, decision in final.items()]
    splits = assign_splits(cases, seed)
    for case in cases:
        case["split"] = splits[case["case"]]
    manifest = {"protocol": {"id": protocol.id, "version": protocol.version, "fingerprint": protocol.fingerprint},
                "format": fmt, "labels": {str(n): c.name for n, c in enumerate(segment_classes(protocol), 1)},
                "split_rule": "stratified by site and scanner; no patient in two splits; seed " + str(seed),
                "cases": cases}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if out.exists():
        out.rmdir()
    staging.rename(out)
    counts = {name: sum(1 for c in cases if c["split"] == name) for name, _ in SPLITS}
    audit_log(settings).append("export", "admin", f"{protocol.id} {protocol.version}", format=fmt, cases=len(cases),
                               splits=counts)
    return ExportResult(out, len(cases), counts)


def _export_case(adjudicator: Adjudicator, protocol: Protocol, task_id: int, decision: dict, staging: Path,
                 fmt: str) -> dict:
    """One final task into the staging folder (its research copy and final labels); its manifest entry."""
    with label_studio_errors(f"read task {task_id}"):
        task = adjudicator.ls.tasks.get(id=task_id)
    source = adjudicator.research_copy(task)
    final_series = adjudicator.uid("final-series", protocol.id, task_id)
    finals = adjudicator.orthanc.retrieve_series(task.data["study"], final_series)
    if not finals:
        raise RadlabelError(f"the final SEG of task {task_id} is not in Orthanc: run `radlabel reconcile`.")
    segments = {s.label: s.mask for s in seg_codec.decode(finals[0], task.data["sop_instance_uids"])}
    case = _case_entry(task, decision, source[0], finals[0])
    folder = staging / case["case"]
    folder.mkdir()
    if fmt == "nifti":
        frames = [frames_of(ds)[0] for ds in source]
        geometry = geometry_of(frames)
        volume = np.stack([frame_pixels(f) for f in frames]).astype(np.int16)
        labelmap = np.zeros(volume.shape, np.uint8)
        for number, cls in enumerate(segment_classes(protocol), 1):
            if cls.name in segments:
                labelmap[segments[cls.name]] = number
        labelmap_to_nifti(volume, geometry).to_filename(str(folder / "image.nii.gz"))
        labelmap_to_nifti(labelmap, geometry).to_filename(str(folder / "label.nii.gz"))
        case["files"] = [f"{case['case']}/image.nii.gz", f"{case['case']}/label.nii.gz"]
    else:
        (folder / "series").mkdir()
        for number, ds in enumerate(source):
            ds.save_as(folder / "series" / f"{number:04d}.dcm", enforce_file_format=True)
        finals[0].save_as(folder / "seg.dcm", enforce_file_format=True)
        case["files"] = [f"{case['case']}/series/", f"{case['case']}/seg.dcm"]
    return case


def _case_entry(task, decision: dict, first, final_seg) -> dict:
    """A case's manifest entry: provenance, stratum and agreement (no PHI: pseudonyms and keyed hashes only)."""
    # Taken at sync from the source headers (the research copy has no institution left to stratify by).
    acquisition = task.data.get("acquisition") or acquisition_profile(first, "site-unknown")
    return {"case": f"case-{_short(task.data['series'])}", "task": task.id,
            "patient": f"patient-{_short(str(first.get('PatientID', '')))}",
            "site": acquisition["site"], "scanner": f"{acquisition['manufacturer']} {acquisition['scanner']}",
            "slice_thickness_mm": acquisition["slice_thickness_mm"], "kernel": acquisition["kernel"],
            "contrast": acquisition["contrast"],
            "research_series": task.data["series"], "final_seg": str(final_seg.SOPInstanceUID),
            "method": final_seg.get("ContentDescription", ""),
            "readers": [f"reader-{r}" for r in sorted({int(k) for k in (decision.get("reader_findings") or {})})],
            "arbitrated_by": decision.get("arbitrated_by"),
            "agreement": {name: [{k: p[k] for k in ("dice", "hd95_mm", "surface_dice")} for p in v.get("pairs", [])]
                          for name, v in (decision.get("agreement") or {}).items()},
            "model_versions": sorted({p.get("model_version") if isinstance(p, dict) else p.model_version
                                      for p in (task.predictions or [])} - {None, ""})}
