"""mtrobust for PyTorch users: attack, evaluate and study a live multi-task ``nn.Module``.

The step rules (FGSM, MI-FGSM, PGD, APGD, Auto-SAGE, the gradient-free Square) and their per-sample
worst case (Ensemble), the directions (Single-x, Total,
SignTotal, GB-MTA, weighted), the built-in tasks' losses and metrics, ARP, the study runner and
its results store all run in mtrobust's Rust core; this module is the typed Python face::

    import torch, mtrobust as mt
    net = mt.wrap(model.eval(), tasks={"seg": mt.Segmentation(classes=40), "depth": mt.Depth()},
                  input=mt.Input(range=1.0, mean=(.485, .456, .406), std=(.229, .224, .225)))
    x_adv = mt.PGD(net, eps=8/255, steps=10, direction="gbmta")(images, targets)
    res = mt.evaluate(net, loader, attacks=[mt.APGD(net, eps=8/255, direction=d) for d in mt.DIRECTIONS])
    res.arp  # pandas DataFrame

ε is in the units of your input (``mt.Input.range``): 8/255 of a 0..1 image is 8 grey levels.
The module is called on batches in those units, normalised with ``mt.Input``'s mean and std.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

from . import _torch_check

_torch_check.check()

import torch  # noqa: E402  (after the version check, which imports it first)

from . import _core  # noqa: E402
from ._core import MtrobustError  # noqa: E402

__version__: str = _core.version()

__all__ = [
    "APGD",
    "AutoSAGE",
    "Custom",
    "DIRECTIONS",
    "Depth",
    "Edges",
    "Ensemble",
    "Evaluation",
    "FGSM",
    "Input",
    "Keypoints",
    "MIFGSM",
    "MtrobustError",
    "Net",
    "Normal",
    "PGD",
    "Segmentation",
    "Square",
    "StoredResults",
    "Study",
    "Task",
    "data",
    "evaluate",
    "gradient",
    "results",
    "wrap",
]

#: The multi-task directions of the paper; every net also has one Single-x direction per task
#: (``"single:<task>"``, listed with the others by :attr:`Net.directions`).
DIRECTIONS: tuple[str, ...] = ("total", "sign-total", "gbmta")

_DISPLAY = {"total": "Total", "sign-total": "SignTotal", "gbmta": "GB-MTA"}


# ----------------------------------------------------------------------------------------- tasks


class Task:
    """A task of the network: which output it reads and how its loss and metric are computed."""

    #: The core task this one is (``segment_semantic``, ``normal``, ``depth_zbuffer``,
    #: ``keypoints2d``, ``edge_texture``); ``None`` for :class:`Custom`.
    kind: str | None = None
    channels: int | None = None

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def _check_common(self, name: str, t: Any, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"the target of task `{name}` is a {type(t).__name__}; give a torch.Tensor")
        if t.device != x.device:
            raise ValueError(
                f"the target of task `{name}` is on {t.device} but the images are on {x.device}; move it with .to({str(x.device)!r})"
            )
        if t.dim() == 0 or t.shape[0] != x.shape[0]:
            raise ValueError(f"the target of task `{name}` has shape {tuple(t.shape)}; its first dimension must be the batch ({x.shape[0]})")
        return t

    def _dense(self, name: str, t: Any, x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A float label map ``[B, C, H, W]`` (or ``[B, H, W]`` for one channel); NaN = ignored."""
        t = self._check_common(name, t, x)
        if not t.is_floating_point():
            raise TypeError(f"the target of task `{name}` is {t.dtype}; {type(self).__name__} labels are floating point (NaN marks ignored pixels)")
        if t.dim() == 3 and channels == 1:
            t = t.unsqueeze(1)
        if t.dim() != 4 or t.shape[1] != channels:
            raise ValueError(f"the target of task `{name}` has shape {tuple(t.shape)}; expected [B, {channels}, H, W]")
        finite = torch.isfinite(t).all(dim=1, keepdim=True)
        value = torch.where(torch.isfinite(t), t, torch.zeros((), dtype=t.dtype, device=t.device)).to(x.dtype)
        return value, finite.to(x.dtype)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Segmentation(Task):
    """Semantic segmentation: ``[B, classes, h, w]`` logits, cross-entropy, mIoU and pixel accuracy.

    Targets are integer class maps ``[B, H, W]`` (or ``[B, 1, H, W]``); ``ignore_index`` and
    labels outside ``0..classes-1`` are ignored. Outputs at a lower resolution are compared with
    nearest-resized labels, as the paper's code does.
    """

    kind = "segment_semantic"

    def __init__(self, classes: int, ignore_index: int = 255) -> None:
        if int(classes) < 2:
            raise ValueError(f"Segmentation(classes={classes}): at least 2 classes")
        self.classes = int(classes)
        self.channels = self.classes
        self.ignore_index = int(ignore_index)

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self._check_common(name, t, x)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise TypeError(f"the target of task `{name}` is {t.dtype}; segmentation labels are integer class indices (torch.long)")
        if t.dim() == 3:
            t = t.unsqueeze(1)
        if t.dim() != 4 or t.shape[1] != 1:
            raise ValueError(f"the target of task `{name}` has shape {tuple(t.shape)}; expected [B, H, W] class indices")
        valid = (t != self.ignore_index) & (t >= 0) & (t < self.classes)
        value = torch.where(valid, t, torch.zeros((), dtype=t.dtype, device=t.device))
        return value.to(x.dtype), valid.to(x.dtype)


class Depth(Task):
    """Depth: ``[B, 1, h, w]``, masked L1 loss; abs/rel error and δ < 1.25ᵏ. NaN labels are ignored."""

    kind = "depth_zbuffer"
    channels = 1

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dense(name, t, x, 1)


class Normal(Task):
    """Surface normals: ``[B, 3, h, w]``, loss 1 − cos; angle mean/median/within. NaN labels are ignored."""

    kind = "normal"
    channels = 3

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dense(name, t, x, 3)


class Keypoints(Task):
    """2-D keypoint heat map: ``[B, 1, h, w]``, masked L1 loss and error. NaN labels are ignored."""

    kind = "keypoints2d"
    channels = 1

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dense(name, t, x, 1)


class Edges(Task):
    """Texture edges: ``[B, 1, h, w]``, masked L1 loss and error. NaN labels are ignored."""

    kind = "edge_texture"
    channels = 1

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._dense(name, t, x, 1)


class Custom(Task):
    """A task mtrobust does not know: your loss (and metric) as Python callables.

    ``loss(output, target)`` must return per-sample losses ``[B]`` (differentiable in
    ``output``): APGD tracks each sample's best point and GB-MTA divides each sample's gradient by
    its own loss. ``metric(output, target)`` returns per-sample values ``[B]`` whose mean over the
    data is the task's metric (default: the loss). Targets are passed exactly as given (any shape
    with the batch first), never resized. ``channels`` is the output's channel count (found from
    the first batch when omitted).

    A network has at most five tasks: a custom task takes the place of a built-in one the network
    does not have (the one its name denotes, e.g. ``edges``, else the first free one); the core's
    reports and stores name it by that place, this package's tables by your name.
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor, Any], torch.Tensor],
        metric: Callable[[torch.Tensor, Any], torch.Tensor] | None = None,
        higher_is_better: bool = False,
        channels: int | None = None,
        metric_name: str | None = None,
    ) -> None:
        if not callable(loss):
            raise TypeError("Custom(loss=…) must be callable: loss(output, target) -> [B] per-sample losses")
        if metric is not None and not callable(metric):
            raise TypeError("Custom(metric=…) must be callable: metric(output, target) -> [B] per-sample values")
        self.loss = loss
        self.metric = metric
        self.higher_is_better = bool(higher_is_better) if metric is not None else False
        self.channels = channels
        self.metric_name = metric_name or (getattr(metric, "__name__", "metric") if metric is not None else "loss")

    def _target(self, name: str, t: Any, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self._check_common(name, t, x), None


_KINDS = ("segment_semantic", "normal", "depth_zbuffer", "keypoints2d", "edge_texture")
_ALIASES = {
    "segment_semantic": "segment_semantic", "segm": "segment_semantic", "seg": "segment_semantic", "segmentation": "segment_semantic",
    "semseg": "segment_semantic", "normal": "normal", "norm": "normal", "normals": "normal", "depth_zbuffer": "depth_zbuffer",
    "dept": "depth_zbuffer", "depth": "depth_zbuffer", "keypoints2d": "keypoints2d", "keyp": "keypoints2d", "keypoints": "keypoints2d",
    "edge_texture": "edge_texture", "edge": "edge_texture", "edges": "edge_texture",
}  # fmt: skip


@dataclass(frozen=True)
class Input:
    """The units of the images you give and of ε.

    Images are in ``0..range`` RGB (``range=1.0``: torchvision's tensors); ε is in the same
    units, so ``eps=8/255`` with ``range=1.0`` is 8 grey levels. When ``mean``/``std`` are given
    the module receives ``(x − mean) / std`` (same units), else ``x`` as it is.
    """

    range: float = 1.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not (float(self.range) > 0 and float(self.range) != float("inf")):
            raise ValueError(f"Input(range={self.range}): the pixel range must be a positive number, e.g. 1.0 or 255.0")
        for name in ("mean", "std"):
            v = getattr(self, name)
            if v is not None and len(tuple(v)) != 3:
                raise ValueError(f"Input({name}={v}): give one value per RGB channel")
        if self.std is not None and any(float(s) <= 0 for s in self.std):
            raise ValueError(f"Input(std={self.std}): each must be > 0")


# ------------------------------------------------------------------------------------------- net


class Net:
    """A multi-task ``nn.Module`` wrapped for mtrobust (made by :func:`wrap`)."""

    def __init__(self, module: torch.nn.Module, tasks: Mapping[str, Task], input: Input, name: str, version: str | None, on_train: str):
        self.module = module
        self.tasks: dict[str, Task] = dict(tasks)
        self.input = input
        self.name = name
        self.version = version
        self.on_train = on_train
        self.kinds: dict[str, str] = _assign_kinds(self.tasks)
        self._nets: dict[tuple[str, str, str], Any] = {}
        self._warned_train = False

    def __repr__(self) -> str:
        return f"Net({self.name}, tasks={self.tasks}, input={self.input})"

    @property
    def directions(self) -> list[str]:
        """The paper's directions for this net: every ``single:<task>``, then Total, SignTotal, GB-MTA."""
        return [f"single:{t}" for t in self.tasks] + list(DIRECTIONS)

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.module.parameters(), None)
        if p is None:
            return torch.device("cpu"), torch.float32
        return p.device, p.dtype

    def _core(self, feed: str) -> Any:
        device, dtype = self._device_dtype()
        key = (feed, str(device), str(dtype))
        if key not in self._nets:
            missing = [n for n, t in self.tasks.items() if t.channels is None]
            if missing:
                raise ValueError(f"the channel count of task(s) {missing} is not known yet; pass channels= to mt.Custom, or attack a batch first")
            specs = []
            for i, (n, t) in enumerate(self.tasks.items()):
                custom = None
                if isinstance(t, Custom):
                    custom = (t.loss, t.metric, t.metric_name, t.higher_is_better)
                specs.append((n, self.kinds[n], int(t.channels), n, custom))
            device_name = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
            i = self.input
            self._nets[key] = _core.Net(
                self.module, specs, label=f"Python module {self.name}", device=device_name, dtype=str(dtype).removeprefix("torch."),
                params=sum(p.numel() for p in self.module.parameters()), feed=feed, range=float(i.range),
                mean=None if i.mean is None else tuple(float(v) for v in i.mean), std=None if i.std is None else tuple(float(v) for v in i.std),
            )  # fmt: skip
        return self._nets[key]

    def _learn_channels(self, x: torch.Tensor) -> None:
        """Reads the channel count of custom tasks from one forward on ``x``."""
        if all(t.channels is not None for t in self.tasks.values()):
            return
        with torch.no_grad(), self._session():
            out = self.module(self._normalise(x[:1]))
        for n, (name, t) in enumerate(self.tasks.items()):
            if t.channels is None:
                y = out[name] if isinstance(out, Mapping) else (out[n] if isinstance(out, (tuple, list)) else out)
                if not isinstance(y, torch.Tensor) or y.dim() != 4:
                    raise ValueError(f"Python module {self.name}: the output of task `{name}` is not a [B, C, h, w] tensor")
                t.channels = int(y.shape[1])

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        i = self.input
        if i.mean is not None:
            x = x - torch.tensor(i.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        if i.std is not None:
            x = x / torch.tensor(i.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return x

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Grad mode on and autocast off for the call; eval mode checked (or switched and restored)."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError("mtrobust attacks need autograd; call it outside torch.inference_mode() (torch.no_grad() is fine)")
        training = [m for m in self.module.modules() if m.training]
        if training:
            if self.on_train == "raise":
                raise ValueError(
                    f"Python module {self.name} is in training mode: batch norm would use and update batch statistics during the "
                    "attack (and GB-MTA's one-backward identity needs samples to be independent); call .eval() first, or pass "
                    "on_train='eval' to mt.wrap to switch it for each call"
                )
            if not self._warned_train:
                warnings.warn(f"mtrobust: Python module {self.name} is in training mode; switching it to eval mode for each call", stacklevel=4)
                self._warned_train = True
        device, _ = self._device_dtype()
        try:
            for m in training:
                m.training = False
            with torch.enable_grad(), torch.autocast(device_type=device.type, enabled=False):
                yield
        finally:
            for m in training:
                m.training = True

    def _prepare(self, images: torch.Tensor, targets: Any) -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor | None]]]:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, not {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images have shape {tuple(images.shape)}; expected [B, 3, H, W] RGB")
        if not images.is_floating_point():
            raise TypeError(f"images are {images.dtype}; give floating-point images in 0..{self.input.range} (Input.range)")
        device, dtype = self._device_dtype()
        if images.device != device:
            raise ValueError(f"images are on {images.device} but the module is on {device}; move them with .to({str(device)!r})")
        x = images.detach().to(dtype)
        if isinstance(targets, (tuple, list)):
            if len(targets) != len(self.tasks):
                raise ValueError(f"{len(targets)} targets for {len(self.tasks)} tasks ({list(self.tasks)})")
            targets = dict(zip(self.tasks, targets))
        if not isinstance(targets, Mapping):
            raise TypeError(f"targets must be a dict keyed by task name ({list(self.tasks)}), not {type(targets).__name__}")
        core: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        for name, task in self.tasks.items():
            if name not in targets:
                raise ValueError(f"no target for task `{name}`; the targets have {list(targets)}")
            core[self.kinds[name]] = task._target(name, targets[name], x)
        self._learn_channels(x)
        return x, core

    def identity(self) -> str:
        """A digest of the module's ``state_dict`` bytes, its class and :attr:`version`: the study cells of a live module are stored under it."""
        h = hashlib.sha256()
        cls = type(self.module)
        h.update(f"{cls.__module__}.{cls.__qualname__}\0{self.version}\0".encode())
        h.update(json.dumps({n: [t.kind, t.channels] for n, t in self.tasks.items()}).encode())
        h.update(repr(self.input).encode())
        for k, v in self.module.state_dict().items():
            v = v.detach().cpu().contiguous()
            h.update(f"{k}\0{v.dtype}\0{tuple(v.shape)}\0".encode())
            h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()


def _assign_kinds(tasks: Mapping[str, Task]) -> dict[str, str]:
    if not tasks:
        raise ValueError("mt.wrap needs at least one task, e.g. tasks={'depth': mt.Depth()}")
    kinds: dict[str, str] = {}
    for name, t in tasks.items():
        if not isinstance(t, Task):
            raise TypeError(f"task `{name}` is a {type(t).__name__}; give mt.Segmentation, mt.Depth, mt.Normal, mt.Keypoints, mt.Edges or mt.Custom")
        if t.kind is not None:
            if t.kind in kinds.values():
                other = next(n for n, k in kinds.items() if k == t.kind)
                raise ValueError(f"tasks `{other}` and `{name}` are both {type(t).__name__}; each built-in task can appear once (use mt.Custom for more)")
            kinds[name] = t.kind
    for name, t in tasks.items():
        if t.kind is None:
            free = [k for k in _KINDS if k not in kinds.values()]
            if not free:
                raise ValueError(f"task `{name}`: a network has at most five tasks (custom ones take the places of built-in ones it lacks)")
            wanted = _ALIASES.get(name.lower())
            kinds[name] = wanted if wanted in free else free[0]
    return {n: kinds[n] for n in tasks}


def wrap(
    module: torch.nn.Module,
    tasks: Mapping[str, Task],
    input: Input = Input(),
    *,
    name: str | None = None,
    version: str | None = None,
    on_train: str = "raise",
) -> Net:
    """Wraps a multi-task module for attacks, evaluation and studies.

    Args:
        module: ``forward(x)`` returns a dict ``{task: [B, C, h, w]}`` keyed like ``tasks``, or a
            tuple/list in the order of ``tasks``. It must be in eval mode (see ``on_train``).
        tasks: task name → :class:`Segmentation`, :class:`Depth`, :class:`Normal`,
            :class:`Keypoints`, :class:`Edges` or :class:`Custom` (at most five).
        input: the units of images and ε (:class:`Input`).
        name: how errors and reports name it (default: its class).
        version: your version of the weights; part of a study's identity of the module.
        on_train: ``"raise"`` (default) refuses a module in training mode; ``"eval"`` switches it
            to eval mode for each call and back afterwards, with a warning.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"mt.wrap takes a torch.nn.Module, not {type(module).__name__}")
    if on_train not in ("raise", "eval"):
        raise ValueError(f"on_train={on_train!r}: use 'raise' or 'eval'")
    if not isinstance(input, Input):
        raise TypeError("input must be an mt.Input(range=…, mean=…, std=…)")
    return Net(module, tasks, input, name or type(module).__name__, version, on_train)


# --------------------------------------------------------------------------------------- attacks


def _direction(net: Net, direction: Union[str, Mapping[str, float]]) -> str:
    if isinstance(direction, Mapping):
        parts = []
        for n, w in direction.items():
            if n not in net.kinds:
                raise ValueError(f"direction weights name `{n}`, which is not a task ({list(net.tasks)})")
            parts.append(f"{net.kinds[n]}={float(w)!r}")
        return "weighted:" + ",".join(parts)
    d = str(direction).strip().lower()
    if d.startswith("single:"):
        n = str(direction).strip()[len("single:") :]
        if n not in net.kinds:
            raise ValueError(f"direction `{direction}`: the net has no task `{n}` (it has {list(net.tasks)})")
        return f"single:{net.kinds[n]}"
    canonical = {"total": "total", "sign-total": "sign-total", "signtotal": "sign-total", "sign_total": "sign-total", "gbmta": "gbmta", "gb-mta": "gbmta"}
    if d not in canonical:
        raise ValueError(f"direction `{direction}`: use single:<task>, total, sign-total, gbmta or a dict of task weights")
    return canonical[d]


class Attack:
    """An attack on a wrapped net: a step rule × a direction × an ε-ball (L∞ or L2) in input units.

    Call it like a torchattacks attack: ``x_adv = attack(images, targets)``. The module's weights
    and their ``.grad`` are not touched (gradients are taken with respect to the input only), nor
    is torch's random generator (random starts use the core's own seeded stream). ``last`` holds
    the core's checks of the last call (largest perturbation in grey levels, pixels out of range,
    passes made).
    """

    rule: str = ""

    def __init__(self, net: Net, eps: float, direction: Union[str, Mapping[str, float]] = "gbmta", *, norm: str = "linf",
                 seed: int = 0, reduction: str = "per-sample", **params: Any) -> None:  # fmt: skip
        if not isinstance(net, Net):
            raise TypeError("the first argument is the net from mt.wrap(...)")
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm={norm!r}: use 'linf' or 'l2'")
        self.net = net
        self.eps = float(eps)
        self.direction = direction
        self.norm = norm
        self.seed = int(seed)
        self.reduction = reduction
        self.params = params
        self.last: dict[str, Any] | None = None
        self._calls = 0
        _core.check_attack(self._json())  # checks the parameters now, by the core's rules

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(eps={self.eps!r}, direction={self.direction!r}, norm={self.norm!r}{extra}, seed={self.seed})"

    @property
    def direction_id(self) -> str:
        """The direction as the core spells it (tasks by their core names)."""
        return _direction(self.net, self.direction)

    def config(self) -> dict[str, Any]:
        """The core's attack configuration (ε in grey levels of 0..255), as stored in studies."""
        if not (self.eps > 0 and self.eps != float("inf")):
            raise ValueError(f"eps={self.eps}: ε must be > 0, in the units of mt.Input (e.g. 8/255 for 0..1 images)")
        grey = _core.eps_grey(self.eps, float(self.net.input.range))
        if self.norm == "linf" and grey > 255 + 1e-9:
            raise ValueError(f"eps={self.eps} is larger than the whole pixel range ({self.net.input.range})")
        return {"rule": self.rule, **self.params, "direction": self.direction_id, "norm": self.norm, "eps": grey,
                "reduction": self.reduction, "seed": self.seed}  # fmt: skip

    def _json(self) -> str:
        return json.dumps(self.config())

    def __call__(self, images: torch.Tensor, targets: Any) -> torch.Tensor:
        """The adversarial batch: ``images`` moved within ε along the direction, in ``0..range``."""
        net = self.net
        x, core_targets = net._prepare(images, targets)
        with net._session():
            x_adv, info = net._core("own").attack(self._json(), x, core_targets, self._calls)
        self._calls += 1
        self.last = json.loads(info)
        return x_adv.to(images.dtype)

    forward = __call__


class FGSM(Attack):
    """FGSM (Goodfellow et al., 2015): one step of size ε."""

    rule = "fgsm"

    def __init__(self, net: Net, eps: float, direction: Union[str, Mapping[str, float]] = "gbmta", **kw: Any) -> None:
        super().__init__(net, eps, direction, **kw)


class PGD(Attack):
    """PGD / I-FGSM as in the paper: ``steps`` steps of ``step_size`` (default ε/steps), projected after each."""

    rule = "pgd"

    def __init__(self, net: Net, eps: float, steps: int = 10, direction: Union[str, Mapping[str, float]] = "gbmta", *,
                 step_size: float | None = None, random_start: bool = False, **kw: Any) -> None:  # fmt: skip
        self._step_size = step_size
        super().__init__(net, eps, direction, n_iter=int(steps), random_start=bool(random_start), **kw)

    def config(self) -> dict[str, Any]:
        c = super().config()
        if self._step_size is not None:
            c["step_size"] = _core.eps_grey(float(self._step_size), float(self.net.input.range))
        return c


class MIFGSM(Attack):
    """Momentum iterative FGSM (Dong et al., 2018)."""

    rule = "mifgsm"

    def __init__(self, net: Net, eps: float, steps: int = 10, direction: Union[str, Mapping[str, float]] = "gbmta", *,
                 momentum: float = 1.0, **kw: Any) -> None:  # fmt: skip
        super().__init__(net, eps, direction, n_iter=int(steps), mi_momentum=float(momentum), **kw)


class APGD(Attack):
    """Auto-PGD (Croce & Hein, 2020) as AutoAttack runs it (``profile="autoattack"``), or the paper code's (``"paper"``)."""

    rule = "apgd"

    def __init__(self, net: Net, eps: float, steps: int = 10, direction: Union[str, Mapping[str, float]] = "gbmta", *,
                 restarts: int = 1, profile: str = "autoattack", **kw: Any) -> None:  # fmt: skip
        params: dict[str, Any] = {"n_iter": int(steps), "apgd_profile": profile}
        if profile == "autoattack":
            params["restarts"] = int(restarts)
        super().__init__(net, eps, direction, **params, **kw)


class AutoSAGE(Attack):
    """Auto-SAGE: per-task weights learnt during the attack."""

    rule = "auto-sage"

    def __init__(self, net: Net, eps: float, steps: int = 10, direction: Union[str, Mapping[str, float]] = "gbmta", **kw: Any) -> None:
        super().__init__(net, eps, direction, n_iter=int(steps), **kw)


class Square(Attack):
    """Square (Andriushchenko et al., 2020): gradient-free random search of ±ε squares, L∞ only;
    ``queries`` forwards and no backward, so a module that masks its gradients does not stop it."""

    rule = "square"

    def __init__(self, net: Net, eps: float, queries: int = 5000, direction: Union[str, Mapping[str, float]] = "gbmta", *,
                 p_init: float = 0.8, **kw: Any) -> None:  # fmt: skip
        super().__init__(net, eps, direction, n_queries=int(queries), p_init=float(p_init), **kw)


class Ensemble(Attack):
    """The per-sample worst case over several attacks (AutoAttack's idea, for multi-task models).

    Every member attacks the batch within this ensemble's ``eps``, norm and seed, exactly as it
    would alone; each sample keeps the example of the member with the highest ``score`` (``"gbmta"``:
    the balanced relative loss increase; ``"single:<task>"``: that task's loss). ``members`` is
    ``"standard"`` (APGD with ``steps`` along GB-MTA, Total and each Single-x, then Square with
    ``queries`` along GB-MTA) or a list of attacks on the same net, whose own ε, norm and seed are
    replaced by the ensemble's. :func:`evaluate` reports each member's ARP and wins
    (:attr:`Evaluation.members`).
    """

    rule = "ensemble"

    def __init__(self, net: Net, eps: float, members: Union[str, Sequence[Attack]] = "standard", *, score: str = "gbmta",
                 steps: int = 100, queries: int = 5000, name: str | None = None, **kw: Any) -> None:  # fmt: skip
        if isinstance(members, str):
            if members != "standard":
                raise ValueError(f"members={members!r}: use 'standard' or a list of attacks")
            listed = json.loads(_core.standard_ensemble(list(net.kinds.values()), int(steps), int(queries)))
            name = "standard"
        else:
            listed = []
            for i, m in enumerate(members):
                if not isinstance(m, Attack) or isinstance(m, Ensemble):
                    raise TypeError(f"member #{i + 1}: {m!r} is not an attack (an ensemble cannot be a member)")
                if m.net is not net:
                    raise ValueError(f"member #{i + 1} ({type(m).__name__}) attacks another net; build it on this one")
                own = {k: v for k, v in m.config().items() if k not in ("norm", "eps", "reduction", "seed")}
                listed.append(own)
            if name is None or name == "standard":
                name = "custom"
        super().__init__(net, eps, score, name=name, members=listed, **kw)


def gradient(net: Net, images: torch.Tensor, targets: Any, direction: Union[str, Mapping[str, float]] = "gbmta") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The direction's input gradient at the clean images, before any sign or projection, and
    each task's per-sample clean losses ``[B]``: Total is ∇ Σ_t Σ_b L_tb, Single-x ∇ Σ_b L_xb,
    GB-MTA Σ_t ∇ L_tb / L_tb (clean losses), per sample."""
    x, core_targets = net._prepare(images, targets)
    with net._session():
        g, losses = net._core("own").gradient(_direction(net, direction), x, core_targets)
    back = {k: n for n, k in net.kinds.items()}
    return g, {back[k]: v for k, v in losses.items()}


# ------------------------------------------------------------------------------------ evaluation


@dataclass
class Evaluation:
    """The clean run and the attacked runs of one net (see :func:`evaluate`)."""

    net: Net
    attacks: list[Attack]
    raw: dict[str, Any] = field(repr=False)

    def _task(self, kind: str) -> str:
        return {k: n for n, k in self.net.kinds.items()}.get(kind, kind)

    @property
    def clean(self) -> Any:
        """Clean metrics: a DataFrame indexed by (task, metric) with the value and whether higher is better."""
        pd = _pandas()
        rows = [(self._task(k), m["name"], m["value"], m["higher_is_better"]) for k, ms in self.raw["evaluation"]["clean"]["metrics"].items() for m in ms]
        return pd.DataFrame(rows, columns=["task", "metric", "value", "higher_is_better"]).set_index(["task", "metric"])

    @property
    def arp(self) -> Any:
        """A DataFrame indexed by (attack, direction, eps): ARP (%), each task's ARP-x, and the
        transferability of Single-x attacks (mean ARP of the other tasks over the attacked one's)."""
        pd = _pandas()
        rows = []
        for a, r, t in zip(self.attacks, self.raw["evaluation"]["attacked"], self.raw["transfer"]):
            arp = r.get("arp") or {}
            row: dict[str, Any] = {"attack": type(a).__name__, "direction": _display(self.net, a.direction_id), "eps": a.eps, "ARP": arp.get("arp")}
            for k, v in (arp.get("per_task") or {}).items():
                row[f"ARP[{self._task(k)}]"] = v
            row["transferability"] = t
            row["max_perturbation"] = (r.get("checks") or {}).get("max_perturbation")
            rows.append(row)
        return pd.DataFrame(rows).set_index(["attack", "direction", "eps"])

    @property
    def members(self) -> Any:
        """For each :class:`Ensemble` attack, one row per member indexed by (ensemble, eps, member):
        how many samples' worst case it gave (``wins``, ``wins_share``), its own ARP and passes."""
        pd = _pandas()
        rows = []
        for i, (a, r) in enumerate(zip(self.attacks, self.raw["evaluation"]["attacked"])):
            for m in r.get("ensemble") or []:
                mr = m["report"]
                config = mr.get("attack") or {}
                counts = mr.get("counts") or {}
                rows.append({"ensemble": f"{i}:{a.params.get('name')}", "eps": a.eps,
                             "member": f"{config.get('rule')} {_display(self.net, config.get('direction', ''))}",
                             "wins": m["wins"], "wins_share": m["wins"] / max(mr["samples"], 1),
                             "ARP": (mr.get("arp") or {}).get("arp"), "forward": counts.get("forward"), "backward": counts.get("backward")})  # fmt: skip
        columns = ["ensemble", "eps", "member", "wins", "wins_share", "ARP", "forward", "backward"]
        return pd.DataFrame(rows, columns=columns).set_index(["ensemble", "eps", "member"])

    @property
    def metrics(self) -> Any:
        """Every metric clean and under every attack, one row each (long format)."""
        pd = _pandas()
        rows = []
        for a, r in zip(self.attacks, self.raw["evaluation"]["attacked"]):
            for k, changes in ((r.get("arp") or {}).get("metrics") or {}).items():
                for c in changes:
                    rows.append({"attack": type(a).__name__, "direction": _display(self.net, a.direction_id), "eps": a.eps, "task": self._task(k),
                                 "metric": c["name"], "clean": c["clean"], "attacked": c["attacked"], "relative": c["relative"]})  # fmt: skip
        return pd.DataFrame(rows)

    @property
    def warnings(self) -> list[Any]:
        """The core's warnings (sanity checks that failed, metrics ARP skipped, zero gradients)."""
        return list(self.raw["evaluation"].get("warnings", []))


def _display(net: Net, direction_id: str) -> str:
    if direction_id.startswith("single:"):
        kind = direction_id[len("single:") :]
        return "Single-" + {k: n for n, k in net.kinds.items()}.get(kind, kind)
    return _DISPLAY.get(direction_id, direction_id)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("tables need pandas: pip install 'mtrobust[pandas]' (or pandas)") from e
    return pandas


def _batches(net: Net, data: Iterable[Any], limit: int | None) -> Iterator[tuple[torch.Tensor, Any]]:
    seen = 0
    for item in data:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError("each batch of the data must be (images, targets) or (images, targets, names)")
        images, targets = item[0], item[1]
        if limit is not None and seen + images.shape[0] > limit:
            images = images[: limit - seen]
            targets = {k: v[: limit - seen] for k, v in targets.items()} if isinstance(targets, Mapping) else [v[: limit - seen] for v in targets]
        if images.shape[0] == 0:
            break
        device, _ = net._device_dtype()
        images = images.to(device)
        targets = {k: v.to(device) for k, v in targets.items()} if isinstance(targets, Mapping) else [v.to(device) for v in targets]
        seen += images.shape[0]
        yield images, targets
        if limit is not None and seen >= limit:
            break


def evaluate(net: Net, data: Any, attacks: Sequence[Attack] = (), *, metrics: str | None = None, convention: str = "standard",
             batch_size: int = 16, limit: int | None = None) -> Evaluation:  # fmt: skip
    """Evaluates ``net`` clean and under each attack over ``data``; ARP is against the clean run.

    ``data`` is an iterable of ``(images, targets)`` batches (a ``DataLoader``; batches are moved to
    the module's device), or an :func:`mtrobust.data.open` dataset, which the core then reads itself
    in batches of ``batch_size``. ``metrics`` is ``"full"`` (NYUv2-style) or ``"taskonomy"``;
    ``convention`` ``"standard"`` or ``"reference"`` (the paper code's arithmetic).
    """
    from . import data as mt_data

    attacks = list(attacks)
    for a in attacks:
        if not isinstance(a, Attack) or a.net is not net:
            raise ValueError("every attack must be an mt attack made for this net, e.g. mt.PGD(net, eps=8/255)")
    configs = [a._json() for a in attacks]
    profile = None if metrics is None else {"full": "full", "taskonomy": "taskonomy"}.get(metrics)
    if metrics is not None and profile is None:
        raise ValueError(f"metrics={metrics!r}: use 'full' or 'taskonomy'")
    if convention not in ("standard", "reference"):
        raise ValueError(f"convention={convention!r}: use 'standard' or 'reference'")
    with net._session():
        if isinstance(data, mt_data.Dataset):
            if any(isinstance(t, Custom) for t in net.tasks.values()):
                raise ValueError("an mt.data dataset labels only the built-in tasks; evaluate a net with mt.Custom tasks on your own batches")
            options = None if profile is None else {"profile": profile, "convention": convention}
            if options is None and convention != "standard":
                options = {"profile": "full", "convention": convention}
            raw = net._core("loader").evaluate_data(str(data.path), data.split, int(batch_size), limit, configs, json.dumps(options))
        else:
            batches = [net._prepare(x, t) for x, t in _batches(net, data, limit)]
            if not batches:
                raise ValueError("the data gave no batch")
            options = {"profile": profile or "full", "convention": convention}
            raw = net._core("own").evaluate(batches, configs, json.dumps(options))
    return Evaluation(net, attacks, json.loads(raw))


# --------------------------------------------------------------------------------------- studies


class Study:
    """A study file (TOML: ``[data]``, ``[[attack]]`` blocks, optional ``[[model]]`` files) run
    with live modules besides its file models; resumable and shardable like ``mtrobust study run``.

    A live module's cells are stored under :meth:`Net.identity` (its weights' bytes, class and
    ``version``): run it again with the same weights and finished cells are skipped.
    """

    def __init__(self, path: str, models: Mapping[str, Net] | None = None) -> None:
        self.path = str(path)
        self.models = dict(models or {})
        for n, m in self.models.items():
            if not isinstance(m, Net):
                raise TypeError(f"models[{n!r}] must be a net from mt.wrap")

    def run(self, db: str, *, device: str | None = None, shard: str | None = None, per_sample: bool = False) -> dict[str, Any]:
        """Computes the cells ``db`` does not hold yet (``shard="i/n"``: this shard's only); returns a summary."""
        live = []
        for name, net in self.models.items():
            cls = type(net.module)
            description = {"format": "python", "class": f"{cls.__module__}.{cls.__qualname__}", "version": net.version,
                           "tasks": net.kinds, "input": {"range": net.input.range, "mean": net.input.mean, "std": net.input.std}}  # fmt: skip
            live.append((name, net.identity(), f"python:{cls.__module__}.{cls.__qualname__}", json.dumps(description), net._core("loader")))
        with contextlib.ExitStack() as stack:
            for net in self.models.values():
                stack.enter_context(net._session())
            return json.loads(_core.study(self.path, live, str(db), device, shard, per_sample))


@dataclass
class StoredResults:
    """A results store read back (see :func:`results`)."""

    db: str
    models: list[dict[str, Any]]
    cells: list[dict[str, Any]]

    def figures(self, out: str, eps: float = 8.0) -> list[str]:
        """Writes the paper's figures (Figure 2: ARP vs ε per direction; Figures 1 and 4 at ``eps``
        grey levels) as PNG and SVG into ``out``; returns the files."""
        return list(_core.figures(self.db, str(out), float(eps)))

    def to_pandas(self, **where: Any) -> Any:
        """One row per cell: model, rule, direction, norm, eps (grey levels; ``eps_255`` = eps/255),
        seed, ARP, transferability, each task's ARP, checks; ``where`` filters on those columns,
        e.g. ``to_pandas(rule="pgd", direction="gbmta")``."""
        pd = _pandas()
        rows = []
        for c in self.cells:
            per_task = ((c.get("report") or {}).get("arp") or {}).get("per_task") or {}
            row = {k: c[k] for k in ("model", "rule", "direction", "norm", "eps", "seed", "samples", "arp", "transfer", "checks_passed", "seconds")}
            row["eps_255"] = c["eps"] / 255.0
            row.update({f"ARP[{k}]": v for k, v in per_task.items()})
            rows.append(row)
        df = pd.DataFrame(rows)
        for k, v in where.items():
            if k not in df.columns:
                raise ValueError(f"no column `{k}` (columns: {list(df.columns)})")
            df = df[df[k] == v]
        return df.reset_index(drop=True)


def results(db: str) -> StoredResults:
    """Reads a results store (written by :meth:`Study.run` or ``mtrobust study run``)."""
    raw = json.loads(_core.results(str(db)))
    return StoredResults(str(db), raw["models"], raw["cells"])


from . import data  # noqa: E402  (needs the names above)
