"""The ``radlabel`` command.

Every subcommand is a thin layer over a library call; user errors
(:class:`RadlabelError`) print one line (plus a log tail where useful) and exit 2
without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from radlabel import __version__
from radlabel.errors import RadlabelError


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_states(states, as_json: bool) -> None:
    if as_json:
        print(json.dumps([s.as_dict() for s in states], indent=2))
        return
    width = max(len(s.title) for s in states)
    for s in states:
        extra = f"  ({s.action})" if s.action else ""
        print(f"  {s.title:<{width}}  {s.state:<9}  {s.url}{extra}")


def cmd_install(args) -> int:
    from connectors.stack.install import install
    from radlabel.settings import load_settings

    done = install(load_settings(), _say)
    print("installed: " + ", ".join(done) if done else "everything was already installed")
    return 0


def cmd_up(args) -> int:
    from connectors.stack import Stack
    from radlabel.settings import load_settings

    settings = load_settings()
    if getattr(args, "profile", None):
        settings.profile = args.profile
    if getattr(args, "workers", None):
        settings.workers = args.workers
    states = Stack(settings).up(_say)
    if not args.json:
        print(f"radlabel stack in {settings.home}:")
    _print_states(states, args.json)
    return 0


def cmd_worker(args) -> int:
    import os

    from connectors.job_handlers import work
    from radlabel.settings import load_settings

    settings = load_settings()
    if settings.profile != "scale":
        raise RadlabelError("workers belong to the scale profile: run `radlabel up --profile scale` first.")
    work(settings, args.name or f"radlabel-{os.getpid()}", burst=args.burst)
    return 0


def cmd_down(args) -> int:
    from connectors.stack import Stack
    from radlabel.settings import load_settings

    stopped = Stack(load_settings()).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def cmd_status(args) -> int:
    from connectors.stack import Stack
    from radlabel.settings import load_settings

    states = Stack(load_settings()).status()
    _print_states(states, args.json)
    return 0 if all(s.state == "healthy" for s in states) else 1


def cmd_samples_load(args) -> int:
    from connectors.samples import SampleSizes, load_samples
    from radlabel.settings import load_settings

    sizes = SampleSizes(ct_slices=args.ct_slices, mr_slices=args.mr_slices)
    loaded = load_samples(load_settings(), sizes, [Path(p) for p in args.paths],
                          synthetic=not args.no_synthetic, real=not args.no_real, progress=_say)
    if args.json:
        print(json.dumps([series.as_dict() for series in loaded], indent=2))
    else:
        for series in loaded:
            print(f"  {series.source:<16} {series.modality:<3} {series.stored:>4}/{series.instances} instances  "
                  f"series {series.series_uid}")
    return 0


def cmd_samples_make(args) -> int:
    from radlabel.phantom import make_ct_study, make_mr_study

    make = make_ct_study if args.modality == "ct" else make_mr_study
    study = make(seed=args.seed, slices=args.slices)
    folder = study.write(Path(args.out))
    print(f"wrote {len(study.datasets)} {args.modality.upper()} slices and the ground truth to {folder}")
    return 0


def _template_paths(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    default = Path("protocol_templates")
    if not default.is_dir():
        default = Path(__file__).resolve().parent.parent / "protocol_templates"
    return [default]


def cmd_templates_lint(args) -> int:
    from radlabel.protocol.loader import lint

    results = lint(_template_paths(args.paths))
    if not results:
        raise RadlabelError("no template files (*.yaml) in the paths given.")
    if args.json:
        print(json.dumps([{"path": str(r.path), "ok": r.ok, "problems": r.problems,
                           "id": r.protocol.id if r.protocol else None,
                           "version": r.protocol.version if r.protocol else None} for r in results], indent=2))
    else:
        for result in results:
            if result.ok:
                print(f"ok    {result.path} ({result.protocol.id} {result.protocol.version}, "
                      f"{len(result.protocol.classes)} classes)")
            else:
                for problem in result.problems:
                    print(problem)
    return 0 if all(r.ok for r in results) else 1


def cmd_templates_schema(args) -> int:
    from radlabel.protocol.loader import json_schema

    print(json_schema())
    return 0


def cmd_templates_show(args) -> int:
    from radlabel.protocol import load_template
    from radlabel.protocol.instructions import instructions_html
    from radlabel.protocol.labelconfig import label_config
    from radlabel.protocol.ohif import ohif_config

    protocol = load_template(args.template)
    if args.part == "label-config":
        print(label_config(protocol))
    elif args.part == "instructions":
        print(instructions_html(protocol))
    else:
        print(json.dumps(ohif_config(protocol), indent=2))
    return 0


def cmd_provision(args) -> int:
    from connectors.provision import Provisioner, parse_migrations
    from radlabel.protocol import load_template
    from radlabel.settings import load_settings

    migrations = parse_migrations(args.migrate)
    protocols = [load_template(path) for path in args.templates]  # all valid before any is provisioned
    provisioner = Provisioner(load_settings(), _say)
    results = [provisioner.provision(protocol, migrations) for protocol in protocols]
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            detail = f": {'; '.join(r.changes)}" if r.changes else ""
            print(f"  {r.protocol_id} {r.version}: {r.action} project {r.project_id}{detail}  {r.url}")
    return 0


def cmd_sync(args) -> int:
    from connectors.sync import Syncer
    from radlabel.protocol import load_template
    from radlabel.settings import load_settings

    protocol = load_template(args.template)
    summary = Syncer(load_settings(), protocol, _say).run(limit=args.limit, force=args.force)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        print(f"{protocol.id}: {summary.selected} series selected, {summary.synced} synced, "
              f"{summary.already_done} already done, {summary.quarantined} quarantined, {summary.held} held")
        for series in summary.series:
            detail = ", ".join(series["reasons"]) or ", ".join(f["code"] for f in series["flags"]
                                                               if f["code"] != "deidentified")
            print(f"  {series['series_key']}  {series['status']:<11} task {series['task_id'] or '-'}  {detail}")
    return 0


def _series_groups(paths: list[str], damaged: list | None = None):
    """Readable files grouped by series; a damaged file stops everything, unless ``damaged`` collects
    (path, series UID or None, reason) for it."""
    from radlabel.dicom_files import dicom_paths, read_dicom

    files, skipped = dicom_paths([Path(p) for p in paths])
    if not files:
        raise RadlabelError("no DICOM files found in the paths given: give folders that hold DICOM files.")
    groups: dict[str, list] = {}
    for path in files:
        try:
            ds = read_dicom(path)
        except RadlabelError as exc:
            if damaged is None:
                raise
            damaged.append((path, _series_uid_of_damaged(path), str(exc)))
            continue
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or f"(no series UID: {path.parent})"), []).append(ds)
    return groups, skipped


def _series_uid_of_damaged(path: Path) -> str | None:
    """The series a damaged file claims to belong to, where its header still says so."""
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["SeriesInstanceUID"])
            return str(ds.get("SeriesInstanceUID", "") or "") or None
    except Exception:  # too damaged to say: reported on its own
        return None


def cmd_validate(args) -> int:
    from radlabel.ingest.validate import Finding, Reason, SeriesReport, validate_series

    damaged: list = []
    try:
        groups, skipped = _series_groups(args.paths, damaged)
    except RadlabelError as exc:
        if not args.json:
            raise
        print(json.dumps({"series": [], "error": str(exc), "damaged_files": [], "skipped_files": 0}, indent=2))
        return 2
    reports = {uid: validate_series(datasets, min_slices=args.min_slices)[0] for uid, datasets in groups.items()}
    for path, uid, reason in damaged:  # a damaged file quarantines its series, named with its reason
        report = reports.setdefault(uid or f"(unreadable: {path})", SeriesReport(uid or "", 0, 0))
        report.instances += 1
        report.findings.append(Finding(Reason.DAMAGED_FILE, reason, file=str(path)))
    reports = list(reports.values())
    if args.json:
        print(json.dumps({"series": [r.as_dict() for r in reports], "skipped_files": len(skipped),
                          "damaged_files": [{"file": str(p), "series_instance_uid": uid, "reason": reason}
                                            for p, uid, reason in damaged]}, indent=2))
    else:
        for r in reports:
            print(f"{'ok         ' if r.ok else 'QUARANTINE '} {r.series_uid or '(unknown series)'}  {r.frames} frame(s)")
            for finding in r.findings:
                print(f"    {finding.reason.value}: {finding.message}")
            for note in r.notes:
                print(f"    note {note.reason.value}: {note.message}")
    return 0 if all(r.ok for r in reports) else 1


def _file_name(uid: str, fallback: str) -> str:
    """A UID as a file or folder name: a damaged or retained header must not name a path outside the output."""
    name = re.sub(r"[^0-9A-Za-z._-]", "_", uid).lstrip(".")[:128]
    return name or fallback


def _write_deidentified(name: str, copy, staging: Path) -> None:
    """Write one de-identified copy into the staging folder, or fail naming its input file (no header values)."""
    import warnings

    from radlabel.dicom_files import safe_reason

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings quote header values
            folder = staging / _file_name(str(copy.get("SeriesInstanceUID", "") or ""), "series")
            folder.mkdir(exist_ok=True)
            uid = _file_name(str(copy.get("SOPInstanceUID", "") or ""), "")
            if not uid:
                raise ValueError("no SOPInstanceUID")
            copy.save_as(folder / f"{uid}.dcm", enforce_file_format=True)
    except OSError as exc:
        raise RadlabelError(f"cannot write into {staging} ({exc.strerror}): check the output folder; "
                            "nothing was written.") from None
    except Exception as exc:  # a header pydicom reads but cannot write back: the file is damaged
        raise RadlabelError(f"{name} cannot be written de-identified ({safe_reason(exc)}): replace it with an "
                            "intact copy; nothing was written.") from None


def _deid_options(args) -> tuple[list, object]:
    from radlabel.protocol import load_template
    from radlabel.protocol.content import Deidentification
    from radlabel.protocol.enum import DeidentificationOption

    policy = load_template(args.template).deidentification if args.template else Deidentification()
    options = list(policy.options)
    try:
        options += [DeidentificationOption(o) for o in args.option]
    except ValueError as exc:
        raise RadlabelError(f"--option: {exc}; expected one of {[o.value for o in DeidentificationOption]}.") from None
    return options, policy


def _prepare_releases(deid, groups: dict, in_dir: Path, report, policy) -> tuple[list, dict]:
    """Every series through the shared boundary (headers, pixels), then the linkage measure over the output."""
    import warnings

    from radlabel.dicom_files import safe_reason
    from radlabel.ingest.release import linkage, prepare_series

    releases = []
    for datasets in groups.values():
        names = [_relative_name(ds, in_dir) for ds in datasets]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings quote header values
                releases.append(prepare_series(deid, datasets, names, report, policy.burned_in_text == "mask",
                                              policy.face_risk))
        except RadlabelError:
            raise
        except Exception as exc:  # a header we read but cannot de-identify: name the series' first file
            raise RadlabelError(f"{in_dir / names[0]} (or another file of its series) cannot be de-identified "
                                f"({safe_reason(exc)}): replace it with an intact copy; nothing was written.") from None
    return releases, linkage(releases, policy.max_linkage_risk)


def _relative_name(ds, in_dir: Path) -> str:
    path = Path(getattr(ds, "filename", "") or "")
    try:
        return path.resolve().relative_to(in_dir.resolve()).as_posix()
    except ValueError:
        return path.name or "(unnamed)"


def cmd_deid(args) -> int:
    from radlabel.ingest.deid import DeidReport, Deidentifier
    from radlabel.settings import load_settings

    options, policy = _deid_options(args)
    out, in_dir = Path(args.out_dir), Path(args.in_dir)
    if out.exists() and any(out.iterdir()):
        raise RadlabelError(f"{out} is not empty: give a new or empty output folder (nothing is overwritten).")
    groups, skipped = _series_groups([args.in_dir])
    deid = Deidentifier(bytes.fromhex(load_settings().secrets()["pseudonym_key"]), options)
    report = DeidReport()
    releases, link = _prepare_releases(deid, groups, in_dir, report, policy)
    staging = out.with_name(out.name + ".partial")
    if staging.exists() and any(staging.iterdir()):
        raise RadlabelError(f"{staging} is left from an interrupted run: remove it, then run deid again.")
    staging.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        for release in releases:
            for name, copy in ([] if release.is_held else release.copies):
                _write_deidentified(str(in_dir / name), copy, staging)
                written += 1
    except BaseException:  # all or nothing: no half-written output folder
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    staging.rename(out)  # all or nothing
    held = [h | {"series": r.series_uid} for r in releases for h in r.held]
    summary = {"written": written, "series": len(groups), "skipped_files": len(skipped),
               "options": sorted(o.value for o in options), "held": held, "linkage": link,
               "releases": [r.as_dict() for r in releases]} | report.as_dict()
    print(json.dumps(summary, indent=2) if args.json else
          f"wrote {written} de-identified file(s) in {len(groups)} series to {out}; held {len(held)} "
          f"(see --json); {link['unique_series']} of {link['series']} output series unique on their quasi-identifiers")
    return 0


def _series_geometry(folder: str):
    from radlabel.dicom_files import read_dicom_files, repair_missing_uids
    from radlabel.ingest.series import geometry_of
    from radlabel.ingest.validate import validate_series

    datasets = read_dicom_files([Path(folder)])
    repair_missing_uids(datasets)
    report, frames = validate_series(datasets, decode=False)
    if not report.ok:
        raise RadlabelError(f"the series in {folder} is not usable: {report.findings[0].message}")
    return datasets, frames, geometry_of(frames)


def cmd_agreement(args) -> int:
    from radlabel.adjudication.labelmaps import class_masks, on_one_grid, read_labelmap, read_labels_file
    from radlabel.adjudication.metrics import pairwise

    geometry = _series_geometry(args.from_dicom)[2] if args.from_dicom else None
    # Every map keeps its grid; all are re-indexed onto one grid voxel for voxel, or refused with the reason.
    maps = on_one_grid([read_labelmap(Path(p), geometry, args.threshold) for p in args.labelmaps], geometry)
    spacing = tuple(args.spacing) if args.spacing else maps[0].spacing
    classes = {}
    for name, masks in class_masks(maps, read_labels_file(args.labels)).items():
        pairs = pairwise(masks, spacing, args.tolerance_mm)
        classes[name] = [
            {"a": maps[i].path.name, "b": maps[j].path.name} | agreement.as_dict() for (i, j), agreement in pairs.items()]
    grid = maps[0].geometry
    result = {"spacing_mm": list(spacing), "tolerance_mm": args.tolerance_mm, "readers": [m.path.name for m in maps],
              "grid": {"shape": list(grid.shape), "tilt_degrees": round(grid.tilt_degrees, 3),
                       "origin_lps_mm": [round(v, 4) for v in grid.origin]},
              "hd95_definition": "max of directed 95th percentiles over surface voxels",
              "classes": classes}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, pairs in classes.items():
            for pair in pairs:
                print(f"{name:<24} {pair['a']} ~ {pair['b']}: Dice {pair['dice']:.3f}  HD95 {pair['hd95_mm']} mm  "
                      f"surface Dice@{args.tolerance_mm}mm {pair['surface_dice']:.3f}")
    return 0


def cmd_consensus(args) -> int:
    from radlabel.adjudication.consensus import majority, staple
    from radlabel.adjudication.labelmaps import on_one_grid, read_labelmap
    from radlabel.geometry import labelmap_to_nifti

    maps = on_one_grid([read_labelmap(Path(p)) for p in args.labelmaps])
    values = sorted(set().union(*(m.values for m in maps)))
    score = np.zeros((len(values) + 1, *maps[0].geometry.shape), dtype=np.float32)
    report = {}
    for index, value in enumerate(values, 1):
        masks = [m.mask(value) for m in maps]
        if args.method == "staple":
            result = staple([m.probability(value) for m in maps])  # fractional SEGs vote with probabilities
            score[index] = np.where(result.consensus, result.probability, 0)
            report[str(value)] = {"sensitivity": result.sensitivity, "specificity": result.specificity}
        else:
            chosen, ties = majority(masks)
            score[index] = np.where(chosen, np.sum(masks, axis=0) / len(masks), 0)
            report[str(value)] = {"tie_voxels": int(ties.sum())}
    labels = np.asarray([0] + values)[np.argmax(score, axis=0)] * (score.max(axis=0) > 0)
    out = Path(args.out)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise RadlabelError(f"--out {out}: consensus writes a NIfTI label map; give a .nii or .nii.gz name.")
    labelmap_to_nifti(labels.astype(np.uint16), maps[0].geometry).to_filename(str(out))
    print(json.dumps({"out": str(out), "method": args.method, "classes": report}, indent=2))
    return 0


def cmd_seg_from_labelmap(args) -> int:
    from radlabel import seg
    from radlabel.adjudication.labelmaps import read_labelmap, read_labels_file

    datasets, frames, geometry = _series_geometry(args.series)
    names = read_labels_file(args.labels)
    # The map is re-indexed onto the series grid voxel for voxel (tilted grids too), or refused naming why.
    labelmap = read_labelmap(Path(args.labelmap), geometry)
    names = names or labelmap.names
    classes, masks = {}, {}
    for value in labelmap.values:
        cls = seg.structure_class(value, names.get(value, f"label_{value}"))
        classes[cls.name] = cls
        masks[cls.name] = labelmap.mask(value)
    if not masks:
        raise RadlabelError(f"{args.labelmap} has no labelled voxel on the series in {args.series}: nothing to encode.")
    try:
        encoded = seg.encode(frames, masks, classes, series_description=args.description)
    except ValueError as exc:
        raise RadlabelError(f"the series in {args.series} cannot carry a SEG: {exc}") from None
    _write_atomically(encoded, Path(args.out))
    print(f"wrote {args.out}: {len(masks)} segment(s) over {len(frames)} slices")
    return 0


def _write_atomically(ds, out: Path) -> None:
    """Write a data set to ``out`` through a temporary name: no half-written file is ever left there."""
    partial = out.with_name(out.name + ".partial")
    try:
        ds.save_as(partial, enforce_file_format=True)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RadlabelError(f"cannot write {out} ({exc.strerror}): check the output folder.") from None


def cmd_seg_to_labelmap(args) -> int:
    from radlabel.adjudication.labelmaps import read_labelmap
    from radlabel.geometry import labelmap_to_nifti

    labelmap = read_labelmap(Path(args.seg))
    labels = labelmap.labels()  # refuses overlapping segments, naming them
    out = Path(args.out)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise RadlabelError(f"--out {out}: give a .nii or .nii.gz name for the NIfTI label map.")
    labelmap_to_nifti(labels.astype(np.uint16), labelmap.geometry).to_filename(str(out))
    (out.parent / (out.name.split(".")[0] + ".labels.json")).write_text(
        json.dumps({"labels": {str(k): {"name": v} for k, v in labelmap.names.items()}}, indent=1))
    print(f"wrote {args.out} ({len(labelmap.names)} segment(s)) and its labels file")
    return 0


def cmd_seg_import(args) -> int:
    """An administrator's import of a SEG file as a named, registered reader's read."""
    from connectors.seg_import import SegImporter
    from connectors.sync import Syncer
    from radlabel.dicom_files import read_dicom
    from radlabel.settings import load_settings

    ds = read_dicom(Path(args.seg))
    result = SegImporter.for_syncer(Syncer(load_settings(), _protocol(args.protocol))).import_file(ds, args.reader)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"SEG {result.seg_key}: {result.outcome} into task {result.task_id} as {result.reader}"
              + (f" (annotation {result.annotation_id}, {result.regions} region(s))" if result.annotation_id else ""))
    return 0


def cmd_reconcile(args) -> int:
    from connectors.adjudicate import Adjudicator
    from radlabel.settings import load_settings

    outcomes = Adjudicator(load_settings(), _say).reconcile()
    if args.json:
        print(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        for o in outcomes:
            print(f"  task {o.task_id}: {o.status}" + (f" ({o.detail})" if o.detail else ""))
        print(f"{len(outcomes)} task(s) looked at")
    return 0


def cmd_disagreements(args) -> int:
    from connectors.adjudicate import Adjudicator
    from radlabel.adjudication.analytics import disagreement_report
    from radlabel.protocol import load_template
    from radlabel.settings import load_settings

    protocol = load_template(args.template)
    report = disagreement_report(Adjudicator(load_settings()).decisions(protocol.id))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{protocol.id}: {report['decisions']} decision(s), {report['arbitrated']} sent to arbitration")
        for name, figures in report["classes"].items():
            print(f"  class {name}: mean Dice {figures['mean_dice']}, {figures['failed_pairs']}/{figures['pairs']} "
                  "reader pairs below threshold")
        for rule, counts in report["edge_case_rules"].items():
            print(f"  edge case {rule}: flagged {counts['flagged']}x, {counts['went_to_arbitration']}x arbitrated")
    return 0


def cmd_audit(args) -> int:
    from radlabel.audit import audit_log
    from radlabel.settings import load_settings

    log = audit_log(load_settings())
    if args.audit_command == "show":
        for entry in log.entries()[-args.last:]:
            print(json.dumps(entry, sort_keys=True) if args.json else
                  f"{entry['seq']:>6}  {entry['action']:<13} {entry['actor']:<24} {entry['protocol'] or '-':<28} "
                  f"{json.dumps(entry['objects'], sort_keys=True)[:100]}")
        return 0
    result = log.verify()
    # The head printed here, kept elsewhere, also shows a log later rolled back to an older copy with its head.
    head = log.entries()[-1] if result.ok and result.entries else {"seq": 0, "hash": "-"}
    print(f"audit log intact: {result.entries} entries (head: entry {head['seq']}, {head['hash']})" if result.ok else
          f"audit log TAMPERED: {result.problem}.")
    return 0 if result.ok else 1


def cmd_export(args) -> int:
    from connectors.export import export_dataset
    from radlabel.protocol import load_template
    from radlabel.settings import load_settings

    result = export_dataset(load_settings(), load_template(args.template), Path(args.out), args.format, args.seed)
    print(f"exported {result.cases} case(s) to {result.folder}: " + ", ".join(f"{k} {v}" for k, v in result.splits.items()))
    return 0


def _protocol(name: str):
    """A template file, or the id of a protocol provisioned from this state directory."""
    from connectors.projects import load_provisioned
    from radlabel.protocol import load_template
    from radlabel.settings import load_settings

    return load_template(name) if Path(name).is_file() else load_provisioned(load_settings(), name)


def cmd_gold(args) -> int:
    from connectors.qa import QualityDesk
    from radlabel.settings import load_settings

    protocol = _protocol(args.protocol)
    desk = QualityDesk(load_settings())
    if args.gold_command == "add":
        added = desk.add_gold(protocol, args.tasks)
        print(f"{len(added)} task(s) added to the gold standard of {protocol.id}")
    gold = desk.gold(protocol.id)
    calibration = desk.calibration_set(protocol)
    print(f"gold standard of {protocol.id}: {len(gold)} task(s) {gold}; calibration set {calibration} "
          f"({protocol.qa.calibration.cases} needed; certification "
          f"{'enforced' if desk.certification_enforced(protocol) else 'not yet enforced'})")
    return 0


def cmd_calibrate(args) -> int:
    from connectors.qa import QualityDesk
    from radlabel.protocol.enum import ReaderTier
    from radlabel.settings import load_settings

    protocol = _protocol(args.protocol)
    desk = QualityDesk(load_settings())
    reader = desk.reader_id(args.reader)
    certification, progress = desk.calibrate(protocol, reader, ReaderTier(args.tier))
    if certification is None:
        print(f"reader-{reader}: {progress['read']} of {progress['cases']} calibration cases read in Label Studio "
              f"project {progress['project']}; run this again (or let the webhook) once all are read.")
        return 0
    print(json.dumps(certification.as_dict(), indent=2) if args.json else certification.feedback())
    return 0 if certification.certified else 1


def cmd_report(args) -> int:
    from connectors.qa import report_figures
    from radlabel.qa.report import render_html
    from radlabel.settings import load_settings

    out = Path(args.out)
    if out.suffix != ".html":
        raise RadlabelError(f"--out {out}: expected a file name ending in .html (the JSON is written beside it).")
    protocol = _protocol(args.protocol)
    figures = report_figures(load_settings(), protocol)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".partial")
    staging.write_text(render_html(figures))
    out.with_suffix(".json").write_text(json.dumps(figures, indent=1, default=str))
    staging.rename(out)
    print(f"wrote {out} and {out.with_suffix('.json')}: {len(figures['alerts'])} alert(s)")
    for alert in figures["alerts"]:
        print(f"  ! {alert}")
    return 0


def cmd_demo(args) -> int:
    from radlabel.demo import run_demo

    if args.profile:  # as `up --profile` would: kept in settings.json for later commands
        os.environ["RADLABEL_PROFILE"] = args.profile

    return run_demo(as_json=args.json, progress=_say)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlabel", description="DICOM annotation pipeline: Orthanc + Label Studio + OHIF.")
    parser.add_argument("--version", action="version", version=f"radlabel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _stack_commands(sub)
    _data_commands(sub)
    _label_map_commands(sub)
    _adjudication_commands(sub)
    _qa_commands(sub)

    # -- readers (issue #8: OHIF extension; defined in connectors/readers.py) --
    from connectors.readers import add_cli as add_readers_cli
    add_readers_cli(sub)
    # -- end readers --
    from connectors.authorship import add_cli as add_reads_cli  # issue 17: reads whose author is not verified
    add_reads_cli(sub)
    return parser


def _stack_commands(sub) -> None:
    """install, up, status, worker, down."""
    sub.add_parser("install", help="install Label Studio and the OHIF viewer (apt parts: make install)").set_defaults(func=cmd_install)
    for name, func, text in (("up", cmd_up, "start the local stack (idempotent)"),
                             ("status", cmd_status, "report each service's health (exit 1 unless all healthy)")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.set_defaults(func=func)
        if name == "up":
            command.add_argument("--profile", choices=["default", "scale"],
                                 help="scale: Redis job queue and RQ workers (kept for later commands)")
            command.add_argument("--workers", type=int, choices=range(1, 65), metavar="N",
                                 help="job worker processes in the scale profile (default 2)")
    worker = sub.add_parser("worker", help="run one job worker (the scale profile starts them for you)")
    worker.add_argument("--name", default=None, help="the worker's name in Redis")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("down", help="stop the processes this state directory started").set_defaults(func=cmd_down)


def _data_commands(sub) -> None:
    """samples, templates, provision, sync, validate, deid."""
    samples = sub.add_parser("samples", help="sample studies").add_subparsers(dest="samples_command", required=True, metavar="ACTION")
    load = samples.add_parser("load", help="store synthetic studies, the real CT and any PATHS in Orthanc")
    load.add_argument("paths", nargs="*", help="extra DICOM files or folders to store")
    load.add_argument("--ct-slices", type=int, default=120, help="slices of the synthetic CT (default 120)")
    load.add_argument("--mr-slices", type=int, default=40, help="slices of the synthetic MR (default 40)")
    load.add_argument("--no-synthetic", action="store_true", help="skip the synthetic studies")
    load.add_argument("--no-real", action="store_true", help="skip the real CT")
    load.add_argument("--json", action="store_true")
    load.set_defaults(func=cmd_samples_load)
    make = samples.add_parser("make", help="write a synthetic study and its ground truth to a folder")
    make.add_argument("out")
    make.add_argument("--modality", choices=["ct", "mr"], default="ct")
    make.add_argument("--slices", type=int, default=60)
    make.add_argument("--seed", type=int, default=1)
    make.set_defaults(func=cmd_samples_make)

    templates = sub.add_parser("templates", help="protocol templates").add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    lint = templates.add_parser("lint", help="validate templates (default: protocol_templates/)")
    lint.add_argument("paths", nargs="*")
    lint.add_argument("--json", action="store_true")
    lint.set_defaults(func=cmd_templates_lint)
    templates.add_parser("schema", help="print the template JSON Schema").set_defaults(func=cmd_templates_schema)
    show = templates.add_parser("show", help="print what a template generates")
    show.add_argument("template")
    show.add_argument("part", choices=["label-config", "instructions", "ohif"])
    show.set_defaults(func=cmd_templates_show)

    provision = sub.add_parser("provision", help="create or update the Label Studio project of each template")
    provision.add_argument("templates", nargs="+")
    provision.add_argument("--migrate", action="append", default=[], metavar="OLD=NEW",
                           help="move labels of a removed class OLD to NEW (OLD= deletes them); repeatable")
    provision.add_argument("--json", action="store_true")
    provision.set_defaults(func=cmd_provision)

    sync = sub.add_parser("sync", help="Orthanc series -> de-identified, rendered Label Studio tasks for a protocol")
    sync.add_argument("template")
    sync.add_argument("--limit", type=int, default=None, help="at most this many series")
    sync.add_argument("--force", action="store_true", help="redo series already synced or quarantined")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=cmd_sync)

    validate = sub.add_parser("validate", help="validation report for every series in folders of DICOM files")
    validate.add_argument("paths", nargs="+")
    validate.add_argument("--min-slices", type=int, default=1)
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=cmd_validate)

    deid = sub.add_parser("deid", help="de-identify a folder of DICOM files into a new folder")
    deid.add_argument("in_dir")
    deid.add_argument("out_dir")
    deid.add_argument("--template", help="take the retention options of this protocol template")
    deid.add_argument("--option", action="append", default=[], help="a PS3.15 retention option (repeatable)")
    deid.add_argument("--json", action="store_true")
    deid.set_defaults(func=cmd_deid)


def _label_map_commands(sub) -> None:
    """agreement, consensus, seg (conversions and the administrator's import)."""
    agreement = sub.add_parser("agreement", help="agreement between label maps (NIfTI or DICOM-SEG)")
    agreement.add_argument("labelmaps", nargs="+")
    agreement.add_argument("--spacing", type=float, nargs=3, metavar=("A0", "A1", "A2"),
                           help="voxel size in mm along the array axes (default: from the files)")
    agreement.add_argument("--from-dicom", metavar="SERIES", help="put NIfTI maps on this DICOM series' grid")
    agreement.add_argument("--tolerance-mm", type=float, default=1.5, help="surface Dice tolerance (default 1.5)")
    agreement.add_argument("--labels", help="labels JSON naming the label values")
    agreement.add_argument("--threshold", type=float, default=0.5,
                           help="a fractional SEG's voxel is inside from this probability on (default 0.5)")
    agreement.add_argument("--json", action="store_true")
    agreement.set_defaults(func=cmd_agreement)
    consensus = sub.add_parser("consensus", help="consensus NIfTI label map of several readers' maps (NIfTI or SEG)")
    consensus.add_argument("labelmaps", nargs="+")
    consensus.add_argument("--method", choices=["majority", "staple"], default="staple")
    consensus.add_argument("--out", required=True)
    consensus.set_defaults(func=cmd_consensus)
    segs = sub.add_parser("seg", help="DICOM-SEG conversions").add_subparsers(dest="seg_command", required=True, metavar="ACTION")
    from_map = segs.add_parser("from-labelmap", help="a label map (NIfTI or SEG) on a DICOM series -> binary DICOM-SEG")
    from_map.add_argument("labelmap")
    from_map.add_argument("--series", required=True, help="folder of the DICOM series the map belongs to")
    from_map.add_argument("--labels", help="labels JSON (value -> name, or the TotalSegmentator form)")
    from_map.add_argument("--description", default="radlabel segmentation")
    from_map.add_argument("--out", required=True)
    from_map.set_defaults(func=cmd_seg_from_labelmap)
    to_map = segs.add_parser("to-labelmap", help="a DICOM-SEG -> NIfTI label map (+ labels JSON)")
    to_map.add_argument("seg")
    to_map.add_argument("--out", required=True)
    to_map.set_defaults(func=cmd_seg_to_labelmap)
    seg_in = segs.add_parser("import", help="(administrator) a SEG file as a registered reader's read of its task")
    seg_in.add_argument("seg")
    seg_in.add_argument("--protocol", required=True, help="template file or provisioned protocol id")
    seg_in.add_argument("--reader", required=True, help="the reader's email or reader-N pseudonym")
    seg_in.add_argument("--json", action="store_true")
    seg_in.set_defaults(func=cmd_seg_import)


def _adjudication_commands(sub) -> None:
    """reconcile, disagreements, audit, export."""
    reconcile = sub.add_parser("reconcile", help="adjudicate every task whose reads are in (catches missed webhooks)")
    reconcile.add_argument("--json", action="store_true")
    reconcile.set_defaults(func=cmd_reconcile)

    disagreements = sub.add_parser("disagreements", help="disagreement analytics of a protocol (per class, "
                                   "reader pair, edge-case rule; findings kappa/alpha)")
    disagreements.add_argument("template")
    disagreements.add_argument("--json", action="store_true")
    disagreements.set_defaults(func=cmd_disagreements)

    audit = sub.add_parser("audit", help="the keyed (HMAC-SHA256) hash-chained audit trail").add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit.add_parser("verify", help="detect any edit, deletion, reordering, cut-off tail or rewrite (exit 1)").set_defaults(func=cmd_audit)
    show = audit.add_parser("show", help="the last entries")
    show.add_argument("--last", type=int, default=30)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_audit)

    export = sub.add_parser("export", help="training dataset of a protocol's final labels (no PHI)")
    export.add_argument("template")
    export.add_argument("--format", choices=["nifti", "dicom-seg"], default="nifti")
    export.add_argument("--out", required=True)
    export.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    export.set_defaults(func=cmd_export)


def _qa_commands(sub) -> None:
    """gold, calibrate, report, demo."""
    gold = sub.add_parser("gold", help="the gold-standard set of a protocol (final tasks as reference)"
                          ).add_subparsers(dest="gold_command", required=True, metavar="ACTION")
    gold_add = gold.add_parser("add", help="mark final tasks as gold standard")
    gold_add.add_argument("protocol", help="template file or provisioned protocol id")
    gold_add.add_argument("tasks", nargs="+", type=int, metavar="TASK")
    gold_add.set_defaults(func=cmd_gold)
    gold_list = gold.add_parser("list", help="the gold standard and calibration set")
    gold_list.add_argument("protocol", help="template file or provisioned protocol id")
    gold_list.set_defaults(func=cmd_gold)

    calibrate = sub.add_parser("calibrate", help="open a reader's calibration cases; certify them once all are read")
    calibrate.add_argument("protocol", help="template file or provisioned protocol id")
    calibrate.add_argument("reader", help="the reader's Label Studio e-mail")
    calibrate.add_argument("--tier", choices=["technician", "radiologist", "senior"], default="radiologist")
    calibrate.add_argument("--json", action="store_true")
    calibrate.set_defaults(func=cmd_calibrate)

    report = sub.add_parser("report", help="QA report of a protocol: self-contained HTML + the figures as JSON")
    report.add_argument("protocol", help="template file or provisioned protocol id")
    report.add_argument("--out", required=True, help="report file (.html); the JSON goes beside it")
    report.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="bring the stack up and run the whole pipeline that exists on samples")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--profile", choices=["default", "scale"],
                      help="scale: the same pipeline on PostgreSQL, Redis and RQ workers (use a new RADLABEL_HOME)")
    demo.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    # Everything radlabel writes (state, secrets, exports, logs) is for its owner only; the services it starts
    # get the same umask from the process supervisor.
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    for name in ("ct_slices", "mr_slices", "slices"):
        value = getattr(args, name, None)
        if value is not None and not 2 <= value <= 1000:
            _say(f"radlabel: error: --{name.replace('_', '-')} must be between 2 and 1000, not {value}.")
            return 2
    try:
        return args.func(args)
    except RadlabelError as exc:
        _say(f"radlabel: error: {exc}")
        if getattr(args, "json", False):  # --json always prints JSON, failures included
            print(json.dumps({"error": str(exc)}))
        return 2
    except KeyboardInterrupt:
        _say("radlabel: interrupted.")
        return 130
    except BrokenPipeError:  # output piped into `head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
