"""The core's dataset readers (NYUv2, Tiny-Taskonomy, ``mtrobust data synth`` output) as a
``torch.utils.data.Dataset``.

Each sample is ``(image, targets, name)``: the image as RGB in 0..1 (``[3, H, W]`` float32; use
``mt.Input(range=1.0)``), the labels keyed ``seg`` (``[H, W]`` long, 255 = ignored), ``normal``
(``[3, H, W]``), ``depth``, ``keypoints``, ``edges`` (``[1, H, W]``; NaN = ignored), and the
sample's name. A ``DataLoader`` over it yields batches :func:`mtrobust.evaluate` takes; passing
the dataset itself lets the core read it in batches without Python in the loop.
"""

from __future__ import annotations

from pathlib import Path
import torch

from . import Depth, Edges, Keypoints, Normal, Segmentation, Task, _core

#: Target keys by core task.
NAMES = {"segment_semantic": "seg", "normal": "normal", "depth_zbuffer": "depth", "keypoints2d": "keypoints", "edge_texture": "edges"}


class Dataset(torch.utils.data.Dataset):
    """A split of a dataset directory, read by mtrobust's core (see :func:`open`)."""

    def __init__(self, path: str | Path, split: str = "test") -> None:
        self.path = Path(path)
        self.split = split
        self._core = _core.Dataset(str(self.path), split)

    def __len__(self) -> int:
        return len(self._core)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], str]:
        if index < 0:
            index += len(self)
        image, labels, name = self._core.get(int(index))
        return image, {NAMES[k]: v for k, v in labels.items()}, name

    def tasks(self) -> dict[str, Task]:
        """The tasks it labels, ready for ``mt.wrap(model, tasks=ds.tasks())``."""
        made: dict[str, Task] = {}
        for k in self._core.tasks():
            if k == "segment_semantic":
                made["seg"] = Segmentation(classes=self._core.seg_classes())
            else:
                made[NAMES[k]] = {"normal": Normal, "depth_zbuffer": Depth, "keypoints2d": Keypoints, "edge_texture": Edges}[k]()
        return made

    def __repr__(self) -> str:
        return f"mtrobust.data.Dataset({str(self.path)!r}, split={self.split!r}, samples={len(self)})"


def open(path: str | Path, split: str = "test") -> Dataset:  # noqa: A001 - the module's verb
    """Opens ``split`` of the dataset in ``path`` (``mtrobust data synth --out DIR`` makes one)."""
    return Dataset(path, split)


def synth(path: str | Path, n: int = 480, size: int = 32, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Renders ``n`` synthetic indoor scenes with five aligned labels into ``path`` (the demo's
    data) and opens its test split."""
    _core.synth(str(path), int(n), int(size), int(seed), float(test_fraction))
    return Dataset(path, "test")

