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


def first_step_reaching(steps: np.ndarray, values: np.ndarray, threshold: float) -> float:
    """First logged step at which ``values >= threshold``; ``inf`` if never (a run that never
    generalizes has an infinite delay, not a missing one)."""
    hits = np.flatnonzero(np.asarray(values) >= threshold)
    return float(np.asarray(steps)[hits[0]]) if len(hits) else math.inf


def grokking_delay(
    steps: np.ndarray, train_acc: np.ndarray, test_acc: np.ndarray, threshold: float = 0.9
) -> float:
    """Ratio of the step test accuracy reaches ``threshold`` to the step train accuracy does:
    1 means no lag, 10 means generalization took ten times as long as memorization."""
    t_train = first_step_reaching(steps, train_acc, threshold)
    t_test = first_step_reaching(steps, test_acc, threshold)
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
    """w_c = argmin of test loss over a grid of fixed norms (paper Fig. 1-2)."""
    norms, losses = np.asarray(norms, float), np.asarray(test_losses, float)
    if norms.shape != losses.shape or norms.ndim != 1 or len(norms) < 3:
        raise ValueError("norms and test_losses must be 1-d arrays of equal length >= 3")
    order = np.argsort(norms)
    norms, losses = norms[order], losses[order]
    i = int(np.nanargmin(losses))
    return Goldilocks(float(norms[i]), float(losses[i]), 0 < i < len(norms) - 1)


def refined_minimum(norms: Sequence[float], test_losses: Sequence[float]) -> float:
    """The grid minimum of test loss against norm, refined between grid points: the vertex of
    the parabola through the minimum and its two neighbours, in log norm and log loss. A grid
    of α over two decades in 11 points is 1.58x between points, too coarse to compare how w_c
    moves across widths. At the grid's edge, or where the three points are not convex, the
    grid point itself."""
    g = goldilocks_norm(norms, test_losses)
    norms, losses = np.asarray(norms, float), np.asarray(test_losses, float)
    order = np.argsort(norms)
    x, y = np.log(norms[order]), np.log(losses[order])
    i = int(np.flatnonzero(norms[order] == g.w_c)[0])
    if not g.interior or not np.all(np.isfinite(y[i - 1 : i + 2])):
        return g.w_c
    a, b, _ = np.polyfit(x[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    if a <= 0:
        return g.w_c
    return float(np.exp(np.clip(-b / (2 * a), x[i - 1], x[i + 1])))


@dataclass(frozen=True)
class Spread:
    """A number over seeds: mean, standard deviation, min, max over the ``n_finite`` seeds where
    it exists, out of ``n`` (a run that never reached a threshold has no step to average)."""

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
    stats = finite.mean(), finite.std(), finite.min(), finite.max()
    return Spread(*(float(x) for x in stats), len(v), len(finite))
