"""Shared fixtures: a small five-task PyTorch model (with eval-mode batch norm), a batch of 32²
images with labels for every task, and the per-sample losses written in plain PyTorch, the
reference every known-answer test holds the package against."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mtrobust as mt

ROOT = Path(__file__).resolve().parents[2]
CLASSES = 5


class FiveTask(torch.nn.Module):
    """A shared trunk with batch norm and five 1×1 heads; outputs at half resolution for segmentation
    (so labels are resized to the output, as the core does)."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(
            torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.BatchNorm2d(12), torch.nn.ReLU(),
            torch.nn.Conv2d(12, 12, 3, padding=1), torch.nn.ReLU(),
        )  # fmt: skip
        self.seg = torch.nn.Conv2d(12, classes, 1)
        self.normal = torch.nn.Conv2d(12, 3, 1)
        self.depth = torch.nn.Conv2d(12, 1, 1)
        self.keypoints = torch.nn.Conv2d(12, 1, 1)
        self.edges = torch.nn.Conv2d(12, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {
            "seg": self.seg(torch.nn.functional.avg_pool2d(h, 2)),
            "normal": self.normal(h),
            "depth": self.depth(h),
            "keypoints": self.keypoints(h),
            "edges": self.edges(h),
        }


def make_model(seed: int = 0) -> FiveTask:
    torch.manual_seed(seed)
    m = FiveTask()
    # Non-trivial running statistics, so eval-mode batch norm is a real affine map.
    with torch.no_grad():
        m.trunk[1].running_mean.uniform_(-0.2, 0.2)
        m.trunk[1].running_var.uniform_(0.5, 1.5)
    return m.eval()


def tasks() -> dict[str, mt.Task]:
    return {"seg": mt.Segmentation(classes=CLASSES), "normal": mt.Normal(), "depth": mt.Depth(), "keypoints": mt.Keypoints(), "edges": mt.Edges()}


def make_batch(b: int = 4, size: int = 32, seed: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=g)
    seg = torch.randint(0, CLASSES, (b, size, size), generator=g)
    seg[:, :3, :3] = 255  # ignored
    normal = torch.randn(b, 3, size, size, generator=g)
    normal[:, :, -2:, -2:] = float("nan")  # ignored
    depth = torch.rand(b, 1, size, size, generator=g) * 5
    depth[:, :, 0, :4] = float("nan")
    keypoints = torch.rand(b, 1, size, size, generator=g) * 2 - 1
    edges = torch.rand(b, 1, size, size, generator=g) * 2 - 1
    return x, {"seg": seg, "normal": normal, "depth": depth, "keypoints": keypoints, "edges": edges}


def reference_losses(out: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample losses [B] in plain PyTorch: masked cross-entropy (labels nearest-resized to the
    output), 1 − cos for normals, masked L1 for the rest; each the mean over the sample's valid pixels."""

    def per_sample(num: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return num.sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp_min(1e-12)

    losses = {}
    z = out["seg"]
    lab = y["seg"].unsqueeze(1).float()
    lab = torch.nn.functional.interpolate(lab, size=z.shape[-2:], mode="nearest")
    valid = ((lab != 255) & (lab >= 0) & (lab < CLASSES)).float()
    lab = torch.where(valid > 0, lab, torch.zeros_like(lab)).long()
    nll = -z.log_softmax(1).gather(1, lab)
    losses["seg"] = per_sample(nll * valid, valid)
    n = y["normal"]
    valid = torch.isfinite(n).all(1, keepdim=True).float()
    n = torch.nan_to_num(n, nan=0.0)

    def unit(t: torch.Tensor) -> torch.Tensor:
        return t / t.norm(2, dim=1, keepdim=True).clamp_min(1e-12)

    cos = (unit(out["normal"]) * unit(n)).sum(1, keepdim=True)
    losses["normal"] = per_sample((1 - cos) * valid, valid)
    for k in ("depth", "keypoints", "edges"):
        t = y[k]
        valid = torch.isfinite(t).float()
        t = torch.nan_to_num(t, nan=0.0)
        losses[k] = per_sample((out[k] - t).abs() * valid, valid)
    return losses


@pytest.fixture
def model() -> FiveTask:
    return make_model()


@pytest.fixture
def net(model: FiveTask) -> mt.Net:
    return mt.wrap(model, tasks=tasks())


@pytest.fixture
def batch() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return make_batch()
