"""The gold standard: final tasks an admin marks as reference, and the reference read of each."""

from __future__ import annotations

from connectors.adjudications import CONSENSUS_USER, Adjudications
from connectors.authorship import Authorship
from connectors.label_studio import as_dict, label_studio_errors, user_id
from connectors.qa_records import QaRecords
from radlabel.adjudication.reads import Read, annotator, read_from_annotation, task_shape
from radlabel.audit import audit_log
from radlabel.errors import RadlabelError
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

__all__ = ["GoldStandard"]


class GoldStandard:
    def __init__(self, settings: Settings, ls, records: QaRecords, adjudications: Adjudications,
                 authorship: Authorship):
        self.settings = settings
        self.ls = ls
        self.records = records
        self.adjudications = adjudications
        self.authorship = authorship

    def add(self, protocol: Protocol, task_ids: list[int]) -> list[int]:
        """The tasks newly made gold; only tasks with final labels can be."""
        final = self.adjudications.final(protocol.id)
        for task_id in task_ids:
            if task_id not in final:
                raise RadlabelError(f"task {task_id} has no final labels in protocol {protocol.id}: only adjudicated "
                                    "tasks can be gold standard (see `radlabel reconcile`).")
        added = self.records.add_gold(protocol.id, task_ids)
        if added:
            audit_log(self.settings).append("gold", "admin", f"{protocol.id} {protocol.version}", added=added)
        return added

    def tasks(self, protocol_id: str) -> list[int]:
        return self.records.gold(protocol_id)

    def calibration_set(self, protocol: Protocol) -> list[int]:
        return self.tasks(protocol.id)[:protocol.qa.calibration.cases]

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
        reference.edge_cases = self._majority_edge_cases(task_id)
        return reference, task

    def _majority_edge_cases(self, task_id: int) -> set[str]:
        """The edge-case rules more than half of the task's readers flagged."""
        votes: dict[str, int] = {}
        readers = (self.adjudications.decision(task_id) or {}).get("edge_cases", {})
        for rules in readers.values():
            for rule in rules:
                votes[rule] = votes.get(rule, 0) + 1
        return {rule for rule, n in votes.items() if n * 2 > len(readers)}
