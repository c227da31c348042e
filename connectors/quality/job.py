"""What each QA job that reads against the gold standard works with (calibration, hidden gold, review)."""

from __future__ import annotations

from connectors.qa_records import QaRecords
from connectors.quality.gold import GoldStandard
from connectors.quality.qa_tasks import QaTasks
from connectors.quality.read_scores import ReadScores
from radlabel.settings import Settings

__all__ = ["QaJob"]


class QaJob:
    def __init__(self, settings: Settings, gold: GoldStandard, qa_tasks: QaTasks, scores: ReadScores,
                 records: QaRecords):
        self.settings = settings  # for the audit log
        self.gold = gold
        self.qa_tasks = qa_tasks
        self.scores = scores
        self.records = records
