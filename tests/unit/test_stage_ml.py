"""The ML backend's stages on in-memory ports: task volumes come from the research archive the wiring
hands in, and the trainer learns from the final labels of the Label Studio it is given."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from connectors.authorship import post_read
from connectors.label_studio import user_id
from ml_backend.trainer import Trainer
from ml_backend.volumes import VolumeSource
from radlabel.brush_rle import mask_regions
from tests.unit.fakes import home_settings, liver_protocol, synced_case


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


class CountingArchive:
    def __init__(self, archive):
        self.archive, self.retrieved = archive, 0

    def retrieve_series(self, study_uid, series_uid, media_types=None):
        self.retrieved += 1
        return self.archive.retrieve_series(study_uid, series_uid, media_types)


def test_a_task_volume_comes_from_the_given_archive_in_the_tasks_slice_order_once(settings):
    synced = synced_case(settings, liver_protocol())
    archive = CountingArchive(synced.archive)
    volumes = VolumeSource(archive)
    data = synced.task.data
    volume = volumes.load(data)
    assert volume.values.shape == (len(data["sop_instance_uids"]), data["rows"], data["columns"])
    assert volume.modality == "CT"
    reversed_data = data | {"series": "another", "sop_instance_uids": data["sop_instance_uids"][::-1]}
    archive.archive.series[(data["study"], "another")] = archive.archive.series[(data["study"], data["series"])]
    assert np.array_equal(volumes.load(reversed_data).values, volume.values[::-1])
    volumes.load(data)
    assert archive.retrieved == 2  # each series fetched once, then cached


def test_the_trainer_collects_the_final_labels_of_the_label_studio_it_is_given(settings):
    protocol = liver_protocol(ml={"prelabel": {"liver": {"model": "trained"}}})
    synced = synced_case(settings, protocol)
    task = synced.task
    mask = np.zeros((len(task.data["images"]), task.data["rows"], task.data["columns"]), bool)
    mask[1:3, 8:20, 8:20] = True
    for n in (1, 2):
        reader = user_id(synced.ls, f"reader{n}@hospital.org", create_as=f"reader{n}")
        post_read(settings, synced.ls, task.id, reader, mask_regions({"liver": mask}), "simulated")
    trainer = Trainer(settings, protocol, adapters=SimpleNamespace(label_studio=synced.ls,
                                                                   research_archive=synced.archive))
    assert trainer.collect()[2] == []  # no final labels yet: nothing to learn from
    assert synced.adjudicator.handle(synced.project_id, task.id).status == "final"
    volumes, labels, tasks = trainer.collect()
    assert tasks == [task.id]
    assert np.array_equal(labels[0] == 1, mask) and volumes[0].shape == mask.shape
