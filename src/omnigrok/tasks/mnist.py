"""MNIST (paper Sec. 3.1, Fig. 1 and 6): the first ``n_train`` training images, all 10k test
images (``n_test`` > 0 keeps the first ``n_test``), pixels in [0, 1], flattened for the MLP;
labels as classes, MSE on one-hot targets in the paper.

``messiness`` m < 1 (paper Sec. 4, its ``mnist-repr`` code) mixes each image with a template of
its class: m·x + (1 - m)·t_c, where t_c is a constant image at level c/9 - 1/2 (c = 0 .. 9),
on training and test images alike. m = 0 hands the model a perfect representation (the
class, as the brightness of a blank image); m = 1 is MNIST as it is."""

from __future__ import annotations

from typing import Any

import numpy as np

from omnigrok.config import RunConfig, TaskSpec
from omnigrok.data.mnist import load_mnist
from omnigrok.models.mlp import MLPSpec
from omnigrok.registry import register
from omnigrok.task import Task


def class_templates(n_classes: int = 10) -> np.ndarray:
    """The paper's class templates' levels: ``linspace(-0.5, 0.5, n_classes)``, one per class
    (a template is a whole image at its class's level)."""
    return np.linspace(-0.5, 0.5, n_classes)


def messy(x: np.ndarray, y: np.ndarray, messiness: float) -> np.ndarray:
    """Flattened images ``x`` ``[N, 784]`` with labels ``y``, mixed with their class templates:
    ``m·x + (1 - m)·t_y`` (paper Sec. 4). m = 1 returns ``x`` unchanged."""
    if not 0 <= messiness <= 1:
        raise ValueError(f"messiness must be a number in [0, 1], got {messiness!r}")
    if messiness == 1:
        return x
    return messiness * x + (1 - messiness) * class_templates()[y][:, None]


class Mnist(Task):
    name = "mnist"
    fields = ("n_train", "n_test", "messiness")

    def label(self, spec: TaskSpec) -> str:
        return f"MNIST (N={spec.n_train})"

    def n_classes(self, spec: TaskSpec) -> int:
        return 10

    def io_widths(self, spec: TaskSpec) -> tuple[int, int]:
        return 784, 10

    def arrays(self, spec: TaskSpec) -> tuple[np.ndarray, ...]:
        x_train, y_train, x_test, y_test = load_mnist(spec.n_train)
        if spec.n_test:
            x_test, y_test = x_test[: spec.n_test], y_test[: spec.n_test]
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
        flat = lambda x, y: messy(  # noqa: E731
            x.reshape(len(x), -1).astype(np.float64) / 255.0, y, spec.messiness
        )
        return flat(x_train, y_train), y_train, flat(x_test, y_test), y_test

    def preset(self, n_train: int = 1000, **overrides: Any) -> RunConfig:
        """The paper's run (Sec. 3.1): first 1000 training images, depth-3 width-200 ReLU MLP,
        MSE on one-hot targets, AdamW lr 1e-3, weight decay 0.01, batch 200, 1e5 steps, α = 8."""
        base = dict(
            task=TaskSpec("mnist", n_train=n_train),
            model=MLPSpec((784, 200, 200, 10), "relu"),
            steps=100_000,
            batch_size=200,
            loss="mse",
            lr=1e-3,
            weight_decay=0.01,
            init_scale=8.0,
        )
        return RunConfig(**{**base, **overrides})


TASK = register(Mnist())
mnist_run = TASK.preset
