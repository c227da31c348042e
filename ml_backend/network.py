"""A small 3-D U-Net in torch, trained by the backend on a project's own adjudicated labels.

Small on purpose: it trains on CPU in minutes on a handful of volumes (there are no pretrained CT
weights to be had offline). Volumes are resampled to a fixed grid for the network and the
probabilities back to the task's grid. The same input contract holds for user-supplied models:
input ``(1, 1, 32, 96, 96)`` float32, HU clipped to [-1000, 1000] and divided by 1000 (other
modalities: z-scored); output logits ``(1, C, 32, 96, 96)``, channel 0 background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GRID = (32, 96, 96)


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(inputs, outputs, 3, padding=1), nn.InstanceNorm3d(outputs), nn.LeakyReLU(0.1),
                         nn.Conv3d(outputs, outputs, 3, padding=1), nn.InstanceNorm3d(outputs), nn.LeakyReLU(0.1))


class TinyUNet3D(nn.Module):
    def __init__(self, classes: int, width: int = 8):
        super().__init__()
        self.down1 = _block(1, width)
        self.down2 = _block(width, width * 2)
        self.bottom = _block(width * 2, width * 4)
        self.up2 = _block(width * 4 + width * 2, width * 2)
        self.up1 = _block(width * 2 + width, width)
        self.out = nn.Conv3d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool3d(d1, 2))
        b = self.bottom(F.max_pool3d(d2, 2))
        u2 = self.up2(torch.cat([F.interpolate(b, size=d2.shape[2:], mode="trilinear", align_corners=False), d2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=d1.shape[2:], mode="trilinear", align_corners=False), d1], 1))
        return self.out(u1)


def preprocess(values: np.ndarray, modality: str = "CT") -> torch.Tensor:
    volume = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    if modality == "CT":
        volume = volume.clamp(-1000, 1000) / 1000
    else:
        volume = (volume - volume.mean()) / (volume.std() + 1e-6)
    return F.interpolate(volume, size=GRID, mode="trilinear", align_corners=False)


def resize_labels(labels: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(labels.astype(np.int64))[None, None].float()
    return F.interpolate(tensor, size=GRID, mode="nearest")[0, 0].long()


@dataclass
class TrainingResult:
    model: TinyUNet3D
    losses: list[float]


def train(volumes: list[np.ndarray], labels: list[np.ndarray], classes: int, epochs: int = 40, seed: int = 0,
          modality: str = "CT", device: str | None = None) -> TrainingResult:
    """Fit a fresh network; ``labels`` hold class indices (0 background) on each volume's grid."""
    torch.manual_seed(seed)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = TinyUNet3D(classes).to(device)
    inputs = [preprocess(v, modality).to(device) for v in volumes]
    targets = [resize_labels(t)[None].to(device) for t in labels]
    counts = torch.bincount(torch.cat([t.flatten() for t in targets]), minlength=classes).float()
    weights = (counts.sum() / (counts + 1)).clamp(max=50.0)  # small structures count
    loss_fn = nn.CrossEntropyLoss(weight=(weights / weights.mean()).to(device))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    generator = np.random.default_rng(seed)
    for _ in range(epochs):
        total = 0.0
        for index in generator.permutation(len(inputs)):
            optimiser.zero_grad()
            loss = loss_fn(model(inputs[index]), targets[index])
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / len(inputs))
    return TrainingResult(model.eval(), losses)


@torch.no_grad()
def infer(model: nn.Module, values: np.ndarray, modality: str = "CT") -> tuple[np.ndarray, np.ndarray]:
    """(label indices, max probability) on the volume's own grid."""
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else "cpu"
    logits = model(preprocess(values, modality).to(device))
    logits = F.interpolate(logits, size=values.shape, mode="trilinear", align_corners=False)
    probabilities = torch.softmax(logits, 1)[0]
    confidence, labels = probabilities.max(0)
    return labels.cpu().numpy(), confidence.cpu().numpy()
