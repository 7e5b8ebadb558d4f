"""AdamW for stacked parameters, with a learning rate and a weight decay per run.

``torch.optim.AdamW`` takes one lr and one weight decay per parameter group; an ensemble of runs
with different values along the run axis needs them as tensors. This is the same algorithm
(Loshchilov & Hutter's decoupled weight decay, as the paper uses), written op for op as
PyTorch's single-tensor implementation so that it agrees with it to rounding (tested).
Runs whose ``active`` flag is off are frozen: their parameters do not move.
"""

from __future__ import annotations

import torch

from omnigrok.models import Params
from omnigrok.norms import _per_run

# PyTorch's fused AdamW kernel (the one behind ``AdamW(fused=True)``): one pass over each
# tensor instead of about twenty, which matters because the step is memory-bound. It takes one
# lr and weight decay per call, so runs are grouped by their (lr, weight decay): one call per
# group, on the whole stacked tensors when the group is every run (the usual sweep over seeds
# and α), on the group's rows otherwise. Older PyTorch without it uses the op-by-op path below,
# which is PyTorch's single-tensor AdamW.
_FUSED = getattr(torch, "_fused_adamw_", None)


class StackedAdamW:
    """AdamW over ``params`` (name -> ``[K, ...]``) with per-run ``lr`` and ``weight_decay``."""

    def __init__(
        self,
        params: Params,
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.lr, self.weight_decay = lr, weight_decay
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        # Per-run values as Python floats once, not a device sync per step.
        self._lr_values, self._wd_values = lr.tolist(), weight_decay.tolist()

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """One AdamW step for the runs where ``active`` (``[K]`` bool) is set."""
        self.step_count += 1
        if _FUSED is not None and all(p.grad is not None for p in self.params.values()):
            self._fused_step(active)
            return
        beta1, beta2 = self.betas
        bias_correction1 = 1 - beta1**self.step_count
        bias_correction2_sqrt = (1 - beta2**self.step_count) ** 0.5
        frozen = ~active
        any_frozen = bool(frozen.any())
        lr = torch.where(active, self.lr, torch.zeros_like(self.lr))
        decay = 1 - lr * self.weight_decay
        neg_step_size = -lr / bias_correction1
        for name, p in self.params.items():
            grad = p.grad
            if grad is None:
                continue
            if any_frozen:
                # A frozen run may carry NaN gradients; keep them out of its moments. (Indexing,
                # not torch.where: a broadcast where costs ~20x a multiply per element on CPU.)
                grad[frozen] = 0
            p.mul_(_per_run(p, decay))
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            # torch's AdamW: p += -step_size * (m / (sqrt(v) / sqrt(bc2) + eps)), op for op,
            # in one scratch buffer.
            update = v.sqrt().div_(bias_correction2_sqrt).add_(self.eps)
            torch.div(m, update, out=update)
            p.addcmul_(_per_run(p, neg_step_size), update)

    def _fused_step(self, active: torch.Tensor) -> None:
        """The same update through the fused kernel, one call per (lr, weight decay) group of
        active runs; frozen runs are in no group, so they do not move."""
        groups: dict[tuple[float, float], list[int]] = {}
        for k in active.nonzero().flatten().tolist():
            groups.setdefault((self._lr_values[k], self._wd_values[k]), []).append(k)
        names = list(self.params)
        n_runs = len(self._lr_values)
        device = self.params[names[0]].device
        for (lr, wd), runs in groups.items():

            def select(tensors: dict[str, torch.Tensor], runs=runs) -> list[torch.Tensor]:
                if len(runs) == n_runs:
                    return [tensors[n] for n in names]
                return [tensors[n][k] for n in names for k in runs]

            params = select(self.params)
            _FUSED(
                params,
                select({n: p.grad for n, p in self.params.items()}),
                select(self.exp_avg),
                select(self.exp_avg_sq),
                [],
                [torch.tensor(float(self.step_count), device=device)] * len(params),
                lr=lr,
                beta1=self.betas[0],
                beta2=self.betas[1],
                weight_decay=wd,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def state_dict(self) -> dict:
        return {"step": self.step_count, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        for name in self.params:
            self.exp_avg[name].copy_(state["exp_avg"][name])
            self.exp_avg_sq[name].copy_(state["exp_avg_sq"][name])
