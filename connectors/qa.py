"""Quality assurance in the annotation loop: gold standard, calibration, hidden gold, QA review, scores.

- Gold standard: final tasks an admin marks as reference (``radlabel gold add``); the reference is
  the task's final labels (the consensus user's ground-truth annotation in Label Studio).
- Calibration: each reader gets a calibration project of their own (marker line
  ``radlabel-calibration: <protocol> <version> <user id>``) holding copies of the first
  ``qa.calibration.cases`` gold studies, without labels or predictions; their reads are scored
  against the references and the reader is certified per tier or gets a feedback report.
  Once a protocol's calibration set is complete, only certified readers' production reads count.
- Hidden gold: sync inserts copies of gold studies into the production project at the protocol's
  ``gold_insertion_rate``; readers cannot tell them apart; their reads are scored, never finalised.
- QA review: final tasks drawn at ``sampling_rate`` go to a review project with the final labels as
  a prediction; the reviewer's saved labels are compared with the final ones.
- Every scored read (calibration, gold, consensus, review) goes to ``reader_scores``: the data
  behind control charts, fatigue and time figures in the report.
Which task is a gold copy or a calibration case lives only in the state store, never in the task.
"""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np

from connectors.adjudications import CONSENSUS_USER, Adjudications, Outcome
from connectors.authorship import Authorship, unverified_reads
from connectors.qa_records import QaRecords
from connectors.database import Database, state_database
from connectors.label_studio import as_dict, client as label_studio_client, label_studio_errors, user_id
from connectors.projects import CALIBRATION_MARKER, REVIEW_MARKER, find_protocol_project
from connectors.provision import Provisioner
from radlabel.adjudication.reads import Read, annotator, read_from_annotation, task_shape, task_spacing
from radlabel.audit import audit_log
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.protocol.enum import Geometry, ReaderTier
from radlabel.protocol.labelconfig import class_targets
from radlabel.protocol.template import Protocol
from radlabel.qa.certification import Certification, certify, tier_classes
from radlabel.qa.sampling import gold_copies_due, sampled_for_review
from radlabel.qa.scoring import ReadScore, score_read
from radlabel.settings import Settings

__all__ = ["QualityDesk", "counting_readers", "report_figures"]

# Task data that would tell a reader where a copy came from.
_HIDDEN_KEYS = ("source_task", "disagreement")



def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def counting_readers(database: Database, protocol: Protocol) -> set[int] | None:
    """The readers whose reads count for this protocol: its certified readers from the moment the calibration set is
    complete; None (everyone's) before."""
    records = QaRecords(database)
    if len(records.gold(protocol.id)) < protocol.qa.calibration.cases:
        return None
    return records.certified_readers(protocol.id)


class QualityDesk:
    def __init__(self, settings: Settings, ls=None, database: Database | None = None, archive=None):
        self.settings = settings
        self.archive = archive  # the research archive, for disguised copies (built from settings when None)
        self.ls = ls or label_studio_client(settings)
        self.database = database or state_database(settings)
        self.key = bytes.fromhex(settings.secrets()["pseudonym_key"])
        self.records = QaRecords(self.database)
        self.adjudications = Adjudications(self.database)  # read here before any adjudication ran
        self.authorship = Authorship(settings, self.ls, self.database)

    # -- gold standard -------------------------------------------------------------------
    def add_gold(self, protocol: Protocol, task_ids: list[int]) -> list[int]:
        final = self.adjudications.final(protocol.id)
        for task_id in task_ids:
            if task_id not in final:
                raise RadlabelError(f"task {task_id} has no final labels in protocol {protocol.id}: only adjudicated "
                                    "tasks can be gold standard (see `radlabel reconcile`).")
        added = self.records.add_gold(protocol.id, task_ids)
        if added:
            audit_log(self.settings).append("gold", "admin", f"{protocol.id} {protocol.version}", added=added)
        return added

    def gold(self, protocol_id: str) -> list[int]:
        return self.records.gold(protocol_id)

    def calibration_set(self, protocol: Protocol) -> list[int]:
        return self.gold(protocol.id)[:protocol.qa.calibration.cases]

    def certification_enforced(self, protocol: Protocol) -> bool:
        """From the moment the calibration set is complete, only certified readers' reads count."""
        return len(self.gold(protocol.id)) >= protocol.qa.calibration.cases

    def certified_readers(self, protocol_id: str) -> set[int]:
        return self.records.certified_readers(protocol_id)

    def counts(self, protocol: Protocol, reader: int) -> bool:
        counting = counting_readers(self.database, protocol)
        return counting is None or reader in counting

    def reference(self, protocol: Protocol, task_id: int) -> tuple[Read, object]:
        """The final labels of a gold (or final) task as a read, and the task."""
        with label_studio_errors(f"read gold task {task_id}"):
            task = self.ls.tasks.get(id=task_id)
            consensus = {user_id(self.ls, CONSENSUS_USER)} - {None}
        finals = [as_dict(a) for a in task.annotations or [] if annotator(as_dict(a)) in consensus]
        finals = self.authorship.verified(task_id, finals, protocol.id)  # only the final labels radlabel saved
        if not finals:
            raise RadlabelError(f"gold task {task_id} has no final labels in Label Studio: run `radlabel reconcile`.")
        reference = read_from_annotation(finals[-1], protocol, task_shape(task.data))
        votes: dict[str, int] = {}
        readers = (self.adjudications.decision(task_id) or {}).get("edge_cases", {})
        for rules in readers.values():
            for rule in rules:
                votes[rule] = votes.get(rule, 0) + 1
        reference.edge_cases = {rule for rule, n in votes.items() if n * 2 > len(readers)}
        return reference, task

    # -- projects of ours besides production ---------------------------------------------------
    def _project(self, marker_line: str, title: str, description: str, protocol: Protocol) -> int:
        return Provisioner(self.settings, ls=self.ls).side_project(protocol, marker_line, title, description,
                                                       ml_backend=False)  # webhooks, no pre-labels

    def _copy_task(self, project_id: int, source, kind: str, protocol: Protocol, reader: int | None,
                   prediction: list | None = None) -> int:
        data = {k: v for k, v in source.data.items() if k not in _HIDDEN_KEYS}
        if kind in ("calibration", "gold_copy"):  # nothing in the copy may match its source task
            from connectors.copies import disguised_copy

            data = disguised_copy(self.settings, data, self.archive)
        with label_studio_errors(f"create a {kind} task"):
            created = self.ls.tasks.create(project=project_id, data=data)
            if prediction is not None:
                self.ls.predictions.create(task=created.id, result=prediction, score=1.0, model_version="final-labels")
        self.records.add_task(created.id, kind, protocol.id, source.id, reader)
        return created.id

    def qa_task(self, task_id: int) -> tuple[str, str, int, int | None] | None:
        """(kind, protocol id, reference task, reader) of a calibration case, gold copy or review task."""
        return self.records.task(task_id)

    # -- events ---------------------------------------------------------------------------------------
    def handle_event(self, protocol: Protocol, kind: str, task_id: int) -> Outcome | None:
        """A read saved in a QA review task (scored against the final labels) or a calibration case (the
        reader re-scored, and certified once every case is read)."""
        if kind == "review":
            outcome = self.score_review(protocol, task_id)
            return Outcome(task_id, "reviewed" if outcome else "waiting", (outcome or {}).get("verdict", ""))
        case = self.qa_task(task_id)
        if case is None or case[3] is None:
            return None
        certification, progress = self.calibrate(protocol, case[3], self.calibration_tier(protocol.id, case[3]))
        if certification is None:
            return Outcome(task_id, "calibrating", f"{progress['read']} of {progress['cases']} cases read")
        return Outcome(task_id, "certified" if certification.certified else "not certified",
                       certification.feedback().splitlines()[0])

    # -- calibration -------------------------------------------------------------------------------
    def reader_id(self, email: str) -> int:
        return user_id(self.ls, email, create_as=email.split("@")[0][:30])

    def calibration_project(self, protocol: Protocol, reader: int) -> int:
        marker = f"{CALIBRATION_MARKER} {protocol.id} {protocol.version} {reader}"
        return self._project(marker, f"Calibration {protocol.id} — reader {reader}",
                             f"Calibration of reader {reader} for {protocol.name} {protocol.version}: read every case "
                             "as in production. Your reads are scored against the gold standard.", protocol)

    def calibrate(self, protocol: Protocol, reader: int, tier: ReaderTier) -> tuple[Certification | None, dict]:
        """Open (once) the reader's calibration cases; score what is read; certify when all are read."""
        cases = self.calibration_set(protocol)
        if len(cases) < protocol.qa.calibration.cases:
            raise RadlabelError(f"protocol {protocol.id} has {len(cases)} gold studies; its calibration needs "
                                f"{protocol.qa.calibration.cases} (qa.calibration.cases): add final tasks with "
                                "`radlabel gold add`.")
        project = self.calibration_project(protocol, reader)
        self.records.set_tier(protocol.id, reader, tier.value)
        opened = self.records.calibration_cases(protocol.id, reader)
        for gold_task in cases:
            if gold_task not in opened:
                _, source = self.reference(protocol, gold_task)
                opened[gold_task] = self._copy_task(project, source, "calibration", protocol, reader)
        scores, findings = [], {}
        for number, gold_task in enumerate(cases, 1):
            reference, _ = self.reference(protocol, gold_task)
            score = self._score_own_read(protocol, opened[gold_task], reader, reference, "calibration",
                                         case=f"C{number}", classes=tier_classes(protocol, tier))
            if score:
                scores.append(score)
                findings[score.case] = reference.findings
        progress = {"project": project, "cases": len(cases), "read": len(scores)}
        if len(scores) < len(cases):
            return None, progress
        result = certify(scores, protocol, tier, reader, findings)
        self.records.save_certification(protocol.id, reader, tier.value, result.certified, result.as_dict())
        audit_log(self.settings).append("certification", "radlabel-qa", f"{protocol.id} {protocol.version}",
                                        reader=f"reader-{reader}", tier=tier.value, certified=result.certified,
                                        failed_classes=result.failed_classes, calibration_project=project)
        return result, progress

    def calibration_tasks(self, protocol_id: str, reader: int) -> list[int]:
        return self.records.calibration_tasks(protocol_id, reader)

    def calibration_tier(self, protocol_id: str, reader: int) -> ReaderTier:
        return ReaderTier(self.records.tier(protocol_id, reader) or ReaderTier.RADIOLOGIST.value)

    def certifications(self, protocol_id: str) -> list[dict]:
        return self.records.certifications(protocol_id)

    def _score_own_read(self, protocol: Protocol, task_id: int, reader: int, reference: Read, source: str,
                        case: str, classes: list[str] | None = None) -> ReadScore | None:
        with label_studio_errors(f"read task {task_id}"):
            task = self.ls.tasks.get(id=task_id)
        own = [as_dict(a) for a in task.annotations or []
               if annotator(as_dict(a)) == reader and not as_dict(a).get("was_cancelled")]
        kind = self.qa_task(task_id)  # a calibration case is its one reader's alone
        eligible = {kind[3]} if kind and kind[0] == "calibration" else None
        own = self.authorship.verified(task_id, own, protocol.id, eligible)
        if not own:
            return None
        annotation = sorted(own, key=lambda a: a["id"])[-1]
        read = read_from_annotation(annotation, protocol, task_shape(task.data))
        score = score_read(read, reference, protocol, task_spacing(task.data), case, classes)
        self.record_score(protocol.id, reader, task_id, source, annotation, score.mean_dice, score.as_dict())
        return score

    # -- scores --------------------------------------------------------------------------------------
    def record_score(self, protocol_id: str, reader: int, task_id: int, source: str, annotation: dict,
                     mean_dice: float | None, detail: dict) -> None:
        self.records.record_score(protocol_id, reader, task_id, source, _epoch(annotation.get("created_at") or time.time()),
                                  annotation.get("lead_time"), mean_dice, detail)

    def scores(self, protocol_id: str) -> list[dict]:
        return self.records.scores(protocol_id)

    def record_consensus_scores(self, protocol: Protocol, task, annotations: dict[int, dict], decision) -> None:
        """Each reader's production read against the consensus it helped make (the drift signal)."""
        for reader, annotation in annotations.items():
            versus = [figures["vs_consensus"].get(str(reader)) for figures in decision.agreement.values()]
            # classes both absent from the read and the consensus say little about the reader: left out
            dice = [v["dice"] for v in versus if v and (v["volume_a_mm3"] or v["volume_b_mm3"])]
            self.record_score(protocol.id, reader, task.id, "consensus", annotation,
                              float(np.mean(dice)) if dice else None, {"classes": dice})

    # -- hidden gold -----------------------------------------------------------------------------------
    def insert_gold(self, protocol: Protocol, project_id: int, produced: int) -> list[int]:
        """Gold copies into the production queue so that they make ``gold_insertion_rate`` of its tasks."""
        gold = self.gold(protocol.id)
        if not gold or protocol.qa.gold_insertion_rate <= 0:
            return []
        inserted = self.records.gold_inserted(protocol.id)
        due = gold_copies_due(produced, inserted, protocol.qa.gold_insertion_rate)
        # Cases beyond the calibration set first: readers have seen the calibration cases.
        pool = gold[protocol.qa.calibration.cases:] or gold
        created = []
        for number in range(inserted, inserted + due):
            _, source = self.reference(protocol, pool[number % len(pool)])
            created.append(self._copy_task(project_id, source, "gold_copy", protocol, None))
            self.records.set_gold_inserted(protocol.id, number + 1)
        if created:
            audit_log(self.settings).append("gold_insertion", "radlabel-qa", f"{protocol.id} {protocol.version}",
                                            tasks=created)
        return created

    def score_gold_copy(self, protocol: Protocol, task_id: int) -> list[ReadScore]:
        kind = self.qa_task(task_id)
        reference, _ = self.reference(protocol, kind[2])
        with label_studio_errors(f"read task {task_id}"):
            task = self.ls.tasks.get(id=task_id)
        done = [as_dict(a) for a in task.annotations or [] if not as_dict(a).get("was_cancelled")]
        readers = {annotator(a) for a in self.authorship.verified(task_id, done, protocol.id)}
        return [s for reader in sorted(readers)
                if (s := self._score_own_read(protocol, task_id, reader, reference, "gold", f"task {task_id}"))]

    # -- QA review of final labels --------------------------------------------------------------------
    def maybe_review(self, protocol: Protocol, task, masks: dict, findings: set) -> int | None:
        if not sampled_for_review(self.key, task.id, protocol.qa.sampling_rate):
            return None
        if self.records.reviewed(task.id):
            return None
        project = self._project(f"{REVIEW_MARKER} {protocol.id} {protocol.version}",
                                f"QA review {protocol.id}",
                                f"QA review of final labels of {protocol.name} {protocol.version}: correct what is "
                                "wrong and submit; submitting unchanged confirms them.", protocol)
        review = self._copy_task(project, task, "review", protocol, None, prediction=mask_regions(masks, targets=class_targets(protocol, Geometry.MASK)))
        audit_log(self.settings).append("qa_sampling", "radlabel-qa", f"{protocol.id} {protocol.version}",
                                        task=task.id, review_task=review)
        return review

    def score_review(self, protocol: Protocol, review_task_id: int) -> dict | None:
        kind = self.qa_task(review_task_id)
        reference, _ = self.reference(protocol, kind[2])
        with label_studio_errors(f"read review task {review_task_id}"):
            task = self.ls.tasks.get(id=review_task_id)
        done = [as_dict(a) for a in task.annotations or [] if not as_dict(a).get("was_cancelled")]
        done = self.authorship.verified(review_task_id, done, protocol.id)
        if not done:
            return None
        reviewer = annotator(done[-1])
        score = self._score_own_read(protocol, review_task_id, reviewer, reference, "review", f"task {kind[2]}")
        outcome = {"reviewer": f"reader-{reviewer}", "final_task": kind[2], "mean_dice": score.mean_dice,
                   "verdict": "confirmed" if (score.mean_dice or 0) >= 0.99 and not score.findings_missed
                   and not score.findings_extra else "corrected"}
        self.records.set_outcome(review_task_id, outcome)
        audit_log(self.settings).append("qa_review", f"reader-{reviewer}", f"{protocol.id} {protocol.version}",
                                        task=kind[2], review_task=review_task_id, verdict=outcome["verdict"])
        return outcome

    def reviews(self, protocol_id: str) -> list[dict]:
        return self.records.reviews(protocol_id)

    def qa_counts(self, protocol_id: str) -> dict:
        rows = self.records.task_counts(protocol_id).items()
        return {"gold_studies": len(self.gold(protocol_id))} | {f"{kind}_tasks": n for kind, n in rows}


def report_figures(settings: Settings, protocol: Protocol) -> dict:
    """Every figure of the QA report of one protocol, from the state store and Label Studio (no PHI)."""
    from radlabel.qa.report import build_figures

    desk = QualityDesk(settings)
    final = set(desk.adjudications.final(protocol.id))
    project, _ = find_protocol_project(desk.ls, protocol.id)
    profiles = []
    if project is not None and final:
        with label_studio_errors("list the tasks of the protocol's project"):
            for task in desk.ls.tasks.list(project=project.id, fields="all", page_size=100):
                if task.id in final:
                    profiles.append((task.data or {}).get("acquisition") or {})
    tiers = {f"reader-{reader}": tier for reader, tier in desk.records.tiers(protocol.id).items()}
    counts = desk.qa_counts(protocol.id) | {"final": len(final),
                                            "certification_enforced": desk.certification_enforced(protocol)}
    return build_figures(protocol, scores=desk.scores(protocol.id), certifications=desk.certifications(protocol.id),
                         tiers=tiers, decisions=desk.adjudications.decisions(protocol.id), profiles=profiles,
                         reviews=desk.reviews(protocol.id), counts=counts,
                         unverified=unverified_reads(desk.database, protocol.id))
