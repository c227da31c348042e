"""The protocol-driven pre-labeller: each class gets the model its template names under ``ml.prelabel``.

``{model: classical, method: lung_threshold}`` and friends run the HU methods of
:mod:`ml_backend.classical`; ``method: nodule_candidates`` / ``lesion_candidates`` take ``inside:``
another class's prediction; ``{model: trained}`` uses the latest network trained on the project's
final labels (none yet: left to readers); ``{model: user, path: FILE, output: N}`` runs a
user-supplied TorchScript or state-dict file and takes its output channel N. With a click or box
in the request context (Label Studio's interactive annotating), the answer is one 3-D region
grown from it instead.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import numpy as np

from connectors.projects import load_provisioned
from connectors.wiring import Adapters
from ml_backend import classical, interactive, network
from ml_backend.trainer import Trainer, load_checkpoint, trained_classes
from ml_backend.model import Model, Prediction
from ml_backend.validation import PredictionError, check, controls_of
from ml_backend.volumes import VolumeSource
from radlabel.audit import audit_log
from radlabel.brush_rle import mask_regions
from radlabel.errors import RadlabelError
from radlabel.protocol.labelconfig import class_targets
from radlabel.protocol.enum import Geometry
from radlabel.settings import Settings

log = logging.getLogger("radlabel.ml")
PROTOCOL_IN_HEADER = re.compile(r"\(protocol ([a-z][a-z0-9_]*) (\d+\.\d+\.\d+)\)")


class ProtocolPrelabeller(Model):
    version = "radlabel-classical-1"

    def __init__(self, settings: Settings, adapters: Adapters | None = None):
        self.settings = settings
        self.adapters = adapters or Adapters(settings)
        self.volumes = VolumeSource(self.adapters.research_archive)

    def protocol_for(self, label_config: str):
        found = PROTOCOL_IN_HEADER.search(label_config or "")
        if not found:
            raise PredictionError("the label config was not generated from a radlabel protocol")
        return load_provisioned(self.settings, found[1])

    def predict_one(self, task: dict, label_config: str) -> Prediction:
        protocol = self.protocol_for(label_config)
        plan = (protocol.ml or {}).get("prelabel", {})
        if not any((cls := protocol.label_class(name)) and Geometry.MASK in cls.geometry for name in plan):
            return Prediction([], 0.0, self.version, offered=False)  # no model for any class: no prediction tab
        volume = self.volumes.load(task.get("data") or {})
        masks: dict[str, np.ndarray] = {}
        scores = []
        versions = [self.version]
        for name, spec in plan.items():
            cls = protocol.label_class(name)
            if cls is None or Geometry.MASK not in cls.geometry:
                continue
            model, method = spec.get("model"), spec.get("method")
            if model == "classical" and method in classical.METHODS:
                mask, score = classical.METHODS[method](volume.values)
            elif model == "classical" and method in ("nodule_candidates", "lesion_candidates") and spec.get("inside") in masks:
                mask, score = getattr(classical, method)(volume.values, masks[spec["inside"]], volume.spacing)
            elif model in ("trained", "user"):
                found = self._network(protocol, name, spec)
                if found is None:
                    continue
                net, channel, version = found
                labels, confidence = network.infer(net, volume.values, volume.modality)
                mask = labels == channel
                score = float(confidence[mask].mean()) if mask.any() else 0.0
                versions.append(version)
            else:
                continue
            masks[name] = mask
            scores.append(score)
        result = mask_regions({k: v for k, v in masks.items() if v.any()},
                              targets=class_targets(protocol, Geometry.MASK))
        check(result, controls_of(label_config), len(task["data"].get("images", [])))
        prediction = Prediction(result, round(float(np.mean(scores)) if scores else 0.0, 4), "+".join(dict.fromkeys(versions)))
        audit_log(self.settings).append("prediction", prediction.model_version, f"{protocol.id} {protocol.version}",
                                        task=task.get("id"), regions=len(result), score=prediction.score)
        return prediction

    def _network(self, protocol, name: str, spec: dict):
        """(model, output channel, version) for a class, or None when there is none yet."""
        if spec.get("model") == "user":
            path = Path(spec.get("path", ""))
            if not path.is_absolute():
                path = self.settings.home / "models" / path
            net, _ = load_checkpoint(path)  # a bad file is a clear error for this task, not a crash
            return net, int(spec.get("output", 1)), f"user:{path.name}"
        trainer = Trainer(self.settings, protocol, self.volumes, self.adapters)
        latest = trainer.latest()
        if latest is None:
            return None
        net, meta = latest
        return net, meta["classes"].index(name) + 1, f"radlabel-unet-{protocol.id}-v{meta['version']}"

    def fit(self, event: str, payload: dict) -> dict:
        """Annotation events may bring new final labels: train in the background when there are enough."""
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            return {"status": "ignored", "event": event}
        from connectors.projects import MARKER

        description = str((payload.get("project") or {}).get("description") or "")
        marker = MARKER.search(description)
        if not marker:
            return {"status": "ignored", "reason": "not a radlabel protocol project"}
        protocol = load_provisioned(self.settings, marker["id"])
        if not trained_classes(protocol):
            return {"status": "ignored", "reason": "the protocol trains no model"}
        threading.Thread(target=self._train_quietly, args=(protocol,), daemon=True).start()
        return {"status": "training scheduled", "protocol": protocol.id}

    def _train_quietly(self, protocol) -> None:
        try:
            path = Trainer(self.settings, protocol, self.volumes, self.adapters).train()
            if path:
                log.warning("trained %s", path.name)
        except Exception as exc:
            log.warning("training %s failed: %s", protocol.id, exc.__class__.__name__)

    def predict(self, tasks: list[dict], label_config: str, context: dict | None = None) -> list[Prediction]:
        if context and context.get("result"):
            return [self.safe_predict(task, label_config, context) for task in tasks]
        return [self.safe_predict(task, label_config) for task in tasks]

    def assist(self, task: dict, label_config: str, context: dict) -> Prediction:
        """Interactive: the reader's click or box grown into a 3-D mask of that class."""
        volume = self.volumes.load(task.get("data") or {})
        masks = {k: v for k, v in interactive.from_context(volume.values, volume.spacing, context).items() if v.any()}
        result = mask_regions(masks, targets=class_targets(self.protocol_for(label_config), Geometry.MASK))
        check(result, controls_of(label_config), len(task["data"].get("images", [])))
        return Prediction(result, 1.0 if result else 0.0, f"{self.version}-assist")

    def safe_predict(self, task: dict, label_config: str, context: dict | None = None) -> Prediction:
        """One task's prediction; a task that cannot be predicted gets an empty one and a log line."""
        try:
            return self.assist(task, label_config, context) if context else self.predict_one(task, label_config)
        except (RadlabelError, PredictionError) as exc:
            log.warning("task %s: no prediction: %s", task.get("id"), exc)
        except Exception as exc:  # a model failure must not take the backend down
            log.warning("task %s: no prediction: %s", task.get("id"), exc.__class__.__name__)
        return Prediction([], 0.0, self.version)
