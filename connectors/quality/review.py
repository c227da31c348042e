"""QA review of final labels: final tasks drawn at ``sampling_rate`` (keyed, repeatable) go to a review project
with the final labels as a prediction; the reviewer's saved labels are compared with the final ones."""

from __future__ import annotations

from connectors.projects import REVIEW_MARKER
from connectors.qa_records import QaRecords
from connectors.quality.gold import GoldStandard
from connectors.quality.job import QaJob
from connectors.quality.qa_tasks import QaTasks
from connectors.quality.read_scores import ReadScores
from radlabel.adjudication.reads import annotator
from radlabel.audit import audit_log
from radlabel.brush_rle import mask_regions
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import class_targets
from radlabel.protocol.template import Protocol
from radlabel.qa.sampling import sampled_for_review
from radlabel.settings import Settings

__all__ = ["QaReview"]


class QaReview(QaJob):
    def __init__(self, settings: Settings, gold: GoldStandard, qa_tasks: QaTasks, scores: ReadScores,
                 records: QaRecords):
        super().__init__(settings, gold, qa_tasks, scores, records)
        self.key = bytes.fromhex(settings.secrets()["pseudonym_key"])  # keys the sampling draw

    def maybe_review(self, protocol: Protocol, task, masks: dict, findings: set) -> int | None:
        """The review task of a final task drawn for review (once), else None."""
        if not sampled_for_review(self.key, task.id, protocol.qa.sampling_rate):
            return None
        if self.records.reviewed(task.id):
            return None
        project = self.qa_tasks.side_project(
            f"{REVIEW_MARKER} {protocol.id} {protocol.version}", f"QA review {protocol.id}",
            f"QA review of final labels of {protocol.name} {protocol.version}: correct what is "
            "wrong and submit; submitting unchanged confirms them.", protocol)
        review = self.qa_tasks.copy(project, task, "review", protocol, None,
                                    prediction=mask_regions(masks, targets=class_targets(protocol, Geometry.MASK)))
        audit_log(self.settings).append("qa_sampling", "radlabel-qa", f"{protocol.id} {protocol.version}",
                                        task=task.id, review_task=review)
        return review

    def score(self, protocol: Protocol, review_task_id: int) -> dict | None:
        """The reviewer's verdict on the final labels ('confirmed' or 'corrected'); None before a review is saved."""
        kind = self.qa_tasks.kind_of(review_task_id)
        reference, _ = self.gold.reference(protocol, kind[2])
        _, done = self.scores.verified_reads(protocol, review_task_id)
        if not done:
            return None
        reviewer = annotator(done[-1])
        score = self.scores.score_own_read(protocol, review_task_id, reviewer, reference, "review", f"task {kind[2]}")
        outcome = {"reviewer": f"reader-{reviewer}", "final_task": kind[2], "mean_dice": score.mean_dice,
                   "verdict": "confirmed" if (score.mean_dice or 0) >= 0.99 and not score.findings_missed
                   and not score.findings_extra else "corrected"}
        self.records.set_outcome(review_task_id, outcome)
        audit_log(self.settings).append("qa_review", f"reader-{reviewer}", f"{protocol.id} {protocol.version}",
                                        task=kind[2], review_task=review_task_id, verdict=outcome["verdict"])
        return outcome

    def reviews(self, protocol_id: str) -> list[dict]:
        return self.records.reviews(protocol_id)
