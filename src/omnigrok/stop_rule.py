"""A run's stop rule (``RunConfig.stop_acc``, paper Sec. 3.3): when a run that has converged
ends. Part of the run's config and key, so the trainer applies it and every reader of a stored
curve finds the same stop step."""

from __future__ import annotations

import numpy as np

# A run with a stop rule (``RunConfig.stop_acc``) must hold its accuracies at least this long,
# and at least as long again as it took to get there, before it stops: a held run that
# generalizes within a few hundred steps is seen to stay there, not caught on a peak.
STOP_HOLD = 1000


def stop_step(
    steps: np.ndarray, train_acc: np.ndarray, test_acc: np.ndarray, level: float
) -> int | None:
    """The logged step at which a run with stop rule ``level`` stops, or None (not yet): the
    first logged step t with train and test accuracy >= ``level`` at every logged point from
    s to t, where s is the first logged step of that unbroken stretch and t - s >= max(
    ``STOP_HOLD``, s). NaN never counts as reached."""
    steps = np.asarray(steps)
    good = (np.asarray(train_acc, float) >= level) & (np.asarray(test_acc, float) >= level)
    start = None
    for i, ok in enumerate(good):
        if not ok:
            start = None
            continue
        start = steps[i] if start is None else start
        if steps[i] - start >= max(STOP_HOLD, start):
            return int(steps[i])
    return None
