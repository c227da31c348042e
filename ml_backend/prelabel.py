"""The protocol-driven pre-labeller: each class gets the model its template names under ``ml.prelabel``.

``{model: classical, method: lung_threshold}`` and friends run the HU methods of
:mod:`ml_backend.classical`; ``method: nodule_candidates`` / ``lesion_candidates`` take ``inside:``
another class's prediction. Classes whose model is not available here are left to readers.
"""

from __future__ import annotations

import logging
import re

import numpy as np

from connectors.provision import load_provisioned
from ml_backend import classical
from ml_backend.model import Model, Prediction
from ml_backend.validation import PredictionError, check, controls_of
from ml_backend.volumes import VolumeSource
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.protocol.labelconfig import IMAGE, REGION_CONTROLS
from radlabel.protocol.enum import Geometry
from radlabel.settings import Settings

log = logging.getLogger("radlabel.ml")
PROTOCOL_IN_HEADER = re.compile(r"\(protocol ([a-z][a-z0-9_]*) (\d+\.\d+\.\d+)\)")


class ProtocolPrelabeller(Model):
    version = "radlabel-classical-1"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.volumes = VolumeSource(settings)

    def protocol_for(self, label_config: str):
        found = PROTOCOL_IN_HEADER.search(label_config or "")
        if not found:
            raise PredictionError("the label config was not generated from a radlabel protocol")
        return load_provisioned(self.settings, found[1])

    def predict_one(self, task: dict, label_config: str) -> Prediction:
        protocol = self.protocol_for(label_config)
        plan = (protocol.ml or {}).get("prelabel", {})
        volume = self.volumes.load(task.get("data") or {})
        masks: dict[str, np.ndarray] = {}
        scores = []
        for name, spec in plan.items():
            cls = protocol.label_class(name)
            if cls is None or Geometry.MASK not in cls.geometry or spec.get("model") != "classical":
                continue
            method = spec.get("method")
            if method in classical.METHODS:
                mask, score = classical.METHODS[method](volume.values)
            elif method in ("nodule_candidates", "lesion_candidates") and spec.get("inside") in masks:
                mask, score = getattr(classical, method)(volume.values, masks[spec["inside"]], volume.spacing)
            else:
                continue
            masks[name] = mask
            scores.append(score)
        result = mask_regions({k: v for k, v in masks.items() if v.any()}, REGION_CONTROLS[Geometry.MASK][1], IMAGE)
        check(result, controls_of(label_config), len(task["data"].get("images", [])))
        return Prediction(result, round(float(np.mean(scores)) if scores else 0.0, 4), self.version)

    def predict(self, tasks: list[dict], label_config: str, context: dict | None = None) -> list[Prediction]:
        return [self.safe_predict(task, label_config) for task in tasks]

    def safe_predict(self, task: dict, label_config: str) -> Prediction:
        """One task's prediction; a task that cannot be predicted gets an empty one and a log line."""
        try:
            return self.predict_one(task, label_config)
        except (RadlabelError, PredictionError) as exc:
            log.warning("task %s: no prediction: %s", task.get("id"), exc)
        except Exception as exc:  # a model failure must not take the backend down
            log.warning("task %s: no prediction: %s", task.get("id"), exc.__class__.__name__)
        return Prediction([], 0.0, self.version)
