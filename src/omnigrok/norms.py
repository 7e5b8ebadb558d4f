"""Weight-norm tools: the global norm, scaling an init by α, projection to a target norm.

The paper's central quantity (Sec. 2) is the global weight norm w: the square root of the sum
of squares of *all* parameters, biases included, each counted once. Large-init grokking
multiplies every parameter of the standard init by α (Sec. 3), which multiplies w by exactly α;
the constrained runs project all parameters back to a target norm after every optimizer step
(Sec. 3, "constrained optimization").
"""

from __future__ import annotations

import torch

from omnigrok.models import Params


def _per_run(t: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``vector`` ``[K]`` shaped to broadcast against a stacked parameter ``t`` ``[K, ...]``."""
    return vector.view(-1, *([1] * (t.dim() - 1)))


def squared_norms(params: Params) -> dict[str, torch.Tensor]:
    """Sum of squares of each parameter tensor, per run: name -> ``[K]``."""
    return {name: p.detach().pow(2).flatten(1).sum(dim=1) for name, p in params.items()}


def global_norm(params: Params) -> torch.Tensor:
    """The weight norm w of each run, ``[K]``: sqrt of the sum of squares of all parameters."""
    return torch.stack(list(squared_norms(params).values())).sum(dim=0).sqrt()


def layer_norms(params: Params) -> dict[str, torch.Tensor]:
    """Norm of each parameter tensor, per run: name -> ``[K]``."""
    return {name: sq.sqrt() for name, sq in squared_norms(params).items()}


@torch.no_grad()
def scale_(params: Params, factor: torch.Tensor) -> None:
    """Multiply every parameter of run k by ``factor[k]`` in place (``factor``: ``[K]``)."""
    for p in params.values():
        p.mul_(_per_run(p, factor.to(p.dtype)))


@torch.no_grad()
def project_to_norm_(params: Params, target: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Rescale run k to weight norm ``target[k]`` where ``active[k]``; return the norms after.

    This is the paper's constraint: after each step multiply all parameters by w_target / w.
    Runs that are not active (unconstrained or frozen) keep their parameters.
    """
    norm = global_norm(params)
    factor = torch.where(active, target / norm, torch.ones_like(norm))
    scale_(params, factor)
    return torch.where(active, target, norm)


@torch.no_grad()
def clip_grad_norm_(params: Params, max_norm: torch.Tensor) -> None:
    """Each run's gradient scaled down to global norm at most ``max_norm[k]`` (inf: none), as
    ``torch.nn.utils.clip_grad_norm_`` does for one model (coefficient
    ``max_norm / (norm + 1e-6)``, capped at 1)."""
    grads = {n: p.grad for n, p in params.items() if p.grad is not None}
    norm = global_norm(grads)
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads.values():
        g.mul_(_per_run(g, coef.to(g.dtype)))
