"""The rival explanations' levers, per run of a stack: StableMax, ⊥Grad, Grokfast's EMA filter
and a held logit scale.

Each is written from its published definition, for stacked parameters (``[K, ...]``) with a
per-run on/off mask, so that one stack mixes runs with and without them and a run's curves do
not depend on its stack mates (tested against plain one-run references in
``tests/test_rivals.py``):

* StableMax (Prieto et al., "Grokking at the edge of numerical stability", ICLR 2025, Sec. 5):
  ``s(x) = x + 1`` for ``x >= 0`` and ``1 / (1 - x)`` for ``x < 0``, normalized over the
  classes in place of softmax's ``exp``; its cross-entropy is computed in float64, as their
  ``stablemax_cross_entropy`` does.
* ⊥Grad (ibid., Sec. 6; their ``OrthoGrad``): per parameter tensor, the gradient less its
  projection on that tensor's weights, ``g - (w·g)/(w·w) w``, rescaled to the norm of ``g``.
* Grokfast-EMA (Lee et al. 2024, Algorithm 2; their ``gradfilter_ema``): ``μ ← α μ + (1 - α) g``
  (``μ`` starts at the first gradient), then ``g ← g + λ μ``, before the optimizer's step.
* A held logit scale (this book's control for "the logit scale, not the norm, does the work"):
  each example's logits multiplied by ``c / rms(logits)``, so their root-mean-square over the
  classes is ``c`` whatever the weights' norm. Under MSE (MNIST) the same rescaling holds the
  outputs' scale: the loss sees the rescaled outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from omnigrok.config import RunConfig
from omnigrok.models import Params
from omnigrok.norms import _per_run

# ⊥Grad's guards against 0/0, as in their code (1e-30: far below any weight or gradient norm
# squared here, and still a normal float32).
PERP_EPS = 1e-30
# The held logit scale's guard: a run whose logits are all zero keeps them zero.
RMS_EPS = 1e-20


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """StableMax's ``s``: ``x + 1`` for ``x >= 0``, ``1 / (1 - x)`` for ``x < 0``. Each branch
    sees only its own half of the line, so neither's gradient is inf or NaN on the other."""
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def log_stablemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(s(x) / sum s(x))`` over ``dim``."""
    s = stablemax_s(x)
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean StableMax cross-entropy of each run, ``[K]`` (``out``: ``[K, B, C]``, ``y``: ``[B]``
    or ``[K, B]``), computed in float64 and returned in ``out``'s dtype."""
    logp = log_stablemax(out.double())
    picked = logp.gather(-1, y.expand(out.shape[:2]).unsqueeze(-1))[..., 0]
    return (-picked.mean(dim=1)).to(out.dtype)


def hold_logit_scale(out: torch.Tensor, scale: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """Where ``held[k]``, run k's logits rescaled to root-mean-square ``scale[k]`` over the
    classes, example by example (gradients flow through the rescaling); other runs' as they are.
    """
    rms = out.pow(2).mean(dim=-1, keepdim=True).add(RMS_EPS).sqrt()
    rescaled = out * (_per_run(out, scale.to(out.dtype)) / rms)
    return torch.where(_per_run(out, held), rescaled, out)


@torch.no_grad()
def perp_grad_(params: Params, runs: torch.Tensor) -> None:
    """⊥Grad in place for the runs where ``runs`` (``[K]`` bool) is set: per tensor and per run,
    ``g ← (g - (w·g)/(w·w) w) · |g| / |g - (w·g)/(w·w) w|``."""
    for p in params.values():
        g = p.grad
        if g is None:
            continue
        w = p.detach()
        dot = (w * g).flatten(1).sum(dim=1)
        coef = dot / (w.pow(2).flatten(1).sum(dim=1) + PERP_EPS)
        g_perp = g - _per_run(g, coef) * w
        g_norm = g.flatten(1).norm(dim=1)
        perp_norm = g_perp.flatten(1).norm(dim=1) + PERP_EPS
        g_perp.mul_(_per_run(g, g_norm / perp_norm))
        g.copy_(torch.where(_per_run(g, runs), g_perp, g))


class GradFilter:
    """Grokfast's EMA filter over stacked gradients, per run: factor ``alpha[k]``, amplitude
    ``lamb[k]``; runs where ``runs[k]`` is off keep their gradients. The EMA is part of a
    stack's state (checkpointed)."""

    def __init__(self, params: Params, alpha: torch.Tensor, lamb: torch.Tensor, runs) -> None:
        self.alpha, self.lamb, self.runs = alpha, lamb, runs
        self.ema = {n: torch.zeros_like(p) for n, p in params.items()}
        self.started = False

    @torch.no_grad()
    def apply_(self, params: Params) -> None:
        for name, p in params.items():
            g = p.grad
            if g is None:
                continue
            mu = self.ema[name]
            if self.started:
                # The published rule, op for op: grads * alpha + grad * (1 - alpha).
                mu.mul_(_per_run(mu, self.alpha)).add_(g * _per_run(g, 1 - self.alpha))
            else:
                mu.copy_(g)  # gradfilter_ema starts its average at the first gradient
            g.copy_(torch.where(_per_run(g, self.runs), g + mu * _per_run(g, self.lamb), g))
        self.started = True

    def state_dict(self) -> dict:
        return {"ema": self.ema, "started": self.started}

    def load_state_dict(self, state: dict) -> None:
        self.started = bool(state["started"])
        for name, mu in self.ema.items():
            mu.copy_(state["ema"][name])


@dataclass(frozen=True)
class Levers:
    """Which runs of a stack use which lever, as ``[K]`` tensors (None where no run does: such
    a stack takes the plain path, bit for bit what it computed before the levers existed, and
    asks the device nothing per step)."""

    stablemax: torch.Tensor | None
    perp_grad: torch.Tensor | None
    filtered: torch.Tensor | None
    filter_alpha: torch.Tensor
    filter_lamb: torch.Tensor
    logit_held: torch.Tensor | None
    logit_scale: torch.Tensor

    @classmethod
    def of(cls, configs: Sequence[RunConfig], device, dtype: torch.dtype) -> Levers:
        def flags(values) -> torch.Tensor | None:
            return torch.tensor(values, dtype=torch.bool, device=device) if any(values) else None

        def numbers(values) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device)

        return cls(
            stablemax=flags([c.softmax == "stablemax" for c in configs]),
            perp_grad=flags([c.perp_grad for c in configs]),
            filtered=flags([c.grad_filter == "ema" for c in configs]),
            filter_alpha=numbers([c.filter_alpha for c in configs]),
            filter_lamb=numbers([c.filter_lamb for c in configs]),
            logit_held=flags([c.logit_scale is not None for c in configs]),
            logit_scale=numbers([c.logit_scale or 1.0 for c in configs]),
        )

    def logits(self, out: torch.Tensor) -> torch.Tensor:
        """The model's outputs as the loss sees them (held logit scales applied)."""
        if self.logit_held is None:
            return out
        return hold_logit_scale(out, self.logit_scale, self.logit_held)

    def gradients_(self, params: Params, grad_filter: GradFilter | None) -> None:
        """⊥Grad, then the EMA filter, on the gradients of the runs that use them."""
        if self.perp_grad is not None:
            perp_grad_(params, self.perp_grad)
        if grad_filter is not None:
            grad_filter.apply_(params)

    def filter(self, params: Params) -> GradFilter | None:
        """The stack's EMA filter state, or None where no run filters."""
        if self.filtered is None:
            return None
        return GradFilter(params, self.filter_alpha, self.filter_lamb, self.filtered)
