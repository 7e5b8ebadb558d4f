"""Claim metrics: from curves to the plain numbers the book reports.

Paper Sec. 2 (LU mechanism: the Goldilocks norm w_c as the minimum of test loss over the norm)
and Sec. 3 (grokking as the lag between memorization and generalization; the constrained runs'
speedup). Every function takes arrays, returns numbers; seeds are summarised by ``spread``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# When a curve has "reached" a threshold (test accuracy 0.9, a target loss), one rule in steps,
# not logged points, for every chapter (paper Sec. 3: generalization is what a run keeps, not
# one lucky evaluation). A logged step s counts where
#
# 1. every logged value in the window [s, s + hold] is >= the threshold, hold = max(HOLD_STEPS,
#    HOLD_SHARE x s): a few evaluations can be a few steps apart on a log schedule, so the hold
#    is a span of training, and it grows with s because a later transient lasts longer;
# 2. the window holds at least PERSIST logged points (where logging is sparse, the window runs on
#    to the PERSIST-th logged point from s), and the run has a logged point at or after the
#    window's end: a run that ends inside the window has not shown that it holds;
# 3. from s to the run's end at least STAY of the logged points are >= the threshold: a later dip
#    is allowed, a return below for most of what is left is not.
#
# A crossing the run's end cuts short (1 holds up to the last logged point, 2 does not) is not
# reached: ``reaching`` reports its step as ``unconfirmed``. NaN is never at a threshold.
# At the paper's settings (log schedule's linear half 20000/125 = 160 steps apart) a crossing
# at step 4000 must hold for 200 steps and 3 evaluations, i.e. ~320 steps.
PERSIST = 3
HOLD_STEPS = 100
HOLD_SHARE = 0.05
STAY = 0.9
# The rule in words, for the criteria that use it.
HOLD_RULE = (
    f"held at every logged point for max({HOLD_STEPS} steps, {HOLD_SHARE:.0%} of the step) and "
    f"at least {PERSIST} logged points, within the run, and at {STAY:.0%} of the points to its end"
)

# Seed spreads are sample standard deviations (ddof=1) everywhere: a handful of seeds is a
# sample of what other seeds would do, not the whole population.
DDOF = 1


@dataclass(frozen=True)
class Reached:
    """Where a curve reached a threshold by the rule above: ``step`` (``inf``: never), and
    ``unconfirmed``, the step of a crossing that held to the run's last logged point but that
    the run's end cut short of the hold (NaN: none)."""

    step: float
    unconfirmed: float = math.nan

    def __str__(self) -> str:
        if np.isfinite(self.step):
            return f"{self.step:.0f}"
        if np.isfinite(self.unconfirmed):
            return f"{self.unconfirmed:.0f} at the end of the run, not confirmed"
        return "never"


def reaching(
    steps: np.ndarray, values: np.ndarray, threshold: float, persist: int = PERSIST
) -> Reached:
    """The first logged step from which ``values >= threshold`` holds by the module's rule
    (hold, at least ``persist`` logged points in it, the run outlasting it, and STAY of the rest
    of the run at the threshold), or where the run ended before a crossing could be confirmed."""
    if persist < 1:
        raise ValueError(f"persist must be >= 1, got {persist}")
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(
            f"steps and values must be 1-d arrays of equal length, got {steps.shape} and "
            f"{values.shape}"
        )
    above = values >= threshold  # NaN compares False: never reached
    n = len(steps)
    below_before = np.r_[0, np.cumsum(~above)]  # below_before[k]: points below in [0, k)
    above_after = np.cumsum(above[::-1])[::-1]  # points >= threshold from k to the end
    for i in np.flatnonzero(above):
        end = max(steps[i] + max(HOLD_STEPS, HOLD_SHARE * steps[i]), steps[min(i + persist, n) - 1])
        j = int(np.searchsorted(steps, end, side="right"))  # window: [i, j)
        if below_before[j] - below_before[i] > 0:
            continue
        if j - i < persist or steps[-1] < end:
            return Reached(math.inf, float(steps[i]))  # held to the end, which came too soon
        if above_after[i] >= STAY * (n - i):
            return Reached(float(steps[i]))
    return Reached(math.inf)


def first_step_reaching(
    steps: np.ndarray, values: np.ndarray, threshold: float, persist: int = PERSIST
) -> float:
    """``reaching(...).step``: the first logged step at which ``values >= threshold`` is
    reached and held by the module's rule; ``inf`` if never, or only at the end of the run,
    unconfirmed (a run that never generalizes has an infinite delay, not a missing one)."""
    return reaching(steps, values, threshold, persist).step


def grokking_delay(
    steps: np.ndarray,
    train_acc: np.ndarray,
    test_acc: np.ndarray,
    threshold: float = 0.9,
    persist: int = PERSIST,
) -> float:
    """Ratio of the step test accuracy reaches ``threshold`` to the step train accuracy does:
    1 means no lag, 10 means generalization took ten times as long as memorization."""
    t_train = first_step_reaching(steps, train_acc, threshold, persist)
    t_test = first_step_reaching(steps, test_acc, threshold, persist)
    if math.isinf(t_train):
        return math.nan
    return t_test / max(t_train, 1.0)


@dataclass(frozen=True)
class Goldilocks:
    """The best norm w_c of a reduced landscape and whether the curves have the LU shape."""

    w_c: float
    test_loss_at_w_c: float
    interior: bool  # the minimum is strictly inside the grid: a U, not a monotone slope


def goldilocks_norm(norms: Sequence[float], test_losses: Sequence[float]) -> Goldilocks:
    """w_c = argmin of test loss over a grid of fixed norms (paper Fig. 1-2); NaN (and not
    interior) where no loss is finite, so a criterion can say so instead of failing."""
    norms, losses = np.asarray(norms, float), np.asarray(test_losses, float)
    if norms.shape != losses.shape or norms.ndim != 1 or len(norms) < 3:
        raise ValueError("norms and test_losses must be 1-d arrays of equal length >= 3")
    order = np.argsort(norms)
    norms, losses = norms[order], losses[order]
    if not np.isfinite(losses).any():
        return Goldilocks(math.nan, math.nan, False)
    i = int(np.nanargmin(losses))
    return Goldilocks(float(norms[i]), float(losses[i]), 0 < i < len(norms) - 1)


@dataclass(frozen=True)
class RefinedMinimum:
    """The test-loss minimum over the norm, refined between grid points.

    ``low``..``high`` is half a grid cell either side of ``value`` (the resolution the grid
    supports; the seeds' spread is reported apart). ``model`` says how it was found: ``"V"``
    (two lines), ``"parabola"`` (two half-parabolas), ``"symmetric parabola"`` (three grid
    points only) or ``"grid"`` (not refined: the minimum is at the grid's edge or a value
    around it is not finite)."""

    value: float
    low: float
    high: float
    grid_value: float
    model: str

    def __str__(self) -> str:
        return f"{self.value:.3g} ({self.low:.3g} to {self.high:.3g})"


def _branches_fit(x: np.ndarray, y: np.ndarray, x0: float, power: int) -> float:
    """Least-squares error of ``y = c + a_L |x - x0|^p (x < x0) + a_R |x - x0|^p (x >= x0)``,
    inf where a branch does not rise away from the vertex (a_L or a_R <= 0)."""
    d = x - x0
    basis = np.stack(
        [np.ones_like(x), np.where(d < 0, -d, 0) ** power, np.where(d >= 0, d, 0) ** power], 1
    )
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    if coef[1] <= 0 or coef[2] <= 0:
        return math.inf
    return float(((basis @ coef - y) ** 2).sum())


def _best_vertex(x: np.ndarray, y: np.ndarray, lo: float, hi: float, power: int):
    """The vertex x0 in [lo, hi] with the least error, by a grid search zoomed in 6 times
    (each round 1/100 of the last bracket: far below any grid's resolution)."""
    best_err, best_x0 = math.inf, math.nan
    for _ in range(6):
        candidates = np.linspace(lo, hi, 201)
        errors = [_branches_fit(x, y, x0, power) for x0 in candidates]
        k = int(np.argmin(errors))
        if not np.isfinite(errors[k]):
            break
        best_err, best_x0 = errors[k], float(candidates[k])
        step = (hi - lo) / 200
        lo, hi = max(lo, best_x0 - step), min(hi, best_x0 + step)
    return best_err, best_x0


def refine_minimum(norms: Sequence[float], test_losses: Sequence[float]) -> RefinedMinimum:
    """The grid minimum of test loss against norm, refined between grid points.

    A grid of α over two decades in 11 points is 1.58x between points, too coarse to compare
    how w_c moves across widths or to hold a run at it. A parabola through the minimum and its
    two neighbours assumes the U is symmetric: an asymmetric one (steep on one side, shallow
    on the other, as the MNIST and teacher-student landscapes are) pulls its vertex towards
    the shallow side (true minimum 1.0 read as 0.82). Instead, on the five grid points around
    the minimum, in log norm and log loss, fit two branches that meet at a free vertex, each
    with its own slope: two lines (a V) or two half-parabolas, whichever fits better. Either
    model is exact for its own shape, symmetric or not. With fewer than five points around the
    minimum, half-parabolas alone (four points) or the symmetric parabola (three)."""
    g = goldilocks_norm(norms, test_losses)
    if not np.isfinite(g.w_c):
        return RefinedMinimum(math.nan, math.nan, math.nan, math.nan, "grid")
    norms, losses = np.asarray(norms, float), np.asarray(test_losses, float)
    order = np.argsort(norms)
    norms, losses = norms[order], losses[order]
    x = np.log(norms)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(losses)
    i = int(np.flatnonzero(norms == g.w_c)[0])

    def result(value: float, model: str) -> RefinedMinimum:
        # Half the local grid cell either side: the resolution the grid itself supports.
        j = min(max(i, 1), len(x) - 1)
        half = (x[j] - x[j - 1]) / 2
        return RefinedMinimum(value, value * math.exp(-half), value * math.exp(half), g.w_c, model)

    lo, hi = max(0, i - 2), min(len(x), i + 3)
    if not g.interior or not np.all(np.isfinite(y[lo:hi])):
        return result(g.w_c, "grid")
    xs, ys = x[lo:hi], y[lo:hi]
    if len(xs) < 4:
        a, b, _ = np.polyfit(xs, ys, 2)
        if a <= 0:
            return result(g.w_c, "grid")
        vertex = float(np.clip(-b / (2 * a), x[i - 1], x[i + 1]))
        return result(math.exp(vertex), "symmetric parabola")
    powers = {"V": 1, "parabola": 2} if len(xs) >= 5 else {"parabola": 2}
    fits = {name: _best_vertex(xs, ys, x[i - 1], x[i + 1], p) for name, p in powers.items()}
    name, (err, vertex) = min(fits.items(), key=lambda kv: kv[1][0])
    if not np.isfinite(err):
        return result(g.w_c, "grid")
    return result(math.exp(vertex), name)


def refined_minimum(norms: Sequence[float], test_losses: Sequence[float]) -> float:
    """``refine_minimum``'s value alone: the grid point where it cannot refine."""
    return refine_minimum(norms, test_losses).value


@dataclass(frozen=True)
class Edge:
    """A zone edge: ``value``, or only a lower bound on it (``is_bound``: the last grid point
    still qualifies, so the edge lies at or beyond it), or NaN with ``note`` saying why."""

    value: float
    is_bound: bool = False
    note: str = ""

    @property
    def measured(self) -> bool:
        """A finite value inside the grid: something a criterion can compare with."""
        return bool(np.isfinite(self.value)) and not self.is_bound

    def __str__(self) -> str:
        if not np.isfinite(self.value):
            return f"none ({self.note})" if self.note else "none"
        return f"≥ {self.value:.3g}" if self.is_bound else f"{self.value:.3g}"


def upper_edge(
    norms: Sequence[float], values: Sequence[float], threshold: float, lower: bool = False
) -> Edge:
    """The largest norm at which ``values >= threshold`` (``lower``: ``<=``, for a loss),
    interpolated in log norm between the
    last grid point that qualifies and the next (paper Sec. 3.1: the Goldilocks zone's upper
    edge, where the large-init run must arrive to generalize). If the largest grid point still
    qualifies the edge is only a bound (``≥``); a non-finite value anywhere gives NaN (a
    diverged run could hide where the zone ends)."""
    norms, values = np.asarray(norms, float), np.asarray(values, float)
    reached = f"{'≤' if lower else '≥'} {threshold:.3g}"
    if lower:
        values, threshold = -values, -threshold
    order = np.argsort(norms)
    norms, values = norms[order], values[order]
    bad = ~np.isfinite(values) | ~np.isfinite(norms)
    if bad.any():
        return Edge(math.nan, note=f"not finite at w = {np.round(norms[bad], 3).tolist()}")
    good = np.flatnonzero(values >= threshold)
    if len(good) == 0:
        return Edge(math.nan, note=f"no norm reaches {reached}")
    i = good[-1]
    if i == len(norms) - 1:
        return Edge(float(norms[i]), is_bound=True)
    # Between the last good grid point and the next one, where the value falls below.
    frac = (values[i] - threshold) / (values[i] - values[i + 1])
    return Edge(float(np.exp(np.log(norms[i]) + frac * (np.log(norms[i + 1]) - np.log(norms[i])))))


@dataclass(frozen=True)
class Spread:
    """A number over seeds: mean, sample standard deviation (ddof=1; NaN for one seed), min, max
    over the ``n_finite`` seeds where it exists, out of ``n`` (a run that never reached a
    threshold has no step to average)."""

    mean: float
    std: float
    min: float
    max: float
    n: int
    n_finite: int

    def __str__(self) -> str:
        if self.n_finite == 0:
            return f"never (0 of {self.n} seeds)"
        missing = f"; {self.n - self.n_finite} of {self.n} never" if self.n_finite < self.n else ""
        if self.n_finite == 1:
            return f"{self.mean:.3g} (n=1, no spread{missing})"
        return (
            f"{self.mean:.3g} ± {self.std:.2g} (n={self.n_finite}, range {self.min:.3g} to "
            f"{self.max:.3g}{missing})"
        )


def spread(values: Sequence[float]) -> Spread:
    """Summary over seeds; non-finite values (runs that never got there) are left out of the
    statistics but counted in ``n``, so they are never hidden."""
    v = np.asarray(values, float)
    finite = v[np.isfinite(v)]
    if len(finite) == 0:
        return Spread(math.nan, math.nan, math.nan, math.nan, len(v), 0)
    std = finite.std(ddof=DDOF) if len(finite) > DDOF else math.nan
    stats = finite.mean(), std, finite.min(), finite.max()
    return Spread(*(float(x) for x in stats), len(v), len(finite))
