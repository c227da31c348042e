"""The protocol's face_risk decides what happens to a head series that may show a face: hold, deface, flag."""

from __future__ import annotations

import pytest

from radlabel.ingest.deid import DeidReport, Deidentifier
from radlabel.ingest.release import prepare_series
from radlabel.protocol.content import Deidentification
from radlabel.protocol.enum import DeidentificationOption as Option
from tests.unit.test_burned_in_real import _head_with_a_face, _skin


def _release(options: list, policy: str):
    study = _head_with_a_face()
    names = [f"head/{i}" for i in range(len(study.datasets))]
    return study, prepare_series(Deidentifier(bytes(32), options), study.datasets, names, DeidReport(), True, policy)


def test_deface_removes_the_face_and_releases_the_series():
    import numpy as np

    study, release = _release([Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES], "deface")
    assert release.face["defaced"] and not release.is_held
    before = np.stack([ds.pixel_array for ds in study.datasets])
    after = np.stack([copy.pixel_array for _, copy in release.copies])
    face = (slice(0, 22), slice(0, 24), slice(None))  # the test's own face region (see test_burned_in_real)
    assert _skin(after)[face].sum() < 0.1 * _skin(before)[face].sum()


def test_hold_holds_even_where_the_option_could_deface():
    study, release = _release([Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES], "hold")
    assert release.is_held and "face_risk: hold" in release.held[0]["reason"] and "defaced" not in release.face
    assert release.held[0]["file"] == "head/0"


def test_flag_without_the_option_releases_the_face_flagged():
    _, release = _release([], "flag")
    assert not release.is_held and release.face["risk"] and "defaced" not in release.face


def test_a_template_that_defaces_must_record_the_option():
    with pytest.raises(ValueError, match="clean_recognizable_visual_features"):
        Deidentification(face_risk="deface")
    assert Deidentification(face_risk="deface", options=[Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES]).face_risk == "deface"


def test_the_shipped_mr_brain_template_defaces():
    from pathlib import Path

    from radlabel.protocol import load_template

    template = load_template(Path(__file__).resolve().parents[2] / "protocol_templates" / "mr-brain-tumour.yaml")
    assert template.deidentification.face_risk == "deface"
