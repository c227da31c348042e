"""NoC@90 in the real UI: a scripted annotator in Label Studio's editor (behind radlabel's gateway, headless Chromium)
segments the liver and its largest lesion on a synthetic CT with known truth, (a) painting slice by slice with the
brush, (b) with the 3-D assist (one click of the smart keypoints per structure, grown by the ML backend through the
gateway).

The painter covers the liver with strokes along rows; a lesion about a brush wide (7 px, the default brush ~6 px)
gets dabs placed where each adds most to the Dice with the truth, as a careful annotator would.
Interactions are strokes + clicks + key presses (a slice change counts one key press per slice moved; picking a
preset, a label or the smart tool counts as clicks). Dice is computed from the submitted read, read back from
Label Studio through radlabel's own ``read_from_annotation``; for slice-by-slice painting the Dice after each slice
is that of the read's masks on the slices painted so far. NoC@90 is the interactions spent when Dice first reaches
0.90 (null if never). Prints one JSON object; ``ratio_*`` is NoC@90 painting / NoC@90 assisted.

    python bench/annotate.py [--slices 48] [--size 256]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import scratch_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "integration" / "editor" / "assist_read.mjs"
DESCRIPTION = "annotate benchmark liver"
SOFT = {"preset": "soft_tissue", "control": "mask_soft_tissue", "image": "image_soft_tissue", "label": "liver"}
LIVER_WINDOW = {"preset": "liver", "control": "mask_liver", "image": "image_liver", "label": "liver_lesion"}
TARGET = 0.90
BRUSH_RADIUS2_PX = 8


def liver_case(settings, slices: int, size: int):
    """The liver protocol provisioned, a phantom CT stored in the PACS and synced: (protocol, task id, study)."""
    import yaml

    from connectors.dicomweb import OrthancDicomWeb
    from connectors.provision import Provisioner
    from connectors.sync import Syncer
    from radlabel.phantom import make_ct_study
    from radlabel.protocol import parse_template

    data = yaml.safe_load((REPO / "protocol_templates" / "ct-liver-lesions.yaml").read_text())
    data["selection"]["series_description"] = f"^{DESCRIPTION}$"
    data["deidentification"].pop("max_linkage_risk", None)  # one series alone: nothing to link it with
    protocol = parse_template(yaml.safe_dump(data, sort_keys=False))
    Provisioner(settings).provision(protocol)
    study = make_ct_study(seed=20, slices=slices, size=size, pixel_spacing=400 / size, slice_spacing=2.5, liver_lesions=3)
    for ds in study.datasets:
        ds.SeriesDescription = DESCRIPTION
    assert not OrthancDicomWeb.pacs_loader(settings).store(study.datasets).failed
    [done] = [s for s in Syncer(settings, protocol).run().series if s["status"] == "done"]
    return protocol, done["task_id"], study


def reader(name: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "radlabel.cli", "readers", "add", f"{name}@hospital.org", "--tier",
                           "radiologist", "--json"], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    return json.loads(done.stdout)


def _pct(point, shape) -> list[float]:
    j, i = point
    return [float((i + 0.5) * 100 / shape[1]), float((j + 0.5) * 100 / shape[0])]


def row_strokes(plane: np.ndarray, spacing_px: int) -> list[list[list[float]]]:
    """Brush strokes that fill a slice's cross-section: one along every ``spacing_px``-th row, end to end inside it."""
    strokes = []
    rows = np.flatnonzero(plane.any(axis=1))
    for j in range(int(rows.min()) + spacing_px // 2, int(rows.max()) + 1, spacing_px):
        columns = np.flatnonzero(plane[j])
        if len(columns):
            strokes.append([_pct((j, c), plane.shape) for c in np.linspace(columns.min(), columns.max(), 6)])
    return strokes


# a dot (a 0.3 px stroke: a click paints nothing), or a 1-px stroke to the right or down
DAB_ENDS = {"dot": (0, 0.3), "across": (0, 1), "down": (1, 0)}


def _dab_at(shape, dab) -> np.ndarray:
    """What one brush dab paints: Label Studio's default brush at --size 192 in the 1500 x 1000 editor is a disc of
    radius ~2.8 px (measured: 30 px for a 1-px stroke)."""
    k, j, i, kind = dab
    rows, columns = np.ogrid[:shape[1], :shape[2]]
    dj, di = DAB_ENDS[kind]
    volume = np.zeros(shape, bool)
    volume[k] = ((rows - j) ** 2 + (columns - i) ** 2 <= BRUSH_RADIUS2_PX) | \
        ((rows - j - dj) ** 2 + (columns - i - int(di)) ** 2 <= BRUSH_RADIUS2_PX)
    return volume


def dabs(mask: np.ndarray) -> list[tuple[int, int, int, str]]:
    """Brush dabs (slice, row, column, kind) for a structure about a brush wide (a lesion): each placed as a careful
    annotator would, where it adds most to the Dice with the truth, while it still adds (rows of strokes would
    paint far beyond a 7 px lesion with a 6 px brush)."""
    painted, chosen, size = np.zeros_like(mask), [], np.count_nonzero(mask)

    def dice(p):
        return 2 * np.count_nonzero(p & mask) / (np.count_nonzero(p) + size)

    candidates = [(int(k), int(j), int(i), kind) for k, j, i in zip(*np.nonzero(mask)) for kind in DAB_ENDS]
    while True:
        best = max(candidates, key=lambda c: dice(painted | _dab_at(mask.shape, c)))
        grown = painted | _dab_at(mask.shape, best)
        if dice(grown) <= dice(painted):
            return sorted(chosen)
        chosen.append(best)
        painted = grown


def _dab_points(dab, shape) -> list[list[float]]:
    k, j, i, kind = dab
    dj, di = DAB_ENDS[kind]
    return [_pct((j, i), shape), _pct((j + dj, i + di), shape)]


def painting_plan(liver: np.ndarray, lesion: np.ndarray, spacing_px: int) -> dict:
    steps = []
    for k in np.flatnonzero(liver.any(axis=(1, 2))):
        steps += [dict(SOFT, smart=False, slice=int(k), points=points) for points in row_strokes(liver[k], spacing_px)]
    first = {}  # each slice's first dab is painted twice: measured, a lone first stroke after a slice move was lost
    for dab in dabs(lesion):
        step = dict(LIVER_WINDOW, smart=False, slice=dab[0], points=_dab_points(dab, lesion.shape[1:]))
        steps += [step, step] if first.setdefault(dab[0], dab) is dab else [step]
    return {"steps": steps}


def target_lesion(study) -> np.ndarray:
    """The largest liver lesion's voxels: the lesion the annotator segments (the others stay unlabelled)."""
    from scipy import ndimage

    largest = max((lesion for lesion in study.lesions if lesion.label == "liver_lesion"), key=lambda l: l.radius_mm)
    components, _ = ndimage.label(study.labelmap == 6)
    return components == components[tuple(np.round(study.geometry.lps_to_index(largest.centre_lps)).astype(int))]


def scribble(mask: np.ndarray) -> tuple[int, list[list[float]]]:
    """A short scribble through the middle of the structure on its largest slice."""
    from scipy import ndimage

    k = int(np.argmax(mask.sum(axis=(1, 2))))
    depth = ndimage.distance_transform_edt(mask[k])  # deep inside the structure, away from lesions in it
    j, i = np.unravel_index(np.argmax(depth), depth.shape)
    return k, [_pct((j, i), mask.shape[1:])]


def assisted_plan(truth: dict[str, np.ndarray], screenshot: str | None) -> dict:
    steps = []
    for where, name in ((SOFT, "liver"), (LIVER_WINDOW, "liver_lesion")):
        k, points = scribble(truth[name])  # one click of the smart keypoints deep inside, on the largest slice
        steps.append(dict(where, control=f"assist_{where['preset']}", smart=True, slice=k, points=points))
    return {"steps": steps, "screenshot": screenshot}


def drive(settings, credentials: dict, task_id: int, plan: dict, out: Path) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        secret, plan_file = Path(folder) / "credentials.json", Path(folder) / "plan.json"
        secret.touch(mode=0o600)
        secret.write_text(json.dumps(credentials))
        plan_file.write_text(json.dumps(plan))
        done = subprocess.run(["node", str(DRIVER), settings.url("viewer"), str(secret), str(task_id), str(plan_file),
                               str(out)], capture_output=True, text=True, timeout=3000,
                              env={"RADLABEL_EXTENSION_DIR": str(REPO / "ohif_extension")} | os.environ)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    report = json.loads(done.stdout.strip().splitlines()[-1])["result"]
    if "error" in report:
        raise SystemExit(f"the scripted annotator failed: {report['error']} ({report.get('status')})")
    return report


def saved_read(settings, protocol, task_id: int, report: dict, shape):
    from connectors.label_studio import client
    from radlabel.adjudication.reads import read_from_annotation

    wanted = report["submit"]["body"]["annotation_id"]
    [saved] = [a for a in client(settings).annotations.list(id=task_id) if a.id == wanted]
    return read_from_annotation(saved.dict(), protocol, shape)


def noc(report: dict, read, truth: dict[str, np.ndarray], spacing, cumulative: bool) -> dict:
    """Per class: interactions and seconds when Dice first reached TARGET (None if never), and the final Dice.
    ``cumulative``: the read's masks on the slices painted so far (slice by slice); else the whole read after the step."""
    from radlabel.adjudication.metrics import mask_agreement

    out, before = {}, {"interactions": 0, "seconds": 0.0}
    for name, mask in truth.items():
        entries = [e for e in report["log"] if e["label"] == name]
        painted, reached = np.zeros(mask.shape[0], bool), None
        for entry in entries:
            painted[entry["slice"]] = True
            shown = read.masks[name] & painted[:, None, None] if cumulative else read.masks[name]
            dice = mask_agreement(shown, mask, spacing, 2.0).dice
            if reached is None and dice >= TARGET:
                reached = {"interactions": entry["interactions"] - before["interactions"],
                           "seconds": round(entry["seconds"] - before["seconds"], 1)}
        out[name] = {"noc90": reached and reached["interactions"], "seconds_to_90": reached and reached["seconds"],
                     "final_dice": round(mask_agreement(read.masks[name], mask, spacing, 2.0).dice, 4),
                     "interactions": entries[-1]["interactions"] - before["interactions"] if entries else 0}
        before = entries[-1] if entries else before
    return out


def ratio(results: dict, name: str) -> float | None:
    painted, assisted = results["slice_by_slice"][name]["noc90"], results["assisted"][name]["noc90"]
    return round(painted / assisted, 1) if painted and assisted else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--screenshot", type=Path, help="save the assisted read's editor view here (PNG)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="radlabel-annotate-"))
    with scratch_stack() as settings:
        protocol, task_id, study = liver_case(settings, args.slices, args.size)
        truth = {"liver": study.labelmap == 4, "liver_lesion": target_lesion(study)}
        spacing = study.geometry.spacing
        results = {}
        for mode, plan, cumulative in (("slice_by_slice", painting_plan(*truth.values(), max(args.size // 64, 3)), True),
                                       ("assisted", assisted_plan(truth, "assisted-liver-read.png"), False)):
            report = drive(settings, reader(f"bench.{mode}"), task_id, plan, out)
            read = saved_read(settings, protocol, task_id, report, study.labelmap.shape)
            results[mode] = noc(report, read, truth, spacing, cumulative) | {
                "interactions_by_kind": report["interactions"], "wall_s": report["seconds"]}
    if args.screenshot and (out / "assisted-liver-read.png").exists():
        args.screenshot.write_bytes((out / "assisted-liver-read.png").read_bytes())
    print(json.dumps({"benchmark": "annotate", "phantom": {"slices": args.slices, "size": args.size},
                      "target_dice": TARGET, **results,
                      **{f"ratio_{name}_noc90": ratio(results, name) for name in truth}}, indent=1))


if __name__ == "__main__":
    main()
