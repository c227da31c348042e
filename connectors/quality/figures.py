"""Every figure of the QA report of one protocol, from the state store and Label Studio (no PHI)."""

from __future__ import annotations

from connectors.authorship import unverified_reads
from connectors.label_studio import label_studio_errors
from connectors.projects import find_protocol_project
from connectors.qa_records import QaRecords
from connectors.quality.desk import QualityDesk
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["qa_counts", "report_figures"]


def qa_counts(records: QaRecords, protocol_id: str) -> dict:
    """Gold studies and QA tasks of each kind (``calibration_tasks``, ``gold_copy_tasks``, ``review_tasks``)."""
    rows = records.task_counts(protocol_id).items()
    return {"gold_studies": len(records.gold(protocol_id))} | {f"{kind}_tasks": n for kind, n in rows}


def _final_profiles(ls, protocol: Protocol, final: set[int]) -> list[dict]:
    """The acquisition profile of each final task (the report's representativeness figures)."""
    project, _ = find_protocol_project(ls, protocol.id)
    profiles = []
    if project is not None and final:
        with label_studio_errors("list the tasks of the protocol's project"):
            for task in ls.tasks.list(project=project.id, fields="all", page_size=100):
                if task.id in final:
                    profiles.append((task.data or {}).get("acquisition") or {})
    return profiles


def report_figures(settings: Settings, protocol: Protocol, desk: QualityDesk | None = None) -> dict:
    from radlabel.qa.report import build_figures

    desk = desk or QualityDesk.build(settings)
    adjudications = desk.adjudications
    final = set(adjudications.final(protocol.id))
    tiers = {f"reader-{reader}": tier for reader, tier in desk.records.tiers(protocol.id).items()}
    counts = qa_counts(desk.records, protocol.id) | {"final": len(final),
                                                     "certification_enforced": desk.calibration.enforced(protocol)}
    return build_figures(protocol, scores=desk.scores.of_protocol(protocol.id),
                         certifications=desk.calibration.certifications(protocol.id), tiers=tiers,
                         decisions=adjudications.decisions(protocol.id),
                         profiles=_final_profiles(desk.ls, protocol, final),
                         reviews=desk.review.reviews(protocol.id), counts=counts,
                         unverified=unverified_reads(desk.records.database, protocol.id))
