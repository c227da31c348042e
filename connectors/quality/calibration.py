"""Calibration and certification: each reader gets a calibration project of their own (marker line
``radlabel-calibration: <protocol> <version> <user id>``) holding disguised copies of the first
``qa.calibration.cases`` gold studies, without labels or predictions; their reads are scored against the
references and the reader is certified per tier or gets a feedback report. Once a protocol's calibration
set is complete, only certified readers' production reads count."""

from __future__ import annotations

from connectors.database import Database
from connectors.label_studio import user_id
from connectors.projects import CALIBRATION_MARKER
from connectors.qa_records import QaRecords
from connectors.quality.job import QaJob
from radlabel.audit import audit_log
from radlabel.errors import RadlabelError
from radlabel.protocol.enum import ReaderTier
from radlabel.protocol.template import Protocol
from radlabel.qa.certification import Certification, certify, tier_classes

__all__ = ["Calibration", "counting_readers", "reader_id"]


def counting_readers(database: Database, protocol: Protocol) -> set[int] | None:
    """The readers whose reads count for this protocol: its certified readers from the moment the calibration set is
    complete; None (everyone's) before."""
    records = QaRecords(database)
    if len(records.gold(protocol.id)) < protocol.qa.calibration.cases:
        return None
    return records.certified_readers(protocol.id)


def reader_id(ls, email: str) -> int:
    """The Label Studio user of a reader's email, created (API only) when missing."""
    return user_id(ls, email, create_as=email.split("@")[0][:30])


class Calibration(QaJob):
    def enforced(self, protocol: Protocol) -> bool:
        """From the moment the calibration set is complete, only certified readers' reads count."""
        return len(self.gold.tasks(protocol.id)) >= protocol.qa.calibration.cases

    def counts(self, protocol: Protocol, reader: int) -> bool:
        counting = counting_readers(self.records.database, protocol)
        return counting is None or reader in counting

    def project(self, protocol: Protocol, reader: int) -> int:
        marker = f"{CALIBRATION_MARKER} {protocol.id} {protocol.version} {reader}"
        return self.qa_tasks.side_project(
            marker, f"Calibration {protocol.id} — reader {reader}",
            f"Calibration of reader {reader} for {protocol.name} {protocol.version}: read every case "
            "as in production. Your reads are scored against the gold standard.", protocol)

    def calibrate(self, protocol: Protocol, reader: int, tier: ReaderTier) -> tuple[Certification | None, dict]:
        """Open (once) the reader's calibration cases; score what is read; certify when all are read."""
        cases = self.gold.calibration_set(protocol)
        if len(cases) < protocol.qa.calibration.cases:
            raise RadlabelError(f"protocol {protocol.id} has {len(cases)} gold studies; its calibration needs "
                                f"{protocol.qa.calibration.cases} (qa.calibration.cases): add final tasks with "
                                "`radlabel gold add`.")
        project = self.project(protocol, reader)
        self.records.set_tier(protocol.id, reader, tier.value)
        opened = self._open_cases(protocol, reader, project, cases)
        scores, findings = [], {}
        for number, gold_task in enumerate(cases, 1):
            reference, _ = self.gold.reference(protocol, gold_task)
            score = self.scores.score_own_read(protocol, opened[gold_task], reader, reference, "calibration",
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

    def _open_cases(self, protocol: Protocol, reader: int, project: int, cases: list[int]) -> dict[int, int]:
        """gold task -> the reader's calibration copy of it, copying the ones not opened yet."""
        opened = self.records.calibration_cases(protocol.id, reader)
        for gold_task in cases:
            if gold_task not in opened:
                _, source = self.gold.reference(protocol, gold_task)
                opened[gold_task] = self.qa_tasks.copy(project, source, "calibration", protocol, reader)
        return opened

    def tasks_of(self, protocol_id: str, reader: int) -> list[int]:
        """The reader's calibration cases (task ids)."""
        return self.records.calibration_tasks(protocol_id, reader)

    def tier(self, protocol_id: str, reader: int) -> ReaderTier:
        return ReaderTier(self.records.tier(protocol_id, reader) or ReaderTier.RADIOLOGIST.value)

    def certifications(self, protocol_id: str) -> list[dict]:
        return self.records.certifications(protocol_id)

    def certified_readers(self, protocol_id: str) -> set[int]:
        return self.records.certified_readers(protocol_id)
