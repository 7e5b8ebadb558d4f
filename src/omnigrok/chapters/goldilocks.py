"""Claim 1, the Goldilocks zone (paper Sec. 2, Fig. 1-2: the LU mechanism).

Hold the weight norm fixed at w = α·w0 by projecting after every step (weight decay 0), for α on
a log grid from 0.1 to 10, and train to the end. The paper's claim: final training loss against
w is L-shaped (small norms underfit, every large norm fits), test loss U-shaped, so there is a
best norm w_c for generalization. Measured on MNIST (N = 1000) and teacher-student.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles, tasks
from omnigrok.chapters import base
from omnigrok.chapters.base import Chapter, fetch, final
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.metrics import (
    Edge,
    Goldilocks,
    RefinedMinimum,
    goldilocks_norm,
    refine_minimum,
    spread,
    upper_edge,
)
from omnigrok.plots import PALETTE, band, log_scale_if_positive, subplots, themed, title
from omnigrok.store import RunResult
from omnigrok.tasks import mnist_run, teacher_student_run
from omnigrok.verdict import Verdict, judge

TASKS = ("mnist", "teacher_student")


@dataclass(frozen=True)
class Setup(base.Setup):
    """The reduced-landscape runs of a profile: norm held at α·w0, weight decay 0, α on the
    profile's log grid from 0.1 to 10 (``profiles.LANDSCAPE``)."""

    chapter = "claim1"
    alphas: tuple[float, ...] = field(init=False)
    bases: dict = field(init=False)  # task -> base RunConfig (α and seed vary)

    def __post_init__(self) -> None:
        super().__post_init__()
        p = profiles.LANDSCAPE[self.profile]
        alphas = tuple(float(a) for a in np.round(np.geomspace(0.1, 10, p["n_alpha"]), 4))
        held = dict(constraint="init", weight_decay=0.0, n_log=p["n_log"])
        bases = {
            "mnist": mnist_run(
                task=TaskSpec("mnist", n_train=1000, n_test=p["n_test"]),
                steps=p["mnist_steps"],
                batch_size=p["mnist_batch"],
                **held,
            ),
            "teacher_student": teacher_student_run(steps=p["teacher_steps"], **held),
        }
        self._set("alphas", alphas)
        self._set("bases", bases)

    def task_configs(self, task: str, base: RunConfig | None = None) -> list[RunConfig]:
        """Runs of ``task`` (on ``base``, default the task's), α-major: ``[α0 seeds..., α1
        seeds..., ...]``."""
        base = base or self.bases[task]
        return [base.replace(init_scale=a, seed=s) for a in self.alphas for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        return [c for task in TASKS for c in self.task_configs(task)]


setup = Setup


@dataclass(frozen=True)
class Landscape:
    """Final losses against the held norm, ``[seeds, alphas]`` each."""

    task: str
    alphas: np.ndarray
    norm: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray

    def mean_test_loss(self) -> np.ndarray:
        """Seed-mean test loss per norm, over the seeds where it is finite (NaN where none is:
        the shape checks fail on any non-finite loss; w_c is still reported)."""
        finite = np.isfinite(self.test_loss)
        total = np.where(finite, self.test_loss, 0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(finite.any(0), total / finite.sum(0), np.nan)

    def goldilocks(self) -> Goldilocks:
        """w_c of the seed-mean test loss, over the seed-mean norm (a grid point)."""
        return goldilocks_norm(self.norm.mean(0), self.mean_test_loss())

    def refined(self) -> RefinedMinimum:
        """w_c of the seed-mean test loss refined between grid points, with half a grid cell
        either side (``omnigrok.metrics.refine_minimum``)."""
        return refine_minimum(self.norm.mean(0), self.mean_test_loss())

    def zone_edge(self, accuracy: float) -> Edge:
        """The largest held norm at which the seed-mean test accuracy still reaches
        ``accuracy`` (interpolated in log norm): the upper edge of the Goldilocks zone at that
        accuracy. Only a bound (shown "≥") where the grid's largest norm still reaches it; NaN
        where no norm does, or where a run's accuracy is not finite (a diverged run could hide
        the edge)."""
        return upper_edge(self.norm.mean(0), self.test_acc.mean(0), accuracy)

    def goldilocks_per_seed(self) -> list[Goldilocks]:
        return [goldilocks_norm(n, t) for n, t in zip(self.norm, self.test_loss, strict=True)]

    def refined_per_seed(self) -> list[RefinedMinimum]:
        return [refine_minimum(n, t) for n, t in zip(self.norm, self.test_loss, strict=True)]


def landscape(s: Setup, task: str, results: list[RunResult]) -> Landscape:
    """``task``'s runs, α-major over ``s``'s grid and seeds (``Setup.task_configs``), as a
    landscape. ``s``: any setup with ``alphas`` and ``seeds`` (the IMDb chapter's too)."""
    n_a, n_s = len(s.alphas), len(s.seeds)
    grids = {
        m: final(results, m).reshape(n_a, n_s).T
        for m in ("norm", "train_loss", "test_loss", "test_acc")
    }
    return Landscape(task, np.array(s.alphas), **grids)


def landscapes(s: Setup, found: dict[RunConfig, RunResult]) -> dict[str, Landscape]:
    """Both tasks' landscapes from results found by their configs."""
    return {t: landscape(s, t, [found[c] for c in s.task_configs(t)]) for t in TASKS}


def run(s: Setup, progress: bool = True) -> dict[str, Landscape]:
    """Train (or load) both tasks' grids; return their landscapes."""
    return landscapes(s, fetch(s.configs(), s.device, progress))


# The LU shape, in numbers (paper Sec. 2, Fig. 1-2). L: small norms underfit, every norm from
# w_c up fits. "Fits" cannot mean "equal": a fitted train loss sits anywhere from 1e-14 to 1e-5
# (the paper-profile teacher-student landscape spans all of that at α >= 2.5), so losses below
# L_FLOOR of the smallest norm's loss count as fitted, and "flat" allows L_FLAT x on top of that.
# A V (low at w_c, back up to the underfit level at the largest norms: the quick MNIST landscape
# at 2000 steps, 1e-5 at w≈30 and 1e-1 at w≈117) fails both parts.
L_DROP = 10.0  # smallest norm's train loss >= L_DROP x the largest from w_c up
L_FLAT = 10.0  # no norm from w_c up above L_FLAT x the reference level
L_FLOOR = 1e-3  # reference level: train loss at w_c, or this share of the smallest norm's
# U: a minimum with at least U_POINTS grid points on each side, rising away from it over the
# nearest U_POINTS on each side, and both ends of the grid U_RISE x above it. A monotone curve
# whose last point ticks up has one point on one side and fails.
U_POINTS = 2
U_RISE = 1.5


def _not_finite(land: Landscape, metric: str) -> str:
    """Where ``metric`` (any seed) or the norm is not finite, in words; "" where all is."""
    values = getattr(land, metric)
    bad = ~np.isfinite(values).all(0) | ~np.isfinite(land.norm).all(0)
    if not bad.any():
        return ""
    where = np.round(land.alphas[bad], 3).tolist()
    return f"{metric.replace('_', ' ')} not finite (a diverged run?) at α = {where}: cannot judge"


def l_check(land: Landscape) -> tuple[bool, str]:
    """L-shaped: seed-median train loss at the smallest norm >= L_DROP x its largest value
    from w_c up, and nothing from w_c up above L_FLAT x max(loss at w_c, L_FLOOR x the smallest
    norm's). Seed medians: one seed that has not converged at one norm would dominate a mean of
    values that span decades. Non-finite anywhere: fails."""
    why = _not_finite(land, "train_loss")
    if why:
        return False, why
    norm, train = land.norm.mean(0), np.median(land.train_loss, 0)
    i = int(np.argmin(np.abs(norm - land.goldilocks().w_c)))
    above = train[i:]
    top, worst = train[0], above.max()
    reference = max(train[i], L_FLOOR * top)
    drop, rise = top / worst, worst / reference
    ok = drop >= L_DROP and rise <= L_FLAT
    worst_w = norm[i + int(np.argmax(above))]
    return bool(ok), (
        f"train loss {top:.3g} at the smallest norm w={norm[0]:.3g}; from w_c={norm[i]:.3g} up "
        f"at most {worst:.3g} (at w={worst_w:.3g}): a drop of {drop:.3g}x (>= {L_DROP:g}x "
        f"required) and {rise:.3g}x the level at w_c, {reference:.3g} (<= {L_FLAT:g}x "
        "required: flat)"
    )


def u_check(land: Landscape) -> tuple[bool, str]:
    """U-shaped: the seed-mean test-loss minimum has >= U_POINTS grid points on each side, the
    loss rises away from it over the nearest U_POINTS on each side, and both ends of the grid
    are >= U_RISE x the minimum. Non-finite anywhere: fails (``min`` and ``nanmean`` would
    silently skip a diverged run)."""
    why = _not_finite(land, "test_loss")
    if why:
        return False, why
    norm, test = land.norm.mean(0), land.test_loss.mean(0)
    i = int(np.argmin(test))
    left, right = test[: i + 1][::-1], test[i:]  # each side, outward from the minimum
    sides = {"below": left, "above": right}
    enough = {k: len(v) - 1 >= U_POINTS for k, v in sides.items()}
    rising = {k: bool(np.all(np.diff(v[: U_POINTS + 1]) > 0)) for k, v in sides.items()}
    ends = min(test[0], test[-1]) / test[i]
    ok = all(enough.values()) and all(rising.values()) and ends >= U_RISE
    return bool(ok), (
        f"minimum at w_c={norm[i]:.3g} with {len(left) - 1} grid points below and "
        f"{len(right) - 1} above (>= {U_POINTS} each required), rising over the nearest "
        f"{U_POINTS}: below {'yes' if rising['below'] else 'no'}, above "
        f"{'yes' if rising['above'] else 'no'}; ends {ends:.3g}x above it (>= {U_RISE:g}x "
        "required)"
    )


def shape_checks(land: Landscape) -> dict[str, tuple[bool, str]]:
    """The L and U checks of one task's landscape (``l_check``, ``u_check``)."""
    label = label_of(land.task)
    return {
        f"{label}: train loss L-shaped": l_check(land),
        f"{label}: test loss U-shaped": u_check(land),
    }


CRITERION = (
    "with the norm held fixed, on both tasks: final train loss is L-shaped (at the smallest norm "
    f"at least {L_DROP:g}x its largest value from w_c up, and flat from w_c up: no norm above "
    f"{L_FLAT:g}x the loss at w_c, where losses under {L_FLOOR:g} of the smallest norm's count "
    f"as fitted; seed medians) and test loss U-shaped (at least {U_POINTS} grid points on each "
    f"side of its minimum w_c, rising away from it over the nearest {U_POINTS} on each side, "
    f"both ends at least {U_RISE:g}x the minimum; seed means); a loss that is not finite "
    "anywhere fails the check"
)


def numbers(lands: dict[str, Landscape]) -> dict[str, str]:
    """Headline numbers for the prose: w_c per task (grid point, and refined between grid points
    with half a grid cell either side) with its spread over seeds (ddof=1)."""
    out = {}
    for task, land in lands.items():
        g = land.goldilocks()
        per_seed = spread([x.w_c for x in land.goldilocks_per_seed()])
        out[f"{task}_w_c"] = f"{g.w_c:.3g}"
        out[f"{task}_w_c_seeds"] = str(per_seed)
        out[f"{task}_alpha_c"] = f"{land.alphas[np.argmin(np.abs(land.norm.mean(0) - g.w_c))]:.3g}"
        out[f"{task}_w_c_refined"] = str(land.refined())
        out[f"{task}_w_c_refined_seeds"] = str(spread([x.value for x in land.refined_per_seed()]))
    return out


def verdict(lands: dict[str, Landscape]) -> Verdict:
    checks = {}
    for land in lands.values():
        checks.update(shape_checks(land))
    return judge("1. Goldilocks zone", CRITERION, checks)


def label_of(task: str) -> str:
    """The task's label in the paper's setting (MNIST: N = 1000)."""
    return tasks.get(task).label(tasks.preset(task).task)


def draw_losses(
    ax, land: Landscape, w_c: float, w_c_label: str, ylabel: str = "final loss"
) -> None:
    """A landscape on ``ax``: final train and test loss against the held norm (mean line and
    min-max band over seeds, log-log) and w_c dashed, labelled ``w_c_label``. Every page that
    shows a reduced landscape draws it with this."""
    x = land.norm.mean(0)
    band(ax, x, land.train_loss, PALETTE[0], "train loss")
    band(ax, x, land.test_loss, PALETTE[1], "test loss", marker="s")
    ax.axvline(w_c, color=PALETTE[3], ls="--", lw=1, label=w_c_label)
    ax.set(xlabel="weight norm w (held fixed; log axis)", ylabel=f"{ylabel} (log)")
    log_scale_if_positive(ax, "x")
    log_scale_if_positive(ax, "y")


@themed
def figure(lands: dict[str, Landscape], profile: str):
    """Train and test loss against the held norm (log-log), one panel per task, a row each."""
    fig, axes = subplots(len(lands), 1, row_height=3.1, squeeze=False)
    for ax, (task, land) in zip(axes[:, 0], lands.items(), strict=True):
        w_c = land.goldilocks().w_c
        draw_losses(ax, land, w_c, f"w_c = {w_c:.3g}")
        title(ax, f"{label_of(task)}: reduced landscape", profile, land.norm.shape[0])
        ax.legend()
    return fig


def headline(lands: dict[str, Landscape]) -> str:
    g = numbers(lands)
    return f"w_c MNIST {g['mnist_w_c_seeds']}; teacher-student {g['teacher_student_w_c_seeds']}"


CHAPTER = Chapter(
    "claim1",
    "Claim 1: the Goldilocks zone",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim1",),
    claim="Goldilocks zone: train loss L, test loss U in the held norm",
    headline=headline,
)
