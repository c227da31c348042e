"""The trainable network, user-supplied model files and interactive assist (CPU, seeded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from ml_backend import classical, interactive, network
from ml_backend.trainer import load_checkpoint
from radlabel.adjudication.metrics import mask_agreement
from radlabel.errors import RadlabelError
from radlabel.phantom import make_ct_study


def liver_case(seed):
    study = make_ct_study(seed=seed, slices=48, size=192, pixel_spacing=2.0, slice_spacing=5.0)
    values = np.stack([ds.pixel_array * 1.0 - 1024 for ds in study.datasets])
    return study, values, (study.labelmap == 4).astype(np.int64)


def test_training_on_adjudicated_labels_beats_the_classical_prelabeller_on_held_out_studies():
    torch.set_num_threads(2)
    cases = [liver_case(seed) for seed in (11, 12, 13)]
    result = network.train([v for _, v, _ in cases], [t for *_, t in cases], classes=2, epochs=20, seed=0)
    assert result.losses[-1] < result.losses[0] / 2
    study, values, truth = liver_case(14)
    labels, confidence = network.infer(result.model, values)
    spacing = study.geometry.spacing
    learned = mask_agreement(labels == 1, truth == 1, spacing, 5.0).dice
    threshold, _ = classical.organ_threshold(values, 45, 120)
    baseline = mask_agreement(threshold, truth == 1, spacing, 5.0).dice
    assert learned > 0.8 and learned > baseline + 0.1, (learned, baseline)
    assert confidence.shape == values.shape and 0 < confidence.mean() <= 1


def test_user_models_load_from_torchscript_or_state_dict_and_bad_files_say_so(tmp_path):
    model = network.TinyUNet3D(3).eval()
    volume = np.random.default_rng(0).normal(0, 300, (8, 32, 32)).astype(np.float32)
    expected, _ = network.infer(model, volume)
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    for name in ("scripted.pt", "weights.pt"):
        loaded, _ = load_checkpoint(tmp_path / name)
        assert np.array_equal(network.infer(loaded, volume)[0], expected), name
    (tmp_path / "corrupt.pt").write_bytes(b"not a model at all")
    with pytest.raises(RadlabelError, match="corrupt.pt cannot be loaded"):
        load_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"layer.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(RadlabelError, match="not a radlabel TinyUNet3D state dict"):
        load_checkpoint(tmp_path / "other.pt")


def test_a_click_on_one_slice_segments_the_lesion_in_3d():
    study = make_ct_study(seed=2, slices=40, size=256, pixel_spacing=1.6)
    values = np.stack([ds.pixel_array * 1.0 - 1024 for ds in study.datasets])
    for lesion in study.lesions:
        k, j, i = np.round(study.geometry.lps_to_index(lesion.centre_lps)).astype(int)
        click = {"result": [{"type": "keypointlabels", "item_index": int(k),
                             "value": {"x": i * 100 / 256, "y": j * 100 / 256, "keypointlabels": [lesion.label]}}]}
        grown = interactive.from_context(values, study.geometry.spacing, click)[lesion.label]
        components, _ = ndimage.label(study.labelmap == (6 if lesion.label == "liver_lesion" else 7))
        truth = components == components[k, j, i]
        assert mask_agreement(grown, truth, study.geometry.spacing, 2.0).dice > 0.9
        assert np.count_nonzero(grown.reshape(grown.shape[0], -1).any(1)) >= 3  # through neighbouring slices
