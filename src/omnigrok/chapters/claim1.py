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
from omnigrok.report.metrics import (
    Edge,
    Goldilocks,
    RefinedMinimum,
    goldilocks_norm,
    refine_minimum,
    spread,
    upper_edge,
)
from omnigrok.report.plots import PALETTE, band, log_scale_if_positive, subplots, themed, title
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult
from omnigrok.tasks import mnist_run, teacher_student_run

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
        either side (``omnigrok.report.metrics.refine_minimum``)."""
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


# The LU shape, in numbers (paper Sec. 2, Fig. 1-2), judged over the whole grid, per seed and
# on the seeds together: a majority of seeds must have the shape AND the seeds together must (two
# seeds each monotone, one up and one down, average into a U that neither has). Together: the
# seed mean for test loss; the seed median for train loss, whose values span decades (one seed
# that has not converged at one norm would dominate a mean). Both need w_c, the seed-mean
# test-loss minimum, strictly inside the grid: at its edge there is no "from w_c up" or no
# rise on one side to judge, and the verdict is "not tested" (``interior_precondition``).
#
# L: small norms underfit, every norm from w_c up fits. The smallest norm's train loss must be
# more than L_DROP x every value from w_c up; from the smallest norm to w_c the loss falls
# (NOISE); from w_c up no value is a rise: at least L_FLAT x the level at w_c AND above L_FITTED.
# L_FITTED is absolute because "fitted" has no scale of its own: a fitted train loss sits anywhere
# from 1e-14 to 1e-5 (the stored paper-profile teacher-student landscape spans all of that from
# w_c up, its seeds' largest values 2e-6 to 5e-5 but for one unconverged seed's 4e-4 and 4e-3),
# so a 10x rise among such values is noise. The losses here are per-output mean squared errors or
# cross-entropies whose underfit level is 1e-2 to 1e3 (MNIST 0.09, teacher-student 0.024, QM9
# 1.4e3): 1e-4 is a fitted training set for each, and any rise above it (MNIST's from 8e-5 at w_c
# to 0.064 at w = 117; a rise from 1e-9 to 1e-2) counts.
L_DROP = 10.0
L_FLAT = 10.0
L_FITTED = 1e-4
# U: the minimum with at least U_POINTS grid points on each side (a monotone curve whose last
# point ticks up has one point on one side), rising strictly over those nearest U_POINTS,
# falling from the left end to it and rising from it to the right end, each end at least
# U_RISE x the minimum. "Falling" allows NOISE: no value more than 5% above the lowest before it
# (neighbouring stored MNIST losses near the minimum differ by 1-3%); a W's second dip, a rise
# of more, fails.
U_POINTS = 2
U_RISE = 1.5
NOISE = 0.05


def _not_finite(land: Landscape, metric: str) -> str:
    """Where ``metric`` (any seed) or the norm is not finite, in words; "" where all is."""
    values = getattr(land, metric)
    bad = ~np.isfinite(values).all(0) | ~np.isfinite(land.norm).all(0)
    if not bad.any():
        return ""
    where = np.round(land.alphas[bad], 3).tolist()
    return f"{metric.replace('_', ' ')} not finite (a diverged run?) at α = {where}: cannot judge"


def _w_c_index(land: Landscape) -> int | None:
    """The grid index of w_c (the seed-mean test-loss minimum) if it is strictly inside the grid
    with U_POINTS on each side; None otherwise (an edge, no finite loss, a grid too short)."""
    test = land.mean_test_loss()
    if len(test) < 2 * U_POINTS + 1 or not np.isfinite(test).any():
        return None
    i = int(np.nanargmin(test))
    return i if U_POINTS <= i < len(test) - U_POINTS else None


def interior_precondition(land: Landscape) -> dict[str, tuple[bool, str]]:
    """The L and U checks' precondition: w_c strictly inside the grid, with at least U_POINTS
    grid points on each side (at its edge nothing rises on one side and "from w_c up" is a
    point or none)."""
    test, norm = land.mean_test_loss(), land.norm.mean(0)
    ok = _w_c_index(land) is not None
    if len(test) < 2 * U_POINTS + 1:
        what = f"a grid of {len(test)} norms (>= {2 * U_POINTS + 1} required)"
    elif not np.isfinite(test).any():
        what = "no finite seed-mean test loss at any norm"
    else:
        i = int(np.nanargmin(test))
        what = (
            f"seed-mean test loss lowest at w = {norm[i]:.3g}, grid point {i + 1} of {len(test)} "
            f"(at least {U_POINTS} on each side required)"
        )
    return {f"{label_of(land.task)}: w_c is an interior minimum of test loss": (ok, what)}


def w_c_precondition(
    land: Landscape | None, given: float | None = None
) -> dict[str, tuple[bool, str]]:
    """For a claim that uses claim 1's w_c or zone edge (claims 2 and 3, the rivals): claim 1's
    w_c is an interior minimum of test loss. On a monotone landscape there is no Goldilocks
    norm to walk into or hold a run at. ``land`` None: w_c was ``given`` by hand, not read off
    claim 1 (nothing to check; None and None fails)."""
    name = "claim 1's w_c is an interior minimum of test loss"
    if land is None:
        what = "claim 1's landscape is not known" if given is None else f"w_c given: {given:.3g}"
        return {name: (given is not None, what)}
    ((ok, what),) = interior_precondition(land).values()
    return {name: (ok, f"{label_of(land.task)}: {what}")}


def _first_rise(values: np.ndarray, floor: float = 0.0) -> int:
    """Index of the first value more than NOISE above the lowest before it and above ``floor``
    (values at or under ``floor`` are all equally fitted); -1 where ``values`` falls throughout."""
    low = np.minimum.accumulate(values)
    bad = (values[1:] > (1 + NOISE) * low[:-1]) & (values[1:] > floor)
    k = np.flatnonzero(bad)
    return int(k[0]) + 1 if len(k) else -1


def _l_shape(train: np.ndarray, i: int) -> tuple[bool, str]:
    """Whether one train-loss curve over the grid is an L with its corner at index ``i`` (w_c)."""
    top, worst, level = train[0], train[i:].max(), train[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        drop, rise = top / worst, worst / level
    rises = bool(rise >= L_FLAT and worst > L_FITTED)
    k = _first_rise(train[: i + 1], L_FITTED)
    ok = bool(drop > L_DROP) and not rises and k < 0
    falls = "falls to w_c" if k < 0 else f"rises at grid point {k + 1} before w_c"
    return ok, (
        f"{top:.3g} at the smallest norm, {falls}; from w_c up at most {worst:.3g}, a drop of "
        f"{drop:.3g}x and {rise:.3g}x the level at w_c {level:.3g}"
    )


def _u_shape(test: np.ndarray) -> tuple[bool, str]:
    """Whether one test-loss curve over the grid is a U: its minimum with U_POINTS on each side,
    falling to it from the left end, rising from it to the right end (NOISE), ends U_RISE x it."""
    i = int(np.argmin(test))
    if not U_POINTS <= i < len(test) - U_POINTS:
        return False, f"minimum at grid point {i + 1} of {len(test)}: not inside the grid"
    left, right = _first_rise(test[: i + 1]), _first_rise(test[i:][::-1])
    # Next to the minimum the loss must rise, strictly, over U_POINTS on each side: a flat
    # bottom that jumps only at the far end is a step, not a U.
    near = test[i - U_POINTS : i + U_POINTS + 1]
    steep = bool(np.all(np.diff(near[: U_POINTS + 1]) < 0) and np.all(np.diff(near[U_POINTS:]) > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ends = min(test[0], test[-1]) / test[i]
    ok = left < 0 and right < 0 and steep and ends >= U_RISE
    down = "falls to it" if left < 0 else f"rises at grid point {left + 1} on the way down"
    up = "rises after it" if right < 0 else f"falls after grid point {len(test) - right}"
    rise = "" if steep else f", not rising over the nearest {U_POINTS} on each side"
    return bool(ok), (
        f"minimum at grid point {i + 1}, {down}, {up}{rise}, ends {ends:.3g}x the minimum"
    )


def _majority(
    per_seed: list[tuple[bool, str]], together: tuple[bool, str], name: str
) -> tuple[bool, str]:
    """A shape that a majority of seeds has AND the seeds together have; the evidence line
    (seeds counted in the setup's order: the landscape does not keep their numbers)."""
    n_ok = sum(ok for ok, _ in per_seed)
    ok = together[0] and n_ok > len(per_seed) / 2
    n = len(per_seed)
    failed = [f"seed {k + 1} of {n}: {what}" for k, (good, what) in enumerate(per_seed) if not good]
    return bool(ok), (
        f"{name}: {together[1]}; {n_ok} of {len(per_seed)} seeds have the shape (a majority "
        "required)" + (f" (not: {'; '.join(failed[:2])})" if failed else "")
    )


def l_check(land: Landscape) -> tuple[bool, str]:
    """L-shaped, over the whole grid, on the seed median and on a majority of the seeds
    (``_l_shape``: a drop > L_DROP x, falling to w_c, no rise from w_c up of L_FLAT x the
    level at w_c above L_FITTED). Non-finite anywhere, or w_c at the grid's edge: fails."""
    why = _not_finite(land, "train_loss")
    i = _w_c_index(land)
    if why or i is None:
        return False, why or "w_c is not inside the grid: not tested"
    seeds = [_l_shape(t, i) for t in land.train_loss]
    return _majority(seeds, _l_shape(np.median(land.train_loss, 0), i), "seed median")


def u_check(land: Landscape) -> tuple[bool, str]:
    """U-shaped, over the whole grid, on the seed mean and on a majority of the seeds
    (``_u_shape``). Non-finite anywhere: fails (``min`` and ``nanmean`` would silently skip a
    diverged run)."""
    why = _not_finite(land, "test_loss")
    if why:
        return False, why
    seeds = [_u_shape(t) for t in land.test_loss]
    return _majority(seeds, _u_shape(land.test_loss.mean(0)), "seed mean")


def shape_checks(land: Landscape) -> dict[str, tuple[bool, str]]:
    """The L and U checks of one task's landscape (``l_check``, ``u_check``); judge them with
    ``interior_precondition``."""
    label = label_of(land.task)
    return {
        f"{label}: train loss L-shaped": l_check(land),
        f"{label}: test loss U-shaped": u_check(land),
    }


CRITERION = (
    "with the norm held fixed, on both tasks, given w_c (the seed-mean test-loss minimum) "
    f"inside the grid with at least {U_POINTS} grid points on each side: final train loss is "
    f"L-shaped (at the smallest norm more than {L_DROP:g}x every value from w_c up, falling to "
    f"w_c, and from w_c up no value both {L_FLAT:g}x the level at w_c and above {L_FITTED:g}) "
    f"and test loss U-shaped (rising strictly over the nearest {U_POINTS} grid points on each "
    "side of the minimum, falling from the left end to it and rising from it to "
    f"the right end, a wiggle of {NOISE:.0%} allowed, both ends at least {U_RISE:g}x the "
    "minimum), each over the whole grid on the seeds together (train: median; test: mean) and "
    "on a majority of the seeds; a loss that is not finite anywhere fails the check"
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
    checks, preconditions = {}, {}
    for land in lands.values():
        checks.update(shape_checks(land))
        preconditions.update(interior_precondition(land))
    return judge("1. Goldilocks zone", CRITERION, checks, preconditions)


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
