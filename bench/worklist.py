"""A reader's worklist over 1,000 tasks: the light listing (annotators only) vs the full one.

The readers' API and the DICOMweb gateway both ask Label Studio which tasks a reader may open. The
alternative measured is the listing it replaced: every task with its annotations' results
(``fields=all``), which carries each read's brush masks. 200 of the tasks carry two reads of 40
brush regions each, as a programme in progress would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import report, scratch_stack  # noqa: E402


class FullListing:
    """The alternative: tasks with every annotation's result (the listing before the light one)."""

    def __init__(self, light):
        self.light = light

    def __getattr__(self, name):
        return getattr(self.light, name)

    def tasks(self, project_id: int) -> list[dict]:
        return [self.light._task(t) for t in self.light.ls.tasks.list(project=project_id, fields="all", page_size=100)]


def _populate(settings, tasks: int, read: int) -> None:
    from connectors.label_studio import client
    from connectors.provision import Provisioner
    from radlabel.brush_rle import mask_regions
    from radlabel.protocol import load_template

    protocol = load_template(Path(__file__).resolve().parents[1] / "protocol_templates" / "ct-lung-nodules.yaml")
    project = Provisioner(settings).provision(protocol).project_id
    ls = client(settings)
    data = [{"study": f"2.25.{n}", "series": f"2.25.{n}.1", "sop_instance_uids": [f"2.25.{n}.1.{k}" for k in range(40)],
             "images": [f"{settings.url('viewer')}/radlabel/images/x/lung/{k:04d}.png" for k in range(40)],
             "rows": 256, "columns": 256} for n in range(tasks)]
    ls.projects.import_tasks(id=project, request=data)
    mask = np.zeros((40, 256, 256), bool)
    mask[:, 60:180, 70:200] = True
    regions = mask_regions({"lung_field": mask})
    users = [ls.users.create(email=f"bench{n}@hospital.org", username=f"bench{n}").id for n in (1, 2)]
    for task in list(ls.tasks.list(project=project, page_size=500))[:read]:
        for user in users:
            ls.annotations.create(id=task.id, result=regions, completed_by=user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--read", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with scratch_stack() as settings:
        from connectors.readers import add_reader
        from connectors.viewer.api import LabelStudioTasks, Workspace

        _populate(settings, args.tasks, args.read)
        reader, _ = add_reader(settings, "bench.reader@hospital.org", "radiologist")
        light = LabelStudioTasks(settings)
        full = FullListing(light)
        ours, theirs, sizes = [], [], set()
        for _ in range(args.runs):
            for source, times in ((light, ours), (full, theirs)):
                started = time.perf_counter()
                items = Workspace(settings, source).worklist(reader)
                times.append(time.perf_counter() - started)
                sizes.add(len(items))
        assert len(sizes) == 1, sizes  # both listings give the same worklist
        report("worklist", ours, theirs, "light_listing", "full_listing", tasks=args.tasks,
               tasks_with_reads=args.read, worklist_items=sizes.pop())


if __name__ == "__main__":
    main()
