"""Fixtures for tests/it/torchscript.rs: two tiny multi-task TorchScript modules, their mtrobust model
specs' ground truth, a fixed input, the outputs and the input gradient of a fixed linear loss.

- dict.pt: torch.jit.script of a module returning a dict {"segmentation", "normals", "depth"}; it
  expects R,G,B pixels scaled to 0..1 and normalised with the ImageNet mean and std.
- tuple.pt: torch.jit.trace of a module returning a tuple (depth, segmentation); it expects B,G,R
  pixels on the 0..255 scale minus a mean of its own, divided by 58.
- masked.pt: torch.jit.script of a gradient-masked two-task module (segmentation, depth) for
  tests/it/torchscript.rs: it quantises its 0..255 B,G,R input to steps of 16 grey levels with torch.round,
  whose derivative is zero, so every input gradient is exactly 0 while the outputs still change
  when a pixel crosses a step (no _io file: the script checks both properties itself).

The input `x` is in mtrobust's input space (B,G,R pixels minus the reference means, docs/REFERENCE.md
§1.2), as the data loaders produce it; the conversion to each module's input is written out here
independently of the Rust code, so the test checks it too. The loss is sum(output · w) over tasks.

Usage: python tests/fixtures_torchscript.py OUT_DIR
Writes OUT_DIR/{dict,tuple}.pt and OUT_DIR/{dict,tuple}_io.pt (x, out.<task>, w.<task>, loss, grad),
OUT_DIR/masked.pt, and OUT_DIR/later_{raises,reshapes}.pt: modules that fail, or change an output's
shape, on a later batch of 3 samples only (spec: later.toml).
"""
import os
import sys
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

REFERENCE_BGR_MEAN = [104.00698793, 116.66876762, 122.67891434]


class Trunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)

    def forward(self, x):
        h = F.relu(self.bn(self.conv1(x)))
        return torch.tanh(self.conv2(h)) + h


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = Trunk()
        self.seg = nn.Conv2d(8, 10, 1)
        self.normal = nn.Conv2d(8, 3, 3, padding=1)
        self.depth = nn.Conv2d(8, 1, 1)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {"segmentation": self.seg(h), "normals": self.normal(h), "depth": F.softplus(self.depth(h))}


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = Trunk()
        self.seg = nn.Conv2d(8, 5, 1)
        self.depth = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        # Full-resolution segmentation, half-resolution depth: outputs need not share a size.
        seg = F.interpolate(self.seg(h), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.depth(h), seg


class MaskedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.seg = nn.Conv2d(8, 4, 1)
        self.depth = nn.Conv2d(8, 1, 1)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        # Quantisation as a (broken) defence: round's derivative is 0, so no gradient reaches x.
        q = torch.round(x / 16.0) * (16.0 / 255.0)
        h = torch.tanh(self.conv2(F.relu(self.conv1(q))))
        return {"segmentation": self.seg(h), "depth": F.softplus(self.depth(h))}


class BatchThreeNet(nn.Module):
    """A module that works on the batch sizes a first check sees (the first batch, one sample) and
    fails on a later batch of exactly 3 samples: by raising (`mode` 0) or by returning a depth map
    of 2 channels instead of 1 (`mode` 1)."""

    def __init__(self, mode: int):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.seg = nn.Conv2d(8, 10, 1)
        self.depth = nn.Conv2d(8, 1, 1)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        h = torch.tanh(self.conv(x / 255.0))
        depth = F.softplus(self.depth(h))
        if x.size(0) == 3:
            if self.mode == 0:
                raise RuntimeError("this module refuses batches of 3")
            depth = torch.cat([depth, depth], 1)
        return {"segmentation": self.seg(h), "depth": depth}


class HungryNet(BatchThreeNet):
    """A module that runs out of memory on an attack's batch of 4 or more: with autograd on (an
    attack's forward, not the clean pass) it asks for 2^46 floats per sample, 256 TiB, more than any
    address space holds, so the allocation fails at once on every machine and touches nothing.
    Batches of 1–3 work, as a smaller --batch-size would. (BatchThreeNet's layers, its own forward.)"""

    def __init__(self):
        super().__init__(mode=0)

    def forward(self, x) -> Dict[str, torch.Tensor]:
        h = torch.tanh(self.conv(x / 255.0))
        depth = F.softplus(self.depth(h))
        if x.requires_grad and x.size(0) >= 4:
            scratch = torch.zeros([x.size(0), 1 << 46])
            depth = depth + scratch[:, :1].sum()
        return {"segmentation": self.seg(h), "depth": depth}


def save_masked(path, gen):
    net = torch.jit.script(randomise(MaskedNet(), gen))
    # The module input is B,G,R pixels in 0..255 (spec: bgr, pixel_range 255, no mean or std).
    x = (torch.rand((2, 3, 16, 16), generator=gen) * 255.0).requires_grad_(True)
    out = net(x)
    loss = out["segmentation"].square().sum() + out["depth"].sum()
    (grad,) = torch.autograd.grad(loss, [x])
    assert grad.abs().max().item() == 0.0, "the gradient is masked"
    moved = net((x + 8.0).clamp(0.0, 255.0))
    assert (moved["depth"] - out["depth"]).abs().max().item() > 1e-3, "the outputs still depend on the input"
    net.save(path)


def randomise(m, gen):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.running_mean.copy_(torch.randn(b.running_mean.shape, generator=gen) * 0.1)
                b.running_var.copy_(torch.rand(b.running_var.shape, generator=gen) + 0.5)
    return m.eval()


def to_module_input(x, order, scale, mean, std):
    """mtrobust's input space → the module's: pixels, channel order, scale, mean, std."""
    pixels = x + torch.tensor(REFERENCE_BGR_MEAN).view(1, 3, 1, 1)
    if order == "rgb":
        pixels = pixels.flip(1)
    return (pixels * (scale / 255.0) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def save_io(module, convert, keys, path, gen):
    pixels = torch.randint(0, 256, (2, 3, 16, 16), generator=gen).float()
    x = (pixels - torch.tensor(REFERENCE_BGR_MEAN).view(1, 3, 1, 1)).requires_grad_(True)
    outputs = module(convert(x))
    io = {"x": x.detach().clone()}
    loss = torch.zeros(())
    for task, key in keys.items():
        y = outputs[key]
        w = torch.randn(y.shape, generator=gen)
        io[f"out.{task}"] = y.detach().clone()
        io[f"w.{task}"] = w
        loss = loss + (y * w).sum()
    io["loss"] = loss.detach().clone()
    (io["grad"],) = torch.autograd.grad(loss, [x])
    torch.save(io, path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(10)
    torch.manual_seed(10)

    dict_net = torch.jit.script(randomise(DictNet(), gen))
    dict_net.save(os.path.join(out, "dict.pt"))
    imagenet = ("rgb", 1.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    keys = {"segment_semantic": "segmentation", "normal": "normals", "depth_zbuffer": "depth"}
    save_io(dict_net, lambda x: to_module_input(x, *imagenet), keys, os.path.join(out, "dict_io.pt"), gen)

    tuple_net = randomise(TupleNet(), gen)
    traced = torch.jit.trace(tuple_net, torch.zeros(1, 3, 16, 16))
    traced.save(os.path.join(out, "tuple.pt"))
    own = ("bgr", 255.0, [100.0, 110.0, 120.0], [58.0, 58.0, 58.0])
    save_io(traced, lambda x: to_module_input(x, *own), {"segment_semantic": 1, "depth_zbuffer": 0},
            os.path.join(out, "tuple_io.pt"), gen)

    save_masked(os.path.join(out, "masked.pt"), torch.Generator().manual_seed(20))
    for mode, name in [(0, "later_raises.pt"), (1, "later_reshapes.pt")]:
        torch.jit.script(randomise(BatchThreeNet(mode), torch.Generator().manual_seed(21))).save(os.path.join(out, name))
    torch.jit.script(randomise(HungryNet(), torch.Generator().manual_seed(22))).save(os.path.join(out, "hungry.pt"))


if __name__ == "__main__":
    main()
