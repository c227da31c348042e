"""Adjudication in the annotation loop: Label Studio reads → decision → final labels → DICOM-SEG in Orthanc.

Driven by webhook events (the hooks server's queue) and by ``radlabel reconcile``, which polls
Label Studio for whatever the events missed. Every step is idempotent and serialised by a lock:
the final SEG of a task has a UID derived from the task, and a task that is final is never
adjudicated again, so duplicate or out-of-order events produce exactly one final SEG.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

from connectors.adjudications import CONSENSUS_CREATOR, CONSENSUS_USER, Outcome
from connectors.authorship import Authorship, post_read
from connectors.database import state_lock
from connectors.label_studio import as_dict, label_studio_errors, user_id
from connectors.projects import ARBITRATION_MARKER, load_provisioned, project_kind
from connectors.provision import Provisioner
from connectors.quality import QualityDesk
from connectors.wiring import Adapters
from radlabel import seg as seg_codec
from radlabel.audit import audit_log
from radlabel.adjudication.decision import Decision, decide
from radlabel.adjudication.reads import annotator, read_from_annotation, task_shape, task_spacing
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import FINDINGS, class_targets, main_image
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["Adjudicator"]



class Adjudicator:
    def __init__(self, settings: Settings, progress: Callable[[str], None] = lambda m: None,
                 adapters: Adapters | None = None):
        adapters = adapters or Adapters(settings)
        self.settings = settings
        self.ls = adapters.label_studio
        self.orthanc = adapters.research_archive
        self.progress = progress
        self.database = adapters.database
        self.key = bytes.fromhex(settings.secrets()["pseudonym_key"])
        self.adjudications = adapters.adjudications
        self._consensus_user: int | None = None
        self._quality_desk = None
        self.authorship = Authorship(settings, self.ls, self.database)

    # -- bookkeeping ------------------------------------------------------------
    def _lock(self, kind: str = "", task_id: int = 0):
        """One adjudication of a task at a time across processes (hooks worker, job workers, reconcile).

        Reads of different tasks run in parallel; arbitration, calibration and review (which touch
        other tasks) and the creation of shared projects and users take the one global lock."""
        return state_lock(self.settings, f"task-{task_id}" if kind == "reads" else "adjudication")

    def uid(self, *parts) -> str:
        """A repeatable UID for what radlabel writes about a task (its final SEG series and instance)."""
        digest = hashlib.sha256(self.key + "|".join(map(str, parts)).encode()).digest()
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def consensus_user(self) -> int:
        if self._consensus_user is None:
            with state_lock(self.settings, "projects"):
                self._consensus_user = user_id(self.ls, CONSENSUS_USER, create_as="radlabel-consensus")
        return self._consensus_user

    # -- projects ---------------------------------------------------------------------
    def project_protocol(self, project_id: int) -> tuple[str, str] | None:
        """(protocol id, 'reads' or 'arbitration') of a project of ours, else None."""
        with label_studio_errors(f"read project {project_id}"):
            kind = project_kind(self.ls.projects.get(id=project_id).description)
        return (kind.protocol_id, kind.kind) if kind else None

    def arbitration_project(self, protocol: Protocol) -> int:
        return Provisioner(self.settings, ls=self.ls).side_project(
            protocol, f"{ARBITRATION_MARKER} {protocol.id} {protocol.version}", f"{protocol.name[:36]} — arbitration",
            f"Senior arbitration of {protocol.id} {protocol.version}: every reader's labels are shown as predictions; "
            "your annotation is final.", ml_backend=True)

    # -- the work --------------------------------------------------------------------------
    def handle(self, project_id: int, task_id: int) -> Outcome | None:
        kind = self.project_protocol(project_id)
        if kind is None:
            return None
        protocol = load_provisioned(self.settings, kind[0])
        with self._lock(kind[1], task_id):
            return self._dispatch(protocol, kind[1], task_id)

    def _dispatch(self, protocol: Protocol, kind: str, task_id: int) -> Outcome | None:
        if kind == "reads":
            return self.adjudicate_task(protocol, task_id)
        if kind == "arbitration":
            return self.finish_arbitration(protocol, task_id)
        return self.quality_desk().events.handle(protocol, kind, task_id)  # a calibration case or a QA review

    def quality_desk(self) -> QualityDesk:
        if self._quality_desk is None:
            self._quality_desk = QualityDesk.build(self.settings, self.ls, self.database, self.orthanc)
        return self._quality_desk

    def _latest_annotations(self, task, protocol: Protocol) -> dict[int, dict]:
        """reader -> their latest read of the task, for readers whose reads count (certified, once enforced)."""
        consensus = self.consensus_user()
        qa = self.quality_desk()
        annotations = [as_dict(a) for a in (task.annotations or [])]
        annotations = self.authorship.verified(task.id, [a for a in annotations if not a.get("was_cancelled")],
                                               protocol.id)  # a forged author is set aside, never counted
        latest = {}
        for annotation in sorted(annotations, key=lambda a: a["id"]):
            if annotation.get("ground_truth") or annotator(annotation) == consensus:
                continue
            if not qa.calibration.counts(protocol, annotator(annotation)):
                continue  # an uncertified reader's read: kept in Label Studio, not counted
            latest[annotator(annotation)] = annotation  # a reader's latest read counts
        return latest

    def _reads(self, task, protocol: Protocol) -> list:
        return [read_from_annotation(a, protocol, task_shape(task.data))
                for a in self._latest_annotations(task, protocol).values()]

    def adjudicate_task(self, protocol: Protocol, task_id: int) -> Outcome:
        row = self.adjudications.row(task_id)
        if row and row[0] == "final":
            return Outcome(task_id, "already final", seg_sop_uid=row[2])
        if row and row[0] == "arbitration":
            return Outcome(task_id, "arbitration", "waiting for the arbiter", arbitration_task_id=row[1])
        qa = self.quality_desk()
        case = qa.qa_tasks.kind_of(task_id)
        if case and case[0] == "gold_copy":  # hidden gold: scored against its reference, never finalised
            scores = qa.hidden_gold.score_copy(protocol, task_id)
            return Outcome(task_id, "gold scored", ", ".join(f"reader {s.reader}: Dice {s.mean_dice:.2f}"
                                                              for s in scores if s.mean_dice is not None))
        with label_studio_errors(f"read task {task_id}"):
            task = self.ls.tasks.get(id=task_id)
        annotations = self._latest_annotations(task, protocol)
        reads = [read_from_annotation(a, protocol, task_shape(task.data)) for a in annotations.values()]
        if len(reads) < protocol.readers.per_study:
            return Outcome(task_id, "waiting", f"{len(reads)} of {protocol.readers.per_study} counted reads")
        decision = decide(reads, protocol, task_spacing(task.data))
        qa.scores.record_consensus(protocol, task, annotations, decision)
        if decision.accepted:
            seg_uid = self._finalise(protocol, task, decision.consensus, decision.findings, decision.summary(),
                                     method=protocol.adjudication.method.value, readers=[r.reader for r in reads])
            self.progress(f"task {task_id}: consensus accepted, SEG stored")
            return Outcome(task_id, "final", "consensus accepted", seg_uid)
        arbitration = self._open_arbitration(protocol, task, reads, decision)
        self.adjudications.save(task_id, protocol.id, "arbitration", arbitration, None, decision.summary())
        audit_log(self.settings).append("adjudication", "radlabel-adjudicator", f"{protocol.id} {protocol.version}",
                                        task=task_id, decision="arbitration", arbitration_task=arbitration,
                                        readers=[r.reader for r in reads], reasons=decision.reasons[:10])
        self.progress(f"task {task_id}: to arbitration ({'; '.join(decision.reasons)[:200]})")
        return Outcome(task_id, "arbitration", "; ".join(decision.reasons), arbitration_task_id=arbitration)

    def _open_arbitration(self, protocol: Protocol, task, reads, decision: Decision) -> int:
        project = self.arbitration_project(protocol)
        data = dict(task.data) | {"source_task": task.id, "disagreement": decision.reasons[:20]}
        with label_studio_errors("create the arbitration task"):
            created = self.ls.tasks.create(project=project, data=data)
            for read in reads:  # every reader's labels as a toggleable prediction
                annotation = next(a for a in task.annotations if (a["id"] if isinstance(a, dict) else a.id) == read.annotation_id)
                result = annotation["result"] if isinstance(annotation, dict) else annotation.result
                figures = decision.agreement
                score = min((v["vs_consensus"][str(read.reader)]["dice"] for v in figures.values()), default=1.0)
                self.ls.predictions.create(task=created.id, result=result, score=score,
                                           model_version=f"reader-{read.reader}")
        return created.id

    def finish_arbitration(self, protocol: Protocol, arbitration_task_id: int) -> Outcome | None:
        with label_studio_errors(f"read arbitration task {arbitration_task_id}"):
            arbitration = self.ls.tasks.get(id=arbitration_task_id)
        source_id = int(arbitration.data["source_task"])
        row = self.adjudications.row(source_id)
        if row and row[0] == "final":
            return Outcome(source_id, "already final", seg_sop_uid=row[2])
        annotations = [as_dict(a) for a in (arbitration.annotations or [])]
        annotations = self.authorship.verified(arbitration_task_id, [a for a in annotations if not a.get("was_cancelled")],
                                               protocol.id, eligible=self.seniors())
        if not annotations:
            return Outcome(source_id, "arbitration", "waiting for the arbiter", arbitration_task_id=arbitration_task_id)
        final = read_from_annotation(sorted(annotations, key=lambda a: a["id"])[-1], protocol, task_shape(arbitration.data))
        with label_studio_errors(f"read task {source_id}"):
            source = self.ls.tasks.get(id=source_id)
        summary = (self.adjudications.decision(source_id) or {}) | {"arbitrated_by": final.reader}
        readers = [r.reader for r in self._reads(source, protocol)]
        seg_uid = self._finalise(protocol, source, final.masks, final.findings, summary,
                                 method=f"{protocol.adjudication.method.value}+senior_arbitration", readers=readers)
        self.progress(f"task {source_id}: arbitrated, SEG stored")
        return Outcome(source_id, "final", "arbitrated", seg_uid, arbitration_task_id)

    def seniors(self) -> set[int]:
        """Registered senior readers: who may arbitrate in their own name."""
        from connectors.readers import ReaderRegistry

        return {r.ls_user_id for r in ReaderRegistry(self.database).readers() if r.active and r.tier == "senior"}

    def _finalise(self, protocol: Protocol, task, masks: dict, findings: set, summary: dict, *, method: str,
                  readers: list[int]) -> str:
        """Ground truth in Label Studio, final SEG in Orthanc, state 'final' — in that order, each repeatable."""
        result = mask_regions(masks, targets=class_targets(protocol, Geometry.MASK))
        if findings:
            result.append({"id": "findings", "from_name": FINDINGS, "to_name": main_image(protocol), "type": "choices",
                           "value": {"choices": sorted(findings)}})
        consensus_user = self.consensus_user()
        with label_studio_errors(f"store the final labels of task {task.id}"):
            existing = [a for a in self.ls.annotations.list(id=task.id) if a.completed_by == consensus_user]
        if not self.authorship.verified(task.id, existing, protocol.id):  # one posted by anyone else is no final
            post_read(self.settings, self.ls, task.id, consensus_user, result, "consensus", ground_truth=True)
        seg_uid = self.uid("final-seg", protocol.id, task.id)
        if any(m.any() for m in masks.values()):
            source = self.research_copy(task)
            provenance = {"protocol": protocol.id, "version": protocol.version, "method": method,
                          "readers": [f"reader-{r}" for r in readers], "task": task.id} | \
                         {k: v for k, v in summary.items() if k in ("agreement", "reasons", "arbitrated_by", "reader_quality")}
            model_versions = sorted({a.get("model_version") or "" for a in (task.predictions or [])
                                     if isinstance(a, dict)} - {""})
            seg = seg_codec.encode(source, masks, protocol, series_description=f"radlabel final {protocol.id}"[:64],
                                   content_creator=CONSENSUS_CREATOR, series_uid=self.uid("final-series", protocol.id, task.id),
                                   sop_uid=seg_uid, content_description=f"{protocol.id} {protocol.version} {method}"[:64],
                                   algorithm=model_versions[0] if model_versions and "prediction" in method else None)
            seg.ImageComments = json.dumps(provenance, default=str)[:10240]
            stored = self.orthanc.store([seg])
            if stored.failed:
                raise RadlabelError(f"Orthanc refused the final SEG of task {task.id}: see the Orthanc log.")
        self.adjudications.save(task.id, protocol.id, "final", self.adjudications.row(task.id)[1] if self.adjudications.row(task.id) else None, seg_uid, summary)
        self.quality_desk().review.maybe_review(protocol, task, masks, findings)
        audit_log(self.settings).append("adjudication", "radlabel-adjudicator", f"{protocol.id} {protocol.version}",
                                        task=task.id, decision="final", method=method, readers=readers,
                                        arbitrated_by=summary.get("arbitrated_by"), seg_sop_instance_uid=seg_uid)
        return seg_uid

    def research_copy(self, task) -> list:
        datasets = self.orthanc.retrieve_series(task.data["study"], task.data["series"])
        by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
        missing = [uid for uid in task.data["sop_instance_uids"] if uid not in by_uid]
        if missing:
            raise RadlabelError(f"the research copy of task {task.id} lacks {len(missing)} instance(s) in Orthanc: re-run sync.")
        return [by_uid[uid] for uid in task.data["sop_instance_uids"]]

    def decisions(self, protocol_id: str) -> list[dict]:
        return self.adjudications.decisions(protocol_id)

    # -- catching up ---------------------------------------------------------------------------------
    def reconcile(self, protocol_id: str | None = None) -> list[Outcome]:
        """Poll every project of ours (of one protocol, if given) for tasks the webhooks missed.

        A task that is not a synced series (no geometry in its data) is skipped, and one task that
        fails is reported without stopping the others."""
        outcomes = []
        with label_studio_errors("list projects"):
            projects = list(self.ls.projects.list(page_size=100))
        for project in projects:
            kind = project_kind(project.description)
            if kind is None or (protocol_id and kind.protocol_id != protocol_id):
                continue
            try:
                protocol = load_provisioned(self.settings, kind.protocol_id)
            except RadlabelError:
                continue  # provisioned from another state directory
            with label_studio_errors(f"list the tasks of project {project.id}"):
                tasks = list(self.ls.tasks.list(project=project.id, fields="all", page_size=100))
            for task in tasks:
                if not (task.total_annotations or 0) or "rows" not in (task.data or {}):
                    continue
                try:
                    with self._lock(kind.kind, task.id):
                        outcome = self._dispatch(protocol, kind.kind, task.id)
                except RadlabelError as exc:
                    outcome = Outcome(task.id, "failed", str(exc))
                if outcome:
                    outcomes.append(outcome)
        return outcomes
