"""What the Python path costs per attack iteration (a benchmark, not a timed test).

PGD GB-MTA on CPU, per iteration, every row in a fresh process of its own (the heap a row leaves
behind changes the next row's page faults by up to 2×, see BENCHMARKS.md), all rows in one run:

1. A five-task PyTorch model (batch 8 × 3 × 64²), whole PGD-k attacks divided by k:
   - mtrobust: ``mt.PGD(net, direction="gbmta")`` through the package (Rust core, GIL released for
     the backward, the module's forward re-entered from Rust);
   - best plain PyTorch: the loop written by hand with one backward of Σ_t L_t / L_t.detach() to
     the input only (``torch.autograd.grad``);
   - the reference's way: T backwards per iteration (``loss_t.backward()`` for each task), each
     also computing the weights' gradients, then Σ_t grad_t / L_t.
2. The Python path against the Rust-native one on the same network, each timed as
   (t(1 + k iterations) − t(1)) / k so that set-up and the clean pass cancel:
   - a TreeMTL Deeplab-ResNet34 (MTSeqModel keys, two tasks, built in PyTorch by
     ``tests/fixtures_treemtl.py``): the PyTorch module through the package and in a plain loop,
     vs its checkpoint imported with ``mtrobust import treemtl`` and timed by
     ``mtrobust bench --model`` (Rust, no Python);
   - the five-task model traced to TorchScript, one file: ``mt.wrap(torch.jit.load(...))`` and a
     plain loop on the loaded module, vs ``mtrobust bench --model five.pt --model-spec five.toml``.

With ``--allocator fixed`` every process runs with glibc's trimming off (``MALLOC_TRIM_THRESHOLD_``
1 GiB, ``MALLOC_MMAP_THRESHOLD_`` 32 MiB): the rows then time the work without the page faults that
glibc's default (returning the heap's top to the system as soon as it is free) adds by chance.
Denormals are flushed to zero throughout (as ``mtrobust bench`` does by default: the random
weights' losses push GB-MTA's 1/L-scaled gradients into the slow denormal range).
Prints the ratios; BENCHMARKS.md has the numbers and the machine.

    .venv/bin/python python/bench/bench_python_path.py [--repeats 5] [--steps 10] [--mtrobust target/release/mtrobust]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import torch

import mtrobust as mt

ROOT = pathlib.Path(__file__).resolve().parents[2]
EPS = 8 / 255
TREEMTL_LAYOUT = "[[{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}], [{0, 1}]]"
SPEC = """[input]
channel_order = "rgb"
pixel_range = 1.0

[[task]]
name = "segment_semantic"
channels = 10
output = "seg"

[[task]]
name = "normal"
output = "normal"

[[task]]
name = "depth_zbuffer"
output = "depth"

[[task]]
name = "keypoints2d"
output = "keypoints"

[[task]]
name = "edge_texture"
output = "edges"
"""


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
    """Per-sample losses [B] as the core computes them (all pixels valid here; targets at the outputs' size)."""
    at = lambda t, o: t if t.shape[-2:] == o.shape[-2:] else torch.nn.functional.interpolate(t, size=o.shape[-2:])  # noqa: E731
    ls = []
    if "seg" in out:
        seg = y["seg"].unsqueeze(1)
        ls.append(-out["seg"].log_softmax(1).gather(1, seg).mean(dim=(1, 2, 3)))
    normal = out["normal"]
    ls.append((1 - torch.nn.functional.cosine_similarity(normal, at(y["normal"], normal), dim=1)).mean(dim=(1, 2)))
    for k in ("depth", "depth_zbuffer", "keypoints", "edges"):
        if k in out:
            ls.append((out[k] - at(y[k], out[k])).abs().mean(dim=(1, 2, 3)))
    return ls


def pgd_best(model, x, y, eps, steps, high=1.0):
    alpha, x_adv = eps / steps, x.clone()
    for _ in range(steps):
        xr = x_adv.detach().requires_grad_(True)
        ls = losses(model(xr), y)
        (g,) = torch.autograd.grad(sum((l / l.detach()).sum() for l in ls), xr)
        x_adv = torch.minimum(torch.maximum(x_adv + alpha * g.sign(), x - eps), x + eps).clamp(0, high)
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


def timed(f: Callable[[], object], repeats: int) -> float:
    f()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_iteration(run_steps: Callable[[int], Callable[[], object]], k: int, repeats: int) -> float:
    """(t(1 + k) − t(1)) / k in seconds, each the median of ``repeats`` after a warm-up."""
    return (timed(run_steps(1 + k), repeats) - timed(run_steps(1), repeats)) / k


# ------------------------------------------------------------------------- the networks and data


def five_task_batch(b: int, s: int):
    torch.manual_seed(0)
    model = FiveTask().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, 3, s, s, generator=g)
    y = {"seg": torch.randint(0, 10, (b, s, s), generator=g), "normal": torch.randn(b, 3, s, s, generator=g),
         "depth": torch.rand(b, 1, s, s, generator=g), "keypoints": torch.rand(b, 1, s, s, generator=g),
         "edges": torch.rand(b, 1, s, s, generator=g)}  # fmt: skip
    tasks = {"seg": mt.Segmentation(classes=10), "normal": mt.Normal(), "depth": mt.Depth(), "keypoints": mt.Keypoints(), "edges": mt.Edges()}
    return model, x, y, tasks


def treemtl_fixtures():
    spec = importlib.util.spec_from_file_location("fixtures_treemtl", ROOT / "tests/fixtures_treemtl.py")
    fixtures = importlib.util.module_from_spec(spec)
    sys.modules["fixtures_treemtl"] = fixtures  # its Layout class is pickled into the checkpoint
    spec.loader.exec_module(fixtures)
    return fixtures


def treemtl_batch(b: int, s: int):
    """The Deeplab-ResNet34 in PyTorch (the weights `fixtures.write(..., 7)` saves) and a batch in 0..255."""
    net, names, _ = treemtl_fixtures().build("seq", "resnet34", torch.Generator().manual_seed(7))
    assert names == ["normal", "depth_zbuffer"]
    g = torch.Generator().manual_seed(2)
    x = torch.rand(b, 3, s, s, generator=g) * 255
    y = {"normal": torch.randn(b, 3, s, s, generator=g), "depth_zbuffer": torch.rand(b, 1, s, s, generator=g)}
    return net, x, y


def package_steps(net: mt.Net, x, y, eps: float) -> Callable[[int], Callable[[], object]]:
    return lambda n: (lambda a=mt.PGD(net, eps=eps, steps=n, direction="gbmta"): a(x, y))


# ------------------------------------------------------------------------------------------ rows


def row(name: str, a: argparse.Namespace) -> float:
    """Seconds per iteration of one row, measured in this process."""
    torch.set_flush_denormal(True)
    b, s, k, r = a.batch, a.size, a.steps, a.repeats
    if name in ("package", "best", "reference"):
        model, x, y, tasks = five_task_batch(b, s)
        f = {
            "package": lambda a=mt.PGD(mt.wrap(model, tasks=tasks), eps=EPS, steps=k, direction="gbmta"): a(x, y),
            "best": lambda: pgd_best(model, x, y, EPS, k),
            "reference": lambda: pgd_reference(model, x, y, EPS, k),
        }[name]
        return timed(f, r) / k
    if name.startswith("treemtl-"):
        net, x, y = treemtl_batch(b, s)
        if name == "treemtl-package":
            wrapped = mt.wrap(net, tasks={"normal": mt.Normal(), "depth_zbuffer": mt.Depth()}, input=mt.Input(range=255.0))
            return per_iteration(package_steps(wrapped, x, y, 8.0), k, r)
        return per_iteration(lambda n: (lambda: pgd_best(net, x, y, 8.0, n, high=255.0)), k, r)
    _, x, y, tasks = five_task_batch(b, s)
    loaded = torch.jit.load(a.file).eval()
    if name == "torchscript-package":
        return per_iteration(package_steps(mt.wrap(loaded, tasks=tasks), x, y, EPS), k, r)
    return per_iteration(lambda n: (lambda: pgd_best(loaded, x, y, EPS, n)), k, r)


FIXED_ALLOCATOR = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def environment(a: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, **(FIXED_ALLOCATOR if a.allocator == "fixed" else {})}


def native(binary: str, model_args: list[str], a: argparse.Namespace) -> float:
    """Seconds per PGD GB-MTA iteration of ``mtrobust bench --model …`` on a batch of the same shape."""
    cmd = [binary, "bench", *model_args, "--size", str(a.size), "--batch-size", str(a.batch), "--attack", "pgd",
           "--direction", "gbmta", "--iterations", str(a.steps), "--repeats", str(a.repeats), "--threads", str(torch.get_num_threads()),
           "--device", "cpu", "--format", "json", "-q"]  # fmt: skip
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=environment(a)).stdout)["rows"][0]["seconds"]


def in_fresh_process(name: str, a: argparse.Namespace, file: str = "") -> float:
    cmd = [sys.executable, __file__, "--row", name, "--file", file, "--batch", str(a.batch), "--size", str(a.size),
           "--steps", str(a.steps), "--repeats", str(a.repeats)]  # fmt: skip
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=environment(a)).stdout)["seconds"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mtrobust", default=str(ROOT / "target/release/mtrobust"))
    p.add_argument("--allocator", choices=("glibc", "fixed"), default="glibc", help="glibc's defaults, or its trimming off (see above)")
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.row:
        print(json.dumps({"seconds": row(a.row, a)}))
        return
    ms = lambda seconds: f"{seconds * 1000:8.2f} ms/iteration"  # noqa: E731
    b, s, k = a.batch, a.size, a.steps
    print(f"PGD GB-MTA on CPU, {torch.get_num_threads()} torch threads, nproc {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; "
          f"batch {b} × 3 × {s}², every row in a fresh process, allocator {a.allocator}")  # fmt: skip
    first = {n: in_fresh_process(n, a) for n in ("package", "best", "reference")}
    print(f"Five-task PyTorch model, PGD-{k} / {k}:")
    print(f"  {'mtrobust package (mt.PGD)':<48} {ms(first['package'])}")
    print(f"  {'best plain PyTorch (1 backward, input only)':<48} {ms(first['best'])}")
    print(f"  {'reference way (T backwards, weight gradients)':<48} {ms(first['reference'])}")
    print(f"  package / best plain PyTorch:   {first['package'] / first['best']:.3f}×  (target ≤ 1.05)")
    print(f"  reference way / package:        {first['reference'] / first['package']:.2f}×  (target ≥ 1.5)")
    print(f"Python path vs Rust-native on the same network, (t(1 + {k}) − t(1)) / {k}:")
    with tempfile.TemporaryDirectory() as d:
        treemtl_fixtures().write(d, "resnet34", "seq", "resnet34", 7)  # the checkpoint TreeMTL would save
        imported = str(pathlib.Path(d, "r34.safetensors"))
        subprocess.run([a.mtrobust, "import", "treemtl", "--checkpoint", str(pathlib.Path(d, "resnet34.model")), "--backbone", "resnet34",
                        "--tasks", "normal,depth", "--layout", TREEMTL_LAYOUT, "--head-width", "4", "--out", imported, "-q"],
                       check=True, capture_output=True)  # fmt: skip
        tm = {n: in_fresh_process(f"treemtl-{n}", a) for n in ("package", "plain")}
        tm["native"] = native(a.mtrobust, ["--model", imported], a)
        pt, spec = pathlib.Path(d, "five.pt"), pathlib.Path(d, "five.toml")
        model, x, _, _ = five_task_batch(b, s)
        torch.jit.trace(model, x[:1], strict=False).save(str(pt))
        spec.write_text(SPEC)
        ts = {n: in_fresh_process(f"torchscript-{n}", a, str(pt)) for n in ("package", "plain")}
        ts["native"] = native(a.mtrobust, ["--model", str(pt), "--model-spec", str(spec)], a)
    for title, r in (("TreeMTL Deeplab-ResNet34 (2 tasks): the PyTorch module / its imported checkpoint", tm),
                     ("the five-task model traced to TorchScript, one file", ts)):  # fmt: skip
        print(f"  {title}:")
        print(f"    {'mtrobust package':<46} {ms(r['package'])}")
        print(f"    {'plain PyTorch loop':<46} {ms(r['plain'])}")
        print(f"    {'mtrobust bench --model (Rust, no Python)':<46} {ms(r['native'])}")
        print(f"    package / Rust-native:        {r['package'] / r['native']:.3f}×  (target ≤ 1.05)")
        print(f"    package / plain loop:         {r['package'] / r['plain']:.3f}×")


if __name__ == "__main__":
    main()
