"""Modular addition (paper Sec. 3.3, Nanda et al.'s setup): every pair (a, b) as tokens
``a b =`` (``=`` is token ``p``), label (a + b) mod p; a ``train_frac`` share of the pairs,
chosen by ``data_seed``, is the training set. Test pairs whose mirror (b, a) is not in training
form the ``novel`` group (``test_acc_novel``).

Its probe ``fourier_top5`` (``RunConfig.probe``) logs how concentrated the embedding of the
number tokens is on a few Fourier frequencies (Nanda et al.'s key frequencies; paper Sec. 4
asks whether grokking is representation learning)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from omnigrok.checks import check_int, fail
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.models.transformer import TransformerSpec
from omnigrok.registry import register
from omnigrok.task import Task, rng


def novel_pairs(x_train: np.ndarray, x_test: np.ndarray, p: int) -> np.ndarray:
    """Which test pairs (a, b) have their mirror (b, a) outside the training set.

    Addition commutes, so a model that memorized (b, a) answers (a, b) without having
    generalized: early test accuracy is about the share of mirrored test pairs (~30% at a
    train fraction of 0.3). Accuracy on the novel pairs is generalization proper."""
    seen = np.zeros((p, p), dtype=bool)
    seen[x_train[:, 0], x_train[:, 1]] = True
    return ~seen[x_test[:, 1], x_test[:, 0]]


TOP_FREQUENCIES = 5  # Nanda et al. find about five key frequencies at P = 113


def frequency_power(embedding: torch.Tensor) -> torch.Tensor:
    """Power of the number tokens' embedding per frequency k = 1 .. P // 2: ``embedding``
    ``[..., d_model, P]`` (a column per number, as ``W_E[:, :, :P]``), DFT over the numbers,
    |F_k|² summed over d_model, k paired with P - k (their power is equal: the embedding is
    real). The constant term k = 0 (the mean embedding, the same for every number) carries
    nothing about a + b and is left out. Returns ``[..., P // 2]``."""
    p = embedding.shape[-1]
    power = torch.fft.rfft(embedding, dim=-1).abs().pow(2).sum(dim=-2)[..., 1:]
    pairs = torch.full((power.shape[-1],), 2.0, dtype=power.dtype, device=power.device)
    if p % 2 == 0:
        pairs[-1] = 1.0  # k = P / 2 is its own partner
    return power * pairs


def fourier_concentration(embedding: torch.Tensor, top: int = TOP_FREQUENCIES) -> torch.Tensor:
    """Share of the embedding's non-constant power in its ``top`` strongest frequencies
    (``frequency_power``): 1 when the numbers are embedded on ``top`` frequencies or fewer;
    about ``top`` / (P // 2) for a random embedding. ``[...]``."""
    power = frequency_power(embedding)
    top = check_int("top", top, minimum=1, maximum=power.shape[-1])
    strongest = power.topk(top, dim=-1).values.sum(dim=-1)
    return strongest / power.sum(dim=-1).clamp_min(torch.finfo(power.dtype).tiny)


def fourier_top5(spec: TaskSpec, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The probe: each run's ``fourier_concentration`` of ``W_E`` over the P number tokens
    (the '=' token is not a number), ``[K]``."""
    return fourier_concentration(params["W_E"][..., : spec.p], TOP_FREQUENCIES)


class ModularAddition(Task):
    name = "modadd"
    fields = ("p", "train_frac", "data_seed")
    models = ("transformer",)
    probes = {"fourier_top5": fourier_top5}

    def label(self, spec: TaskSpec) -> str:
        return "modular addition"

    def n_classes(self, spec: TaskSpec) -> int:
        return spec.p

    def check(self, config: RunConfig) -> None:
        super().check(config)
        if config.model.d_vocab < config.task.p + 1:
            fail("d_vocab", config.model.d_vocab, f">= p + 1 = {config.task.p + 1} (the '=' token)")

    def train_size(self, spec: TaskSpec) -> int:
        return int(spec.train_frac * spec.p * spec.p)

    def arrays(self, spec: TaskSpec) -> tuple[np.ndarray, ...]:
        p = spec.p
        a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        tokens = np.stack([a.ravel(), b.ravel(), np.full(p * p, p)], axis=1).astype(np.int64)
        labels = (tokens[:, 0] + tokens[:, 1]) % p
        order = rng(spec.data_seed, 2).permutation(p * p)
        n_train = int(spec.train_frac * p * p)
        train, test = order[:n_train], order[n_train:]
        if spec.n_test:
            test = test[: spec.n_test]
        return tokens[train], labels[train], tokens[test], labels[test]

    def test_groups(self, spec: TaskSpec, x_train: np.ndarray, x_test: np.ndarray) -> dict:
        return {"novel": novel_pairs(x_train, x_test, spec.p)}

    def preset(
        self, p: int = 113, train_frac: float = 0.3, data_seed: int = 0, **overrides: Any
    ) -> RunConfig:
        """Nanda et al.'s setup: 1-layer transformer, p = 113, 30% of pairs for training, full
        batch, cross-entropy, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1."""
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


TASK = register(ModularAddition())
modadd_run = TASK.preset
