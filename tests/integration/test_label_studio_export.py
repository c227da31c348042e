"""Every shipped template's project exports through Label Studio's own export API with a read in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from connectors.label_studio import client
from connectors.projects import find_protocol_project
from radlabel.brush_rle import mask_regions
from radlabel.protocol.enum import Geometry
from radlabel.protocol.labelconfig import class_targets, region_control, image_name
from tests.integration.conftest import protocol_variant

TEMPLATES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "protocol_templates").glob("*.yaml"))
SLICES, SIZE = 3, 16


def one_region_per_class(protocol) -> list[dict]:
    """A read with every region class drawn once, each on the image of the preset it is read in."""
    result = []
    mask = np.zeros((SLICES, SIZE, SIZE), bool)
    mask[1, 4:8, 4:8] = True
    result += mask_regions({c.name: mask for c in protocol.classes_with(Geometry.MASK)},
                           targets=class_targets(protocol, Geometry.MASK))
    shapes = {Geometry.BOX: ("rectanglelabels", {"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0}),
              Geometry.POLYGON: ("polygonlabels", {"points": [[10, 10], [30, 10], [20, 30]], "closed": True}),
              Geometry.LANDMARK: ("keypointlabels", {"x": 50, "y": 50, "width": 1})}
    for geometry, (kind, value) in shapes.items():
        for n, cls in enumerate(protocol.classes_with(geometry)):
            result.append({"id": f"{kind[:4]}{n}", "from_name": region_control(geometry, cls.read_in),
                           "to_name": image_name(cls.read_in), "type": kind, "item_index": 2,
                           "original_width": SIZE, "original_height": SIZE, "image_rotation": 0,
                           "value": value | {kind: [cls.name]}})
    return result


@pytest.mark.parametrize("template", TEMPLATES)
def test_project_with_a_read_exports_as_json(settings, template):
    protocol = protocol_variant(settings, template, "export_" + template.split(".")[0].replace("-", "_"),
                                f"^export {template}$")
    ls = client(settings)
    project, _ = find_protocol_project(ls, protocol.id)  # the lookup provisioning itself uses
    slices = [f"/x/{k}.png" for k in range(SLICES)]
    ls.projects.import_tasks(id=project.id, request=[{
        "images": slices, "rows": SIZE, "columns": SIZE,
        "images_by_preset": {p.name: slices for p in protocol.window_presets}}])
    task = list(ls.tasks.list(project=project.id))[0]
    result = one_region_per_class(protocol)
    ls.annotations.create(id=task.id, result=result)
    token = settings.secrets()["label_studio_token"]
    export = requests.get(f"{settings.url('label_studio')}/api/projects/{project.id}/export?exportType=JSON",
                          headers={"Authorization": f"Token {token}"}, timeout=60)
    assert export.status_code == 200, export.text[:300]
    [exported] = [t for t in export.json() if t["id"] == task.id]
    regions = exported["annotations"][0]["result"]
    assert {(r["from_name"], r["to_name"]) for r in regions} == {(r["from_name"], r["to_name"]) for r in result}
    assert len(regions) == len(result) > 0
