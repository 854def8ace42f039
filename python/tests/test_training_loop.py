"""The package inside a user's own code: under torch.no_grad(), under autocast, and in a training
loop (FAT from Python: attack, then the user's optimizer step)."""

from __future__ import annotations

import torch
from conftest import make_batch, make_model, reference_losses, tasks

import mtrobust as mt

EPS = 8 / 255


def test_attacks_work_under_no_grad_and_autocast_and_restore_both() -> None:
    model, (x, y) = make_model(), make_batch(b=2)
    net = mt.wrap(model, tasks=tasks())
    want = mt.PGD(net, eps=EPS, steps=3)(x, y)
    with torch.no_grad():
        got = mt.PGD(net, eps=EPS, steps=3)(x, y)
        assert not torch.is_grad_enabled()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        in_autocast = mt.PGD(net, eps=EPS, steps=3)(x, y)
        assert torch.is_autocast_enabled("cpu")
    assert torch.equal(got, want) and torch.equal(in_autocast, want)
    assert not got.requires_grad


def test_fat_from_python_leaves_weight_grads_to_the_optimizer() -> None:
    model, (x, y) = make_model(), make_batch(b=4)
    net = mt.wrap(model, tasks=tasks(), on_train="eval")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    attack = mt.PGD(net, eps=EPS, steps=2, direction="gbmta")
    model.train()
    losses = []
    for step in range(3):
        opt.zero_grad()
        # A stale gradient from the user's previous backward must survive the attack untouched.
        sentinel = {n: torch.full_like(p, float(step + 1)) for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            p.grad = sentinel[n].clone()
        stats = model.trunk[1].running_mean.clone()
        x_adv = attack(x, y)
        for n, p in model.named_parameters():
            assert torch.equal(p.grad, sentinel[n]), f"step {step}: the attack changed {n}.grad"
        assert torch.equal(model.trunk[1].running_mean, stats), "the attack ran batch norm in training mode"
        assert model.training
        opt.zero_grad()
        loss = sum(l.mean() for l in reference_losses(model(x_adv), y).values())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # The optimizer steps took effect: the adversarial loss of the first batch went down.
    model.eval()
    with torch.no_grad():
        after = sum(l.mean() for l in reference_losses(model(attack(x, y)), y).values()).item()
    assert after < losses[0]


def test_a_cuda_model_is_refused_cleanly_without_cuda() -> None:
    # The device check happens before anything reaches the core.
    model, (x, y) = make_model(), make_batch(b=2)
    net = mt.wrap(model, tasks=tasks())
    try:
        mt.FGSM(net, eps=EPS)(x.to("meta"), y)
    except ValueError as e:
        assert "images are on meta but the module is on cpu" in str(e)
    else:
        raise AssertionError("no error")
