"""Hidden gold: sync inserts disguised copies of gold studies into the production project at the protocol's
``gold_insertion_rate``; readers cannot tell them apart; their reads are scored, never finalised."""

from __future__ import annotations

from connectors.quality.job import QaJob
from radlabel.adjudication.reads import annotator
from radlabel.audit import audit_log
from radlabel.protocol.template import Protocol
from radlabel.qa.sampling import gold_copies_due
from radlabel.qa.scoring import ReadScore

__all__ = ["HiddenGold"]


class HiddenGold(QaJob):
    def insert(self, protocol: Protocol, project_id: int, produced: int) -> list[int]:
        """Gold copies into the production queue so that they make ``gold_insertion_rate`` of its tasks."""
        gold = self.gold.tasks(protocol.id)
        if not gold or protocol.qa.gold_insertion_rate <= 0:
            return []
        inserted = self.records.gold_inserted(protocol.id)
        due = gold_copies_due(produced, inserted, protocol.qa.gold_insertion_rate)
        # Cases beyond the calibration set first: readers have seen the calibration cases.
        pool = gold[protocol.qa.calibration.cases:] or gold
        created = []
        for number in range(inserted, inserted + due):
            _, source = self.gold.reference(protocol, pool[number % len(pool)])
            created.append(self.qa_tasks.copy(project_id, source, "gold_copy", protocol, None))
            self.records.set_gold_inserted(protocol.id, number + 1)
        if created:
            audit_log(self.settings).append("gold_insertion", "radlabel-qa", f"{protocol.id} {protocol.version}",
                                            tasks=created)
        return created

    def score_copy(self, protocol: Protocol, task_id: int) -> list[ReadScore]:
        """Every verified reader's read of a gold copy against its reference (recorded as source 'gold')."""
        kind = self.qa_tasks.kind_of(task_id)
        reference, _ = self.gold.reference(protocol, kind[2])
        _, reads = self.scores.verified_reads(protocol, task_id)
        readers = {annotator(a) for a in reads}
        return [s for reader in sorted(readers)
                if (s := self.scores.score_own_read(protocol, task_id, reader, reference, "gold", f"task {task_id}"))]
