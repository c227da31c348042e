"""A reader's worklist over 1,000 tasks: radlabel's task index vs listing Label Studio on every call.

The readers' API and the DICOMweb gateway both need, for each task a reader may open, its series and
its annotators. The alternative measured is Label Studio's lightest listing that gives them (the
review listing: annotators only, no results), which is what the worklist used before the index.
200 of the tasks carry two reads of 40 brush regions each, as a programme in progress would, and
before every timed call one more read is saved (so the index must catch up each time, as in use).
The index's first look at a project (a full listing, once) and a worklist with nothing new since the
last one are reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import report, scratch_stack  # noqa: E402


def _populate(settings, tasks: int, read: int) -> tuple[int, list[int]]:
    from connectors.label_studio import client
    from connectors.provision import Provisioner
    from radlabel.brush_rle import mask_regions
    from radlabel.protocol import load_template

    protocol = load_template(Path(__file__).resolve().parents[1] / "protocol_templates" / "ct-lung-nodules.yaml")
    project = Provisioner(settings).provision(protocol).project_id
    ls = client(settings)
    data = [{"study": f"2.25.{n}", "series": f"2.25.{n}.1", "sop_instance_uids": [f"2.25.{n}.1.{k}" for k in range(40)],
             "images": [f"{settings.url('viewer')}/radlabel/images/x/lung/{k:04d}.png" for k in range(40)],
             "images_by_preset": {p.name: [f"{settings.url('viewer')}/radlabel/images/x/{p.name}/{k:04d}.png"
                                           for k in range(40)] for p in protocol.window_presets},
             "rows": 256, "columns": 256} for n in range(tasks)]
    ls.projects.import_tasks(id=project, request=data)
    mask = np.zeros((40, 256, 256), bool)
    mask[:, 60:180, 70:200] = True
    regions = mask_regions({"lung_field": mask}, "mask_lung", "image_lung")
    users = [ls.users.create(email=f"bench{n}@hospital.org", username=f"bench{n}").id for n in (1, 2)]
    for task in list(ls.tasks.list(project=project, page_size=500))[:read]:
        for user in users:
            ls.annotations.create(id=task.id, result=regions, completed_by=user)
    return project, users


def _new_read(settings, project: int, user: int, done: set[int]) -> None:
    """One more saved read by ``user``, on a task nobody has read yet."""
    from connectors.label_studio import client

    ls = client(settings)
    task = next(t for t in ls.tasks.list(project=project, page_size=500, fields="task_only")
                if t.id not in done and not t.total_annotations)
    ls.annotations.create(id=task.id, result=[], completed_by=user)
    done.add(task.id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--read", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with scratch_stack() as settings:
        from connectors.readers import add_reader
        from connectors.viewer.api import LabelStudioTasks, Workspace, reader_tasks

        project, users = _populate(settings, args.tasks, args.read)
        reader, _ = add_reader(settings, "bench.reader@hospital.org", "radiologist")
        indexed, listing = reader_tasks(settings), LabelStudioTasks(settings)
        first_look = time.perf_counter()
        Workspace(settings, indexed).worklist(reader)
        first_look = time.perf_counter() - first_look
        ours, theirs, unchanged, sizes, done = [], [], [], set(), set()
        for _ in range(args.runs):
            _new_read(settings, project, reader.ls_user_id, done)  # off their worklist
            for source, times in ((indexed, ours), (listing, theirs), (indexed, unchanged)):
                started = time.perf_counter()
                items = Workspace(settings, source).worklist(reader)
                times.append(time.perf_counter() - started)
                sizes.add(len(items))
        assert len(sizes) == args.runs, sizes  # each run one task fewer, and both sources agree on it
        report("worklist", ours, theirs, "task_index", "label_studio_listing", tasks=args.tasks,
               tasks_with_reads=args.read, worklist_items=max(sizes), index_first_look_s=round(first_look, 4),
               index_nothing_new_s=round(statistics.median(unchanged), 4))


if __name__ == "__main__":
    main()
