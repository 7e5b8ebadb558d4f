"""How much training a profile's book asks for, and what that costs on a measured machine.

The performance page multiplies these counts by the trainer's measured throughput to state the
CPU time of each profile (the ``paper`` profile is too long to build on a laptop CPU, so its
time is a projection from measured step costs, labelled as such).
"""

from __future__ import annotations

from collections import Counter

from omnigrok.claims import axes, constraint, goldilocks, large_init, width
from omnigrok.config import MLPSpec, RunConfig
from omnigrok.presets import mnist_run, teacher_student_run


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
    w = width.setup(profile, device="cpu")
    runs += [c for size in w.widths for c in w.configs(size)]
    return list(dict.fromkeys(runs))


# The paper's MLP per task: the unit in which run-steps are counted.
STANDARD_WIDTHS = {
    "mnist": mnist_run().model.widths,
    "teacher_student": teacher_student_run().model.widths,
}


def relative_cost(run: RunConfig) -> float:
    """FLOPs per step of ``run``'s model over those of its task's standard model (the paper's
    MNIST and teacher-student MLPs; 1 for the transformer), batch sizes being equal."""
    from omnigrok.bench import mlp_train_flops

    standard = STANDARD_WIDTHS.get(run.task.name)
    if not isinstance(run.model, MLPSpec) or standard is None:
        return 1.0
    return mlp_train_flops(run.model.widths, 1) / mlp_train_flops(standard, 1)


def run_steps(profile: str) -> dict[str, int]:
    """Training run-steps per task (runs x steps) of a profile's book, counted in steps of the
    task's standard model: a run of another width counts ``relative_cost`` per step."""
    counts: Counter[str] = Counter()
    for run in book_runs(profile):
        counts[run.task.name] += run.steps * relative_cost(run)
    return {task: round(steps) for task, steps in counts.items()}
