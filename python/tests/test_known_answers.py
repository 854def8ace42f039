"""The package's gradients and adversarial batches against plain PyTorch written here."""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch, make_model, reference_losses, tasks

import mtrobust as mt

EPS = 8 / 255
ORDER = ["seg", "normal", "depth", "keypoints", "edges"]


def ref_gradient(model: torch.nn.Module, x: torch.Tensor, y: dict, direction: str) -> torch.Tensor:
    """The direction's input gradient at x, the plain way."""
    x = x.detach().requires_grad_(True)
    losses = reference_losses(model(x), y)
    if direction == "total":
        objective = sum(losses[t].sum() for t in ORDER)
    elif direction.startswith("single:"):
        objective = losses[direction.split(":")[1]].sum()
    elif direction == "gbmta":
        # Σ_t L_t / stopgrad(L_t) per sample: one backward gives Σ_t ∇L_t / L_t.
        objective = sum((losses[t] * losses[t].detach().clamp_min(1e-12).reciprocal() * (losses[t].detach() > 1e-12)).sum(dtype=torch.float64) for t in ORDER)
    else:
        raise ValueError(direction)
    (g,) = torch.autograd.grad(objective, x)
    return g


@pytest.mark.parametrize("direction", ["total", "single:seg", "single:depth", "gbmta"])
def test_input_gradients_equal_torch_autograd(direction: str) -> None:
    model, (x, y) = make_model(), make_batch()
    net = mt.wrap(model, tasks=tasks())
    g, losses = mt.gradient(net, x, y, direction)
    want = ref_gradient(model, x, y, direction)
    torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-7)
    ref = reference_losses(model(x), y)
    assert set(losses) == ({direction.split(":")[1]} if direction.startswith("single:") else set(ORDER))
    for t, l in losses.items():
        torch.testing.assert_close(l, ref[t].detach(), rtol=1e-6, atol=1e-7)


def test_gbmta_is_the_sum_of_per_task_gradients_over_their_clean_losses() -> None:
    # The paper's formula with T backwards: Σ_t ∇_x L_t,b / L_t,b for every sample b.
    model, (x, y) = make_model(), make_batch()
    net = mt.wrap(model, tasks=tasks())
    g, _ = mt.gradient(net, x, y, "gbmta")
    xr = x.detach().requires_grad_(True)
    losses = reference_losses(model(xr), y)
    want = torch.zeros_like(x)
    for t in ORDER:
        (gt,) = torch.autograd.grad(losses[t].sum(), xr, retain_graph=True)
        want += gt / losses[t].detach().view(-1, 1, 1, 1)
    torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-6)
    # Not Total's gradient: the per-task scaling matters.
    assert not torch.allclose(g, mt.gradient(net, x, y, "total")[0], rtol=1e-2)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The core's projection: onto the ε-ball (max/min against x ∓ ε), then onto 0..1."""
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


@pytest.mark.parametrize("direction", ["total", "gbmta", "single:normal"])
def test_fgsm_equals_a_pytorch_loop(direction: str) -> None:
    model, (x, y) = make_model(), make_batch()
    net = mt.wrap(model, tasks=tasks())
    got = mt.FGSM(net, eps=EPS, direction=direction)(x, y)
    want = project(x + EPS * ref_gradient(model, x, y, direction).sign(), x, EPS)
    assert torch.equal(got, want), f"{(got != want).sum()} of {got.numel()} elements differ"


@pytest.mark.parametrize("direction", ["total", "gbmta"])
def test_pgd10_equals_a_pytorch_loop(direction: str) -> None:
    model, (x, y) = make_model(), make_batch()
    net = mt.wrap(model, tasks=tasks())
    got = mt.PGD(net, eps=EPS, steps=10, direction=direction)(x, y)
    alpha = EPS / 10
    x_adv = x.clone()
    for _ in range(10):
        x_adv = project(x_adv + alpha * ref_gradient(model, x_adv, y, direction).sign(), x, EPS)
    assert torch.equal(got, x_adv), f"{(got != x_adv).sum()} of {got.numel()} elements differ"
    assert not torch.equal(got, x)


RULES = [
    lambda net, d: mt.FGSM(net, eps=EPS, direction=d),
    lambda net, d: mt.MIFGSM(net, eps=EPS, steps=3, direction=d),
    lambda net, d: mt.PGD(net, eps=EPS, steps=3, direction=d, random_start=True),
    lambda net, d: mt.APGD(net, eps=EPS, steps=4, direction=d),
    lambda net, d: mt.AutoSAGE(net, eps=EPS, steps=3, direction=d),
    lambda net, d: mt.Square(net, eps=EPS, queries=6, direction=d),
]


@pytest.mark.parametrize("rule", range(len(RULES)))
def test_every_rule_and_direction_stays_in_budget_and_range(rule: int) -> None:
    model, (x, y) = make_model(), make_batch(b=2)
    net = mt.wrap(model, tasks=tasks())
    for d in net.directions + [{"seg": 1.0, "depth": 0.5}]:
        attack = RULES[rule](net, d)
        x_adv = attack(x, y)
        delta = (x_adv - x).abs().max().item()
        assert delta <= EPS + 1e-7, (attack, delta)
        assert delta > 0.5 * EPS, (attack, delta)
        assert x_adv.min() >= 0 and x_adv.max() <= 1, attack
        assert attack.last["checks"]["within_budget"] and attack.last["checks"]["out_of_range"] == 0


def test_l2_budget_and_input_units() -> None:
    # range 255 and an ImageNet normalisation: ε = 8 means 8 grey levels; the module sees normalised input.
    model, (x, y) = make_model(), make_batch(b=2)
    seen = []
    model.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    net = mt.wrap(model, tasks=tasks(), input=mt.Input(range=255.0, mean=(120.0, 110.0, 100.0), std=(60.0, 60.0, 60.0)))
    x255 = x * 255
    x_adv = mt.PGD(net, eps=8.0, steps=3, direction="total")(x255, y)
    assert (x_adv - x255).abs().max() <= 8.0 + 1e-4 and x_adv.max() <= 255
    mean = torch.tensor([120.0, 110.0, 100.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(seen[0], (x255 - mean) / 60.0)
    x2 = mt.PGD(net, eps=500.0, steps=3, direction="gbmta", norm="l2")(x255, y)
    norms = (x2 - x255).flatten(1).norm(dim=1)
    assert (norms <= 500.0 + 1e-2).all() and (norms > 100).all()


def test_seeded_random_starts_repeat_and_leave_torch_rng_alone() -> None:
    model, (x, y) = make_model(), make_batch(b=2)
    net = mt.wrap(model, tasks=tasks())
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = mt.PGD(net, eps=EPS, steps=2, random_start=True, seed=7)(x, y)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = mt.PGD(net, eps=EPS, steps=2, random_start=True, seed=7)(x, y)
    c = mt.PGD(net, eps=EPS, steps=2, random_start=True, seed=8)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)
