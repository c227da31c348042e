"""Protocol templates provisioned into the real Label Studio."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from connectors.hooks.app import SECRET_HEADER
from connectors.label_studio import client
from connectors.provision import Provisioner, classes_in_config
from radlabel.errors import RadlabelError
from radlabel.protocol import load_template, parse_template
from radlabel.protocol.labelconfig import label_config

TEMPLATES = Path(__file__).resolve().parents[2] / "protocol_templates"


@pytest.fixture(scope="module")
def provisioner(settings):
    return Provisioner(settings)


def test_every_template_provisions_and_reprovisioning_changes_nothing(settings, provisioner):
    ls = client(settings)
    for path in sorted(TEMPLATES.glob("*.yaml")):
        protocol = load_template(path)
        first = provisioner.provision(protocol)
        assert first.action in ("created", "unchanged")
        project = ls.projects.get(id=first.project_id)
        assert project.label_config.strip() == label_config(protocol).strip()
        assert project.maximum_annotations == protocol.readers.per_study
        assert project.sampling == "Uncertainty sampling"
        assert " ".join(protocol.classes[0].boundary.text.split())[:40] in project.expert_instruction
        # ours, with the shared secret (Label Studio adds the ML backend's own /webhook beside it)
        hooks = [h for h in ls.webhooks.list(project=str(first.project_id)) if h.url == settings.url("hooks") + "/webhook"]
        assert len(hooks) == 1 and hooks[0].headers == {SECRET_HEADER: settings.secrets()["webhook_secret"]}
        assert len(ls.ml.list(project=first.project_id)) == 1
        again = provisioner.provision(protocol)
        assert (again.action, again.project_id, again.changes) == ("unchanged", first.project_id, [])
        after = ls.projects.get(id=first.project_id)
        assert (after.label_config, after.description, after.expert_instruction) == \
               (project.label_config, project.description, project.expert_instruction)
        assert len(ls.webhooks.list(project=str(first.project_id))) == len(hooks) + 1
        assert (settings.home / "protocols" / f"{protocol.id}.json").exists()
        # Label Studio can export the project (its converter chokes on some control combinations)
        export = requests.get(f"{settings.url('label_studio')}/api/projects/{first.project_id}/export?exportType=JSON"
                              "&download_all_tasks=true", timeout=60,
                              headers={"Authorization": f"Token {settings.secrets()['label_studio_token']}"})
        assert export.status_code == 200, export.text[:200]


def test_label_studio_really_validates_configs(settings):
    """Guards the test above: Label Studio refuses a broken config, so its acceptance means something."""
    ls = client(settings)
    with pytest.raises(Exception):
        ls.projects.create(title="broken", label_config='<View><BrushLabels name="m" toName="nowhere"/></View>')


def variant(version: str, edit=lambda d: None) -> str:
    data = yaml.safe_load((TEMPLATES / "ct-liver-lesions.yaml").read_text())
    data["id"], data["version"] = "liver_versions_test", version
    edit(data)
    return yaml.safe_dump(data, sort_keys=False)


def add_vessel(d):
    d["classes"].append({
        "name": "hepatic_vessel", "display_name": "Hepatic vessel", "color": "#000075", "geometry": ["mask"],
        "read_in": "soft_tissue", "category": {"value": "91723000", "scheme": "SCT", "meaning": "Anatomical Structure"},
        "type": {"value": "8993003", "scheme": "SCT", "meaning": "Hepatic vein"}})


def test_versions_update_refuse_orphans_and_migrate(settings, provisioner):
    ls = client(settings)
    created = provisioner.provision(parse_template(variant("1.0.0")))
    assert created.action == "created"
    project_id = created.project_id

    # a compatible new version (a class added) updates the project
    updated = provisioner.provision(parse_template(variant("1.1.0", add_vessel)))
    assert updated.action == "updated" and "classes added: hepatic_vessel" in updated.changes
    assert "hepatic_vessel" in classes_in_config(ls.projects.get(id=project_id).label_config)

    # a reader labels a cyst on slice 2
    slices = ["/x/1.png", "/x/2.png", "/x/3.png"]
    ls.projects.import_tasks(id=project_id, request=[{"images": slices,
                                                      "images_by_preset": {"liver": slices, "soft_tissue": slices}}])
    task = list(ls.tasks.list(project=project_id, fields="all"))[0]
    region = {"id": "r1", "from_name": "mask_liver", "to_name": "image_liver", "type": "brushlabels", "item_index": 1,
              "original_width": 64, "original_height": 64,
              "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["liver_cyst"]}}
    ls.annotations.create(id=task.id, result=[region])

    # 1.2.0 drops liver_cyst: refused, and the project is left as it was
    without_cyst = lambda d: (add_vessel(d), d.update(classes=[c for c in d["classes"] if c["name"] != "liver_cyst"]),
                              d["edge_cases"][2].update(classes=["liver_lesion"]))
    with pytest.raises(RadlabelError, match=r"would orphan annotations .*'liver_cyst' \(1 label\(s\)\).*--migrate"):
        provisioner.provision(parse_template(variant("1.2.0", without_cyst)))
    assert "liver_versions_test 1.1.0" in ls.projects.get(id=project_id).description

    # with a migration the labels move to liver_lesion and the update goes through
    migrated = provisioner.provision(parse_template(variant("1.2.0", without_cyst)), {"liver_cyst": "liver_lesion"})
    assert migrated.action == "updated" and "migrated 1 label(s) liver_cyst -> liver_lesion" in migrated.changes
    annotation = ls.annotations.list(id=task.id)[0]
    assert annotation.result[0]["value"]["brushlabels"] == ["liver_lesion"]
    assert annotation.result[0]["item_index"] == 1

    # same version with other content, and an older version, are refused
    with pytest.raises(RadlabelError, match="already provisioned .* with other content: give the changed template a new version"):
        provisioner.provision(parse_template(variant("1.2.0", lambda d: (without_cyst(d), d.update(name="Renamed")))))
    with pytest.raises(RadlabelError, match="older than the provisioned 1.2.0"):
        provisioner.provision(parse_template(variant("1.1.5", without_cyst)))


def test_cli_provision_of_a_bad_template_creates_nothing(settings, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(variant("1.0.0", lambda d: d.update(id="never_provisioned")))
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant("1.0.0", lambda d: d["classes"][0].update(geometry=["volume"])))
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "provision", str(good), str(bad)],
                          capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{bad}:" in done.stderr and "classes[0].geometry[0]" in done.stderr
    project, _ = Provisioner(settings).find_project("never_provisioned")
    assert project is None


def test_a_class_moved_to_another_preset_takes_its_regions_there_and_the_read_still_counts(settings, provisioner):
    """Issue 20: ``read_in`` changes between versions; the class's existing strokes and ruler move to the new preset's
    control and image on the real server, at their slice, and the reader's vouched read stays verified."""
    import json

    from connectors.authorship import Authorship, post_read

    ls = client(settings)
    moved_id = lambda d: d.update(id="liver_preset_move_test")
    project_id = provisioner.provision(parse_template(variant("1.0.0", moved_id))).project_id
    slices = ["/x/1.png", "/x/2.png", "/x/3.png"]
    ls.projects.import_tasks(id=project_id, request=[{"images": slices, "rows": 8, "columns": 8,
                                                      "images_by_preset": {"liver": slices, "soft_tissue": slices}}])
    task = list(ls.tasks.list(project=project_id, fields="all"))[0]
    added = subprocess.run([sys.executable, "-m", "radlabel.cli", "readers", "add", "preset.mover@hospital.org", "--tier",
                            "radiologist", "--json"], capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    reader = int(json.loads(added.stdout)["reader"].removeprefix("reader-"))
    cyst = {"id": "c1", "from_name": "mask_liver", "to_name": "image_liver", "type": "brushlabels", "item_index": 2,
            "original_width": 8, "original_height": 8, "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["liver_cyst"]}}
    ruler = {"id": "v1", "from_name": "ruler_liver", "to_name": "image_liver", "type": "vectorlabels", "item_index": 1,
             "value": {"vertices": [{"x": 10, "y": 10}, {"x": 50, "y": 10}], "vectorlabels": ["liver_lesion"]}}
    annotation_id = post_read(settings, ls, task.id, reader, [cyst, ruler], "simulated")

    to_soft_tissue = lambda d: (moved_id(d), [c.update(read_in="soft_tissue") for c in d["classes"]
                                              if c["name"] in ("liver_cyst", "liver_lesion")])
    updated = provisioner.provision(parse_template(variant("1.1.0", to_soft_tissue)))
    assert updated.action == "updated"
    assert "moved 1 region(s) of liver_cyst from mask_liver to mask_soft_tissue (its read_in preset)" in updated.changes
    assert "moved 1 region(s) of liver_lesion from ruler_liver to ruler_soft_tissue (its read_in preset)" in updated.changes
    saved = ls.annotations.get(id=annotation_id)
    assert [(r["from_name"], r["to_name"], r["item_index"]) for r in saved.result] == [
        ("mask_soft_tissue", "image_soft_tissue", 2), ("ruler_soft_tissue", "image_soft_tissue", 1)]
    assert saved.result[0]["value"] == cyst["value"]
    fresh = ls.tasks.get(id=task.id)
    verified = Authorship(settings, ls).verified(task.id, fresh.annotations, "liver_preset_move_test")
    assert [a["id"] for a in verified] == [annotation_id]  # still the reader's verified read, labels vouched again
