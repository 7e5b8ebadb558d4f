"""How a sweep scales on Ray (``omnigrok.executors``): a 4-stack sweep on 1 and on 2 workers,
against the same sweep in this process, and what each Ray task costs beyond its training.
Needs the ``ray`` extra.

    python benchmarks/ray_scaling.py [--steps 5000] [--repeats 3]
        [--json src/omnigrok/_data/benchmarks.json]

``--json`` files the numbers under the key ``ray`` of that file, keeping its other keys (the
speed benchmark's, ``benchmarks/run.py``); the Performance page shows them
(``omnigrok.report.speed.ray_rows``). Measurement apart from the code it measures, as
``measure.py``. Every sweep trains into a fresh store, so each one trains all its stacks. A
worker is one CPU and one torch thread, so the local reference runs with one thread too: the
ratios compare like with like.

- scaling: local-equivalent time on 1 worker over the time on 2 (ideal 2x, on an idle machine
  with 2 cores);
- overhead per task: (1 worker - local, one thread) / stacks: submission, shipping configs and
  results through the object store, and filing them;
- empty-task cost: the same difference for stacks of one step, where training is nothing.

Workers are started (and have imported torch) before the timed sweeps, and the local process
has trained once: a cluster pays those once, not per task.

On a machine that others share, read the scaling with the load average beside it: Linux's
autogroup scheduling (``autogroup`` in the result) gives each session an equal share of the
CPUs, and a Ray instance's workers are one session (the raylet starts its own), so while other
sessions keep the cores busy two workers get no more CPU time than one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from timing import machine

from omnigrok.config import RunConfig
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.tasks import teacher_student_run


def _sweep_seconds(configs: Sequence[RunConfig], executor: str, stack: int) -> float:
    with tempfile.TemporaryDirectory() as root:
        store = ResultStore(Path(root), archives=())
        start = time.perf_counter()
        run_sweep(configs, store, "cpu", False, max_stack=stack, executor=executor)
        return time.perf_counter() - start


def _autogroup() -> bool | None:
    """Whether the kernel schedules sessions as groups (None: not Linux, or not readable)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def _stacks(steps: int, stacks: int, runs_per_stack: int, offset: int = 0) -> list[RunConfig]:
    """``stacks`` stacks of ``runs_per_stack`` same-shape teacher-student runs (max_stack
    splits them); ``offset`` shifts the seeds so that warm-up runs are other runs."""
    n = stacks * runs_per_stack
    return [teacher_student_run(steps=steps, n_log=20, seed=offset + s) for s in range(n)]


def _on_ray(workers: int, sweeps: dict[str, Sequence[RunConfig]], stack: int) -> dict:
    """Seconds of each of ``sweeps`` on a Ray instance of ``workers`` CPUs on loopback, started
    here and warmed up (every worker started, torch imported), then shut down."""
    import ray  # the optional extra: only this benchmark and the executor need it

    ray.init(
        num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
    )
    try:
        _sweep_seconds(_stacks(2, workers, stack, offset=10_000), "ray", stack)
        return {name: _sweep_seconds(configs, "ray", stack) for name, configs in sweeps.items()}
    finally:
        ray.shutdown()


def ray_scaling(
    steps: int = 5000, stacks: int = 4, runs_per_stack: int = 2, repeats: int = 3
) -> dict[str, Any]:
    """Medians over ``repeats`` of the sweep's wall time: local, and on 1 and 2 Ray workers.

    Each repetition times all three in turn, so that a load that drifts (a shared machine)
    weighs on each alike; the load average before and after is part of the result."""
    import ray

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    configs = _stacks(steps, stacks, runs_per_stack)
    empty = _stacks(1, stacks, runs_per_stack)
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {}
    try:
        where = machine("cpu")  # torch_threads: 1, as in each worker
        _sweep_seconds(_stacks(2, 1, runs_per_stack, offset=10_000), "local", runs_per_stack)
        for _ in range(repeats):
            times.setdefault("local", []).append(_sweep_seconds(configs, "local", runs_per_stack))
            times.setdefault("local_empty", []).append(
                _sweep_seconds(empty, "local", runs_per_stack)
            )
            one = _on_ray(1, {"sweep": configs, "empty": empty}, runs_per_stack)
            times.setdefault("ray1", []).append(one["sweep"])
            times.setdefault("ray1_empty", []).append(one["empty"])
            two = _on_ray(2, {"sweep": configs}, runs_per_stack)
            times.setdefault("ray2", []).append(two["sweep"])
    finally:
        torch.set_num_threads(threads)
    t = {name: statistics.median(values) for name, values in times.items()}
    return {
        "machine": where,
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "autogroup": _autogroup(),
        "ray": ray.__version__,
        "sweep": f"{stacks} stacks of {runs_per_stack} teacher-student runs, {steps} steps",
        "repeats": repeats,
        "seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "local_one_thread_s": t["local"],
        "workers_s": {"1": t["ray1"], "2": t["ray2"]},
        "scaling_1_to_2_workers": t["ray1"] / t["ray2"],
        "overhead_per_task_s": (t["ray1"] - t["local"]) / stacks,
        "empty_task_s": (t["ray1_empty"] - t["local_empty"]) / stacks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps of every run")
    parser.add_argument("--repeats", type=int, default=3, help="sweeps timed per setting")
    parser.add_argument("--json", type=Path, help="file the numbers under 'ray' in this file")
    args = parser.parse_args(argv)

    result = ray_scaling(steps=args.steps, repeats=args.repeats)
    print("Machine: " + ", ".join(f"{k}={v}" for k, v in result["machine"].items()))
    print(f"{result['sweep']}, medians of {result['repeats']}")
    cores = result["machine"]["usable_cores"]
    print(f"load average (1 min) before, after: {result['load_average']} on {cores} cores")
    print(f"local, one thread: {result['local_one_thread_s']:.2f} s")
    for workers, seconds in result["workers_s"].items():
        print(f"Ray, {workers} worker(s): {seconds:.2f} s")
    print(f"scaling 1 -> 2 workers: {result['scaling_1_to_2_workers']:.2f}x (ideal 2x)")
    print(f"overhead per task: {result['overhead_per_task_s']:.3f} s")
    print(f"an empty task (1-step stacks): {result['empty_task_s']:.3f} s")
    if args.json:
        stored = json.loads(args.json.read_text()) if args.json.exists() else {}
        args.json.write_text(json.dumps({**stored, "ray": result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
