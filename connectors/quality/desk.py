"""The QA jobs built on one set of ports: what the CLI, sync, adjudication and the campaign take."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.adjudications import Adjudications
from connectors.authorship import Authorship
from connectors.database import Database
from connectors.ports import AnnotationPlatform, DicomArchive
from connectors.qa_records import QaRecords
from connectors.quality.calibration import Calibration
from connectors.quality.events import QaEvents
from connectors.quality.gold import GoldStandard
from connectors.quality.hidden_gold import HiddenGold
from connectors.quality.qa_tasks import QaTasks
from connectors.quality.read_scores import ReadScores
from connectors.quality.review import QaReview
from connectors.wiring import Adapters
from radlabel.settings import Settings

__all__ = ["QualityDesk"]


@dataclass(frozen=True)
class QualityDesk:
    """The QA jobs and the ports they share; no behaviour of its own (each job is its own class)."""

    ls: AnnotationPlatform
    adjudications: Adjudications
    records: QaRecords
    gold: GoldStandard
    qa_tasks: QaTasks
    scores: ReadScores
    calibration: Calibration
    hidden_gold: HiddenGold
    review: QaReview
    events: QaEvents

    @classmethod
    def build(cls, settings: Settings, ls: AnnotationPlatform | None = None, database: Database | None = None,
              archive: DicomArchive | None = None) -> "QualityDesk":
        """Each job on the given ports (Label Studio, state database, research archive), or the configured ones."""
        configured = Adapters(settings)  # builds only what is not given
        ls = ls or configured.label_studio
        archive = archive or configured.research_archive
        records = QaRecords(database or configured.database)
        authorship = Authorship(settings, ls, records.database)
        adjudications = Adjudications(records.database)
        gold = GoldStandard(settings, ls, records, adjudications, authorship)
        qa_tasks = QaTasks(settings, ls, records, archive)
        scores = ReadScores(ls, records, authorship)
        calibration = Calibration(settings, gold, qa_tasks, scores, records)
        review = QaReview(settings, gold, qa_tasks, scores, records)
        return cls(ls, adjudications, records, gold, qa_tasks, scores, calibration,
                   HiddenGold(settings, gold, qa_tasks, scores, records), review,
                   QaEvents(qa_tasks, calibration, review))
