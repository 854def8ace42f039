"""What the Python path costs per attack iteration (a benchmark, not a timed test).

On one five-task PyTorch model (64² inputs, batch 8, CPU), in one run, per PGD iteration:
- mtrobust: ``mt.PGD(net, direction="gbmta")`` through the package (Rust core, GIL released for
  the backward, the module's forward re-entered from Rust);
- best plain PyTorch: the same loop written by hand with one backward of Σ_t L_t / L_t.detach()
  to the input only (``torch.autograd.grad``);
- the reference's way: T backwards per iteration (``loss_t.backward()`` for each task), each also
  computing the weights' gradients, then Σ_t grad_t / L_t.
Prints the ratios; BENCHMARKS.md has the numbers and the machine.

    .venv/bin/python python/bench/bench_python_path.py [--repeats 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import mtrobust as mt


class FiveTask(torch.nn.Module):
    def __init__(self, classes: int = 10, width: int = 48) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU())

        self.trunk = torch.nn.Sequential(block(3, width), block(width, width), block(width, width))
        self.heads = torch.nn.ModuleDict({k: torch.nn.Sequential(block(width, width), torch.nn.Conv2d(width, c, 1))
                                          for k, c in (("seg", classes), ("normal", 3), ("depth", 1), ("keypoints", 1), ("edges", 1))})  # fmt: skip

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {k: head(h) for k, head in self.heads.items()}


def losses(out: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per-sample losses [B] as the core computes them (all pixels valid here)."""
    seg = -out["seg"].log_softmax(1).gather(1, y["seg"].unsqueeze(1)).mean(dim=(1, 2, 3))
    cos = torch.nn.functional.cosine_similarity(out["normal"], y["normal"], dim=1)
    normal = (1 - cos).mean(dim=(1, 2))
    rest = [(out[k] - y[k]).abs().mean(dim=(1, 2, 3)) for k in ("depth", "keypoints", "edges")]
    return [seg, normal, *rest]


def pgd_best(model, x, y, eps, steps):
    alpha, x_adv = eps / steps, x.clone()
    for _ in range(steps):
        xr = x_adv.detach().requires_grad_(True)
        ls = losses(model(xr), y)
        (g,) = torch.autograd.grad(sum((l / l.detach()).sum() for l in ls), xr)
        x_adv = torch.minimum(torch.maximum(x_adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def pgd_reference(model, x, y, eps, steps):
    alpha, x_adv = eps / steps, x.clone()
    for _ in range(steps):
        xr = x_adv.detach().requires_grad_(True)
        ls = losses(model(xr), y)
        g = torch.zeros_like(x)
        for i, l in enumerate(ls):
            model.zero_grad()
            xr.grad = None
            l.mean().backward(retain_graph=i + 1 < len(ls))  # weights' gradients too, as the reference does
            g += xr.grad / l.detach().view(-1, 1, 1, 1)
        x_adv = torch.minimum(torch.maximum(x_adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def timed(f, repeats: int) -> float:
    f()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    torch.manual_seed(0)
    model = FiveTask().eval()
    g = torch.Generator().manual_seed(1)
    b, s = a.batch, a.size
    x = torch.rand(b, 3, s, s, generator=g)
    y = {"seg": torch.randint(0, 10, (b, s, s), generator=g), "normal": torch.randn(b, 3, s, s, generator=g),
         "depth": torch.rand(b, 1, s, s, generator=g), "keypoints": torch.rand(b, 1, s, s, generator=g),
         "edges": torch.rand(b, 1, s, s, generator=g)}  # fmt: skip
    tasks = {"seg": mt.Segmentation(classes=10), "normal": mt.Normal(), "depth": mt.Depth(), "keypoints": mt.Keypoints(), "edges": mt.Edges()}
    net = mt.wrap(model, tasks=tasks)
    attack = mt.PGD(net, eps=8 / 255, steps=a.steps, direction="gbmta")
    eps = 8 / 255
    rows = {
        "mtrobust (package)": timed(lambda: attack(x, y), a.repeats),
        "best plain PyTorch (1 backward, input only)": timed(lambda: pgd_best(model, x, y, eps, a.steps), a.repeats),
        "reference's way (T backwards, weight grads)": timed(lambda: pgd_reference(model, x, y, eps, a.steps), a.repeats),
    }
    load = os.getloadavg()[0]
    print(f"PGD-{a.steps} GB-MTA, five tasks, batch {b} × 3 × {s}², CPU, {torch.get_num_threads()} torch threads, nproc {os.cpu_count()}, load {load:.2f}")
    per_it = {k: v / a.steps * 1000 for k, v in rows.items()}
    for k, v in per_it.items():
        print(f"  {k:<46} {v:8.2f} ms/iteration")
    base = per_it["best plain PyTorch (1 backward, input only)"]
    print(f"  package / best plain PyTorch:     {per_it['mtrobust (package)'] / base:.3f}×  (target ≤ 1.05)")
    reference = per_it["reference's way (T backwards, weight grads)"]
    print(f"  reference's way / package:        {reference / per_it['mtrobust (package)']:.2f}×  (target ≥ 1.5)")


if __name__ == "__main__":
    main()
