"""How much training a profile's book asks for, and what that costs on a measured machine.

The performance page multiplies these counts by the trainer's measured throughput to state the
CPU time of each profile (the ``paper`` profile is too long to build on a laptop CPU, so its
time is a projection from measured step costs, labelled as such).
"""

from __future__ import annotations

from collections import Counter

from omnigrok.claims import axes, constraint, goldilocks, large_init
from omnigrok.config import RunConfig


def book_runs(profile: str) -> list[RunConfig]:
    """Every distinct run the book trains for ``profile`` with default parameters. The MNIST
    target of claim 3's constrained runs is set to a placeholder (it only changes a value)."""
    runs = []
    g = goldilocks.setup(profile, device="cpu")
    runs += [c for task in goldilocks.TASKS for c in g.configs(task)]
    runs += large_init.setup(profile, device="cpu").sweep()
    c = constraint.setup(profile, device="cpu", mnist_w_c=1.0)
    runs += [
        cfg for task in c.bases for regime in constraint.REGIMES for cfg in c.configs(task, regime)
    ]
    runs += axes.setup(profile, device="cpu").configs()
    return list(dict.fromkeys(runs))


def run_steps(profile: str) -> dict[str, int]:
    """Training run-steps per task (runs x steps) of a profile's book."""
    counts: Counter[str] = Counter()
    for run in book_runs(profile):
        counts[run.task.name] += run.steps
    return dict(counts)
