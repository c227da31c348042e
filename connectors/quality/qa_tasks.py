"""The side projects QA opens (calibration, review) and the copies of tasks it makes in them.

A calibration case or hidden-gold copy is disguised (nothing in it matches its source task); which task
is a QA copy of what lives only in the state store (``QaRecords``), never in the task.
"""

from __future__ import annotations

from connectors.copies import disguised_copy
from connectors.label_studio import label_studio_errors
from connectors.ports import AnnotationPlatform, DicomArchive
from connectors.provision import Provisioner
from connectors.qa_records import QaRecords
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["QaTasks"]

# Task data that would tell a reader where a copy came from.
_HIDDEN_KEYS = ("source_task", "disagreement")


class QaTasks:
    def __init__(self, settings: Settings, ls: AnnotationPlatform, records: QaRecords, archive: DicomArchive):
        self.settings = settings
        self.ls = ls
        self.records = records
        self.archive = archive  # the research archive, for disguised copies

    def side_project(self, marker_line: str, title: str, description: str, protocol: Protocol) -> int:
        return Provisioner(self.settings, ls=self.ls).side_project(protocol, marker_line, title, description,
                                                                   ml_backend=False)  # webhooks, no pre-labels

    def copy(self, project_id: int, source, kind: str, protocol: Protocol, reader: int | None,
             prediction: list | None = None) -> int:
        """A new task of ``kind`` in the project from ``source``, recorded as a QA task of it."""
        data = {k: v for k, v in source.data.items() if k not in _HIDDEN_KEYS}
        if kind in ("calibration", "gold_copy"):  # nothing in the copy may match its source task
            data = disguised_copy(self.settings, data, self.archive)
        with label_studio_errors(f"create a {kind} task"):
            created = self.ls.tasks.create(project=project_id, data=data)
            if prediction is not None:
                self.ls.predictions.create(task=created.id, result=prediction, score=1.0, model_version="final-labels")
        self.records.add_task(created.id, kind, protocol.id, source.id, reader)
        return created.id

    def kind_of(self, task_id: int) -> tuple[str, str, int, int | None] | None:
        """(kind, protocol id, reference task, reader) of a calibration case, gold copy or review task; else None."""
        return self.records.task(task_id)
