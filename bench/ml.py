"""ML backend: inference time per 512x512x300 CT on this machine's CPU (GPU when torch sees one),
and quality (Dice) of each model against known truth and the shared real CT's reference.

Ratios: the trained network's liver Dice over the classical HU-window baseline on held-out
synthetic studies; classical lung pre-labelling time vs the network's inference time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed  # noqa: E402

from connectors.samples import SHARED_CT  # noqa: E402
from ml_backend import classical, network  # noqa: E402
from radlabel.adjudication.metrics import mask_agreement  # noqa: E402
from radlabel.dicom_files import read_dicom_files, repair_missing_uids  # noqa: E402
from radlabel.geometry import labelmap_from_nifti  # noqa: E402
from radlabel.ingest.series import frame_pixels, geometry_of  # noqa: E402
from radlabel.ingest.validate import validate_series  # noqa: E402
from radlabel.phantom import make_ct_study  # noqa: E402


def hu(study):
    return np.stack([ds.pixel_array * 1.0 - 1024 for ds in study.datasets])


def main() -> None:
    torch.set_num_threads(2)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    big = make_ct_study(seed=21, slices=300)
    values = hu(big)
    spacing = big.geometry.spacing
    lung_s = timed(lambda: classical.lungs(values))
    lungs, _ = classical.lungs(values)
    bone, _ = classical.bone(values)

    cases = [make_ct_study(seed=s, slices=48, size=192, pixel_spacing=2.0, slice_spacing=5.0) for s in (11, 12, 13, 14)]
    trained = network.train([hu(c) for c in cases[:3]], [(c.labelmap == 4).astype(np.int64) for c in cases[:3]],
                            classes=2, epochs=30, device=device)
    model = trained.model
    net_s = timed(lambda: network.infer(model, values))
    held = cases[3]
    learned = mask_agreement(network.infer(model, hu(held))[0] == 1, held.labelmap == 4, held.geometry.spacing, 5).dice
    baseline = mask_agreement(classical.organ_threshold(hu(held), 45, 120)[0], held.labelmap == 4,
                              held.geometry.spacing, 5).dice

    datasets = read_dicom_files([SHARED_CT / "dicom"])
    repair_missing_uids(datasets)
    _, frames = validate_series(datasets)
    geometry = geometry_of(frames)
    real = np.stack([frame_pixels(f) for f in frames])
    reference = labelmap_from_nifti(nib.load(str(SHARED_CT / "reference_seg.nii.gz")), geometry)
    names = {int(k): v["name"] for k, v in json.loads((SHARED_CT / "labels.json").read_text())["labels"].items()}
    bones = np.isin(reference, [k for k, n in names.items() if n.startswith(("vertebrae", "rib", "humerus"))])
    real_bone = classical.bone(real)[0]

    result = {
        "benchmark": "ml_backend", "device": device, "volume": "512x512x300",
        "classical_lungs_s": round(lung_s, 2), "network_inference_s": round(net_s, 2),
        "network_over_classical_time": round(net_s / lung_s, 2),
        "dice_classical_lung_vs_truth": round(mask_agreement(lungs, big.labelmap == 3, spacing, 2).dice, 4),
        "dice_classical_bone_vs_truth": round(mask_agreement(bone, big.labelmap == 5, spacing, 2).dice, 4),
        "dice_trained_liver_held_out": round(learned, 4),
        "dice_classical_liver_window_held_out": round(baseline, 4),
        "trained_over_classical_dice": round(learned / max(baseline, 1e-6), 2),
        "dice_classical_bone_vs_reference_bones_real_ct": round(mask_agreement(real_bone, bones, geometry.spacing, 2).dice, 4),
    }
    print(json.dumps(result))
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ml_backend.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
