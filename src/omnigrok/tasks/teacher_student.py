"""Teacher-student regression (paper Fig. 2): a fixed random 5-100-100-5 tanh teacher labels
``n_train`` / ``n_test`` inputs drawn from N(0, I); the student has the teacher's shape; MSE.
``data_seed`` fixes the teacher and the inputs, and nothing else."""

from __future__ import annotations

from typing import Any

import numpy as np

from omnigrok.config import RunConfig, TaskSpec
from omnigrok.models.mlp import MLPSpec
from omnigrok.registry import register
from omnigrok.task import Task, rng

WIDTHS = (5, 100, 100, 5)


def teacher_weights(data_seed: int, widths: tuple[int, ...] = WIDTHS) -> list:
    """The fixed random teacher: PyTorch-default-init tanh MLP drawn from ``data_seed``."""
    gen = rng(data_seed, 1)
    layers = []
    for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / np.sqrt(d_in)
        layers.append(
            (gen.uniform(-bound, bound, (d_in, d_out)), gen.uniform(-bound, bound, d_out))
        )
    return layers


class TeacherStudent(Task):
    name = "teacher_student"
    losses = ("mse",)

    def label(self, spec: TaskSpec) -> str:
        return "teacher-student"

    def io_widths(self, spec: TaskSpec) -> tuple[int, int]:
        return WIDTHS[0], WIDTHS[-1]

    def arrays(self, spec: TaskSpec) -> tuple[np.ndarray, ...]:
        n_test = spec.n_test or 100
        x = rng(spec.data_seed, 0).standard_normal((spec.n_train + n_test, WIDTHS[0]))
        h = x
        layers = teacher_weights(spec.data_seed)
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = np.tanh(h)
        return x[: spec.n_train], h[: spec.n_train], x[spec.n_train :], h[spec.n_train :]

    def preset(self, **overrides: Any) -> RunConfig:
        """A 5-100-100-5 tanh student of the teacher from 100 inputs, MSE, full batch."""
        base = dict(
            task=TaskSpec("teacher_student", n_train=100, n_test=100),
            model=MLPSpec(WIDTHS, "tanh"),
            steps=5_000,
            batch_size=None,
            loss="mse",
            lr=1e-3,
            weight_decay=0.0,
            init_scale=1.0,
        )
        return RunConfig(**{**base, **overrides})


TASK = register(TeacherStudent())
teacher_student_run = TASK.preset
