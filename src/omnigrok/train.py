"""The one training loop: K runs of one shape trained as one stacked model.

Every experiment of the paper (Sec. 2-4) is this loop with other values: AdamW with decoupled
weight decay, MSE on one-hot targets or cross-entropy, optionally a projection to a target
weight norm after every step (the "constrained" runs). Per step:

1. each run takes its own minibatch (its own order, from its seed) or the full batch;
2. loss per run; their sum is back-propagated, so each run gets exactly its own gradient;
3. AdamW with per-run lr and weight decay; a run whose loss overflows (NaN, inf, or so large
   that its squared gradients would overflow) is marked diverged at that step and frozen, the
   others go on (a constrained run whose weights stop being finite, likewise);
4. constrained runs are projected back to their target norm;
5. on the logging schedule: train/test loss and accuracy, global and per-tensor norms.

A run's curves do not depend on which other runs share its stack (tested to 1e-8 in float64).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from omnigrok.config import RunConfig, check_int
from omnigrok.data import TORCH_DTYPES, TaskData, make_task
from omnigrok.models import Params, forward, init_params
from omnigrok.norms import global_norm, layer_norms, project_to_norm_, scale_
from omnigrok.optim import StackedAdamW
from omnigrok.provenance import provenance

EVAL_CHUNK = 2048  # examples per evaluation chunk: bounds memory at K * chunk * width floats
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc", "norm")


class BudgetExhausted(Exception):
    """Training stopped at its deadline; the stack's state is in its checkpoint, to resume."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"stopped at step {step} of {steps} (deadline); checkpoint saved")
        self.step, self.steps = step, steps


@dataclass
class RunResult:
    """One run's curves on its logging schedule, and what became of it.

    ``metrics`` maps ``train_loss, train_acc, test_loss, test_acc, norm`` and ``norm/<tensor>``
    to arrays aligned with ``steps`` (step s: after s optimizer updates; step 0 is the init).
    Values after a divergence are NaN; ``diverged_at`` is the step it happened, or None.
    """

    config: RunConfig
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    diverged_at: int | None = None
    weights: dict[str, np.ndarray] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]


def log_schedule(steps: int, n_log: int = 250) -> np.ndarray:
    """Steps at which to evaluate: every step for the first 30 (as the paper's code; fewer when
    ``n_log`` is small), then half the points evenly spaced on a log axis and half on a linear
    axis, so that curves look right on both (claim 4). Always includes 0 and ``steps``."""
    dense = np.arange(0, min(steps, 30, n_log // 5) + 1)
    n_rest = max(n_log - len(dense), 2)
    geometric = np.geomspace(max(min(steps, 30), 1), steps, n_rest // 2)
    linear = np.linspace(0, steps, n_rest - n_rest // 2)
    points = np.concatenate([dense, np.rint(geometric), np.rint(linear), [steps]])
    return np.unique(points.astype(np.int64))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda', got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA GPU is available here; use 'auto' or 'cpu'")
    return torch.device(name)


def _seed_generator(seed: int, stream: int, index: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, stream, index]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


class _Batches:
    """Per-run minibatch order: epoch e of run r is a permutation drawn from (seed_r, e) alone,
    so it needs no state to resume and does not depend on the other runs. A last partial
    batch is dropped (the paper's 1000 / 200 divides evenly)."""

    def __init__(self, seeds: Sequence[int], n: int, batch_size: int | None, device) -> None:
        self.seeds, self.n, self.batch_size, self.device = list(seeds), n, batch_size, device
        self.per_epoch = n // batch_size if batch_size else 1
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor | None:
        """Indices ``[K, B]`` for 0-based ``step``, or None for full batch."""
        if self.batch_size is None:
            return None
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            perms = [
                torch.randperm(self.n, generator=_seed_generator(s, 1, epoch)) for s in self.seeds
            ]
            self._perm, self._epoch = torch.stack(perms).to(self.device), epoch
        return self._perm[:, j * self.batch_size : (j + 1) * self.batch_size]


def loss_per_run(
    out: torch.Tensor, y: torch.Tensor, loss: str, n_classes: int | None
) -> torch.Tensor:
    """Mean loss of each run, ``[K]``. ``mse`` averages over examples and outputs like
    ``nn.MSELoss`` (one-hot targets for classification); ``ce`` is cross-entropy."""
    if loss == "ce":
        return F.cross_entropy(out.transpose(1, 2), y.expand(out.shape[:2]), reduction="none").mean(
            1
        )
    target = F.one_hot(y, out.shape[-1]).to(out.dtype) if n_classes else y
    return (out - target).pow(2).mean(dim=(1, 2))


def accuracy_per_run(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(dim=-1) == y).to(out.dtype).mean(dim=1)


@torch.no_grad()
def evaluate(
    config: RunConfig,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes,
    groups: dict[str, torch.Tensor] | None = None,
) -> tuple:
    """Loss and accuracy (NaN for regression) of every run on the full set ``x, y``, and
    the accuracy on each of ``groups`` (boolean masks over the set)."""
    total_loss, total_correct, n = 0.0, 0.0, x.shape[0]
    groups = groups or {}
    group_correct = dict.fromkeys(groups, 0.0)
    for start in range(0, n, EVAL_CHUNK):
        xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
        out = forward(config.model, params, xb)
        total_loss = total_loss + loss_per_run(out, yb, config.loss, n_classes) * len(xb)
        if n_classes:
            total_correct = total_correct + accuracy_per_run(out, yb) * len(xb)
            correct = (out.argmax(dim=-1) == yb).to(out.dtype)
            for name, mask in groups.items():
                chunk = mask[start : start + EVAL_CHUNK].to(out.dtype)
                group_correct[name] = group_correct[name] + correct @ chunk
    acc = total_correct / n if n_classes else torch.full_like(total_loss, math.nan)
    by_group = {
        name: group_correct[name] / max(int(mask.sum()), 1) for name, mask in groups.items()
    }
    return total_loss / n, acc, by_group


def check_sweep(configs: Sequence[RunConfig]) -> None:
    """Runs train together only if they share every shape field."""
    if not configs:
        raise ValueError("configs must hold at least one RunConfig, got an empty list")
    shape = configs[0].shape()
    for c in configs[1:]:
        if c.shape() != shape:
            raise ValueError(
                "configs must share task, model, steps, batch_size, loss, betas, eps, dtype and "
                "n_log to train as one ensemble; split them with omnigrok.sweep.group_by_shape"
            )


def train_ensemble(
    configs: Sequence[RunConfig],
    device: str | torch.device = "auto",
    progress: bool = True,
    data: TaskData | None = None,
    checkpoint: Path | None = None,
    checkpoint_seconds: float = 60.0,
    keep_weights: bool = False,
    on_step: Callable[[int], None] | None = None,
    deadline: float | None = None,
    until: int | None = None,
) -> list[RunResult]:
    """Train ``configs`` (one shape, see ``RunConfig.shape``) as one stacked model.

    ``checkpoint``: a file to save the whole state to every ``checkpoint_seconds`` of training
    (and to resume from, if present); it is removed when the runs finish. ``on_step`` is called
    with the number of steps done, after each step (tests use it to kill a run mid-way).
    ``deadline`` (a ``time.monotonic()`` value): past it, save the checkpoint and raise
    ``BudgetExhausted`` (needs ``checkpoint``), so a time-boxed producer never loses work.
    ``until``: stop after this many steps and return the curves logged so far, on the full
    run's logging schedule (``verify`` recomputes the start of archived runs this way).
    """
    check_sweep(configs)
    cfg = configs[0]
    if deadline is not None and checkpoint is None:
        raise ValueError("deadline needs a checkpoint file to save the state it stops at")
    last = cfg.steps if until is None else min(check_int("until", until, minimum=1), cfg.steps)
    dev = resolve_device(device)
    dtype = TORCH_DTYPES[cfg.dtype]
    k = len(configs)
    data = data if data is not None else make_task(cfg.task, dev, cfg.dtype)
    as_tensor = lambda values, **kw: torch.tensor(values, device=dev, **kw)  # noqa: E731

    params = init_params(cfg.model, [c.seed for c in configs], dev, dtype)
    scale_(params, as_tensor([c.init_scale for c in configs], dtype=dtype))
    for p in params.values():
        p.requires_grad_(True)
    initial_norm = global_norm(params)
    fixed = as_tensor([c.target_norm or math.nan for c in configs], dtype=dtype)
    target = torch.where(as_tensor([c.constraint == "init" for c in configs]), initial_norm, fixed)
    constrained = as_tensor([c.constraint != "none" for c in configs])
    any_constrained = any(c.constraint != "none" for c in configs)
    opt = StackedAdamW(
        params,
        lr=as_tensor([c.lr for c in configs], dtype=dtype),
        weight_decay=as_tensor([c.weight_decay for c in configs], dtype=dtype),
        betas=cfg.betas,
        eps=cfg.eps,
    )
    batches = _Batches([c.seed for c in configs], data.n_train, cfg.batch_size, dev)
    schedule = log_schedule(cfg.steps, cfg.n_log)
    log_set = set(schedule.tolist())
    alive = torch.ones(k, dtype=torch.bool, device=dev)
    # A loss past sqrt(max float) has gradients whose squares overflow Adam's second moment:
    # the run would go on silently frozen, so it counts as diverged as much as a NaN does.
    overflow = math.sqrt(torch.finfo(dtype).max)
    diverged_at = [None] * k
    records: dict[str, list] = {}
    start = 0
    timing = {"train_seconds": 0.0, "eval_seconds": 0.0}

    if checkpoint is not None and Path(checkpoint).exists():
        # Tensors, lists and numbers only: nothing in a checkpoint needs unpickling code.
        state = torch.load(checkpoint, map_location=dev, weights_only=True)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state["params"][name])
        opt.load_state_dict(state["optimizer"])
        alive.copy_(state["alive"])
        diverged_at, start = state["diverged_at"], state["step"]
        timing = {n: float(v) for n, v in state["timing"].items()}
        records = {
            n: v.tolist() if n == "step" else list(v.double().numpy())
            for n, v in state["records"].items()
        }

    def log(step: int) -> None:
        t0 = time.perf_counter()
        train_loss, train_acc, _ = evaluate(cfg, params, data.x_train, data.y_train, data.n_classes)
        test_loss, test_acc, groups = evaluate(
            cfg, params, data.x_test, data.y_test, data.n_classes, data.test_groups
        )
        row = {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            **{f"test_acc_{name}": acc for name, acc in groups.items()},
            "norm": global_norm(params),
        }
        row.update({f"norm/{n}": v for n, v in layer_norms(params).items()})
        records.setdefault("step", []).append(step)
        for name, value in row.items():
            value = torch.where(alive, value, torch.full_like(value, math.nan))
            records.setdefault(name, []).append(value.cpu().double().numpy())
        timing["eval_seconds"] += time.perf_counter() - t0

    def save_checkpoint(step: int) -> None:
        from omnigrok.store import atomic_torch_save

        state = {
            "params": {n: p.detach() for n, p in params.items()},
            "optimizer": opt.state_dict(),
            "alive": alive,
            "diverged_at": diverged_at,
            "records": {
                n: torch.tensor(v) if n == "step" else torch.from_numpy(np.stack(v))
                for n, v in records.items()
            },
            "step": step,
            "timing": {**timing, "train_seconds": train_seconds()},
        }
        atomic_torch_save(state, Path(checkpoint))

    def mark_diverged(finite: torch.Tensor, step: int) -> None:
        newly = (alive & ~finite).nonzero().flatten().tolist()
        for i in newly:
            diverged_at[i] = step
        alive.logical_and_(finite)

    t_start = time.perf_counter()
    train_before, eval_before = timing["train_seconds"], timing["eval_seconds"]

    def train_seconds() -> float:
        """Training time over every segment of the run (a resumed run counts all of them)."""
        segment = time.perf_counter() - t_start - (timing["eval_seconds"] - eval_before)
        return train_before + segment

    if start == 0 and 0 in log_set:
        log(0)
    bar = _progress(cfg.steps, start, progress)
    last_checkpoint = time.perf_counter()
    for step in range(start, last):
        idx = batches.indices(step)
        if idx is None:
            x, y = data.x_train, data.y_train
        else:
            x, y = data.x_train[idx], data.y_train[idx]
        losses = loss_per_run(forward(cfg.model, params, x), y, cfg.loss, data.n_classes)
        finite = losses.detach().abs() < overflow  # False for NaN and inf too
        if not bool((finite | ~alive).all()):
            mark_diverged(finite, step + 1)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        opt.step(alive)
        opt.zero_grad()
        if any_constrained:
            norms = project_to_norm_(params, target, constrained & alive)
            finite = torch.isfinite(norms)
            if not bool((finite | ~alive).all()):
                mark_diverged(finite, step + 1)
        # Unconstrained runs skip the norm pass: weights gone non-finite show up as a
        # non-finite loss at the next step, which marks the run diverged then.
        if step + 1 in log_set:
            log(step + 1)
            _show(bar, records)
        bar.update(1)
        if on_step is not None:
            on_step(step + 1)
        if checkpoint is not None and time.perf_counter() - last_checkpoint > checkpoint_seconds:
            save_checkpoint(step + 1)
            last_checkpoint = time.perf_counter()
        if deadline is not None and time.monotonic() > deadline and step + 1 < last:
            bar.close()
            save_checkpoint(step + 1)
            raise BudgetExhausted(step + 1, cfg.steps)
    bar.close()
    timing["train_seconds"] = train_seconds()
    if last < cfg.steps:  # a partial run (``until``): curves so far, its checkpoint untouched
        return _results(configs, records, diverged_at, None, timing, dev)
    if checkpoint is not None:
        # Another process training the same stack may have removed it already.
        Path(checkpoint).unlink(missing_ok=True)
    weights = params if keep_weights else None
    return _results(configs, records, diverged_at, weights, timing, dev)


def _progress(total: int, initial: int, enabled: bool):
    import warnings

    from tqdm import TqdmWarning, tqdm

    if enabled:
        # In Jupyter without ipywidgets tqdm.auto warns and falls back to text: fine, no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TqdmWarning)
            from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", mininterval=1.0)


def _show(bar, records: dict) -> None:
    if not bar.disable:
        train, test = np.nanmean(records["train_acc"][-1]), np.nanmean(records["test_acc"][-1])
        bar.set_postfix(train_acc=f"{train:.3f}", test_acc=f"{test:.3f}", refresh=False)


def _results(configs, records, diverged_at, params, timing, device) -> list[RunResult]:
    steps = np.asarray(records["step"], dtype=np.int64)
    stacked = {n: np.stack(v, axis=1) for n, v in records.items() if n != "step"}
    results = []
    for i, c in enumerate(configs):
        weights = None
        if params is not None:
            weights = {n: p[i].detach().cpu().numpy() for n, p in params.items()}
        metrics = {n: v[i] for n, v in stacked.items()}
        results.append(
            RunResult(c, steps, metrics, diverged_at[i], weights, dict(timing), provenance(device))
        )
    return results
