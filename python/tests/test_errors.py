"""Bad input is a Python exception naming the task or module, never a crash of the interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import FiveTask, make_batch, make_model, tasks

import mtrobust as mt

EPS = 8 / 255


class Returns(torch.nn.Module):
    """A module whose forward returns whatever `make` builds from the real outputs."""

    def __init__(self, make) -> None:
        super().__init__()
        self.inner = make_model()
        self.make = make

    def forward(self, x):
        return self.make(self.inner(x))


def attack(module, **kw):
    x, y = make_batch(b=2)
    net = mt.wrap(module.eval(), tasks=tasks(), **kw)
    return mt.PGD(net, eps=EPS, steps=2)(x, y)


def test_output_not_a_dict_or_tuple() -> None:
    with pytest.raises(mt.MtrobustError, match=r"Python module Returns: its forward returned a Tensor; a multi-task module must return a dict"):
        attack(Returns(lambda o: o["depth"]))


def test_a_task_key_missing() -> None:
    with pytest.raises(ValueError, match=r'has no key "edges" for task `edges`'):
        attack(Returns(lambda o: {k: v for k, v in o.items() if k != "edges"}))


def test_a_tuple_output_is_read_in_task_order_and_too_short_is_named() -> None:
    x, y = make_batch(b=2)
    net = mt.wrap(Returns(lambda o: tuple(o.values())).eval(), tasks=tasks())
    assert mt.FGSM(net, eps=EPS)(x, y).shape == x.shape
    with pytest.raises(ValueError, match=r"returns 4 outputs; task `edges` is number 5"):
        attack(Returns(lambda o: tuple(o.values())[:4]))


def test_a_channel_count_that_differs() -> None:
    with pytest.raises(ValueError, match=r"the output of task `normal`: expected shape \[2, 3, height, width\], got \[2, 2, 32, 32\]"):
        attack(Returns(lambda o: {**o, "normal": o["normal"][:, :2]}))


def test_nan_outputs() -> None:
    with pytest.raises(ValueError, match=r"the output of task `depth`: has NaN or infinite values"):
        attack(Returns(lambda o: {**o, "depth": o["depth"] * float("nan")}))


def test_a_forward_that_raises_is_the_cause() -> None:
    def boom(o):
        raise KeyError("no such head")

    with pytest.raises(mt.MtrobustError, match=r"its forward raised KeyError") as e:
        attack(Returns(boom))
    assert isinstance(e.value.__cause__, KeyError)


def test_running_out_of_memory_in_the_forward_is_an_exception_and_the_net_still_works() -> None:
    """A gradient pass that asks for 256 TiB per sample (more than any address space: the
    allocation fails at once and touches nothing) is an exception naming the module, with torch's
    out-of-memory error as its cause; the same wrapped module then attacks a batch it can hold."""

    class Hungry(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_model()

        def forward(self, x):
            if x.requires_grad and x.shape[0] >= 2:
                torch.zeros(x.shape[0], 1 << 46)
            return self.inner(x)

    net = mt.wrap(Hungry().eval(), tasks=tasks())
    x, y = make_batch(b=2)
    with pytest.raises(mt.MtrobustError, match=r"Python module Hungry: its forward raised .*can't allocate memory") as e:
        mt.PGD(net, eps=EPS, steps=2)(x, y)
    assert isinstance(e.value.__cause__, RuntimeError)
    one = {k: v[:1] for k, v in y.items()}
    x_adv = mt.PGD(net, eps=EPS, steps=2)(x[:1], one)
    assert (x_adv - x[:1]).abs().max() <= EPS + 1e-6


def test_a_custom_loss_returning_a_scalar() -> None:
    x, y = make_batch(b=2)
    t = tasks()
    t["edges"] = mt.Custom(loss=lambda out, target: (out - target).abs().mean())
    net = mt.wrap(make_model(), tasks=t)
    with pytest.raises(ValueError, match=r"the loss of task `edges`: expected shape \[2\] \(one value per sample\), got \[\]"):
        mt.PGD(net, eps=EPS, steps=2)(x, y)


def test_a_custom_loss_that_raises_and_one_that_returns_no_tensor() -> None:
    x, y = make_batch(b=2)
    t = tasks()
    t["edges"] = mt.Custom(loss=lambda out, target: 1 / 0)
    with pytest.raises(mt.MtrobustError, match=r"the loss of task `edges`: raised ZeroDivisionError") as e:
        mt.FGSM(mt.wrap(make_model(), tasks=t), eps=EPS)(x, y)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    t["edges"] = mt.Custom(loss=lambda out, target: [1.0, 2.0])
    with pytest.raises(ValueError, match=r"the loss of task `edges`.*expected a torch.Tensor, got list"):
        mt.FGSM(mt.wrap(make_model(), tasks=t), eps=EPS)(x, y)


def test_targets_on_another_device_or_of_the_wrong_dtype() -> None:
    x, y = make_batch(b=2)
    net = mt.wrap(make_model(), tasks=tasks())
    with pytest.raises(TypeError, match=r"the target of task `seg` is torch.float32; segmentation labels are integer"):
        mt.FGSM(net, eps=EPS)(x, {**y, "seg": y["seg"].float()})
    with pytest.raises(TypeError, match=r"the target of task `depth` is torch.int64"):
        mt.FGSM(net, eps=EPS)(x, {**y, "depth": y["depth"].long()})
    with pytest.raises(ValueError, match=r"the target of task `depth` is on meta but the images are on cpu"):
        mt.FGSM(net, eps=EPS)(x, {**y, "depth": y["depth"].to("meta")})
    with pytest.raises(ValueError, match=r"no target for task `edges`"):
        mt.FGSM(net, eps=EPS)(x, {k: v for k, v in y.items() if k != "edges"})
    with pytest.raises(ValueError, match=r"the target of task `normal` has shape \(2, 1, 32, 32\); expected \[B, 3, H, W\]"):
        mt.FGSM(net, eps=EPS)(x, {**y, "normal": y["depth"]})
    with pytest.raises(TypeError, match=r"images are torch.uint8"):
        mt.FGSM(net, eps=EPS)((x * 255).to(torch.uint8), y)


def test_a_model_in_training_mode() -> None:
    x, y = make_batch(b=2)
    net = mt.wrap(FiveTask().train(), tasks=tasks())
    with pytest.raises(ValueError, match=r"Python module FiveTask is in training mode.*call \.eval\(\) first"):
        mt.FGSM(net, eps=EPS)(x, y)
    # Switched for the call and back, with a warning; the running statistics do not move.
    module = FiveTask().train()
    stats = module.trunk[1].running_mean.clone()
    net = mt.wrap(module, tasks=tasks(), on_train="eval")
    with pytest.warns(UserWarning, match="switching it to eval mode"):
        mt.FGSM(net, eps=EPS)(x, y)
    assert module.training and torch.equal(module.trunk[1].running_mean, stats)


def test_bad_parameters_and_wrap_arguments() -> None:
    net = mt.wrap(make_model(), tasks=tasks())
    with pytest.raises(ValueError, match=r"eps=-0.1: ε must be > 0"):
        mt.PGD(net, eps=-0.1)
    with pytest.raises(ValueError, match=r"n_iter: iterative attacks need at least one iteration"):
        mt.PGD(net, eps=EPS, steps=0)
    with pytest.raises(ValueError, match=r"the net has no task `sky`"):
        mt.PGD(net, eps=EPS, direction="single:sky")
    with pytest.raises(TypeError, match=r"task `seg` is a str"):
        mt.wrap(make_model(), tasks={"seg": "segmentation"})
    with pytest.raises(ValueError, match=r"tasks `a` and `b` are both Depth"):
        mt.wrap(make_model(), tasks={"a": mt.Depth(), "b": mt.Depth()})
    with pytest.raises(TypeError, match=r"mt.wrap takes a torch.nn.Module"):
        mt.wrap(lambda x: x, tasks=tasks())


def test_inference_mode_is_refused_with_the_fix() -> None:
    x, y = make_batch(b=2)
    net = mt.wrap(make_model(), tasks=tasks())
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"outside torch.inference_mode\(\)"):
        mt.FGSM(net, eps=EPS)(x, y)


@pytest.mark.parametrize("version,needle", [("2.10.0+cpu", "built against torch 2.11"), ("2.12.1", "pip install 'torch==2.11.*'")])
def test_another_torch_version_is_an_import_error_with_the_fix(version: str, needle: str) -> None:
    code = f"import torch; torch.__version__ = {version!r}; import mtrobust"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "ImportError" in r.stderr and needle in r.stderr, r.stderr
    from mtrobust import _torch_check

    with pytest.raises(ImportError, match="pre-C\\+\\+11 ABI"):
        _torch_check.check("2.11.0", cxx11_abi=False)
