"""Speed benchmarks: the project's stacked trainer against the usual PyTorch loop.

Like nanoGPT's ``bench.py``, measurement lives apart from the code it measures. Every function
returns plain JSON-ready dicts and prints nothing: ``benchmarks/run.py`` prints them, the
book's "Performance" page tabulates them. The targets (the speed issue) are in ``TARGETS`` and
are checked by ``ratios``:

- MNIST paper MLP, K = 20: >= 80% of the measured matmul limit, >= 3x the plain float64 loop
  and >= 2x the plain float32 loop per run;
- teacher-student: >= 20x the plain loop per run (small models are overhead-bound), at the
  largest K measured (claim 1 stacks 33 to 105 such runs);
- P = 113 transformer: the full-batch step >= 1.5x faster than ``NandaTransformer`` (identical
  math, every position computed), logits equal to 1e-5;
- evaluation under 10% of the time.

How we time: ``time.perf_counter`` after every step, with ``torch.cuda.synchronize`` first on
a GPU so that a step's queued kernels count towards it. Warm-up steps come first and are not
timed; the timed steps form ``repeats`` blocks of ``steps`` steps, a block's mean is one
repetition, and the median over repetitions is reported (robust to a busy machine). The trainer
is timed inside ``train_ensemble`` through its ``on_step`` hook, on steps that do not evaluate,
so its number is the real training loop (batches, forward, backward, AdamW, projection, the
divergence checks) and nothing else.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from omnigrok import profiles
from omnigrok.checks import resolve_device
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.models import NandaTransformer, PlainMLP, init_params, transformer_forward
from omnigrok.models.graphnet import GraphNetSpec
from omnigrok.models.lstm import LSTMSpec
from omnigrok.models.mlp import train_flops
from omnigrok.optim import StackedAdamW
from omnigrok.report.plots import PALETTE, subplots, themed
from omnigrok.store import REPO, log_schedule
from omnigrok.task import TORCH_DTYPES, TaskData, make_task
from omnigrok.tasks import mnist_run, modadd_run, teacher_student_run
from omnigrok.tasks.imdb import imdb_run
from omnigrok.tasks.qm9 import qm9_run
from omnigrok.train import loss_per_run, train_ensemble

# name -> (comparison, threshold): the speed issue's acceptance criteria.
TARGETS: dict[str, tuple[str, float]] = {
    "mnist_k20_fraction_of_matmul_limit": (">=", 0.8),
    "mnist_k20_per_run_vs_plain_float64": (">=", 3.0),
    "mnist_k20_per_run_vs_plain_float32": (">=", 2.0),
    "teacher_student_per_run_vs_plain": (">=", 20.0),
    "transformer_speedup": (">=", 1.5),
    "transformer_max_abs_logit_diff": ("<=", 1e-5),
    "eval_share_measured": ("<", 0.10),
    "eval_share_paper_projected": ("<", 0.10),
}

# Test images for the throughput runs: the trainer's timed steps exclude evaluation anyway, so a
# small test set only makes its few logging steps (step 0 and the end) cheap.
THROUGHPUT_N_TEST = 100

EVAL_SHARE_WARMUP = 5  # steps of the evaluation-share run left out of its training cost

# Sizes of run_all: (steps per repetition, repetitions, warm-up steps) per benchmark.
SIZES: dict[bool, dict[str, Any]] = {
    False: dict(
        matmul=(2048, 10),
        mnist=(10, 5, 5),
        teacher=(100, 5, 20),
        transformer=(2, 5, 2),
        eval_steps=2000,
        ks=(1, 5, 10, 20),
        # Claim 1's teacher-student stack is 11 or 21 init scales x 3 or 5 seeds: 33 to 105.
        teacher_ks=(20, 100),
        lstm=(3, 2, 1),
        graphnet=(30, 3, 5),
    ),
    True: dict(
        matmul=(512, 3),
        mnist=(2, 2, 1),
        teacher=(10, 2, 3),
        transformer=(1, 2, 1),
        eval_steps=60,
        ks=(1, 5, 20),
        teacher_ks=(5, 20),
        lstm=(1, 1, 1),
        graphnet=(3, 1, 1),
    ),
}


# -- timing helpers --------------------------------------------------------------------------
def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    return TORCH_DTYPES[dtype] if isinstance(dtype, str) else dtype


def _dtype_name(dtype: torch.dtype | str) -> str:
    return str(dtype).removeprefix("torch.")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _time_steps(step: Callable[[], object], n: int, warmup: int, dev: torch.device) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``n`` times; each call's seconds."""
    for _ in range(warmup):
        step()
    _sync(dev)
    durations, last = [], time.perf_counter()
    for _ in range(n):
        step()
        _sync(dev)
        now = time.perf_counter()
        durations.append(now - last)
        last = now
    return durations


def _summary(durations: Sequence[float], repeats: int) -> dict[str, Any]:
    """Median over ``repeats`` blocks of the mean seconds per step in each block."""
    blocks = [float(b.mean()) for b in np.array_split(np.asarray(durations), repeats) if len(b)]
    return {
        "seconds_per_step": float(np.median(blocks)),
        "best_seconds_per_step": min(blocks),
        "repeat_seconds_per_step": blocks,
        "timed_steps": len(durations),
    }


def _throughput(summary: dict[str, Any], k: int, flops_per_run_step: float | None) -> dict:
    """Run-steps per second (K runs advance per step) and GFLOP/s for a timing summary."""
    seconds = summary["seconds_per_step"]
    out = {**summary, "k": k, "run_steps_per_second": k / seconds}
    if flops_per_run_step is not None:
        out["flops_per_step"] = k * flops_per_run_step
        out["gflops"] = k * flops_per_run_step / seconds / 1e9
    return out


def _time_trainer(
    configs: Sequence[RunConfig],
    data: TaskData,
    steps: int,
    repeats: int,
    warmup: int,
    dev: torch.device,
) -> dict[str, Any]:
    """Time ``train_ensemble`` itself on ``configs`` (their steps and n_log are replaced).

    With ``n_log=2`` the trainer evaluates at step 0, at min(steps, 30) and at the end; each
    step's duration comes from the ``on_step`` hook and steps that evaluated are left out, as
    are the first ``warmup``. (``timing["train_seconds"]`` is returned too, for reference; it
    is the whole loop minus evaluation.)
    """
    warmup = max(warmup, 1)  # the hook's first call has no predecessor to time against
    n_timed = steps * repeats
    total = warmup + n_timed + 2  # room for the two evaluating steps after the warm-up
    configs = [c.replace(steps=total, n_log=2) for c in configs]
    logged = set(log_schedule(total, 2).tolist())
    stamps: dict[int, float] = {}

    def on_step(step: int) -> None:
        _sync(dev)
        stamps[step] = time.perf_counter()

    results = train_ensemble(configs, device=dev, progress=False, data=data, on_step=on_step)
    durations = [
        stamps[s] - stamps[s - 1] for s in range(warmup + 1, total + 1) if s not in logged
    ][:n_timed]
    return {**_summary(durations, repeats), "timing": dict(results[0].timing)}


# -- FLOP counts -----------------------------------------------------------------------------
def mlp_step_flops(config: RunConfig, exact: bool = False) -> int:
    """``train_flops`` of one step of ``config``'s MLP (full batch: the training set)."""
    return train_flops(config.model.widths, config.batch_size or config.task.n_train, exact=exact)


def _mlp_result(name: str, config: RunConfig, summary: dict[str, Any], k: int) -> dict:
    """A timed MLP loop's numbers: name, dtype, throughput and GFLOP/s for K runs."""
    return {"name": name, "dtype": config.dtype, **_throughput(summary, k, mlp_step_flops(config))}


# -- the limit -------------------------------------------------------------------------------
def matmul_limit(
    n: int = 2048,
    dtype: torch.dtype | str = torch.float32,
    repeats: int = 10,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """GFLOP/s of an ``n × n`` GEMM (``2 n³`` FLOPs), best of ``repeats``: the limit that
    the MLP trainer's matmuls can at most reach on this device and precision."""
    dev, dt = resolve_device(device), _dtype(dtype)
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen, dtype=dt).to(dev) for _ in range(2))
    out = torch.empty(n, n, dtype=dt, device=dev)
    # A GPU does one GEMM in well under a millisecond: time several per repetition so that
    # the synchronisation and timer overhead stay out of the number.
    inner = 20 if dev.type == "cuda" else 1

    def gemm() -> None:
        for _ in range(inner):
            torch.mm(a, b, out=out)

    durations = [d / inner for d in _time_steps(gemm, repeats, warmup=2, dev=dev)]
    best = min(durations)
    return {
        "n": n,
        "dtype": _dtype_name(dt),
        "seconds_best": best,
        "gflops": 2 * n**3 / best / 1e9,
        "gflops_median": 2 * n**3 / float(np.median(durations)) / 1e9,
    }


# -- the usual way ---------------------------------------------------------------------------
def plain_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """One step the textbook way: forward, loss, zero_grad, backward, step; the loss."""
    loss = loss_fn(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def plain_mlp(config: RunConfig, dev: torch.device, seed: int = 0) -> nn.Module:
    """``PlainMLP`` of ``config`` with PyTorch's default init from ``seed`` and α applied,
    leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PlainMLP(config.model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(config.init_scale)
    return model.to(device=dev, dtype=TORCH_DTYPES[config.dtype])


def _forever(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


def plain_mnist_loop(
    dtype: torch.dtype | str = torch.float64,
    steps: int = 10,
    repeats: int = 5,
    warmup: int = 5,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """The paper's MNIST setup the usual way, one run: ``nn.Sequential`` MLP, a ``DataLoader``
    over the 1000 images (batch 200, shuffled), ``torch.optim.AdamW`` (lr 1e-3, weight decay
    0.01), ``nn.MSELoss`` on one-hot targets. Batches come from the CPU, as a DataLoader gives
    them, and move to ``device`` each step."""
    dev, dt = resolve_device(device), _dtype(dtype)
    cfg = mnist_run(dtype=_dtype_name(dt))
    data = make_task(cfg.task, "cpu", cfg.dtype)
    model = plain_mlp(cfg, dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.MSELoss()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    batches = _forever(loader)

    def step() -> None:
        x, y = next(batches)
        x, y = x.to(dev), y.to(dev)
        plain_train_step(model, optimizer, loss_fn, x, F.one_hot(y, 10).to(dt))

    durations = _time_steps(step, steps * repeats, warmup, dev)
    return _mlp_result("MNIST plain loop", cfg, _summary(durations, repeats), 1)


def plain_teacher_student_loop(
    steps: int = 100,
    repeats: int = 5,
    warmup: int = 20,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Teacher-student (paper Fig. 2: 5-100-100-5 tanh, 100 points, full batch, MSE) the usual
    way, one run: ``nn.Sequential`` + ``torch.optim.AdamW`` on data already on ``device``."""
    dev = resolve_device(device)
    cfg = teacher_student_run(dtype=dtype)
    data = make_task(cfg.task, dev, cfg.dtype)
    model = plain_mlp(cfg, dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.MSELoss()
    durations = _time_steps(
        lambda: plain_train_step(model, optimizer, loss_fn, data.x_train, data.y_train),
        steps * repeats,
        warmup,
        dev,
    )
    return _mlp_result("teacher-student plain loop", cfg, _summary(durations, repeats), 1)


# -- the project's trainer -------------------------------------------------------------------
def _mlp_trainer(
    name: str, base: RunConfig, k: int, steps: int, repeats: int, warmup: int, dev: torch.device
) -> dict[str, Any]:
    """``train_ensemble`` on ``base`` with K runs at once (seeds 0..K-1), timed."""
    data = make_task(base.task, dev, base.dtype)
    configs = [base.replace(seed=s) for s in range(k)]
    timed = _time_trainer(configs, data, steps, repeats, warmup, dev)
    return _mlp_result(f"{name} K={k}", base, timed, k)


def trainer_mnist(
    k: int = 20,
    steps: int = 10,
    repeats: int = 5,
    warmup: int = 5,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    limit_gflops: float | None = None,
) -> dict[str, Any]:
    """``train_ensemble`` on the paper's MNIST setup with K runs at once (seeds 0..K-1).

    Reports seconds per step (all K runs), run-steps per second, GFLOP/s with the FLOPs of
    ``train_flops`` (``6 · batch · sum(fan_in · fan_out)`` per run) and, given the
    matmul ``limit_gflops``, the achieved fraction of it (``fraction_of_limit``; the same
    with the FLOPs autograd really does is ``fraction_of_limit_exact``).
    """
    base = mnist_run(task=TaskSpec("mnist", n_train=1000, n_test=THROUGHPUT_N_TEST), dtype=dtype)
    out = _mlp_trainer("MNIST trainer", base, k, steps, repeats, warmup, resolve_device(device))
    if limit_gflops:
        exact = mlp_step_flops(base, exact=True) / mlp_step_flops(base)
        out["fraction_of_limit"] = out["gflops"] / limit_gflops
        out["fraction_of_limit_exact"] = out["fraction_of_limit"] * exact
    return out


def trainer_teacher_student(
    k: int = 20,
    steps: int = 100,
    repeats: int = 5,
    warmup: int = 20,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """``train_ensemble`` on teacher-student with K runs at once (seeds 0..K-1)."""
    base = teacher_student_run(dtype=dtype)
    return _mlp_trainer(
        "teacher-student trainer", base, k, steps, repeats, warmup, resolve_device(device)
    )


# -- the transformer -------------------------------------------------------------------------
def transformer_logit_diff(params: dict, model: NandaTransformer, tokens: torch.Tensor) -> float:
    """Max |logit difference| between run 0 of the stacked forward and the full module."""
    with torch.no_grad():
        return (transformer_forward(params, tokens)[0] - model(tokens)).abs().max().item()


def transformer_step(
    steps: int = 2,
    repeats: int = 5,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    with_trainer: bool = True,
) -> dict[str, Any]:
    """The P = 113 modular-addition transformer, one run, full batch (3830 pairs), float32:
    forward + backward + AdamW step of ``NandaTransformer`` (every position; with
    ``torch.optim.AdamW`` and ``F.cross_entropy``) against the stacked ``transformer_forward``
    (only the last position feeds the logits; with ``StackedAdamW`` and ``loss_per_run``, as
    the trainer does), from the same init. ``with_trainer`` also times ``train_ensemble``.

    ``max_abs_logit_diff`` compares the two models' logits on the training set at that init.
    """
    dev = resolve_device(device)
    cfg = modadd_run()
    data = make_task(cfg.task, dev, cfg.dtype)
    params = init_params(cfg.model, [cfg.seed], dev, TORCH_DTYPES[cfg.dtype])
    model = NandaTransformer(cfg.model).to(dev).load_run(params, 0)
    diff = transformer_logit_diff(params, model, data.x_train)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas
    )
    plain = _time_steps(
        lambda: plain_train_step(model, optimizer, F.cross_entropy, data.x_train, data.y_train),
        steps * repeats,
        warmup,
        dev,
    )

    for p in params.values():
        p.requires_grad_(True)
    as_tensor = lambda value: torch.tensor([value], device=dev, dtype=params["W_E"].dtype)  # noqa: E731
    stacked_opt = StackedAdamW(
        params, as_tensor(cfg.lr), as_tensor(cfg.weight_decay), cfg.betas, cfg.eps
    )
    alive = torch.ones(1, dtype=torch.bool, device=dev)

    def stacked_step() -> None:
        out = transformer_forward(params, data.x_train)
        loss_per_run(out, data.y_train, cfg.loss, data.n_classes).sum().backward()
        stacked_opt.step(alive)
        stacked_opt.zero_grad()

    stacked = _time_steps(stacked_step, steps * repeats, warmup, dev)
    result = {
        "name": "transformer P=113 step",
        "dtype": cfg.dtype,
        "n_train": data.n_train,
        "plain": {"name": "NandaTransformer", **_throughput(_summary(plain, repeats), 1, None)},
        "stacked": {
            "name": "stacked transformer_forward",
            **_throughput(_summary(stacked, repeats), 1, None),
        },
        "max_abs_logit_diff": diff,
    }
    result["speedup"] = result["plain"]["seconds_per_step"] / result["stacked"]["seconds_per_step"]
    if with_trainer:
        timed = _time_trainer([cfg], data, steps, repeats, warmup, dev)
        result["trainer"] = {"name": "trainer K=1", **_throughput(timed, 1, None)}
        result["trainer_speedup"] = (
            result["plain"]["seconds_per_step"] / result["trainer"]["seconds_per_step"]
        )
    return result


# -- the IMDb LSTM --------------------------------------------------------------------------
def lstm_trainer(
    steps: int, repeats: int, warmup: int, device: str | torch.device = "cpu", quick: bool = False
) -> dict[str, Any]:
    """Seconds per run-step of the trainer on the IMDb LSTM at each profile's size: the quick
    profile's (50 tokens, hidden 32) stacked K = 9 as its chapter stacks its regimes, and the
    paper's (500 tokens, hidden 256) at K = 1. The book's cost page multiplies these by the
    profiles' run-steps. ``quick``: the paper size is left out (it takes a second per step)."""
    dev = resolve_device(device)
    out = {}
    sizes = {"quick": (9, profiles.IMDB["quick"]), "paper": (1, profiles.IMDB["paper"])}
    for name, (k, p) in sizes.items():
        if quick and name == "paper":
            continue
        cfg = imdb_run(
            task=TaskSpec("imdb", n_train=p["n_train"], n_test=p["n_test"], seq_len=p["seq_len"]),
            model=LSTMSpec(vocab=p["vocab"] + 1, embed=p["embed"], hidden=p["hidden"]),
        )
        data = make_task(cfg.task, dev, cfg.dtype)
        timed = _time_trainer(
            [cfg.replace(seed=s) for s in range(k)], data, steps, repeats, warmup, dev
        )
        out[name] = {"k": k, **_throughput(timed, k, None)}
    return out


# -- the QM9 graph network -------------------------------------------------------------------
def graphnet_trainer(
    steps: int, repeats: int, warmup: int, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Seconds per run-step of the trainer on the QM9 graph network (the same size in the quick
    and paper profiles), stacked K = 9 as its chapter stacks its three regimes of 3 seeds; the
    book's cost page multiplies it by the profiles' run-steps."""
    dev = resolve_device(device)
    p, k = profiles.QM9["quick"], 9
    cfg = qm9_run(
        task=TaskSpec("qm9", n_train=p["n_train"], n_test=p["n_test"]),
        model=GraphNetSpec(channels=p["channels"], edge_hidden=p["edge_hidden"]),
        batch_size=p["batch"],
    )
    data = make_task(cfg.task, dev, cfg.dtype)
    runs = [cfg.replace(seed=s) for s in range(k)]
    timed = _time_trainer(runs, data, steps, repeats, warmup, dev)
    return {"k": k, **_throughput(timed, k, None)}


# -- evaluation share ------------------------------------------------------------------------
def n_log_for_density(steps: int, paper_steps: int = 100_000, n_log: int = 250) -> int:
    """The ``n_log`` that gives a ``steps``-long run about as many log points per step as the
    default schedule gives the paper's run (at least 2)."""
    wanted = len(log_schedule(paper_steps, n_log)) * steps / paper_steps
    short = 2
    while len(log_schedule(steps, short)) < wanted and short < n_log:
        short += 1
    return short


def eval_share(
    k: int = 5,
    steps: int = 2000,
    device: str | torch.device = "cpu",
    paper_steps: int = 100_000,
    n_log: int = 250,
) -> dict[str, Any]:
    """Share of evaluation in ``train_ensemble``'s time on the MNIST setup (all 10k test
    images, as the paper profile), measured and projected.

    A ``steps``-long run logs with ``n_log_for_density`` (the paper's log points per step).
    From it: evaluation seconds per log point (``timing["eval_seconds"]`` / points) and
    training seconds per step (mean over the steps that did not evaluate, from the
    ``on_step`` hook). ``share`` is eval / (eval + train) of this run; ``paper_projected``
    puts the paper's 1e5 steps and its log points into the same costs; ``profiles`` does the
    same for each profile of claim 2, scaling evaluation by its number of test images.
    ``reported_share`` is the ratio from ``timing`` alone, for comparison: its
    ``train_seconds`` comes out one evaluation short, because the step-0 evaluation runs
    before the trainer's clock starts but is subtracted from it with the others.
    """
    dev = resolve_device(device)
    short_n_log = n_log_for_density(steps, paper_steps, n_log)
    base = mnist_run(steps=steps, n_log=short_n_log)
    data = make_task(base.task, dev, base.dtype)
    schedule = set(log_schedule(steps, short_n_log).tolist())
    stamps: dict[int, float] = {}

    def on_step(step: int) -> None:
        _sync(dev)
        stamps[step] = time.perf_counter()

    configs = [base.replace(seed=s) for s in range(k)]
    timing = train_ensemble(configs, dev, progress=False, data=data, on_step=on_step)[0].timing
    # The first steps warm up allocator and caches; past them, steps that did not evaluate.
    first = min(EVAL_SHARE_WARMUP, steps // 2) + 1
    train_steps = [stamps[s] - stamps[s - 1] for s in range(first, steps + 1) if s not in schedule]
    train_per_step = float(np.mean(train_steps))
    eval_per_point = timing["eval_seconds"] / len(schedule)
    eval_per_example = eval_per_point / (data.n_train + len(data.x_test))

    def share(n_steps: int, n_points: int, n_examples: int) -> float:
        evaluation = n_points * n_examples * eval_per_example
        return evaluation / (evaluation + n_steps * train_per_step)

    by_profile = {
        name: share(
            p["steps"],
            len(log_schedule(p["steps"], p["n_log"])),
            data.n_train + (p["n_test"] or len(data.x_test)),
        )
        for name, p in profiles.LARGE_INIT.items()
    }
    return {
        "name": f"evaluation share, MNIST K={k}",
        "k": k,
        "steps": steps,
        "n_log": short_n_log,
        "log_points": len(schedule),
        "train_seconds_per_step": train_per_step,
        "eval_seconds_per_point": eval_per_point,
        "share": share(steps, len(schedule), data.n_train + len(data.x_test)),
        "reported_share": timing["eval_seconds"]
        / (timing["eval_seconds"] + timing["train_seconds"]),
        "paper_steps": paper_steps,
        "paper_log_points": len(log_schedule(paper_steps, n_log)),
        "paper_projected": share(
            paper_steps, len(log_schedule(paper_steps, n_log)), data.n_train + len(data.x_test)
        ),
        "profiles": by_profile,
        "timing": dict(timing),
    }


# -- the machine and everything together -----------------------------------------------------
def machine(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    dev = resolve_device(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
    }


# Where ``benchmarks/run.py --json`` keeps the last full measurement, which the book's
# Performance page reads (measuring during a book build would time a busy machine).
STORED = REPO / "benchmarks" / "results.json"


def load(path: Path = STORED) -> dict[str, Any]:
    """A measurement written by ``benchmarks/run.py --json``; a clear error if ``path`` is
    missing or is not one."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"benchmark results {path} cannot be read ({err}); "
            "write them with `python benchmarks/run.py --json benchmarks/results.json`"
        ) from err
    missing = {"machine", "quick", "matmul", "trainer_mnist", "ratios"} - set(results)
    if missing:
        raise ValueError(f"benchmark results {path} lack {', '.join(sorted(missing))}")
    return results


def run_all(device: str | torch.device = "cpu", quick: bool = False) -> dict[str, Any]:
    """Every benchmark at the sizes of ``SIZES[quick]``; ``quick`` takes seconds and is noisy."""
    dev = resolve_device(device)
    size = SIZES[quick]
    n, matmul_repeats = size["matmul"]
    mnist_sizes = dict(zip(("steps", "repeats", "warmup"), size["mnist"], strict=True))
    teacher_sizes = dict(zip(("steps", "repeats", "warmup"), size["teacher"], strict=True))
    limit = matmul_limit(n, torch.float32, matmul_repeats, dev)
    results: dict[str, Any] = {
        "machine": machine(dev),
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "matmul": limit,
        "plain_mnist": {
            name: plain_mnist_loop(name, device=dev, **mnist_sizes)
            for name in ("float64", "float32")
        },
        "trainer_mnist": {
            str(k): trainer_mnist(k, device=dev, limit_gflops=limit["gflops"], **mnist_sizes)
            for k in size["ks"]
        },
        "teacher_student": {
            "plain": plain_teacher_student_loop(device=dev, **teacher_sizes),
            "trainer": {
                str(k): trainer_teacher_student(k, device=dev, **teacher_sizes)
                for k in size["teacher_ks"]
            },
        },
    }
    t_steps, t_repeats, t_warmup = size["transformer"]
    results["transformer"] = transformer_step(t_steps, t_repeats, t_warmup, dev)
    results["lstm"] = lstm_trainer(*size["lstm"], dev, quick=quick)
    results["graphnet"] = graphnet_trainer(*size["graphnet"], dev)
    results["eval_share"] = eval_share(5, size["eval_steps"], dev)
    results["ratios"] = ratios(results)
    return results


def largest_k(timed: dict[str, dict]) -> dict:
    """Of trainer timings keyed by K, the one at the largest K (the targets' reference)."""
    return timed[max(timed, key=int)]


def _ratio(name: str, value: float, note: str) -> dict[str, Any]:
    op, target = TARGETS[name]
    passed = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return {
        "name": name,
        "value": value,
        "target": f"{op} {target:g}",
        "passed": bool(passed and math.isfinite(value)),
        "note": note,
    }


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets from ``run_all``'s results: value, target, pass/fail each."""
    ceiling = _ceilings(results)["teacher_student"]
    trainer = largest_k(results["trainer_mnist"])
    k = trainer["k"]
    plain = results["plain_mnist"]

    def per_run(fast: dict, slow: dict) -> float:
        return fast["run_steps_per_second"] / slow["run_steps_per_second"]

    tf, ev = results["transformer"], results["eval_share"]
    ts_plain, ts_trainer = results["teacher_student"]["plain"], ceiling["trainer"]
    return [
        _ratio(
            "mnist_k20_fraction_of_matmul_limit",
            trainer["fraction_of_limit"],
            f"K={k}; {trainer['gflops']:.1f} of {results['matmul']['gflops']:.1f} GFLOP/s "
            f"(6·B·Σ fan_in·fan_out; {trainer['fraction_of_limit_exact']:.2f} counting only "
            "the FLOPs autograd does)",
        ),
        _ratio("mnist_k20_per_run_vs_plain_float64", per_run(trainer, plain["float64"]), f"K={k}"),
        _ratio("mnist_k20_per_run_vs_plain_float32", per_run(trainer, plain["float32"]), f"K={k}"),
        _ratio(
            "teacher_student_per_run_vs_plain",
            per_run(ts_trainer, ts_plain),
            f"K={ts_trainer['k']}; no code can pass "
            f"{ceiling['ceiling']:.1f}x here (its GEMMs alone at the matmul limit)",
        ),
        _ratio("transformer_speedup", tf["speedup"], "stacked step vs NandaTransformer, K=1"),
        _ratio("transformer_max_abs_logit_diff", tf["max_abs_logit_diff"], "float32, at init"),
        _ratio(
            "eval_share_measured",
            ev["share"],
            f"{ev['steps']} steps, {ev['log_points']} log points, K={ev['k']}",
        ),
        _ratio(
            "eval_share_paper_projected",
            ev["paper_projected"],
            f"{ev['paper_steps']} steps, {ev['paper_log_points']} log points",
        ),
    ]


def gemm_ceiling(plain_seconds: float, exact_flops: float, limit_gflops: float) -> float:
    """The highest per-run speedup over a plain step of ``plain_seconds`` that any code doing
    the same matrix products could reach here: the ratio if a step cost only its
    ``exact_flops`` at the measured matmul limit (elementwise work, the optimizer, the loss
    and all overhead free)."""
    return plain_seconds / (exact_flops / (limit_gflops * 1e9))


def _ceilings(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per MLP task: the trainer at the largest K, its speedup over the plain loop (float32)
    and that speedup's ``gemm_ceiling``."""
    limit = results["matmul"]["gflops"]
    pairs = {
        "mnist": (results["trainer_mnist"], results["plain_mnist"]["float32"], mnist_run()),
        "teacher_student": (
            results["teacher_student"]["trainer"],
            results["teacher_student"]["plain"],
            teacher_student_run(),
        ),
    }
    out = {}
    for task, (trainers, slow, cfg) in pairs.items():
        fast = largest_k(trainers)
        speedup = fast["run_steps_per_second"] / slow["run_steps_per_second"]
        ceiling = gemm_ceiling(slow["seconds_per_step"], mlp_step_flops(cfg, exact=True), limit)
        out[task] = {"trainer": fast, "speedup": speedup, "ceiling": ceiling}
    return out


def ceilings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each MLP speedup next to its ``gemm_ceiling``: how much of what is possible it gets."""
    labels = {
        "mnist": "MNIST K={k} vs plain float32",
        "teacher_student": "teacher-student K={k} vs plain",
    }
    return [
        {
            "speedup": labels[task].format(k=c["trainer"]["k"]),
            "measured": c["speedup"],
            "ceiling": c["ceiling"],
            "share of ceiling": c["speedup"] / c["ceiling"],
        }
        for task, c in _ceilings(results).items()
    ]


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per timed loop: name, dtype, K, seconds per step, run-steps/s, GFLOP/s."""
    timed = [
        *results["plain_mnist"].values(),
        *results["trainer_mnist"].values(),
        results["teacher_student"]["plain"],
        *results["teacher_student"]["trainer"].values(),
    ]
    tf = results["transformer"]
    timed += [
        {**tf[key], "dtype": tf["dtype"]} for key in ("plain", "stacked", "trainer") if key in tf
    ]
    table = [
        {
            "benchmark": r["name"],
            "dtype": r["dtype"],
            "K": r["k"],
            "ms/step": 1e3 * r["seconds_per_step"],
            "run-steps/s": r["run_steps_per_second"],
            "GFLOP/s": r.get("gflops", math.nan),
        }
        for r in timed
    ]
    m = results["matmul"]
    table.insert(
        0,
        {
            "benchmark": f"matmul limit n={m['n']}",
            "dtype": m["dtype"],
            "K": None,
            "ms/step": 1e3 * m["seconds_best"],
            "run-steps/s": math.nan,
            "GFLOP/s": m["gflops"],
        },
    )
    return table


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of ``rows`` (dicts with the same keys); floats to 4 significant
    digits, NaN and None as blanks."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(r[k]) for k in header) + " |" for r in rows]
    return "\n".join(lines)


@themed
def figure(results: dict[str, Any]):
    """Run-steps per second of each loop (log scale), plain loops and the trainer side by side,
    with the machine in the title."""
    table = [r for r in rows(results) if math.isfinite(r["run-steps/s"])]
    labels = [f"{r['benchmark']} ({r['dtype']})" for r in table]
    colors = [
        PALETTE[1] if "plain" in r["benchmark"].lower() or "Nanda" in r["benchmark"] else PALETTE[0]
        for r in table
    ]
    fig, ax = subplots(1, 1, row_height=0.32 * len(table) + 1.3)
    ax.barh(labels, [r["run-steps/s"] for r in table], color=colors)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="run-steps per second (log; higher is faster)")
    m = results["machine"]
    ax.set_title(
        f"orange: the usual single-run loop, blue: this project's code\n"
        f"{m.get('cpu', '')}, {m.get('torch_threads', '')} threads, device {m.get('device', '')}"
    )
    return fig
