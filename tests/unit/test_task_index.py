"""The task index answers worklists from the state store and follows Label Studio's changes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from connectors.database import Database
from connectors.task_index import STAMP_FORMAT, IndexedTasks

T0 = datetime(2026, 12, 6, 12, 0, 0)


class FakeLabelStudio:
    """Projects and tasks as Label Studio lists them, with stamps; counts every listing."""

    def __init__(self):
        self.tasks: dict[int, dict] = {}
        self.clock = T0
        self.listings: list[tuple[int, str | None]] = []

    def tick(self) -> str:
        self.clock += timedelta(seconds=30)
        return self.clock.strftime(STAMP_FORMAT)

    def add_task(self, task_id: int, project: int = 1) -> None:
        self.tasks[task_id] = {"id": task_id, "project": project, "annotators": [], "annotations": 0,
                               "data": {"study": f"2.25.{task_id}", "series": f"2.25.{task_id}.1",
                                        "images": ["https://front/signed"]},
                               "updated_at": self.tick()}

    def annotate(self, task_id: int, user: int) -> None:
        task = self.tasks[task_id]
        task["annotators"].append(user)
        task["annotations"] += 1
        task["updated_at"] = self.tick()

    def delete_annotation(self, task_id: int, user: int) -> None:  # Label Studio stamps nothing on a delete
        task = self.tasks[task_id]
        task["annotators"].remove(user)
        task["annotations"] -= 1

    def projects(self) -> list[dict]:
        mine = [t for t in self.tasks.values() if t["project"] == 1]
        return [{"id": 1, "description": "radlabel:reads", "tasks": len(mine),
                 "annotations": sum(t["annotations"] for t in mine)}]

    def listed_tasks(self, project_id: int, since: str | None = None) -> list[dict]:
        self.listings.append((project_id, since))
        found = [t for t in self.tasks.values() if t["project"] == project_id]
        if since is not None:
            found = [t for t in found if datetime.strptime(t["updated_at"], STAMP_FORMAT) >=
                     datetime.strptime(since, STAMP_FORMAT)]
        return [dict(t, annotators=list(t["annotators"])) for t in found]

    def task(self, task_id: int) -> dict:
        return {"id": task_id, "from": "source"}


@pytest.fixture
def lab():
    fake = FakeLabelStudio()
    for task_id in (1, 2, 3):
        fake.add_task(task_id)
    return fake


def index_over(lab, tmp_path) -> IndexedTasks:
    return IndexedTasks(lab, Database(str(tmp_path / "state.sqlite")))


def annotators(index: IndexedTasks) -> dict[int, list[int]]:
    index.projects()
    return {t["id"]: [a["completed_by"] for a in t["annotations"]] for t in index.tasks(1)}


def test_a_first_look_lists_the_project_and_keeps_only_what_worklists_use(lab, tmp_path):
    index = index_over(lab, tmp_path)
    index.projects()
    tasks = index.tasks(1)
    assert [t["id"] for t in tasks] == [1, 2, 3]
    assert tasks[0]["data"] == {"study": "2.25.1", "series": "2.25.1.1"}  # signed image URLs stay in Label Studio
    assert tasks[0]["project"] == 1 and lab.listings == [(1, None)]


def test_unchanged_counts_answer_from_the_index_alone(lab, tmp_path):
    index = index_over(lab, tmp_path)
    annotators(index)
    lab.listings.clear()
    assert annotators(index) == {1: [], 2: [], 3: []}
    assert lab.listings == []


def test_a_new_annotation_is_fetched_incrementally(lab, tmp_path):
    index = index_over(lab, tmp_path)
    annotators(index)
    lab.listings.clear()
    lab.annotate(2, user=7)
    assert annotators(index) == {1: [], 2: [7], 3: []}
    assert len(lab.listings) == 1 and lab.listings[0][1] is not None  # only what moved since the last look


def test_a_new_task_is_fetched_incrementally(lab, tmp_path):
    index = index_over(lab, tmp_path)
    annotators(index)
    lab.listings.clear()
    lab.add_task(4)
    assert sorted(annotators(index)) == [1, 2, 3, 4]
    assert [since is not None for _, since in lab.listings] == [True]


def test_a_deleted_annotation_rebuilds_the_project(lab, tmp_path):
    lab.annotate(1, user=7)
    lab.annotate(3, user=8)  # newer than task 1's stamp: an incremental look does not reach task 1
    index = index_over(lab, tmp_path)
    assert annotators(index)[1] == [7]
    lab.delete_annotation(1, user=7)
    lab.listings.clear()
    assert annotators(index)[1] == []
    assert lab.listings[-1] == (1, None)


def test_a_deleted_task_leaves_the_index(lab, tmp_path):
    index = index_over(lab, tmp_path)
    annotators(index)
    del lab.tasks[3]
    assert sorted(annotators(index)) == [1, 2]


def test_the_index_survives_a_new_process(lab, tmp_path):
    annotators(index_over(lab, tmp_path))
    lab.listings.clear()
    assert annotators(index_over(lab, tmp_path)) == {1: [], 2: [], 3: []}
    assert lab.listings == []


def test_other_calls_reach_the_source(lab, tmp_path):
    assert index_over(lab, tmp_path).task(5) == {"id": 5, "from": "source"}


def test_a_read_saved_through_the_index_needs_no_listing(lab, tmp_path):
    saved = []
    lab.create_annotation = lambda task_id, result, user, **extra: saved.append((task_id, user, extra)) or \
        lab.annotate(task_id, user) or 99
    index = index_over(lab, tmp_path)
    annotators(index)
    lab.listings.clear()
    assert index.create_annotation(2, [], 7, lead_time=12.5) == 99
    assert annotators(index)[2] == [7] and saved == [(2, 7, {"lead_time": 12.5})]
    assert lab.listings == []


def event(task_id=2, user=7, total=1, cancelled=0, stamp="2026-12-06T13:00:00.000000Z"):
    return {"action": "ANNOTATION_CREATED", "annotation": {"id": 50, "completed_by": user},
            "task": {"id": task_id, "total_annotations": total, "cancelled_annotations": cancelled, "updated_at": stamp}}


def test_an_annotation_webhook_updates_the_index_so_no_listing_is_needed(lab, tmp_path):
    from connectors.task_index import note_annotation_event

    index = index_over(lab, tmp_path)
    annotators(index)
    lab.annotate(2, user=7)
    lab.listings.clear()
    assert note_annotation_event(index.database, event()) is True
    assert note_annotation_event(index.database, event()) is True  # delivered twice: counts are absolute
    assert annotators(index)[2] == [7]
    assert lab.listings == []


@pytest.mark.parametrize("body", [
    {}, {"task": "2", "annotation": {}}, event(task_id=True), event(user="7"), event(total=-1), event(task_id=99),
])
def test_webhooks_that_name_no_indexed_task_change_nothing(lab, tmp_path, body):
    from connectors.task_index import note_annotation_event

    index = index_over(lab, tmp_path)
    annotators(index)
    assert note_annotation_event(index.database, body) is False
    assert annotators(index) == {1: [], 2: [], 3: []}
