"""``radlabel sync``: PACS → de-identified research copy → rendered slices → Label Studio task.

Per series: retrieve from the clinical PACS (WADO-RS, as stored, read-only credentials) → repair
blank UIDs explicitly → validate (quarantine with reason codes) → burned-in text and face risk (mask,
flag or hold per protocol) → de-identify → STOW the research copy into radlabel's research
archive (a separate server: nothing that faces readers can reach the PACS) → render every slice with the protocol's presets → one Label Studio
task. The state store makes it idempotent and resumable: a series already
done is skipped, a half-done one is redone step by step (every step repeats to
the same result), and a task is never created twice.
"""

from __future__ import annotations

import sys
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from tqdm import tqdm

from connectors.database import state_lock
from connectors.jobs import JobQueue
from connectors.label_studio import label_studio_errors
from connectors.linkage_register import LinkageRegister
from connectors.projects import find_protocol_project
from connectors.state import SeriesRecord
from connectors.viewer import image_urls
from connectors.wiring import Adapters
from radlabel.audit import audit_log
from radlabel.dicom_files import repair_missing_uids
from radlabel.errors import RadlabelError
from radlabel.ingest.deid import Deidentifier
from radlabel.ingest.release import kept_quasi_identifiers, linkage_signature, prepare_synced_series
from radlabel.ingest.render import png_bytes, window
from radlabel.ingest.series import Frame, frame_pixels
from radlabel.ingest.validate import validate_series
from radlabel.protocol.labelconfig import IMAGES_KEY
from radlabel.qa.representativeness import acquisition_profile
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["SyncSummary", "Syncer"]

# QIDO attributes asked for when selecting series.
_FIELDS = ["0008103E", "00180015", "00080020", "00201209", "00080060", "00180050"]


def _value(row: dict, tag: str, default=None):
    values = (row.get(tag) or {}).get("Value")
    return values[0] if values else default


@dataclass
class SyncSummary:
    protocol_id: str
    selected: int = 0
    synced: int = 0
    already_done: int = 0
    quarantined: int = 0
    held: int = 0
    skipped_research_copies: int = 0
    series: list[dict] = field(default_factory=list)
    segs: list[dict] = field(default_factory=list)  # readers' SEGs imported into tasks
    gold_copies: list[int] = field(default_factory=list)  # hidden gold tasks inserted by this run
    refreshed_image_urls: int = 0  # tasks whose slice URLs were signed again before they expire
    linkage: dict = field(default_factory=dict)  # the protocol's released series unique on their quasi-identifiers

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class Syncer:
    def __init__(self, settings: Settings, protocol: Protocol, progress: Callable[[str], None] = lambda m: None,
                 queue: JobQueue | None = None, adapters: Adapters | None = None):
        adapters = adapters or Adapters(settings)
        self.adapters = adapters
        self.settings = settings
        self._queue = queue
        self.protocol = protocol
        self.progress = progress
        secrets = settings.secrets()
        self.image_key = secrets["image_url_key"]
        method = "options: " + ",".join(sorted(o.value for o in protocol.deidentification.options)) \
            if protocol.deidentification.options else ""
        self.deid = Deidentifier(bytes.fromhex(secrets["pseudonym_key"]), protocol.deidentification.options, method)
        self.client = adapters.research_archive  # copies go here
        self.pacs = adapters.source_pacs  # the source studies: read only
        self.state = adapters.series_state
        self.linkage = LinkageRegister(adapters.database)
        self.ls = adapters.label_studio
        self._project_id: int | None = None

    # -- selection ---------------------------------------------------------
    def select(self) -> list[tuple[str, str]]:
        """(study UID, series UID) of the series matching the protocol's criteria."""
        sel = self.protocol.selection
        pattern = re.compile(sel.series_description, re.IGNORECASE) if sel.series_description else None
        research = self.state.pseudo_series_uids()
        chosen = []
        for modality in sel.modalities:
            # Exact-value QIDO only: Orthanc 1.10 takes encoded wildcards literally; the rest is filtered here.
            for row in self.pacs.search_series(fields=_FIELDS, Modality=modality):
                series_uid = _value(row, "0020000E")
                if series_uid in research:
                    continue
                body_part = str(_value(row, "00180015", "") or "").upper()
                description = str(_value(row, "0008103E", "") or "")
                study_date = str(_value(row, "00080020", "") or "")
                count = int(_value(row, "00201209", 0) or 0)
                if sel.body_parts and body_part and body_part not in sel.body_parts:
                    continue
                if pattern and not pattern.search(description):
                    continue
                if study_date and (sel.study_date_from or sel.study_date_to):
                    try:
                        day = date(int(study_date[:4]), int(study_date[4:6]), int(study_date[6:8]))
                    except ValueError:
                        day = None
                    if day and ((sel.study_date_from and day < sel.study_date_from) or
                                (sel.study_date_to and day > sel.study_date_to)):
                        continue
                thickness = _value(row, "00180050")
                if sel.max_slice_thickness_mm and thickness and float(thickness) > sel.max_slice_thickness_mm:
                    continue
                if count > 1 and count < sel.min_slices:
                    continue  # (a single instance may be multi-frame: validation decides)
                chosen.append((_value(row, "0020000D"), series_uid))
        return chosen

    def project_id(self) -> int:
        if self._project_id is None:
            project, marker = find_protocol_project(self.ls, self.protocol.id)
            if project is None:
                raise RadlabelError(f"protocol {self.protocol.id} has no Label Studio project: "
                                    f"run `radlabel provision` on its template first.")
            if marker["version"] != self.protocol.version:
                raise RadlabelError(f"the project of {self.protocol.id} is at version {marker['version']}, the template "
                                    f"at {self.protocol.version}: provision the template first.")
            self._project_id = project.id
        return self._project_id

    # -- the run -----------------------------------------------------------
    def run(self, limit: int | None = None, force: bool = False) -> SyncSummary:
        self.project_id()
        summary = SyncSummary(self.protocol.id)
        targets = self.select()[:limit] if limit else self.select()
        summary.selected = len(targets)
        # A progress bar where a person watches; plain lines in logs and CI.
        bar = tqdm(total=len(targets), unit="series", disable=not sys.stderr.isatty(), file=sys.stderr)
        # Series go to the workers as jobs in the scale profile; without a queue they are synced here, in turn.
        queue = self._queue or self.adapters.worker_queue
        if queue is None:  # one after another, reported as they finish
            for number, (study_uid, series_uid) in enumerate(targets, 1):
                self._tally(summary, self.sync_series(study_uid, series_uid, force=force), number, len(targets))
                bar.update(1)
        else:  # one job per series on the workers; the run waits for all of them
            nonce = f":{time.time()}"
            retried = set()  # held for linkage: a new job (RQ hands back a finished job's result for its key)
            if not force:  # what the state store already has done is reported, not queued
                finished = ("done", "quarantined", "held")
                for study_uid, series_uid in list(targets):
                    record = self.state.get(self.series_key(series_uid), self.protocol.id)
                    if record and _held_for_linkage(record.as_dict()):
                        retried.add(series_uid)
                    elif record and record.status in finished:
                        self._tally(summary, record.as_dict() | {"outcome": "already done"}, 0, len(targets))
                        targets.remove((study_uid, series_uid))
            submitted = [queue.submit("sync_series", f"sync_series:{self.protocol.id}:{self.protocol.version}:"
                                      f"{self.series_key(series_uid)}"
                                      f"{nonce if force or series_uid in retried else ''}", protocol_id=self.protocol.id,
                                      study_uid=study_uid, series_uid=series_uid, force=force)
                         for study_uid, series_uid in targets]
            failures = []
            for number, (record, error) in enumerate(queue.wait(submitted), 1):
                if error:
                    failures.append(error)
                else:
                    self._tally(summary, record, number, len(targets))
                bar.update(1)
            if failures:
                raise RadlabelError(f"{len(failures)} of {len(targets)} series failed to sync (first: {failures[0]}); "
                                    "the others are done: re-run sync to retry.")
        bar.close()
        self._retry_linkage_holds(summary, targets)
        summary.linkage = self.linkage.summary(self.protocol.id, self.protocol.deidentification.max_linkage_risk)
        from connectors.quality import QualityDesk  # hidden gold copies keep their rate in the growing queue

        produced = sum(1 for r in self.state.all(self.protocol.id) if r.status == "done")
        desk = QualityDesk.build(self.settings, self.ls, archive=self.client)
        summary.gold_copies = desk.hidden_gold.insert(self.protocol, self.project_id(), produced)
        summary.refreshed_image_urls = self.refresh_image_urls()
        from connectors.seg_import import SegImporter  # the reverse path: readers' SEGs into the tasks

        summary.segs = [result.as_dict() for result in SegImporter.for_syncer(self).run()]
        for result in summary.segs:
            self.progress(f"SEG {result['seg_key']}: {result['outcome']} into task {result['task_id']}")
        return summary

    def refresh_image_urls(self) -> int:
        """Sign again the slice URLs of this protocol's tasks that expire within half their lifetime (Label
        Studio keeps URLs in its tasks; the front refuses expired ones). The number of tasks updated."""
        viewer, updated = self.settings.url("viewer"), 0
        with label_studio_errors("list the tasks whose slice URLs to sign again"):
            tasks = list(self.ls.tasks.list(project=self.project_id(), review=True, page_size=500))
        for task in tasks:
            data = dict(task.data or {})
            by_preset = data.get("images_by_preset") or {}
            if not by_preset or not image_urls.needs_refresh(next(iter(by_preset.values()))):
                continue
            data["images_by_preset"] = {preset: [image_urls.resigned(viewer, self.image_key, url) for url in urls]
                                        for preset, urls in by_preset.items()}
            data[IMAGES_KEY] = [image_urls.resigned(viewer, self.image_key, url) for url in data.get(IMAGES_KEY) or []]
            with label_studio_errors(f"sign the slice URLs of task {task.id} again"):
                self.ls.tasks.update(id=task.id, data=data)
            updated += 1
        return updated

    def _tally(self, summary: SyncSummary, record: dict | None, number: int, total: int) -> None:
        if record is None:
            summary.skipped_research_copies += 1
            return
        outcome = record.pop("outcome")
        summary.series.append(record)
        if outcome == "already done":
            summary.already_done += 1
        elif record["status"] == "quarantined":
            summary.quarantined += 1
        elif record["status"] == "held":
            summary.held += 1
        else:
            summary.synced += 1
        self.progress(f"[{number}/{total}] series {record['series_key']}: {outcome}"
                      + (f" ({', '.join(record['reasons'])})" if record["reasons"] else ""))

    def series_key(self, series_uid: str) -> str:
        return self.deid.digest("series", series_uid).hex()[:24]

    def sync_series(self, study_uid: str, series_uid: str, force: bool = False) -> dict | None:
        key = self.series_key(series_uid)
        record = self.state.get(key, self.protocol.id)
        if record and record.status in ("done", "quarantined", "held") and not force \
                and not _held_for_linkage(record.as_dict()):
            return record.as_dict() | {"outcome": "already done"}
        datasets = self.pacs.retrieve_series(study_uid, series_uid, media_types=(("application/dicom", "*"),))
        if datasets and all(str(ds.get("DeidentificationMethod", "")).startswith("radlabel") for ds in datasets):
            return None  # our own research copy
        interrupted_at_task = record is not None and record.status == "creating_task"
        record = SeriesRecord(key, self.protocol.id, "retrieved", task_id=record.task_id if record else None)
        try:
            repairs = repair_missing_uids(datasets)
        except RadlabelError as exc:
            return self._finish(record, "quarantined", [{"code": "missing_uids", "message": str(exc)}], "quarantined")
        report, frames = validate_series(datasets, min_slices=self.protocol.selection.min_slices)
        if not report.ok:
            return self._finish(record, "quarantined", [f.as_dict() for f in report.findings], "quarantined")
        flags = [{"code": "uids_repaired", "message": f"{r.attribute} blank in {r.count} instance(s): {r.how}"}
                 for r in repairs]
        values = {id(f): frame_pixels(f) for f in frames}
        record.frames = len(frames)
        # Known before anything is stored: a run killed after the STOW must still recognise the research
        # copy as ours and never select it as a source series.
        record.pseudo_study_uid = self.deid.uid(str(datasets[0].StudyInstanceUID))
        record.pseudo_series_uid = self.deid.uid(series_uid)
        record.status = "storing"
        self.state.put(record)
        # Overlap what waits on other processes (Orthanc) with our own CPU work.
        with ThreadPoolExecutor(1) as background:
            research, hold = prepare_synced_series(self.deid, datasets, frames, values, self.protocol.deidentification,
                                                   key, flags)  # the same boundary as `radlabel deid`
            if hold or self._linkage_hold(key, research, flags):
                record.pseudo_study_uid = record.pseudo_series_uid = None
                return self._finish(record, "held", flags, "held for review")
            storing = background.submit(self.client.store, research)
            images = self._render(key, frames, values, str(datasets[0].get("Modality", "")))
            stored = storing.result()
        if stored.failed or len(stored.stored) != len(research):
            raise RadlabelError(f"the research archive stored {len(stored.stored)} of {len(research)} research instances "
                                f"of series {key}: see its log; re-run sync to retry.")
        record.pseudo_study_uid = str(research[0].StudyInstanceUID)
        record.pseudo_series_uid = str(research[0].SeriesInstanceUID)
        record.status, record.flags = "rendered", flags
        self.state.put(record)
        record.project_id = self.project_id()
        record.task_id = self._ensure_task(record, frames, images, report.slice_spacing_mm, interrupted_at_task,
                                           self.acquisition(datasets[0]))
        return self._finish(record, "done", flags, "synced")

    # -- linkage ---------------------------------------------------------------
    def _linkage_hold(self, key: str, research: list, flags: list[dict]) -> bool:
        """Record the series' linkage signature; hold it (flag ``linkage_risk``) when 1/k is above the protocol's
        maximum, k counted over what the protocol released, what it holds for linkage, and this series."""
        signature = self.deid.digest("linkage", linkage_signature(research)).hex()
        names = kept_quasi_identifiers(research[0])
        limit = self.protocol.deidentification.max_linkage_risk
        with state_lock(self.settings, f"linkage-{self.protocol.id}"):  # workers decide one at a time
            k = self.linkage.class_size(self.protocol.id, key, signature)
            hold = limit is not None and 1.0 / k > limit
            self.linkage.record(self.protocol.id, key, signature, names, released=not hold)
        if hold:
            flags.append({"code": "linkage_risk", "message": f"linkage risk 1/{k} is above the protocol's maximum "
                          f"{limit} on {len(names)} quasi-identifier(s) and shape: held until enough series share them"})
        return hold

    def _retry_linkage_holds(self, summary: SyncSummary, targets: list[tuple[str, str]]) -> None:
        """Series held as too unique are tried again once this run released others: their class may have grown."""
        if not summary.synced:
            return
        sources = {self.series_key(series_uid): (study_uid, series_uid) for study_uid, series_uid in targets}
        for entry in [s for s in summary.series if _held_for_linkage(s) and s["series_key"] in sources]:
            record = self.sync_series(*sources[entry["series_key"]])
            if record is not None and record["status"] != "held":
                summary.series.remove(entry)
                summary.held -= 1
                self._tally(summary, record, 0, len(targets))

    def _finish(self, record: SeriesRecord, status: str, items: list[dict], outcome: str) -> dict:
        audit_log(self.settings).append("sync", "radlabel-sync", f"{self.protocol.id} {self.protocol.version}",
                                        series=record.series_key, status=status, task=record.task_id,
                                        research_series=record.pseudo_series_uid,
                                        codes=[item["code"] for item in items])
        record.status = status
        if status == "quarantined":
            record.reasons = [item["code"] for item in items]
            record.flags = items
        else:
            record.flags = items
            record.reasons = [item["code"] for item in items if status == "held"]
        self.state.put(record)
        return record.as_dict() | {"outcome": outcome}

    # -- rendering -------------------------------------------------------------
    def _render(self, key: str, frames: list[Frame], values: dict, modality: str) -> dict[str, list[str]]:
        presets = [p for p in self.protocol.window_presets if p.modality in (None, modality)]
        folder = self.settings.home / "images" / key
        jobs = []
        for preset in presets:
            (folder / preset.name).mkdir(parents=True, exist_ok=True)
            for index, frame in enumerate(frames):
                jobs.append((folder / preset.name / f"{index:04d}.png", values[id(frame)], preset.center, preset.width))

        def render(job):
            path, pixels, center, width = job
            path.write_bytes(png_bytes(window(pixels, center, width)))

        with ThreadPoolExecutor(2) as pool:  # zlib releases the GIL
            list(pool.map(render, jobs))
        viewer = self.settings.url("viewer")
        urls = {}
        for preset in presets:
            urls[preset.name] = []
            for index in range(len(frames)):
                path = f"/radlabel/images/{key}/{preset.name}/{index:04d}.png"
                urls[preset.name].append(image_urls.signed_url(viewer, self.image_key, path))
        return urls

    # -- Label Studio ------------------------------------------------------------
    def acquisition(self, dataset) -> dict:
        """The series' stratum for representativeness and splits; the site only as a keyed pseudonym."""
        site = str(dataset.get("InstitutionName", "") or dataset.get("StationName", "") or "unknown")
        return acquisition_profile(dataset, "site-" + self.deid.digest("site", site).hex()[:8])

    def _ensure_task(self, record: SeriesRecord, frames: list[Frame], images: dict[str, list[str]],
                     slice_spacing: float | None, interrupted_at_task: bool, acquisition: dict) -> int:
        if record.task_id:
            return record.task_id
        if interrupted_at_task:  # the last run stopped while creating this task: did it get made?
            existing = self._find_task(record.pseudo_series_uid)
            if existing:
                return existing
        default = self.protocol.default_preset if self.protocol.default_preset in images else next(iter(images))
        first = frames[0]
        data = {
            IMAGES_KEY: images[default],
            "series": record.pseudo_series_uid,
            "study": record.pseudo_study_uid,
            "sop_instance_uids": [self.deid.uid(f.sop_instance_uid) for f in frames],
            "frame_numbers": [f.frame_index + 1 for f in frames],
            "slice_positions_mm": [[round(v, 4) for v in f.position] for f in frames],
            "image_orientation": list(first.orientation),
            "pixel_spacing_mm": list(first.pixel_spacing),
            "slice_spacing_mm": slice_spacing,
            "rows": first.rows, "columns": first.columns,
            "preset": default,
            "presets": {p.name: {"center": p.center, "width": p.width} for p in self.protocol.window_presets
                        if p.name in images},
            # every preset the label config shows; one of another modality than this series' has no slices
            "images_by_preset": {p.name: images.get(p.name, []) for p in self.protocol.window_presets},
            "flags": [f["code"] for f in record.flags if f["code"] not in ("deidentified",)],
            "protocol": {"id": self.protocol.id, "version": self.protocol.version},
            "acquisition": acquisition,
        }
        record.status = "creating_task"
        self.state.put(record)
        with label_studio_errors(f"create the task of series {record.series_key}"):
            task = self.ls.tasks.create(project=record.project_id, data=data)
        return task.id

    def _find_task(self, pseudo_series_uid: str) -> int | None:
        with label_studio_errors("look for an existing task"):
            for task in self.ls.tasks.list(project=self.project_id(), fields="all", page_size=100):
                if (task.data or {}).get("series") == pseudo_series_uid:
                    return task.id
        return None


def _held_for_linkage(record: dict) -> bool:
    """Held only because its linkage class was too small: tried again on every run."""
    return record.get("status") == "held" and "linkage_risk" in (record.get("reasons") or [])
