"""What the book reads of a run, and how far two runs' readings may lie apart.

``omnigrok.verify``'s whole-run mode recomputes an archived run to its end and compares these
readings: the milestones the chapters use (the first step a curve reaches a threshold, held by
``omnigrok.report.metrics``' rule: paper Sec. 3, generalization is what a run keeps), the weight
norm there (Sec. 2-3: the norm is the story), and the final accuracies, losses and norm
(claim 1's landscape reads finals). A float32 run trained in a stack and the same run trained
alone round differently and training amplifies it, chaotically, so they are compared within
tolerances measured as that drift (``benchmarks/verify_drift.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from omnigrok.chapters import claim2, claim3, imdb, qm9, representation
from omnigrok.report.metrics import PERSIST, first_step_reaching
from omnigrok.store import RunResult

KINDS = ("step", "norm", "train acc", "test acc", "train loss", "test loss")
# Tolerances per task and kind of number, in the unit of ``difference`` (steps: ``step_gap``).
# Each is twice the largest stack-versus-alone drift measured, rounded up to two digits, and
# at least 0.01 (the start's tolerance of an accuracy); a step at least 0.1 (about one logged
# point: consecutive logged steps are up to ~7% apart on the log half of the schedule).
# Measured 2026-12-06 by ``benchmarks/verify_drift.py`` (record: ``verify_drift.json`` there)
# on a 2-core Intel Xeon, one torch thread, under load: 51 archived runs trained in stacks of 3
# to 64 (the quick archive's on this CPU, the paper archive's on an AMD EPYC), each recomputed
# alone from scratch. Largest drift (tolerance) per task, over its runs:
#
# task (runs)      step        norm          train acc     test acc       train loss  test loss
# mnist (21)       0.20 (0.4)  0.012 (0.025) 0.041 (0.082) 0.0070 (0.014) 0.29 (0.59) 0.19 (0.39)
# teacher-st. (12) none (0.1)  2e-7 (0.01)   none (0.01)   none (0.01)    8.3 (17)    0.010 (0.021)
# qm9 (11)         0 (0.1)     0.0034 (0.01) none (0.01)   none (0.01)    0.69 (1.4)  0.19 (0.38)
# imdb (7)         0 (0.1)     0.16 (0.32)   0.061 (0.13)  0.040 (0.08)   0.80 (1.6)  0.032 (0.065)
#
# Finals of a train curve that has fitted are the noisiest: a teacher-student run at a train
# loss of 5e-14 spiked to 2e-5 at its last logged step in one copy and not the other, and an
# MNIST run held at a large norm ended at train accuracy 0.951 or 0.992. IMDb (750 reviews, an
# LSTM) drifts most: a change below its tolerances (0.08 of test accuracy) cannot be seen.
TOLERANCES: dict[str, dict[str, float]] = {
    "mnist": dict(zip(KINDS, (0.4, 0.025, 0.082, 0.014, 0.59, 0.39), strict=True)),
    "teacher_student": dict(zip(KINDS, (0.1, 0.01, 0.01, 0.01, 17.0, 0.021), strict=True)),
    "qm9": dict(zip(KINDS, (0.1, 0.01, 0.01, 0.01, 1.4, 0.38), strict=True)),
    "imdb": dict(zip(KINDS, (0.1, 0.32, 0.13, 0.08, 1.6, 0.065), strict=True)),
}
# A task not measured (modular addition: a CPU trains it one run per stack, so it recomputes
# bit for bit; a GPU's stacks were not measured): the loosest measured tolerance of each kind.
LOOSEST = {k: max(t[k] for t in TOLERANCES.values()) for k in KINDS}


def tolerance(task: str) -> dict[str, float]:
    """The whole-run tolerance of each kind of number for runs of ``task``."""
    return TOLERANCES.get(task, LOOSEST)


@dataclass(frozen=True)
class Milestone:
    """A step a chapter reads: the first logged step from which ``curve`` stays at or above
    ``level`` (``lower``: at or below), held by ``omnigrok.report.metrics``' rule."""

    curve: str
    level: float
    lower: bool = False

    @property
    def name(self) -> str:
        return f"{self.curve} {'<=' if self.lower else '>='} {self.level:g}"

    def step(self, r: RunResult) -> float:
        """The milestone's step in ``r`` (inf: never reached, or not confirmed by the end)."""
        sign = -1.0 if self.lower else 1.0
        values = sign * np.asarray(r[self.curve], float)
        return first_step_reaching(r.steps, values, sign * self.level, PERSIST)

    def harder(self, by: float) -> Milestone:
        """The same milestone with its level moved ``by`` (negative: easier) in the unit of
        its curve's tolerance: accuracy points, or decades of loss."""
        if self.lower:
            return Milestone(self.curve, self.level * 10.0**-by, True)
        return Milestone(self.curve, self.level + by)


# The thresholds the chapters read, per task. Accuracy: memorization at claim 2's 0.99, test
# accuracy at claim 2's 0.8 (claims 2 and 3, the delay over γ, the phases' cap) bracketed by
# 0.5, 0.9 and claim 3's 0.95 (the phases' relative thresholds fall among them). Modular
# addition adds claim 4's 10% -> 90% jump and the representation's 0.95, on novel pairs; IMDb
# its memorization at 0.9 and 0.6, next to its target (the baseline's final test accuracy less
# 0.02: 0.59 in the quick archive). QM9 (a loss): fitted at train loss 1, and test loss 0.6 and
# 1.2, its target (the baseline's final test loss x 1.25: 0.54 paper, 0.59 quick) and twice
# it ("not generalized"). Teacher-student is read by claim 1's landscape only: its finals.
_ACCURACY = (
    Milestone("train_acc", claim2.MEMORIZED),
    *(Milestone("test_acc", a) for a in (0.5, claim2.GENERALIZED, 0.9, claim3.THRESHOLD["modadd"])),
)
MILESTONES: dict[str, tuple[Milestone, ...]] = {
    "mnist": _ACCURACY,
    "modadd": (
        *_ACCURACY,
        Milestone("test_acc_novel", 0.1),
        Milestone("test_acc_novel", 0.9),
        Milestone("test_acc_novel", representation.GENERALIZED),
    ),
    "imdb": (*_ACCURACY, Milestone("train_acc", imdb.MEMORIZED), Milestone("test_acc", 0.6)),
    "qm9": (
        Milestone("train_loss", qm9.FITTED, lower=True),
        Milestone("test_loss", 0.6, lower=True),
        Milestone("test_loss", 1.2, lower=True),
    ),
    "teacher_student": (),
}
# Each logged curve's final, and the kind of number it is.
FINALS = {
    "train_acc": "train acc",
    "test_acc": "test acc",
    "test_acc_novel": "test acc",
    "train_loss": "train loss",
    "test_loss": "test loss",
    "norm": "norm",
}


def milestones(r: RunResult) -> tuple[Milestone, ...]:
    """The milestones read of ``r``'s task (another task's: the accuracy ones, if it logs
    accuracy)."""
    if r.config.task.name in MILESTONES:
        return MILESTONES[r.config.task.name]
    return _ACCURACY if np.isfinite(r["train_acc"]).any() else ()


@dataclass(frozen=True)
class Number:
    """One number the book reads of a run: a milestone's step (``kind`` "step"), the norm
    there ("norm"), or a final value ("train acc", "test acc", "train loss", "test loss",
    "norm": train and test apart, since a train curve that has fitted is noisier)."""

    name: str
    kind: str
    value: float


def _norm_at(r: RunResult, step: float) -> float:
    at = np.flatnonzero(r.steps == step)
    return float(r["norm"][at[0]]) if at.size else math.nan


def book_numbers(r: RunResult) -> list[Number]:
    """What the chapters read of ``r``: each milestone's step and the weight norm at it, and
    the final accuracies, losses and norm of the curves it logs."""
    out = []
    for m in milestones(r):
        step = m.step(r)
        out += [
            Number(m.name, "step", step),
            Number(f"norm at {m.name}", "norm", _norm_at(r, step)),
        ]
    for curve, kind in FINALS.items():
        if curve in r.metrics:
            out.append(Number(f"final {curve}", kind, float(r[curve][-1])))
    return out


def difference(kind: str, a: float, b: float) -> float:
    """How far apart an archived value ``a`` and a recomputed ``b`` of ``kind`` (not a step)
    are, in the unit its tolerance is stated in: norms relative, accuracies absolute, losses
    |log10(a / b)|. NaN on both sides (a curve not logged) is no difference."""
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    if kind.endswith("acc"):
        return abs(a - b)
    if kind.endswith("loss"):
        if a <= 0 or b <= 0:
            return 0.0 if a == b else math.inf
        return abs(math.log10(a / b))
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def outside(step: float, lo: float, hi: float, end: float) -> float:
    """How far ``step`` lies outside [``lo``, ``hi``] (inf: never reached), relative to the
    later of the two steps compared; a milestone reached on one side only is as far as the
    other side's step is from the run's ``end``."""
    lo, hi = min(lo, hi), max(lo, hi)
    if lo <= step <= hi:
        return 0.0
    if math.isinf(step):
        return (end - hi) / max(end, 1.0)
    if math.isinf(lo):
        return (end - step) / max(end, 1.0)
    near = lo if step < lo else hi
    return abs(step - near) / max(step, near, 1.0)


def step_gap(m: Milestone, archived: RunResult, fresh: RunResult, shift: float) -> float:
    """How far the two runs' steps of ``m`` are apart, given that their curves may differ by
    ``shift`` (the value tolerance of ``m``'s curve): each side's step must lie between the
    other side's steps at the level made ``shift`` easier and ``shift`` harder. Where a curve
    lingers near the level, a value drift far below any tolerance moves the hold rule's step a
    long way (a quick MNIST run at train accuracy 0.985-0.99 for its last 500 steps reached
    0.99 at step 181 in one copy and never in the other); the bracket asks only what the drift
    cannot explain."""
    end = float(max(archived.steps[-1], fresh.steps[-1]))

    def bracket(r: RunResult) -> tuple[float, float]:
        return m.harder(-shift).step(r), m.harder(shift).step(r)

    return max(
        outside(m.step(archived), *bracket(fresh), end),
        outside(m.step(fresh), *bracket(archived), end),
    )


def compare_whole(archived: RunResult, fresh: RunResult) -> list[tuple[Number, Number, float]]:
    """Each book number of ``archived`` beside ``fresh``'s, with how far apart they are (over
    the task's ``tolerance`` of its kind: outside it)."""
    tol = tolerance(archived.config.task.name)
    a_numbers, b_numbers = book_numbers(archived), book_numbers(fresh)
    gaps = [step_gap(m, archived, fresh, tol[FINALS[m.curve]]) for m in milestones(archived)]
    out = []
    for a, b in zip(a_numbers, b_numbers, strict=True):
        if a.kind == "step":
            out.append((a, b, gaps.pop(0)))
            continue
        x, y = a.value, b.value
        if a.name.startswith("norm at ") and math.isnan(x) != math.isnan(y):
            # A milestone one side reaches and the other not (near the end, else its step
            # fails): where the other would reach it is past its end, so read its final norm.
            x, y = (archived["norm"][-1], y) if math.isnan(x) else (x, fresh["norm"][-1])
        out.append((a, b, difference(a.kind, float(x), float(y))))
    return out
