"""Scaling of a 4-stack sweep on Ray from 1 to 2 workers, and the overhead per task (the logic
is in ``omnigrok.bench_ray``; this prints it). Needs the ``ray`` extra.

    python benchmarks/ray_scaling.py [--steps 5000] [--repeats 3] [--json benchmarks/results.json]

``--json`` files the numbers under the key ``ray`` of that file, keeping its other keys (the
speed benchmark's, ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnigrok.bench_ray import ray_scaling


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
