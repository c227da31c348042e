"""Navigation in the Label Studio door (issue 20): the task answer gives each slice's position along the slice
normal for the slice number and mm shown beside the image, and the editor page loads its navigation script."""

from __future__ import annotations

from connectors.viewer.editor import page_html, slice_positions
from radlabel.geometry import positions_along_normal
from tests.unit.test_editor_gateway import env, get  # noqa: F401 - the gateway fixture

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_positions_along_the_normal_are_z_for_an_axial_series_and_x_for_a_sagittal_one():
    positions = [[-100.0, -120.0, -30.0], [-100.0, -120.0, -27.5], [-100.0, -120.0, -25.0]]
    assert positions_along_normal(positions, AXIAL) == [-30.0, -27.5, -25.0]
    sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # rows along A->P, columns head to foot: normal is -x (towards R)
    assert positions_along_normal([[12.0, 0.0, 0.0], [14.0, 5.0, 9.0]], sagittal) == [-12.0, -14.0]


def test_a_task_without_geometry_shows_no_mm():
    assert slice_positions({"images": ["/x/0.png"]}) is None
    assert slice_positions({"slice_positions_mm": [[0, 0, 1]], "image_orientation": [1, 0, 0]}) is None
    assert slice_positions({"slice_positions_mm": [[0, 0, 1.234]], "image_orientation": AXIAL}) == [1.23]


def test_the_readers_task_carries_each_slices_position_and_outsiders_get_nothing(env):  # noqa: F811
    task = env["tasks"].tasks_[100]
    task["data"] = dict(task["data"], slice_positions_mm=[[-10.0, -20.0, z] for z in (-30.0, -27.5, -25.0, -22.5)],
                        image_orientation=AXIAL)
    body = get(env, "api/tasks/100").json
    assert body["slice_positions_mm"] == [-30.0, -27.5, -25.0, -22.5]
    assert "slice_positions_mm" not in body["task"]["data"]  # the raw patient coordinates stay out of the editor
    assert get(env, "api/tasks/100", who="").status_code == 401
    assert get(env, "api/tasks/100", who="b").json["slice_positions_mm"] == [-30.0, -27.5, -25.0, -22.5]
    assert get(env, "api/tasks/200", who="b").status_code == 404  # a's calibration case: not b's


def test_the_editor_page_loads_navigation_after_label_studios_bundle_and_before_the_page_script(env):  # noqa: F811
    from types import SimpleNamespace

    name = "navigation.js"
    html = page_html("task", 100, SimpleNamespace(main_chunk=1, chunks=[2], module=3, feature_flags="{}"))
    assert html.index("static/main.js") < html.index(f"page/{name}") < html.index("page/editor.js")
    assert f"page/{name}" not in page_html("worklist")
    served = env["client"].get(f"/radlabel/editor/page/{name}")
    assert served.status_code == 200 and b"'image:next'" in served.data
