"""Learning from adjudicated labels: consensus annotations → a network per protocol, versioned.

The training set is every task of the protocol's project that has a final (ground-truth)
annotation; the volumes come from Orthanc. A new checkpoint is trained when enough new final
labels exist; each is kept as ``models/<protocol>/v<N>.pt`` with what it was trained on, and every
prediction names the checkpoint it came from.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import torch

from connectors.label_studio import as_dict, label_studio_errors
from connectors.projects import find_protocol_project
from connectors.wiring import Adapters
from ml_backend import network
from ml_backend.volumes import VolumeSource
from radlabel.adjudication.reads import read_from_annotation
from radlabel.errors import RadlabelError
from radlabel.protocol.enum import Geometry
from radlabel.protocol.template import Protocol
from radlabel.settings import Settings

MIN_NEW_LABELS = 2
_training = threading.Lock()


def trained_classes(protocol: Protocol) -> list[str]:
    plan = (protocol.ml or {}).get("prelabel", {})
    return [name for name, spec in plan.items()
            if spec.get("model") == "trained" and (c := protocol.label_class(name)) and Geometry.MASK in c.geometry]


class Trainer:
    def __init__(self, settings: Settings, protocol: Protocol, volumes: VolumeSource | None = None,
                 adapters: Adapters | None = None):
        adapters = adapters or Adapters(settings)
        self.settings = settings
        self.protocol = protocol
        self.folder = settings.home / "models" / protocol.id
        self.adapters = adapters
        self.volumes = volumes or VolumeSource(adapters.research_archive)

    # -- checkpoints ----------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        return sorted(self.folder.glob("v*.pt"), key=lambda p: int(p.stem[1:]))

    def latest(self) -> tuple[torch.nn.Module, dict] | None:
        found = self.checkpoints()
        return load_checkpoint(found[-1]) if found else None

    # -- data ---------------------------------------------------------------------------
    def collect(self) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
        ls = self.adapters.label_studio
        project, _ = find_protocol_project(ls, self.protocol.id)
        if project is None:
            raise RadlabelError(f"protocol {self.protocol.id} has no project to learn from.")
        classes = trained_classes(self.protocol)
        volumes, labels, tasks = [], [], []
        with label_studio_errors("collect the final labels"):
            for task in ls.tasks.list(project=project.id, fields="all", page_size=100):
                final = [as_dict(a) for a in (task.annotations or [])]
                final = [a for a in final if a.get("ground_truth") and not a.get("was_cancelled")]
                if not final:
                    continue
                volume = self.volumes.load(task.data)
                read = read_from_annotation(final[-1], self.protocol, volume.values.shape)
                target = np.zeros(volume.values.shape, np.int64)
                for number, name in enumerate(classes, 1):
                    target[read.masks[name]] = number
                volumes.append(volume.values)
                labels.append(target)
                tasks.append(task.id)
        return volumes, labels, tasks

    def train(self, force: bool = False, epochs: int = 30) -> Path | None:
        """Train a new checkpoint when enough new final labels exist (or when forced)."""
        if not trained_classes(self.protocol):
            return None
        with _training:
            volumes, labels, tasks = self.collect()
            previous = self.checkpoints()
            seen = set(json.loads(previous[-1].with_suffix(".json").read_text())["tasks"]) if previous else set()
            if not volumes or (not force and len(set(tasks) - seen) < MIN_NEW_LABELS):
                return None
            result = network.train(volumes, labels, len(trained_classes(self.protocol)) + 1, epochs=epochs)
            self.folder.mkdir(parents=True, exist_ok=True)
            version = len(previous) + 1
            path = self.folder / f"v{version}.pt"
            meta = {"protocol": self.protocol.id, "protocol_version": self.protocol.version, "version": version,
                    "classes": trained_classes(self.protocol), "tasks": tasks, "final_loss": result.losses[-1],
                    "trained_at": time.time()}
            torch.save({"state_dict": result.model.state_dict(), "meta": meta}, path.with_suffix(".partial"))
            path.with_suffix(".partial").replace(path)
            path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
            return path


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict]:
    """Our checkpoint (state dict + meta), a user's TorchScript file, or a user's state dict."""
    try:
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), {"format": "torchscript"}
        except RuntimeError:
            saved = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RadlabelError(f"model file {path} cannot be loaded ({exc.__class__.__name__}): "
                            "give a TorchScript file or a state dict saved with torch.save.") from None
    if isinstance(saved, dict) and "state_dict" in saved:
        state, meta = saved["state_dict"], dict(saved.get("meta") or {})
    elif isinstance(saved, dict):
        state, meta = saved, {"format": "state_dict"}
    else:
        raise RadlabelError(f"model file {path} holds a {type(saved).__name__}, not a state dict or TorchScript.")
    classes = state.get("out.weight")
    if classes is None:
        raise RadlabelError(f"model file {path} is not a radlabel TinyUNet3D state dict (no 'out.weight').")
    model = network.TinyUNet3D(int(classes.shape[0]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RadlabelError(f"model file {path} does not fit TinyUNet3D ({str(exc).splitlines()[0][:120]}).") from None
    return model.eval(), meta
