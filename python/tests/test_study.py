"""Studies of a live module, the same module through the command line (TorchScript + spec), the
results store read back as DataFrames, and the core's data readers as a torch Dataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import ROOT, FiveTask

import mtrobust as mt

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

ATTACKS = """[[attack]]
rule = "pgd"
n_iter = 3
directions = ["total", "gbmta", "single:depth"]
eps = [4, 8]
"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    mt.data.synth(root, n=16, size=32, seed=3, test_fraction=0.5)
    return root


def small_model() -> FiveTask:
    torch.manual_seed(5)
    return FiveTask(classes=10).eval()


def cells(db: Path):
    df = mt.results(str(db)).to_pandas()
    return df.sort_values(["direction", "eps"]).reset_index(drop=True)


def test_the_cli_and_python_give_the_same_report_numbers(synth: Path, tmp_path: Path) -> None:
    binary = ROOT / "target" / "release" / "mtrobust"
    assert binary.is_file(), f"{binary} is missing: run `cargo build --release` (the README's test command does)"
    model = small_model()
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    (tmp_path / "spec.toml").write_text(SPEC)
    data = f'[data]\npath = "{synth}"\nbatch_size = 4\n'
    (tmp_path / "cli.toml").write_text(data + '[[model]]\npath = "m.pt"\nspec = "spec.toml"\nname = "m"\n' + ATTACKS)
    (tmp_path / "py.toml").write_text(data + ATTACKS)
    r = subprocess.run([str(binary), "study", "run", str(tmp_path / "cli.toml"), "--db", str(tmp_path / "cli.sqlite"), "--device", "cpu", "-q"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr

    net = mt.wrap(model, tasks=mt.data.open(synth).tasks(), version="1")
    summary = mt.Study(str(tmp_path / "py.toml"), models={"m": net}).run(db=str(tmp_path / "py.sqlite"))
    assert summary["computed"] == 6 and summary["failed_checks"] == []
    cli, py = cells(tmp_path / "cli.sqlite"), cells(tmp_path / "py.sqlite")
    assert len(cli) == len(py) == 6
    arp_columns = [c for c in cli.columns if c.startswith("ARP[")] + ["arp"]
    assert len(arp_columns) == 6
    for c in arp_columns + ["direction", "eps", "samples"]:
        assert list(cli[c]) == list(py[c]), c
    assert cli["arp"].min() > 0
    single = py[py["direction"] == "single:depth_zbuffer"]
    assert single["transfer"].notna().all()

    # Resumable: the same weights, class and version resume every cell; new weights start afresh.
    again = mt.Study(str(tmp_path / "py.toml"), models={"m": net}).run(db=str(tmp_path / "py.sqlite"))
    assert (again["already_done"], again["computed"]) == (6, 0)
    with torch.no_grad():
        model.depth.bias += 0.1
    shard = mt.Study(str(tmp_path / "py.toml"), models={"m2": net}).run(db=str(tmp_path / "py.sqlite"), shard="1/2")
    assert shard["already_done"] == 0 and 0 < shard["cells"] < 6

    # mt.evaluate reading the dataset itself measures what the study stored.
    with torch.no_grad():
        model.depth.bias -= 0.1
    attacks = [mt.PGD(net, eps=e / 255, steps=3, direction=d) for e in (4, 8) for d in ("total", "gbmta")]
    res = mt.evaluate(net, mt.data.open(synth), attacks, batch_size=4)
    table = res.arp
    for a in attacks:
        stored = py[(py["direction"] == a.direction_id) & ((py["eps"] - a.eps * 255).abs() < 1e-9)]["arp"].item()
        got = table.loc[(type(a).__name__, {"total": "Total", "gbmta": "GB-MTA"}[a.direction_id], a.eps), "ARP"]
        assert got == pytest.approx(stored, abs=1e-9)


def test_the_data_readers_as_a_torch_dataset_and_evaluate_over_a_loader(synth: Path) -> None:
    ds = mt.data.open(synth, split="test")
    assert len(ds) == 8
    image, labels, name = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert labels["seg"].dtype == torch.long and labels["seg"].shape == (32, 32) and labels["seg"].max() < 10
    assert labels["normal"].shape == (3, 32, 32) and labels["depth"].shape == (1, 32, 32)
    assert set(ds.tasks()) == {"seg", "normal", "depth", "keypoints", "edges"} and isinstance(name, str)
    # RGB in 0..1 exactly as the core's loader sees it (B,G,R mean-subtracted 0..255).
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    model = small_model()
    net = mt.wrap(model, tasks=ds.tasks())
    attacks = [mt.FGSM(net, eps=8 / 255, direction=d) for d in mt.DIRECTIONS]
    from_loader = mt.evaluate(net, loader, attacks)
    by_core = mt.evaluate(net, ds, attacks, batch_size=4)
    pd_clean = from_loader.clean["value"]
    assert list(pd_clean.index.get_level_values("task").unique()) == ["seg", "normal", "depth", "keypoints", "edges"]
    torch.testing.assert_close(torch.tensor(pd_clean.values), torch.tensor(by_core.clean["value"].values), rtol=1e-4, atol=1e-5)
    for d in ("Total", "SignTotal", "GB-MTA"):
        a, b = from_loader.arp.loc[("FGSM", d, 8 / 255), "ARP"], by_core.arp.loc[("FGSM", d, 8 / 255), "ARP"]
        assert a > 0 and a == pytest.approx(b, rel=0.05)


def test_an_ensemble_reports_each_member_as_if_run_alone_and_who_won(synth: Path) -> None:
    ds = mt.data.open(synth, split="test")
    net = mt.wrap(small_model(), tasks=ds.tasks())
    standard = mt.Ensemble(net, eps=8 / 255, steps=2, queries=4)
    members = json.loads(standard._json())["members"]
    # APGD along GB-MTA, Total and each Single-x, then Square along GB-MTA: the core's own list.
    assert [(m["rule"], m["direction"]) for m in members] == [("apgd", "gbmta"), ("apgd", "total")] + [
        ("apgd", f"single:{k}") for k in net.kinds.values()
    ] + [("square", "gbmta")]
    mine = mt.Ensemble(net, eps=8 / 255, members=[mt.FGSM(net, eps=1.0, direction="total"), mt.Square(net, eps=1.0, queries=3, direction="single:seg")],
                       score="single:depth", name="mine")  # fmt: skip
    alone = [mt.FGSM(net, eps=8 / 255, direction="total"), mt.Square(net, eps=8 / 255, queries=3, direction="single:seg")]
    res = mt.evaluate(net, ds, [standard, mine, *alone], batch_size=4)
    table = res.members
    assert list(table.index.get_level_values("ensemble").unique()) == ["0:standard", "1:mine"]
    for ensemble in ("0:standard", "1:mine"):
        assert table.loc[ensemble]["wins"].sum() == 8, "every sample has one worst case"
    # A member's ARP is that of the same attack run alone (its ε, norm and seed are the ensemble's).
    arp = res.arp
    got = table.loc["1:mine"]["ARP"].tolist()
    want = [arp.loc[("FGSM", "Total", 8 / 255), "ARP"], arp.loc[("Square", "Single-seg", 8 / 255), "ARP"]]
    assert got == pytest.approx(want, abs=1e-12)
    assert arp.loc[("Ensemble", "GB-MTA", 8 / 255), "max_perturbation"] <= 8 + 1e-4
    with pytest.raises(TypeError, match="member #1"):
        mt.Ensemble(net, eps=8 / 255, members=[standard])
    with pytest.raises(ValueError, match="another net"):
        mt.Ensemble(net, eps=8 / 255, members=[mt.FGSM(mt.wrap(small_model(), tasks=ds.tasks()), eps=1.0)])


def test_a_custom_task_is_evaluated_with_its_metric() -> None:
    from conftest import make_batch, make_model, tasks

    x, y = make_batch(b=2)

    def mse(out, target):
        return (out - target).square().flatten(1).mean(1)

    def closeness(out, target):
        return 1 / (1 + mse(out, target))

    t = tasks()
    del t["edges"]
    t["albedo"] = mt.Custom(loss=mse, metric=closeness, higher_is_better=True)
    net = mt.wrap(make_model(), tasks={**t}, name="with-albedo")
    # The module's "edges" head stands in for albedo: the dict key must be the task's name.
    net.module.forward = (lambda f: (lambda x: {**{k: v for k, v in f(x).items() if k != "edges"}, "albedo": f(x)["edges"]}))(net.module.forward)
    y = {**{k: v for k, v in y.items() if k != "edges"}, "albedo": torch.zeros(2, 1, 32, 32)}
    res = mt.evaluate(net, [(x, y)], [mt.PGD(net, eps=8 / 255, steps=3, direction="single:albedo")])
    assert net.kinds["albedo"] == "edge_texture" and net.tasks["albedo"].channels == 1
    clean = res.clean.loc[("albedo", "closeness"), "value"]
    assert clean == pytest.approx(closeness(net.module(x)["albedo"], y["albedo"]).mean().item(), rel=1e-5)
    assert res.arp["ARP[albedo]"].item() > 0  # the attack made the albedo worse
