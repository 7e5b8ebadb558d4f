"""Does stacking K modular-addition transformers into one model pay on a CPU? (issue 25)

    python benchmarks/transformer_stack.py [--ks 1 5 15] [--threads 1 2] [--steps 5]
        [--warmup 2] [--malloc default keep] [--profile] [--json src/omnigrok/_data/benchmarks.json]

The paper's modular-addition transformer (paper Sec. 3.3; the ``paper`` profile: P = 113, 30%
of the pairs, full batch of 3,830, AdamW lr 1e-3, float32) trained by ``train_ensemble`` with K
runs in one stack, on 1 and on 2 torch threads. Each thread count runs in a fresh subprocess
(``OMP_NUM_THREADS`` and ``torch.set_num_threads`` set before torch does any work), so a
thread pool sized by an earlier measurement never carries over. Per K and thread count: seconds
per step (the median of ``--steps`` steps after ``--warmup``, timed inside the trainer on steps
that do not evaluate, as ``timing.time_trainer``) and per run-step, GFLOP/s and the fraction of
the matmul limit measured in that same process.

FLOPs per run-step count the matrix products of the forward and backward (``matmul_flops``):
each forward GEMM ``[m, k] @ [k, n]`` is ``2 m k n``; the backward does two GEMMs of the same
size per forward GEMM (input and weight gradient) except for the embedding, whose input (the
one-hot tokens) needs no gradient. The attention scores and mixing (broadcast multiply and
sum over 3 positions, ~0.1% of the FLOPs) and every elementwise op are left out.
``tests/test_bench.py`` checks the count against ``torch.utils.flop_counter.FlopCounterMode``.

The matmul limit is a plain float32 ``[3830, 128] @ [128, 512]`` GEMM (the MLP's input layer of
one run, the commonest shape of the step), best of 10; the 2048 x 2048 GEMM of ``run.py`` is
recorded beside it for comparison with the stored measurement's ``matmul``.

The control (each K > 1): one run trained on the training set repeated K times, i.e. the same
activation sizes as the stack (``[K·3830, 512]`` for ``[K, 3830, 512]``) with no stacking. If a
stack is slow per run and its control just as slow, the cost is the size of the activations,
not the batched GEMMs or the per-run optimizer. ``--profile`` adds the self time of every op,
per run-step, from ``torch.profiler`` over one training step per K.

Why the size of the activations matters here: glibc's malloc serves a block above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it when freed, so every step maps
its large activations anew and pays a page fault and the kernel's zeroing per 4 KiB page. At
K = 1 the largest are 12 MB and are reused; at K = 5 they are 40-60 MB. Each timing therefore
carries the step's minor page faults and user and system CPU seconds, and ``--malloc keep``
runs the same workers with ``MALLOC_MMAP_MAX_=0`` and a 16 GiB ``MALLOC_TRIM_THRESHOLD_`` (glibc
keeps freed memory for reuse: no fresh pages after the first steps; the arithmetic is
unchanged). Each ``--malloc`` choice gets its own subprocesses, since glibc reads them at start.

``--json`` files everything under the key ``transformer_stack`` of that file, keeping its other
keys. Measure on a quiet machine: on a loaded one, 2 threads mostly wait for each other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from timing import gemm_gflops, machine, matmul_limit, throughput, time_trainer

from omnigrok import profiles
from omnigrok.config import RunConfig
from omnigrok.models.transformer import TransformerSpec
from omnigrok.report.speed import markdown_table, stack_rows
from omnigrok.task import TaskData, make_task
from omnigrok.tasks import modadd_run
from omnigrok.train import train_ensemble

CPU = torch.device("cpu")
# glibc's settings for each --malloc choice (read when a process starts): "keep" never gives a
# large block back to the kernel, so a step reuses the pages the last step touched.
MALLOC = {
    "default": {},
    "keep": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30)},
}
# The control's test set: only evaluated (three times), never timed; kept small so that it is
# cheap. Its training set is the whole repeated one.
CONTROL_N_TEST = 100


def paper_config() -> RunConfig:
    """Nanda et al.'s setup at the ``paper`` profile's P, train fraction and lr."""
    p = profiles.MODADD["paper"]
    return modadd_run(p=p["p"], train_frac=p["train_frac"], lr=p["lr"])


def matmul_flops(spec: TransformerSpec, batch: int) -> dict[str, int]:
    """FLOPs of each GEMM of ``transformer_forward``'s forward for one run and ``batch``
    examples (``2 m k n`` each): the embedding as a one-hot product, keys and values of every
    position in one product, the query, output, MLP and unembedding of the last position."""
    d, positions = spec.d_model, batch * spec.n_ctx
    return {
        "embed": 2 * positions * spec.d_vocab * d,
        "keys_values": 2 * positions * d * 2 * d,
        "query": 2 * batch * d * d,
        "attention_out": 2 * batch * d * d,
        "mlp_in": 2 * batch * d * spec.d_mlp,
        "mlp_out": 2 * batch * spec.d_mlp * d,
        "unembed": 2 * batch * d * spec.d_vocab,
    }


def flops_per_run_step(spec: TransformerSpec, batch: int) -> int:
    """Matrix-product FLOPs of one run's training step: the forward, and twice it backward
    (input and weight gradients), less the embedding's input gradient (one-hot: none)."""
    forward = matmul_flops(spec, batch)
    return 3 * sum(forward.values()) - forward["embed"]


def repeated(data: TaskData, times: int) -> TaskData:
    """``data`` with its training set repeated ``times`` times (the control's one big run)."""
    return TaskData(
        data.x_train.repeat(times, 1),
        data.y_train.repeat(times),
        data.x_test[:CONTROL_N_TEST],
        data.y_test[:CONTROL_N_TEST],
        data.n_classes,
    )


def time_stack(
    config: RunConfig, data: TaskData, k: int, steps: int, warmup: int, flops: int
) -> dict[str, Any]:
    """Seconds per step of ``train_ensemble`` on K runs of ``config`` (seeds 0..K-1), the
    median of ``steps`` single-step repetitions; ``flops``: per run-step."""
    configs = [config.replace(seed=s) for s in range(k)]
    timed = time_trainer(configs, data, steps=1, repeats=steps, warmup=warmup, dev=CPU)
    return throughput(timed, k, flops)


def profile_step(config: RunConfig, data: TaskData, k: int) -> dict[str, float]:
    """Self CPU milliseconds of each op in one training step of K runs, per run-step: the
    trainer runs 4 steps (it evaluates before the first and after the last); the profiler
    waits through the first, warms up on the second and records the third."""
    configs = [config.replace(seed=s, steps=4, n_log=2) for s in range(k)]
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=1, repeat=1)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule
    ) as prof:
        train_ensemble(configs, CPU, progress=False, data=data, on_step=lambda _: prof.step())
    ops: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        ops[event.key] += event.self_cpu_time_total / 1e3 / k
    return dict(ops)


def measure_threads(
    threads: int, ks: Sequence[int], steps: int, warmup: int, profile: bool, malloc: str
) -> dict[str, Any]:
    """Everything at one thread count, in this process (run it in a fresh one with ``malloc``'s
    environment: ``run`` does)."""
    torch.set_num_threads(threads)
    config = paper_config()
    data = make_task(config.task, CPU, config.dtype)
    spec, batch = config.model, data.n_train
    flops = flops_per_run_step(spec, batch)
    limit = gemm_gflops(batch, spec.d_model, spec.d_mlp, config.dtype, 10, CPU)
    square = matmul_limit(2048, config.dtype, 10, CPU)
    out: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "malloc": malloc,
        "malloc_environment": MALLOC[malloc],
        "limit": limit,
        "limit_square": square,
        "stacks": {},
        "controls": {},
        "profile": {},
    }
    for k in ks:
        timed = time_stack(config, data, k, steps, warmup, flops)
        timed["fraction_of_limit"] = timed["gflops"] / limit["gflops"]
        timed["fraction_of_square_limit"] = timed["gflops"] / square["gflops"]
        out["stacks"][str(k)] = timed
        if k > 1:
            control = time_stack(config, repeated(data, k), 1, steps, warmup, k * flops)
            control["fraction_of_limit"] = control["gflops"] / limit["gflops"]
            out["controls"][str(k)] = control
        if profile:
            out["profile"][str(k)] = profile_step(config, data, k)
    return out


def run(
    threads: Sequence[int],
    ks: Sequence[int],
    steps: int,
    warmup: int,
    profile: bool,
    mallocs: Sequence[str] = ("default",),
) -> dict[str, Any]:
    """``measure_threads`` for each allocator setting and thread count in a fresh subprocess,
    and the setting."""
    config = paper_config()
    where = {k: v for k, v in machine("cpu").items() if k != "torch_threads"}
    load_before = os.getloadavg()[0]
    measurements = []
    for malloc in mallocs:
        for t in threads:
            env = {**os.environ, **MALLOC[malloc], "OMP_NUM_THREADS": str(t)}
            env["MKL_NUM_THREADS"] = str(t)
            args = ["--worker", str(t), "--malloc", malloc, "--ks", *map(str, ks)]
            args += ["--steps", str(steps), "--warmup", str(warmup)]
            args += ["--profile"] if profile else []
            done = subprocess.run(
                [sys.executable, __file__, *args], env=env, capture_output=True, text=True
            )
            if done.returncode:
                raise RuntimeError(f"the {t}-thread, {malloc} malloc run failed:\n{done.stderr}")
            measurements.append(json.loads(done.stdout.strip().splitlines()[-1]))
    n_train = int(config.task.train_frac * config.task.p**2)
    return {
        "machine": where,
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "setting": (
            f"modular addition P={config.task.p}, {n_train} training pairs (full batch), "
            f"{config.dtype}, AdamW lr {config.lr:g}, the paper profile"
        ),
        "flops_per_run_step": flops_per_run_step(config.model, n_train),
        "flop_count": "matrix products only: 2mkn per forward GEMM, twice that backward, "
        "less the one-hot embedding's input gradient",
        "ks": list(ks),
        "steps": steps,
        "warmup": warmup,
        "measurements": measurements,
    }


def profile_rows(result: dict[str, Any], top: int = 15) -> list[dict[str, Any]]:
    """The ``top`` ops by their largest self time, milliseconds per run-step in each
    measurement and K, and the total over all ops."""
    columns = {
        f"{m['malloc']}, {m['torch_threads']} thr, K={k}": ops
        for m in result["measurements"]
        for k, ops in m["profile"].items()
    }
    if not columns:
        return []
    names = sorted(
        {name for ops in columns.values() for name in ops},
        key=lambda name: -max(ops.get(name, 0.0) for ops in columns.values()),
    )
    table = [
        {"op (ms per run-step)": name, **{c: ops.get(name, 0.0) for c, ops in columns.items()}}
        for name in names[:top]
    ]
    table.append(
        {"op (ms per run-step)": "all ops", **{c: sum(ops.values()) for c, ops in columns.items()}}
    )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 15], help="runs per stack")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median) per K")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument(
        "--malloc", nargs="+", default=["default"], choices=list(MALLOC), help="glibc settings"
    )
    parser.add_argument("--profile", action="store_true", help="op breakdown of one step per K")
    parser.add_argument("--json", type=Path, help="file the numbers under 'transformer_stack'")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one thread count, here
    args = parser.parse_args(argv)
    if args.worker:
        (malloc,) = args.malloc  # run passes one
        result = measure_threads(
            args.worker, args.ks, args.steps, args.warmup, args.profile, malloc
        )
        print(json.dumps(result))
        return 0

    start = time.perf_counter()
    result = run(args.threads, args.ks, args.steps, args.warmup, args.profile, args.malloc)
    print("Machine: " + ", ".join(f"{k}={v}" for k, v in result["machine"].items()))
    print(f"{result['setting']}; {result['flops_per_run_step'] / 1e9:.2f} GFLOP per run-step")
    print(f"load average (1 min) before, after: {result['load_average']}")
    print("\n" + markdown_table(stack_rows(result)))
    if args.profile:
        print("\n" + markdown_table(profile_rows(result)))
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    if args.json:
        stored = json.loads(args.json.read_text()) if args.json.exists() else {}
        args.json.write_text(json.dumps({**stored, "transformer_stack": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
