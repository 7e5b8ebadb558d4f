"""The one training loop: K runs of one shape trained as one stacked model.

Every experiment of the paper (Sec. 2-4) is this loop with other values: AdamW with decoupled
weight decay, MSE on one-hot targets or cross-entropy, optionally a projection to a target
weight norm after every step (the "constrained" runs). Per step:

1. each run takes its own minibatch (its own order, from its seed) or the full batch;
2. loss per run; their sum is back-propagated, so each run gets exactly its own gradient
   (runs may use the rivals' levers, ``omnigrok.rivals``: StableMax, a held logit scale,
   ⊥Grad and Grokfast's filter on their gradient);
3. AdamW with per-run lr and weight decay; a run whose loss overflows (NaN, inf, or so large
   that its squared gradients would overflow) is marked diverged at that step and frozen, the
   others go on (a constrained run whose weights stop being finite, likewise);
4. constrained runs are projected back to their target norm;
5. on the logging schedule: train/test loss and accuracy, global and per-tensor norms, and
   the task's probe where the runs name one (``RunConfig.probe``).

A run's curves do not depend on which other runs share its stack (tested to 1e-8 in float64).
The state of a stack (weights, optimizer, which runs are alive, the curves so far, timing) is
one object, ``_Stack``, which is also what a checkpoint holds.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import TqdmWarning, tqdm

from omnigrok.checks import check_int, resolve_device
from omnigrok.config import RunConfig, run_key
from omnigrok.models import Params, forward, init_params
from omnigrok.norms import clip_grad_norm_, global_norm, layer_norms, project_to_norm_, scale_
from omnigrok.optim import StackedAdamW
from omnigrok.provenance import provenance
from omnigrok.rivals import Levers, stablemax_cross_entropy
from omnigrok.stop_rule import stop_step
from omnigrok.store import RunResult, atomic_torch_save, log_schedule
from omnigrok.task import TORCH_DTYPES, TaskData, make_task
from omnigrok.task import get as get_task

with warnings.catch_warnings():
    # In Jupyter without ipywidgets, tqdm.auto warns on import and falls back to text: fine.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm as tqdm_auto

EVAL_CHUNK = 2048  # examples per evaluation chunk: bounds memory at K * chunk * width floats


class BudgetExhausted(Exception):
    """Training stopped at its deadline; the stack's state is in its checkpoint, to resume."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"stopped at step {step} of {steps} (deadline); checkpoint saved")
        self.step, self.steps = step, steps


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
    out: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    n_classes: int | None,
    stablemax: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of each run, ``[K]``. ``mse`` averages over examples and outputs like
    ``nn.MSELoss`` (one-hot targets for classification); ``ce`` is cross-entropy; ``bce`` is
    binary cross-entropy on a single output read as a logit (``nn.BCELoss`` on its sigmoid,
    without the sigmoid's rounding). ``stablemax`` (``[K]`` bool): the runs whose ``ce`` uses
    StableMax in place of softmax (``omnigrok.rivals``; None: no run does)."""
    if loss == "bce":
        target = y.expand(out.shape[:2]).to(out.dtype)
        return F.binary_cross_entropy_with_logits(out[..., 0], target, reduction="none").mean(1)
    if loss == "ce":
        ce = F.cross_entropy(out.transpose(1, 2), y.expand(out.shape[:2]), reduction="none")
        if stablemax is None:
            return ce.mean(1)
        return torch.where(stablemax, stablemax_cross_entropy(out, y), ce.mean(1))
    target = F.one_hot(y, out.shape[-1]).to(out.dtype) if n_classes else y
    return (out - target).pow(2).mean(dim=(1, 2))


def correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 where a run's prediction is the label, ``[K, B]``: the largest output, or for a single
    output (a logit) whether it is positive."""
    predicted = out.argmax(dim=-1) if out.shape[-1] > 1 else (out[..., 0] > 0).long()
    return (predicted == y).to(out.dtype)


def accuracy_per_run(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return correct(out, y).mean(dim=1)


@torch.no_grad()
def evaluate(
    config: RunConfig, params: Params, data: TaskData, split: str, levers: Levers | None = None
) -> tuple:
    """Loss and accuracy (NaN for regression) of every run on the whole ``split``, and on the
    test split the accuracy on each of ``data.test_groups`` (boolean masks over it).
    ``levers``: the runs' StableMax and held logit scales (None: neither)."""
    total_loss, total_correct, n = 0.0, 0.0, data.n_train if split == "train" else data.n_test
    groups = data.test_groups if split == "test" else {}
    group_correct = dict.fromkeys(groups, 0.0)
    stablemax = levers.stablemax if levers is not None else None
    for xb, yb, part in data.chunks(split, EVAL_CHUNK):
        out = forward(config.model, params, xb)
        if levers is not None:
            out = levers.logits(out)
        losses = loss_per_run(out, yb, config.loss, data.n_classes, stablemax)
        total_loss = total_loss + losses * len(yb)
        if data.n_classes:
            total_correct = total_correct + accuracy_per_run(out, yb) * len(yb)
            hits = correct(out, yb)
            for name, mask in groups.items():
                group_correct[name] = group_correct[name] + hits @ mask[part].to(out.dtype)
    acc = total_correct / n if data.n_classes else torch.full_like(total_loss, math.nan)
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
                "configs must share task, model, steps, batch_size, loss, betas, eps, dtype, "
                "n_log and probe to train as one ensemble; split them with "
                "omnigrok.sweep.group_by_shape"
            )


class _Stack:
    """Everything a stack of runs is at one step: weights, optimizer, which runs are alive,
    the curves logged so far and the time spent. A checkpoint is this object's state."""

    def __init__(self, configs: Sequence[RunConfig], data: TaskData, dev: torch.device) -> None:
        self.configs, self.data, self.cfg = list(configs), data, configs[0]
        dtype = TORCH_DTYPES[self.cfg.dtype]
        as_tensor = lambda values, **kw: torch.tensor(values, device=dev, **kw)  # noqa: E731
        self.params = init_params(self.cfg.model, [c.seed for c in configs], dev, dtype)
        scale_(self.params, as_tensor([c.init_scale for c in configs], dtype=dtype))
        for p in self.params.values():
            p.requires_grad_(True)
        fixed = as_tensor([c.target_norm or math.nan for c in configs], dtype=dtype)
        at_init = as_tensor([c.constraint == "init" for c in configs])
        self.target = torch.where(at_init, global_norm(self.params), fixed)
        self.constrained = as_tensor([c.constraint != "none" for c in configs])
        self.any_constrained = bool(self.constrained.any())
        self.clip = as_tensor([c.clip or math.inf for c in configs], dtype=dtype)
        self.any_clipped = any(c.clip is not None for c in configs)
        self.opt = StackedAdamW(
            self.params,
            lr=as_tensor([c.lr for c in configs], dtype=dtype),
            weight_decay=as_tensor([c.weight_decay for c in configs], dtype=dtype),
            betas=self.cfg.betas,
            eps=self.cfg.eps,
        )
        self.levers = Levers.of(configs, dev, dtype)
        self.grad_filter = self.levers.filter(self.params)
        self.alive = torch.ones(len(configs), dtype=torch.bool, device=dev)
        # A loss past sqrt(max float) has gradients whose squares overflow Adam's second moment:
        # the run would go on silently frozen, so it counts as diverged as much as a NaN does.
        self.overflow = math.sqrt(torch.finfo(dtype).max)
        self.diverged_at: list[int | None] = [None] * len(configs)
        self.records: dict[str, list] = {}
        self.step = 0
        self.timing = {"train_seconds": 0.0, "eval_seconds": 0.0}

    def train_step(self, idx: torch.Tensor | None) -> None:
        """One optimizer step of every live run on its batch ``idx`` (None: full batch)."""
        x, y = self.data.batch(idx)
        out = self.levers.logits(forward(self.cfg.model, self.params, x))
        losses = loss_per_run(out, y, self.cfg.loss, self.data.n_classes, self.levers.stablemax)
        self._mark_diverged(losses.detach().abs() < self.overflow)  # False for NaN and inf too
        torch.where(self.alive, losses, torch.zeros_like(losses)).sum().backward()
        # The rivals' gradient levers act on each run's own gradient, before the clip and the
        # optimizer, as their published code places them (⊥Grad first, then the filter).
        self.levers.gradients_(self.params, self.grad_filter)
        if self.any_clipped:
            clip_grad_norm_(self.params, self.clip)
        self.opt.step(self.alive)
        self.opt.zero_grad()
        if self.any_constrained:
            norms = project_to_norm_(self.params, self.target, self.constrained & self.alive)
            self._mark_diverged(torch.isfinite(norms))
        # Unconstrained runs skip the norm pass: weights gone non-finite show up as a
        # non-finite loss at the next step, which marks the run diverged then.
        self.step += 1

    def _mark_diverged(self, finite: torch.Tensor) -> None:
        if bool((finite | ~self.alive).all()):
            return
        for i in (self.alive & ~finite).nonzero().flatten().tolist():
            self.diverged_at[i] = self.step + 1
        self.alive.logical_and_(finite)

    def log(self) -> None:
        """Evaluate every run on both splits and append a row of curves at this step."""
        t0 = time.perf_counter()
        cfg, params, data, levers = self.cfg, self.params, self.data, self.levers
        train_loss, train_acc, _ = evaluate(cfg, params, data, "train", levers)
        test_loss, test_acc, groups = evaluate(cfg, params, data, "test", levers)
        row = {
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            **{f"test_acc_{name}": acc for name, acc in groups.items()},
            "norm": global_norm(self.params),
            **{f"norm/{n}": v for n, v in layer_norms(self.params).items()},
        }
        if self.cfg.probe:
            probe = get_task(self.cfg.task.name).probes[self.cfg.probe]
            with torch.no_grad():
                row[self.cfg.probe] = probe(self.cfg.task, self.params)
        self.records.setdefault("step", []).append(self.step)
        for name, value in row.items():
            value = torch.where(self.alive, value, torch.full_like(value, math.nan))
            self.records.setdefault(name, []).append(value.cpu().double().numpy())
        self.timing["eval_seconds"] += time.perf_counter() - t0

    def state(self, train_seconds: float) -> dict:
        """Tensors, lists and numbers only: nothing in a checkpoint needs unpickling code."""
        return {
            "params": {n: p.detach() for n, p in self.params.items()},
            "optimizer": self.opt.state_dict(),
            **({"grad_filter": self.grad_filter.state_dict()} if self.grad_filter else {}),
            "alive": self.alive,
            "diverged_at": self.diverged_at,
            "records": {
                n: torch.tensor(v) if n == "step" else torch.from_numpy(np.stack(v))
                for n, v in self.records.items()
            },
            "step": self.step,
            "timing": {**self.timing, "train_seconds": train_seconds},
        }

    def restore(self, path: Path, dev: torch.device) -> None:
        state = torch.load(path, map_location=dev, weights_only=True)
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(state["params"][name])
        self.opt.load_state_dict(state["optimizer"])
        if self.grad_filter is not None:
            self.grad_filter.load_state_dict(state["grad_filter"])
        self.alive.copy_(state["alive"])
        self.diverged_at, self.step = state["diverged_at"], state["step"]
        self.timing = {n: float(v) for n, v in state["timing"].items()}
        self.records = {
            n: v.tolist() if n == "step" else list(v.double().numpy())
            for n, v in state["records"].items()
        }

    def stops(self) -> list[int | None]:
        """Each run's stop step under its stop rule (``stop_rule.stop_step``), None where it has
        none or has not met it: read off the logged curves, so a resumed stack agrees."""
        steps = np.asarray(self.records["step"])
        acc = {n: np.stack(self.records[n], axis=1) for n in ("train_acc", "test_acc")}
        return [
            None
            if c.stop_acc is None
            else stop_step(steps, acc["train_acc"][i], acc["test_acc"][i], c.stop_acc)
            for i, c in enumerate(self.configs)
        ]

    def results(self, keep_weights: bool, dev: torch.device) -> list[RunResult]:
        """Each run's curves; a run its stop rule ended keeps them up to its stop step only
        (what it computed after, while stack-mates trained on, is no part of it)."""
        steps = np.asarray(self.records["step"], dtype=np.int64)
        stacked = {n: np.stack(v, axis=1) for n, v in self.records.items() if n != "step"}
        # The stack each run was trained in, in order: a float32 stack can round differently
        # from the same run alone, so ``omnigrok verify`` rebuilds it from this record.
        stack = {"stack": [run_key(c) for c in self.configs]}
        out = []
        for i, (c, stop) in enumerate(zip(self.configs, self.stops(), strict=True)):
            weights = None
            if keep_weights and stop is None:
                weights = {n: p[i].detach().cpu().numpy() for n, p in self.params.items()}
            end = len(steps) if stop is None else int(np.searchsorted(steps, stop)) + 1
            metrics = {n: v[i][:end] for n, v in stacked.items()}
            diverged = self.diverged_at[i]
            if stop is not None and diverged is not None and diverged > stop:
                diverged = None
            out.append(
                RunResult(
                    c,
                    steps[:end],
                    metrics,
                    diverged,
                    weights,
                    dict(self.timing),
                    provenance(dev) | stack,
                )
            )
        return out


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
    if dev.type == "cpu":
        # Subnormal floats (below 1.2e-38 in float32) cost x86 CPUs up to 100x per operation.
        # Held at a small norm, the transformer's MLP weights and Adam's first moments decay
        # into them: a quick-profile run held at α = 0.1 had 20-55% subnormal entries in W_in,
        # W_out and exp_avg by step 700 and slowed from 0.16 to 1.9 s per step. Flushing them
        # to zero changes values by less than 1.2e-38 (GPUs flush by default in such kernels).
        torch.set_flush_denormal(True)
    data = data if data is not None else make_task(cfg.task, dev, cfg.dtype)
    stack = _Stack(configs, data, dev)
    if checkpoint is not None and Path(checkpoint).exists():
        stack.restore(Path(checkpoint), dev)
    batches = _Batches([c.seed for c in configs], data.n_train, cfg.batch_size, dev)
    log_steps = set(log_schedule(cfg.steps, cfg.n_log).tolist())
    # Training time over every segment of the run (a resumed run counts all of them).
    clock = time.perf_counter()
    train_before, eval_before = stack.timing["train_seconds"], stack.timing["eval_seconds"]

    def train_seconds() -> float:
        segment = time.perf_counter() - clock - (stack.timing["eval_seconds"] - eval_before)
        return train_before + segment

    def save() -> None:
        atomic_torch_save(stack.state(train_seconds()), Path(checkpoint))

    if stack.step == 0:
        stack.log()
    bar = progress_bar(cfg.steps, stack.step, progress)
    last_save = time.perf_counter()
    stopping = all(c.stop_acc is not None for c in configs)
    while stack.step < last:
        stack.train_step(batches.indices(stack.step))
        if stack.step in log_steps:
            stack.log()
            _show(bar, stack.records)
            if stopping and all(s is not None for s in stack.stops()):
                break  # every run's stop rule ended it: its curves end at its own stop step
        bar.update(1)
        if on_step is not None:
            on_step(stack.step)
        if checkpoint is not None and time.perf_counter() - last_save > checkpoint_seconds:
            save()
            last_save = time.perf_counter()
        if deadline is not None and time.monotonic() > deadline and stack.step < last:
            bar.close()
            save()
            raise BudgetExhausted(stack.step, cfg.steps)
    bar.close()
    stack.timing["train_seconds"] = train_seconds()
    if until is not None and last < cfg.steps:  # a partial run: its checkpoint untouched
        return stack.results(False, dev)
    if checkpoint is not None:
        # Another process training the same stack may have removed it already.
        Path(checkpoint).unlink(missing_ok=True)
    return stack.results(keep_weights, dev)


def progress_bar(total: int, initial: int, enabled: bool, unit: str = "step") -> tqdm:
    """A bar of ``total`` steps (or runs: a Ray sweep counts those), text outside Jupyter."""
    # In Jupyter without ipywidgets a notebook bar warns when made, and falls back to text.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        make = tqdm_auto if enabled else tqdm
        return make(total=total, initial=initial, disable=not enabled, unit=unit, mininterval=1.0)


def _show(bar, records: dict) -> None:
    if bar.disable:
        return
    # Regression tasks (teacher-student) log accuracy as NaN: their bar shows the losses instead
    # of "nan" and numpy's "Mean of empty slice" warning, which a notebook prints as stderr.
    kind = "acc" if np.isfinite(records["train_acc"][-1]).any() else "loss"
    shown = {}
    for split in ("train", "test"):
        latest = np.asarray(records[f"{split}_{kind}"][-1])
        finite = latest[np.isfinite(latest)]  # diverged runs are NaN: average the others
        shown[f"{split}_{kind}"] = f"{finite.mean():.3g}" if finite.size else "nan"
    bar.set_postfix(shown, refresh=False)
