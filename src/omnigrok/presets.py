"""The paper's setups as ``RunConfig`` factories, one place for every default.

Each factory returns the paper's configuration (Sec. 3 and its official code); keyword
arguments override fields. Notebooks, tests, the command line and the benchmarks all start
from these, so a default changes in one place.
"""

from __future__ import annotations

from typing import Any

from omnigrok.config import MLPSpec, RunConfig, TaskSpec, TransformerSpec


def mnist_run(n_train: int = 1000, **overrides: Any) -> RunConfig:
    """MNIST (paper Sec. 3.1): first 1000 training images, depth-3 width-200 ReLU MLP, MSE on
    one-hot targets, AdamW lr 1e-3, weight decay 0.01, batch 200, 1e5 steps, α = 8."""
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


def teacher_student_run(**overrides: Any) -> RunConfig:
    """Teacher-student regression (paper Fig. 2): a 5-100-100-5 tanh student learns a fixed
    random teacher of the same shape from 100 inputs drawn from N(0, I); MSE; full batch."""
    base = dict(
        task=TaskSpec("teacher_student", n_train=100, n_test=100),
        model=MLPSpec((5, 100, 100, 5), "tanh"),
        steps=5_000,
        batch_size=None,
        loss="mse",
        lr=1e-3,
        weight_decay=0.0,
        init_scale=1.0,
    )
    return RunConfig(**{**base, **overrides})


def modadd_run(
    p: int = 113, train_frac: float = 0.3, data_seed: int = 0, **overrides: Any
) -> RunConfig:
    """Modular addition (paper Sec. 3.3, Nanda et al.'s setup): 1-layer transformer, p = 113,
    30% of pairs for training, full batch, cross-entropy, AdamW lr 1e-3, betas (0.9, 0.98),
    weight decay 1."""
    base = dict(
        task=TaskSpec("modadd", p=p, train_frac=train_frac, data_seed=data_seed),
        model=TransformerSpec(d_vocab=p + 1),
        steps=10_000,
        batch_size=None,
        loss="ce",
        lr=1e-3,
        betas=(0.9, 0.98),
        weight_decay=1.0,
        init_scale=1.0,
    )
    return RunConfig(**{**base, **overrides})
