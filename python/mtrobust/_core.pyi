"""Stubs of the compiled core (python/src/lib.rs). Use the typed API in ``mtrobust`` instead."""

from typing import Any, Callable, Sequence

import torch

class MtrobustError(ValueError):
    """An error of mtrobust's core (bad input, a parameter out of range, unreadable data); its
    message names what and how to fix it, and a Python exception that caused it is its __cause__."""

_TaskArg = tuple[str, str, int, str | int, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor] | None, str, bool] | None]
_Targets = dict[str, tuple[torch.Tensor, torch.Tensor | None]]

class Net:
    """A wrapped module as the core sees it (made by ``mtrobust.Net``)."""

    def __init__(
        self,
        module: torch.nn.Module,
        tasks: Sequence[_TaskArg],
        *,
        label: str,
        device: str,
        dtype: str,
        params: int,
        feed: str,
        range: float,
        mean: tuple[float, float, float] | None,
        std: tuple[float, float, float] | None,
    ) -> None: ...
    def attack(self, config: str, x: torch.Tensor, targets: _Targets, index: int) -> tuple[torch.Tensor, str]:
        """Attacks one batch: the adversarial batch and the core's checks as JSON."""
    def gradient(self, direction: str, x: torch.Tensor, targets: _Targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The direction's ascent tensor at the clean batch and the per-sample clean losses by core task name."""
    def evaluate(self, batches: Sequence[tuple[torch.Tensor, _Targets]], configs: Sequence[str], options: str) -> str:
        """Clean and attacked evaluation over in-memory batches: the evaluation as JSON."""
    def evaluate_data(self, path: str, split: str, batch_size: int, limit: int | None, configs: Sequence[str], options: str) -> str:
        """The same over a dataset directory read by the core's loaders (``feed="loader"``)."""

class Dataset:
    """A dataset split read by the core."""

    def __init__(self, path: str, split: str) -> None: ...
    def __len__(self) -> int: ...
    def tasks(self) -> list[str]: ...
    def seg_classes(self) -> int: ...
    def get(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], str]:
        """Sample ``index``: RGB image in 0..1, labels by core task name (invalid: 255 / NaN), name."""

def study(
    path: str, live: Sequence[tuple[str, str, str, str, Net]], db: str, device: str | None = None, shard: str | None = None, per_sample: bool = False
) -> str:
    """Runs a study file with live networks; the summary as JSON."""

def results(db: str) -> str:
    """A results store's models and cells as JSON."""

def synth(path: str, n: int, size: int, seed: int, test_fraction: float) -> None:
    """Renders synthetic scenes into ``path`` (``mtrobust data synth``)."""

def figures(db: str, out: str, eps: float) -> list[str]:
    """Writes the paper's Figures 2, 1 and 4 of a results store into ``out``."""

def eps_grey(eps: float, range: float) -> float:
    """The grey-level budget that is exactly ``eps`` units of images in ``0..range``."""

def standard_ensemble(kinds: list[str], n_iter: int, n_queries: int) -> str:
    """The `standard` ensemble's members (JSON) for a model with these core task kinds."""
    ...

def check_attack(config: str) -> None:
    """Checks an attack configuration's JSON form; raises ``MtrobustError`` naming a bad parameter."""

def version() -> str:
    """The core's version."""

