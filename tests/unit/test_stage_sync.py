"""Sync as a stage, on an in-memory PACS, research archive and Label Studio: one de-identified copy and one
task per series, nothing twice (the integration tests check the same on the real servers)."""

from __future__ import annotations

import pytest

from connectors.provision import Provisioner
from connectors.sync import Syncer
from radlabel.errors import RadlabelError
from radlabel.protocol import load_template
from tests.unit.fakes import TEMPLATES, FakeArchive, FakeLabelStudio, ct_study, home_settings, sync_ports


@pytest.fixture
def settings(tmp_path, monkeypatch):
    return home_settings(tmp_path, monkeypatch)


@pytest.fixture
def protocol():
    liver = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    return liver.model_copy(update={"selection": liver.selection.model_copy(update={"min_slices": 2}),
                                    "deidentification": liver.deidentification.model_copy(
                                        update={"max_linkage_risk": None})})


def test_the_shipped_liver_template_holds_a_lone_series_until_a_second_of_its_class_arrives(settings, protocol):
    shipped = load_template(TEMPLATES / "ct-liver-lesions.yaml")
    assert shipped.deidentification.max_linkage_risk == 0.5  # k >= 2 for every series it releases
    protocol = protocol.model_copy(update={"deidentification": shipped.deidentification})
    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(protocol).project_id
    first, second = ct_study(4), ct_study(5)
    alone = Syncer(settings, protocol, adapters=sync_ports(settings, FakeArchive(first.datasets), ls)).run()
    assert (alone.synced, alone.held) == (0, 1) and alone.series[0]["reasons"][-1] == "linkage_risk"
    assert alone.linkage["series"] == 0 and alone.linkage["held_for_linkage"] == 1
    assert not ls.tasks.list(project=project_id)
    both = Syncer(settings, protocol, adapters=sync_ports(settings, FakeArchive(first.datasets + second.datasets),
                                                          ls)).run()
    assert both.linkage["series"] == 2 and both.linkage["unique_series"] == 0
    assert len(ls.tasks.list(project=project_id)) == 2


def test_a_selected_series_becomes_one_deidentified_copy_and_one_task_once(settings, protocol):
    study, other = ct_study(1), ct_study(2, description="head")  # "head" is not one of the protocol's series
    ls = FakeLabelStudio()
    project_id = Provisioner(settings, ls=ls).provision(protocol).project_id
    adapters = sync_ports(settings, FakeArchive(study.datasets + other.datasets), ls)
    summary = Syncer(settings, protocol, adapters=adapters).run()
    assert (summary.selected, summary.synced, summary.quarantined) == (1, 1, 0)
    (task,) = ls.tasks.list(project=project_id)
    (research,) = adapters.research_archive.series.values()
    assert [str(ds.SOPInstanceUID) for ds in research] == task.data["sop_instance_uids"]
    source_uids = {str(ds.SOPInstanceUID) for ds in study.datasets}
    assert not source_uids & set(task.data["sop_instance_uids"])
    assert all(str(ds.PatientName) != str(study.datasets[0].PatientName) for ds in research)
    again = Syncer(settings, protocol, adapters=adapters).run()
    assert (again.synced, again.already_done) == (0, 1) and len(ls.tasks.list(project=project_id)) == 1


def test_sync_without_a_provisioned_project_says_what_to_do(settings, protocol):
    adapters = sync_ports(settings, FakeArchive(ct_study(3).datasets), FakeLabelStudio())
    with pytest.raises(RadlabelError, match="has no Label Studio project: run `radlabel provision`"):
        Syncer(settings, protocol, adapters=adapters).run()
