"""mtrobust from PyTorch, end to end: a small five-task model defined in plain PyTorch, trained
briefly on the synthetic scenes read through ``mt.data``, attacked with every direction, its ARP
table printed and the paper's Figure 2 written.

    bash scripts/setup.sh                       # builds and installs the package into .venv
    .venv/bin/python examples/pytorch_model.py  # ~2 minutes on 2 CPU cores; writes runs/pytorch_example/
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import mtrobust as mt

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/pytorch_example")


class FiveTaskNet(torch.nn.Module):
    """A shared convolutional trunk with one head per task; forward returns a dict of outputs."""

    def __init__(self, classes: int) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 3, stride, 1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU())

        self.trunk = torch.nn.Sequential(block(3, 32, 1), block(32, 48, 2), block(48, 64, 1), block(64, 64, 1))
        self.heads = torch.nn.ModuleDict({
            "seg": torch.nn.Conv2d(64, classes, 1), "normal": torch.nn.Conv2d(64, 3, 1), "depth": torch.nn.Conv2d(64, 1, 1),
            "keypoints": torch.nn.Conv2d(64, 1, 1), "edges": torch.nn.Conv2d(64, 1, 1),
        })  # fmt: skip

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.nn.functional.interpolate(self.trunk(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {name: head(h) for name, head in self.heads.items()}


def train_loss(out: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> torch.Tensor:
    """Plain PyTorch losses: cross-entropy, 1 − cos, and L1, each over the labelled pixels."""
    seg = torch.nn.functional.cross_entropy(out["seg"], y["seg"], ignore_index=255)
    n = y["normal"]
    ok = torch.isfinite(n).all(1)
    cos = torch.nn.functional.cosine_similarity(out["normal"], torch.nan_to_num(n), dim=1)
    normal = (1 - cos)[ok].mean()
    l1 = sum((out[k] - y[k]).abs()[torch.isfinite(y[k])].mean() for k in ("depth", "keypoints", "edges"))
    return seg + normal + l1


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data_dir = OUT / "data"
    if not data_dir.exists():
        mt.data.synth(data_dir, n=320, size=32, seed=0, test_fraction=0.1)
    train, test = mt.data.open(data_dir, "train"), mt.data.open(data_dir, "test")
    print(f"data: {len(train)} training and {len(test)} test scenes of 32² px in {data_dir}")

    model = FiveTaskNet(classes=test.tasks()["seg"].classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
    started = time.time()
    model.train()
    for epoch in range(6):
        total = 0.0
        for images, targets, _ in loader:
            opt.zero_grad()
            loss = train_loss(model(images), targets)
            loss.backward()
            opt.step()
            total += loss.item() * images.shape[0]
        print(f"epoch {epoch + 1}: training loss {total / len(train):.3f}")
    print(f"trained in {time.time() - started:.0f} s")
    model.eval()

    net = mt.wrap(model, tasks=test.tasks(), input=mt.Input(range=1.0), version="example-1")
    images, targets, _ = next(iter(torch.utils.data.DataLoader(test, batch_size=8)))
    x_adv = mt.PGD(net, eps=8 / 255, steps=10, direction="gbmta")(images, targets)
    print(f"PGD-10 GB-MTA on one batch: largest change {(x_adv - images).abs().max().item() * 255:.2f}/255")

    attacks = [mt.PGD(net, eps=e / 255, steps=5, direction=d) for e in (4, 8) for d in net.directions]
    res = mt.evaluate(net, test, attacks, batch_size=16)
    print("\nclean metrics:")
    print(res.clean.to_string())
    print("\nARP (%) and transferability, PGD-5:")
    print(res.arp.round(2).to_string())

    # The same grid as a resumable study, then the paper's Figure 2 from its store.
    study = OUT / "study.toml"
    study.write_text(f'[data]\npath = "{data_dir.resolve()}"\nbatch_size = 16\n\n[[attack]]\nrule = "pgd"\nn_iter = 5\ndirections = ["all"]\neps = [2, 4, 8, 16]\n')
    summary = mt.Study(str(study), models={"five-task": net}).run(db=str(OUT / "results.sqlite"))
    print(f"\nstudy: {summary['computed']} cells computed, {summary['already_done']} already stored")
    stored = mt.results(str(OUT / "results.sqlite"))
    print(stored.to_pandas(direction="gbmta")[["model", "rule", "eps", "arp"]].to_string(index=False))
    for f in stored.figures(str(OUT / "figures")):
        print("wrote", f)


if __name__ == "__main__":
    main()
