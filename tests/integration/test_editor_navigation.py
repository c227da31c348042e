"""Issue 20, navigation and layout in the reader's Label Studio editor (behind radlabel's gateway), driven in
headless Chromium at 1600x1000 by ``editor/navigate_task.mjs`` on a synced 24-slice chest CT.

Slice keys and the wheel page the preset on screen without leaving the task (Label Studio's own slice hotkeys
would page a hidden preset's image); the slice number and its position along the normal show beside the image and
follow the slice; a region is named with its slice in the Regions panel and saved on it; Submit, a preset switch
and the task opened again keep the slice; class buttons, presets, flags and escalation are on screen unscrolled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from connectors.label_studio import client
from tests.chromium import ARTIFACTS
from tests.integration.conftest import protocol_variant, registered_readers, synced_lung_case

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "editor" / "navigate_task.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def protocol(settings):
    return protocol_variant(settings, "ct-lung-nodules.yaml", "editor_navigation", "^editor navigation test$")


@pytest.fixture(scope="module")
def case(settings, protocol):
    return synced_lung_case(settings, protocol, 2020, "editor navigation test")


@pytest.fixture(scope="module")
def reader(settings):
    return registered_readers("navigator", names=("a",))["a"]


@pytest.fixture(scope="module")
def run(settings, case, reader, tmp_path_factory):
    """The scripted reader's session in the editor (one JSON report) and the task id."""
    missing = [what for what, ok in (("Chromium", Path(CHROMIUM).exists()), ("node", shutil.which("node")),
               ("playwright-core (npm ci in ohif_extension/)", (REPO / "ohif_extension/node_modules/playwright-core").exists()))
               if not ok]
    if missing:
        pytest.fail("the editor test needs " + ", ".join(missing) + ": `make install` sets them up.")
    task_id, _ = case
    folder = ARTIFACTS / "label-studio-navigation"  # screenshots kept after the run (tests/artifacts is not tracked)
    folder.mkdir(parents=True, exist_ok=True)
    credentials = tmp_path_factory.mktemp("navigation") / "credentials.json"
    credentials.touch(mode=0o600)
    credentials.write_text(json.dumps(reader))  # a file, not an argument: the token stays out of process listings
    done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(credentials), str(task_id), str(folder)],
                          capture_output=True, text=True, timeout=480,
                          env=os.environ | {"RADLABEL_EXTENSION_DIR": str(REPO / "ohif_extension"), "CHROMIUM": CHROMIUM})
    credentials.unlink()
    print(f"\nLabel Studio navigation screenshots: {folder}")
    assert done.returncode == 0, done.stderr[-2000:]
    (folder / "report.json").write_text(done.stdout)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in report["result"], report
    return report["result"] | {"console_errors": report["console_errors"]}


def along_normal(study) -> list[float]:
    """The series' slice positions along the normal, most inferior first, read from the DICOM files themselves."""
    return sorted(float(ds.ImagePositionPatient[2]) for ds in study.datasets)  # the phantom is axial


def test_class_buttons_presets_flags_and_escalation_sit_beside_the_image_unscrolled(run):
    layout = run["layout"]
    assert layout["scroll"] == 0
    for control in ("class_button", "preset_selector", "flags", "escalation", "image"):
        assert layout[control] and layout[control]["visible"], (control, layout)
    assert layout["preset_selector"]["left"] > layout["image"]["right"]  # beside it, not below it


def test_keys_and_the_wheel_page_the_preset_on_screen_and_stay_on_the_task(run):
    assert run["opened"]["slice"] == 1 and run["opened"]["image"] == "image_lung"
    assert run["after_up3"]["slice"] == 4 and run["after_pagedown"]["slice"] == 3
    assert run["after_wheel_up2"]["slice"] == 5 and run["wheel_scrolled_page"] is False  # one slice a notch
    assert run["after_touchpad_up"]["slice"] == 6 and run["after_wheel_down"]["slice"] == 5  # small deltas add up
    assert run["same_task"] is True
    # the hidden presets' images were not paged (Label Studio's own binding would page the one mounted last)
    assert run["after_wheel_up2"]["images"] == {"image_lung": 5, "image_mediastinum": 1, "image_bone": 1}
    assert not [e for e in run["console_errors"] if "TypeError" in e]


def test_the_slice_number_and_its_position_in_mm_follow_the_slice(run, case):
    _, study = case
    z = along_normal(study)
    for step, slice_number in (("opened", 1), ("after_up3", 4), ("after_wheel_up2", 5)):
        shown = run[step]
        assert shown["slice"] == slice_number and float(shown["position"]) == pytest.approx(z[slice_number - 1], abs=0.01)
        number, mm = re.fullmatch(r"slice (\d+) of 24 · (-?[\d.]+) mm \(1 = most inferior\)", shown["text"]).groups()
        assert int(number) == slice_number and float(mm) == pytest.approx(z[slice_number - 1], abs=0.051)


def test_a_region_is_named_with_its_slice_and_saved_on_it(run, settings, case):
    task_id, _ = case
    assert run["regions"] == [{"item_index": 4, "meta": ["slice 5"]}]
    assert run["regions_panel"] == [["1", "lung_field", "slice 5"]]  # the Regions panel row: index, class, slice
    assert run["submit"]["status"] == 201
    saved = client(settings).annotations.get(id=run["submit"]["body"]["annotation_id"])
    [region] = saved.result
    assert (region["item_index"], region["from_name"], region["meta"]) == (4, "mask_lung", {"text": ["slice 5"]})
    assert saved.task == task_id


def test_submit_a_preset_switch_and_the_task_opened_again_keep_the_slice(run):
    assert run["after_submit"]["slice"] == 5 and run["after_submit"]["image"] == "image_lung"
    assert (run["after_preset"]["image"], run["after_preset"]["slice"]) == ("image_bone", 5)
    # the arrow key after clicking the preset's radio button pages the slice, not the window preset
    assert (run["preset_after_up"]["image"], run["preset_after_up"]["slice"]) == ("image_bone", 6)
    assert run["preset_after_up"]["images"]["image_lung"] == 5
    assert run["reopened"]["slice"] == 6 and "you have read it" in run["reopened_status"]
    assert run["reopened_regions_panel"] == [["1", "lung_field", "slice 5"]]  # the read shown: its region named too


def test_the_slice_positions_answer_only_the_signed_in_readers_own_task(settings, case, reader, run):
    task_id, study = case
    tasks = f"{settings.url('viewer')}/radlabel/editor/api/tasks"
    url = f"{tasks}/{task_id}"
    own = requests.get(url, headers={"Authorization": f"Bearer {reader['label_studio']['token']}"}, timeout=60)
    assert own.status_code == 200 and own.json()["slice_positions_mm"] == pytest.approx(along_normal(study), abs=0.01)
    assert requests.get(url, timeout=60).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer rlr_forged"}, timeout=60).status_code == 401
    unknown = requests.get(f"{tasks}/987654321", timeout=60,
                           headers={"Authorization": f"Bearer {reader['label_studio']['token']}"})
    assert unknown.status_code == 404 and "slice_positions_mm" not in unknown.text
