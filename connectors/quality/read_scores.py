"""Reads scored against a reference, and the record of every scored read (``reader_scores``): calibration,
hidden gold, consensus and review — the data behind the report's control charts, fatigue and time figures."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np

from connectors.authorship import Authorship
from connectors.label_studio import as_dict, label_studio_errors
from connectors.qa_records import QaRecords
from radlabel.adjudication.reads import Read, annotator, read_from_annotation, task_shape, task_spacing
from radlabel.protocol.template import Protocol
from radlabel.qa.scoring import ReadScore, score_read

__all__ = ["ReadScores"]


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


class ReadScores:
    def __init__(self, ls, records: QaRecords, authorship: Authorship):
        self.ls = ls
        self.records = records
        self.authorship = authorship

    def score_own_read(self, protocol: Protocol, task_id: int, reader: int, reference: Read, source: str,
                       case: str, classes: list[str] | None = None) -> ReadScore | None:
        """The reader's latest verified read of the task against the reference, recorded; None when unread."""
        task, own = self.verified_reads(protocol, task_id, reader)
        if not own:
            return None
        annotation = sorted(own, key=lambda a: a["id"])[-1]
        read = read_from_annotation(annotation, protocol, task_shape(task.data))
        score = score_read(read, reference, protocol, task_spacing(task.data), case, classes)
        self.record(protocol.id, reader, task_id, source, annotation, score.mean_dice, score.as_dict())
        return score

    def verified_reads(self, protocol: Protocol, task_id: int, reader: int | None = None) -> tuple[object, list[dict]]:
        """The task, and its saved reads (``reader``'s only, when given) whose author is verified; the others are
        set aside. A calibration case is its one reader's alone."""
        with label_studio_errors(f"read task {task_id}"):
            task = self.ls.tasks.get(id=task_id)
        saved = [as_dict(a) for a in task.annotations or [] if not as_dict(a).get("was_cancelled")]
        if reader is not None:
            saved = [a for a in saved if annotator(a) == reader]
        kind = self.records.task(task_id)
        eligible = {kind[3]} if kind and kind[0] == "calibration" else None
        return task, self.authorship.verified(task_id, saved, protocol.id, eligible)

    def record(self, protocol_id: str, reader: int, task_id: int, source: str, annotation: dict,
               mean_dice: float | None, detail: dict) -> None:
        self.records.record_score(protocol_id, reader, task_id, source,
                                  _epoch(annotation.get("created_at") or time.time()),
                                  annotation.get("lead_time"), mean_dice, detail)

    def record_consensus(self, protocol: Protocol, task, annotations: dict[int, dict], decision) -> None:
        """Each reader's production read against the consensus it helped make (the drift signal)."""
        for reader, annotation in annotations.items():
            versus = [figures["vs_consensus"].get(str(reader)) for figures in decision.agreement.values()]
            # classes both absent from the read and the consensus say little about the reader: left out
            dice = [v["dice"] for v in versus if v and (v["volume_a_mm3"] or v["volume_b_mm3"])]
            self.record(protocol.id, reader, task.id, "consensus", annotation,
                        float(np.mean(dice)) if dice else None, {"classes": dice})

    def of_protocol(self, protocol_id: str) -> list[dict]:
        return self.records.scores(protocol_id)
