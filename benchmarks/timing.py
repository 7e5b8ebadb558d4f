"""How the benchmarks time code, and what they time it on: shared by ``measure.py`` (the
trainer against the usual PyTorch loop), ``transformer_stack.py`` and ``ray_scaling.py``.

How we time: ``time.perf_counter`` after every step, with ``torch.cuda.synchronize`` first on
a GPU so that a step's queued kernels count towards it. Warm-up steps come first and are not
timed; the timed steps form ``repeats`` blocks of ``steps`` steps, a block's mean is one
repetition, and the median over repetitions is reported (robust to a busy machine). The trainer
is timed inside ``train_ensemble`` through its ``on_step`` hook, on steps that do not evaluate,
so its number is the real training loop (batches, forward, backward, AdamW, projection, the
divergence checks) and nothing else.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from omnigrok.checks import resolve_device
from omnigrok.config import RunConfig
from omnigrok.store import log_schedule
from omnigrok.task import TORCH_DTYPES, TaskData
from omnigrok.train import train_ensemble

try:
    import resource  # POSIX only: page faults and CPU time of the timed steps
except ImportError:
    resource = None


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    return TORCH_DTYPES[dtype] if isinstance(dtype, str) else dtype


def dtype_name(dtype: torch.dtype | str) -> str:
    return str(dtype).removeprefix("torch.")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_steps(step: Callable[[], object], n: int, warmup: int, dev: torch.device) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``n`` times; each call's seconds."""
    for _ in range(warmup):
        step()
    sync(dev)
    durations, last = [], time.perf_counter()
    for _ in range(n):
        step()
        sync(dev)
        now = time.perf_counter()
        durations.append(now - last)
        last = now
    return durations


def summary(durations: Sequence[float], repeats: int) -> dict[str, Any]:
    """Median over ``repeats`` blocks of the mean seconds per step in each block."""
    blocks = [float(b.mean()) for b in np.array_split(np.asarray(durations), repeats) if len(b)]
    return {
        "seconds_per_step": float(np.median(blocks)),
        "best_seconds_per_step": min(blocks),
        "repeat_seconds_per_step": blocks,
        "timed_steps": len(durations),
    }


def throughput(timed: dict[str, Any], k: int, flops_per_run_step: float | None) -> dict:
    """Run-steps per second (K runs advance per step) and GFLOP/s for a timing ``summary``."""
    seconds = timed["seconds_per_step"]
    out = {**timed, "k": k, "run_steps_per_second": k / seconds}
    if flops_per_run_step is not None:
        out["flops_per_step"] = k * flops_per_run_step
        out["gflops"] = k * flops_per_run_step / seconds / 1e9
    return out


def usage() -> tuple[float, float, float]:
    """This process's minor page faults, user and system CPU seconds so far (every thread);
    NaN where the platform does not say."""
    if resource is None:
        return math.nan, math.nan, math.nan
    r = resource.getrusage(resource.RUSAGE_SELF)
    return float(r.ru_minflt), r.ru_utime, r.ru_stime


def time_trainer(
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
    is the whole loop minus evaluation.) The medians over the same steps of their minor page
    faults and user and system CPU seconds (``usage``) come with it: a step that maps fresh
    memory pays for it in faults and system time.
    """
    warmup = max(warmup, 1)  # the hook's first call has no predecessor to time against
    n_timed = steps * repeats
    total = warmup + n_timed + 2  # room for the two evaluating steps after the warm-up
    configs = [c.replace(steps=total, n_log=2) for c in configs]
    logged = set(log_schedule(total, 2).tolist())
    stamps: dict[int, float] = {}
    used: dict[int, tuple[float, float, float]] = {}

    def on_step(step: int) -> None:
        sync(dev)
        stamps[step] = time.perf_counter()
        used[step] = usage()

    results = train_ensemble(configs, device=dev, progress=False, data=data, on_step=on_step)
    timed = [s for s in range(warmup + 1, total + 1) if s not in logged][:n_timed]
    per_step = {
        name: float(np.median([used[s][i] - used[s - 1][i] for s in timed]))
        for i, name in enumerate(("minor_faults", "user_seconds", "system_seconds"))
    }
    return {
        **summary([stamps[s] - stamps[s - 1] for s in timed], repeats),
        **{f"{name}_per_step": value for name, value in per_step.items()},
        "timing": dict(results[0].timing),
    }


def gemm_gflops(
    m: int,
    k: int,
    n: int,
    dtype: torch.dtype | str = torch.float32,
    repeats: int = 10,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """GFLOP/s of an ``[m, k] @ [k, n]`` GEMM (``2 m k n`` FLOPs) into a preallocated output,
    best of ``repeats``: the most that matrix products of that shape reach on this device, in
    this process's threads and precision."""
    dev, dt = resolve_device(device), as_dtype(dtype)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen, dtype=dt).to(dev)
    b = torch.randn(k, n, generator=gen, dtype=dt).to(dev)
    out = torch.empty(m, n, dtype=dt, device=dev)
    # A GPU does one GEMM in well under a millisecond: time several per repetition so that
    # the synchronisation and timer overhead stay out of the number.
    inner = 20 if dev.type == "cuda" else 1

    def gemm() -> None:
        for _ in range(inner):
            torch.mm(a, b, out=out)

    durations = [d / inner for d in time_steps(gemm, repeats, warmup=2, dev=dev)]
    best = min(durations)
    flops = 2 * m * k * n
    return {
        "shape": [m, k, n],
        "dtype": dtype_name(dt),
        "seconds_best": best,
        "gflops": flops / best / 1e9,
        "gflops_median": flops / float(np.median(durations)) / 1e9,
    }


def matmul_limit(
    n: int = 2048,
    dtype: torch.dtype | str = torch.float32,
    repeats: int = 10,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """GFLOP/s of an ``n × n`` GEMM, best of ``repeats``: the limit that the MLP trainer's
    matmuls can at most reach on this device and precision."""
    square = gemm_gflops(n, n, n, dtype, repeats, device)
    return {"n": n, **{k: v for k, v in square.items() if k != "shape"}}


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
