"""Quality assurance in the annotation loop, one module per job, on the ports each job needs.

- ``gold``: the gold standard — final tasks an admin marks as reference (``radlabel gold add``) and
  the reference read of each (the task's final labels, the consensus user's ground truth in Label Studio).
- ``qa_tasks``: the side projects and the copies of tasks QA makes (calibration cases, hidden-gold copies,
  review tasks); which task is which lives only in the state store, never in the task.
- ``read_scores``: one reader's read scored against a reference; every scored read (calibration, gold,
  consensus, review) goes to ``reader_scores``, the data behind control charts, fatigue and time figures.
- ``calibration``: each reader's calibration project, certification per tier, and which readers' reads
  count (only certified readers' once a protocol's calibration set is complete).
- ``hidden_gold``: gold copies inserted into the production queue at ``gold_insertion_rate``, scored,
  never finalised.
- ``review``: final tasks drawn at ``sampling_rate`` go to a review project; the reviewer's labels are
  compared with the final ones.
- ``events``: a read saved in a calibration case or a review task, routed to its job.
- ``figures``: every figure of the QA report of one protocol.
- ``job``: what calibration, hidden gold and review share (gold standard, QA tasks, read scores, QA tables).
- ``desk``: builds the jobs above on one set of ports (what the CLI, sync, adjudication and the campaign use).
"""

from connectors.quality.calibration import counting_readers, reader_id
from connectors.quality.desk import QualityDesk
from connectors.quality.figures import report_figures

__all__ = ["QualityDesk", "counting_readers", "reader_id", "report_figures"]
