"""Speed benchmarks: the project's stacked trainer against the usual PyTorch loop, for every
model family, and the share of evaluation in training time. ``run.py`` prints them and stores
them in ``omnigrok/_data/benchmarks.json``; the package's ``omnigrok.report.speed`` judges them
against the speed issue's targets and draws the Performance page from the stored file.

Like nanoGPT's ``bench.py``, measurement lives apart from the code it measures: nothing here is
part of the package. Every function returns plain JSON-ready dicts and prints nothing; how
steps are timed is in ``timing.py``. ``tests/test_bench.py`` checks that the plain loops compute
what the package's trainer computes, so the comparison is between equal work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timing import (
    as_dtype,
    dtype_name,
    machine,
    matmul_limit,
    summary,
    sync,
    throughput,
    time_steps,
    time_trainer,
)
from torch import nn

from omnigrok import profiles
from omnigrok.checks import resolve_device
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.models import NandaTransformer, PlainMLP, init_params, transformer_forward
from omnigrok.models.graphnet import GraphNetSpec
from omnigrok.models.lstm import LSTMSpec
from omnigrok.optim import StackedAdamW
from omnigrok.report.speed import mlp_step_flops, ratios
from omnigrok.store import log_schedule
from omnigrok.task import TORCH_DTYPES, make_task
from omnigrok.tasks import mnist_run, modadd_run, teacher_student_run
from omnigrok.tasks.imdb import imdb_run
from omnigrok.tasks.qm9 import qm9_run
from omnigrok.train import loss_per_run, train_ensemble

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


def _mlp_result(name: str, config: RunConfig, timed: dict[str, Any], k: int) -> dict:
    """A timed MLP loop's numbers: name, dtype, throughput and GFLOP/s for K runs."""
    return {"name": name, "dtype": config.dtype, **throughput(timed, k, mlp_step_flops(config))}


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
    dev, dt = resolve_device(device), as_dtype(dtype)
    cfg = mnist_run(dtype=dtype_name(dt))
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

    durations = time_steps(step, steps * repeats, warmup, dev)
    return _mlp_result("MNIST plain loop", cfg, summary(durations, repeats), 1)


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
    durations = time_steps(
        lambda: plain_train_step(model, optimizer, loss_fn, data.x_train, data.y_train),
        steps * repeats,
        warmup,
        dev,
    )
    return _mlp_result("teacher-student plain loop", cfg, summary(durations, repeats), 1)


# -- the project's trainer -------------------------------------------------------------------
def _mlp_trainer(
    name: str, base: RunConfig, k: int, steps: int, repeats: int, warmup: int, dev: torch.device
) -> dict[str, Any]:
    """``train_ensemble`` on ``base`` with K runs at once (seeds 0..K-1), timed."""
    data = make_task(base.task, dev, base.dtype)
    configs = [base.replace(seed=s) for s in range(k)]
    timed = time_trainer(configs, data, steps, repeats, warmup, dev)
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
    plain = time_steps(
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

    stacked = time_steps(stacked_step, steps * repeats, warmup, dev)
    result = {
        "name": "transformer P=113 step",
        "dtype": cfg.dtype,
        "n_train": data.n_train,
        "plain": {"name": "NandaTransformer", **throughput(summary(plain, repeats), 1, None)},
        "stacked": {
            "name": "stacked transformer_forward",
            **throughput(summary(stacked, repeats), 1, None),
        },
        "max_abs_logit_diff": diff,
    }
    result["speedup"] = result["plain"]["seconds_per_step"] / result["stacked"]["seconds_per_step"]
    if with_trainer:
        timed = time_trainer([cfg], data, steps, repeats, warmup, dev)
        result["trainer"] = {"name": "trainer K=1", **throughput(timed, 1, None)}
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
        timed = time_trainer(
            [cfg.replace(seed=s) for s in range(k)], data, steps, repeats, warmup, dev
        )
        out[name] = {"k": k, **throughput(timed, k, None)}
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
    timed = time_trainer(runs, data, steps, repeats, warmup, dev)
    return {"k": k, **throughput(timed, k, None)}


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
        sync(dev)
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


# -- everything together ---------------------------------------------------------------------
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
