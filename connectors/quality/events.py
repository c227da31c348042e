"""A read saved in a QA task's project, routed to its job: a review task is scored against the final labels;
a calibration case re-scores its reader, who is certified (or not) once every case is read."""

from __future__ import annotations

from connectors.adjudications import Outcome
from connectors.quality.calibration import Calibration
from connectors.quality.qa_tasks import QaTasks
from connectors.quality.review import QaReview
from radlabel.protocol.template import Protocol

__all__ = ["QaEvents"]


class QaEvents:
    def __init__(self, qa_tasks: QaTasks, calibration: Calibration, review: QaReview):
        self.qa_tasks = qa_tasks
        self.calibration = calibration
        self.review = review

    def handle(self, protocol: Protocol, kind: str, task_id: int) -> Outcome | None:
        """``kind`` is the project's ('review' or 'calibration'); None for a task that is no QA task of a reader."""
        if kind == "review":
            outcome = self.review.score(protocol, task_id)
            return Outcome(task_id, "reviewed" if outcome else "waiting", (outcome or {}).get("verdict", ""))
        case = self.qa_tasks.kind_of(task_id)
        if case is None or case[3] is None:
            return None
        reader = case[3]
        certification, progress = self.calibration.calibrate(protocol, reader,
                                                             self.calibration.tier(protocol.id, reader))
        if certification is None:
            return Outcome(task_id, "calibrating", f"{progress['read']} of {progress['cases']} cases read")
        return Outcome(task_id, "certified" if certification.certified else "not certified",
                       certification.feedback().splitlines()[0])
