"""How much training a profile's book asks for, and what that costs on a measured machine.

The performance page multiplies these counts by the trainer's measured throughput (from
``omnigrok/_data/benchmarks.json``, read by ``omnigrok.report.speed``) to state the CPU time of each
profile (the ``paper`` profile is too long to build on a laptop CPU, so its time is a
projection from measured step costs, labelled as such).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from omnigrok import profiles
from omnigrok.chapters import CHAPTERS
from omnigrok.config import RunConfig
from omnigrok.models import MLPSpec
from omnigrok.models.mlp import train_flops
from omnigrok.report.speed import largest_k
from omnigrok.tasks import mnist_run, teacher_student_run


def book_runs(profile: str) -> list[RunConfig]:
    """Every distinct run the book trains for ``profile`` with default parameters (claim 3's
    MNIST target norm stood in: it only changes a value)."""
    runs = [c for ch in CHAPTERS for c in ch.setup(profile, device="cpu").planned()]
    return list(dict.fromkeys(runs))


# The paper's MLP per task: the unit in which run-steps are counted.
STANDARD_WIDTHS = {
    "mnist": mnist_run().model.widths,
    "teacher_student": teacher_student_run().model.widths,
}


def relative_cost(run: RunConfig) -> float:
    """FLOPs per step of ``run``'s model over those of its task's standard model (the paper's
    MNIST and teacher-student MLPs; 1 for the transformer), batch sizes being equal."""
    standard = STANDARD_WIDTHS.get(run.task.name)
    if not isinstance(run.model, MLPSpec) or standard is None:
        return 1.0
    return train_flops(run.model.widths, 1) / train_flops(standard, 1)


def run_steps(profile: str) -> dict[str, int]:
    """Training run-steps per task (runs x steps) of a profile's book, counted in steps of the
    task's standard model: a run of another width counts ``relative_cost`` per step."""
    counts: Counter[str] = Counter()
    for run in book_runs(profile):
        counts[run.task.name] += run.steps * relative_cost(run)
    return {task: round(steps) for task, steps in counts.items()}


def profile_costs(
    results: dict[str, Any], profiles_: Sequence[str] = ("smoke", "quick", "paper")
) -> list[dict[str, Any]]:
    """Projected training time of each profile's book on the measured machine: run-steps per
    task times the trainer's measured seconds per run-step (``results``: the benchmark's JSON;
    MNIST and teacher-student at the largest K measured; modular addition from the P = 113
    K = 1 step, scaled by training-set size, since its full-batch cost is proportional to it).
    Training only: evaluation adds its share on top."""
    per_run_step = {
        "mnist": 1 / largest_k(results["trainer_mnist"])["run_steps_per_second"],
        "teacher_student": 1
        / largest_k(results["teacher_student"]["trainer"])["run_steps_per_second"],
    }
    tf = results["transformer"]
    modadd_step = tf.get("trainer", tf["stacked"])["seconds_per_step"]
    lstm = results.get("lstm", {})
    rows_out = []
    for profile in profiles_:
        m = profiles.MODADD[profile]
        per_run_step["modadd"] = modadd_step * int(m["train_frac"] * m["p"] ** 2) / 3830
        # The IMDb LSTM at its profile's size (smoke: the quick measurement, an upper bound);
        # NaN where the benchmark did not measure it.
        measured = lstm.get("paper" if profile == "paper" else "quick")
        per_run_step["imdb"] = 1 / measured["run_steps_per_second"] if measured else math.nan
        # The QM9 graph network: one size in every profile, measured at K = 9 (NaN if not).
        graphnet = results.get("graphnet")
        per_run_step["qm9"] = 1 / graphnet["run_steps_per_second"] if graphnet else math.nan
        for task, steps in run_steps(profile).items():
            rows_out.append(
                {
                    "profile": profile,
                    "task": task,
                    "run-steps": steps,
                    "projected hours": steps * per_run_step[task] / 3600,
                }
            )
    return rows_out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The speed targets (``report.speed.ratios``), one row each, with met or missed beside the
    target instead of a column of its own: a target's name is one long word that cannot wrap,
    and with five columns the table was wider than the book's column."""
    return [
        {
            "target": r["name"],
            "value": r["value"],
            "required": f"{r['target']}: {'met' if r['passed'] else 'missed'}",
            "note": r["note"],
        }
        for r in results["ratios"]
    ]
