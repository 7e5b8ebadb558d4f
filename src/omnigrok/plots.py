"""Figures for the book: curves over steps with one line per seed, reduced landscapes.

Every figure states its profile and step axis in its title, shows seeds (a line each, or a band
for min-max over seeds) and uses the Okabe-Ito palette, which stays distinct under the common
colour-vision deficiencies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omnigrok.store import RunResult

# Okabe & Ito (2008), "Color Universal Design": distinguishable by colour-blind readers.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

METRIC_LABELS = {
    "train_acc": "train accuracy",
    "test_acc": "test accuracy",
    "train_loss": "train loss",
    "test_loss": "test loss",
    "norm": "weight norm w",
}


def set_style() -> None:
    """Matplotlib defaults for the book: readable sizes, the palette as colour cycle."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "font.size": 10,
        }
    )


def set_step_axis(ax, axis: str) -> None:
    """``log`` or ``linear`` step axis, labelled as such. Step 0 cannot sit on a log axis, so
    a log plot starts at step 1 (the curves' first point after the init)."""
    if axis not in ("log", "linear"):
        raise ValueError(f"axis must be 'log' or 'linear', got {axis!r}")
    ax.set_xscale(axis)
    ax.set_xlabel(f"optimizer step ({axis} axis)")


def plot_seeds(
    ax,
    results: Sequence[RunResult],
    metric: str,
    axis: str = "log",
    color: str = PALETTE[0],
    label: str | None = None,
    **line_kw,
) -> None:
    """One line per run (seed) of ``metric`` against steps; diverged stretches are gaps."""
    for i, r in enumerate(results):
        steps, values = r.steps, r[metric]
        if axis == "log":
            steps, values = steps[steps > 0], values[steps > 0]
        ax.plot(
            steps,
            values,
            color=color,
            lw=1.1,
            alpha=0.85,
            label=label if i == 0 else None,
            **line_kw,
        )
    set_step_axis(ax, axis)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))


def band(
    ax, x: np.ndarray, per_seed: np.ndarray, color: str, label: str, marker: str = "o"
) -> None:
    """Mean over seeds (line) and min-max over seeds (band); ``per_seed``: ``[seeds, len(x)]``."""
    mean = np.nanmean(per_seed, axis=0)
    ax.fill_between(
        x, np.nanmin(per_seed, axis=0), np.nanmax(per_seed, axis=0), color=color, alpha=0.25, lw=0
    )
    ax.plot(
        x,
        mean,
        color=color,
        marker=marker,
        ms=3,
        lw=1.4,
        label=f"{label} (mean, band: min-max over seeds)",
    )


def title(ax, text: str, profile: str, n_seeds: int) -> None:
    ax.set_title(f"{text}\nprofile '{profile}', {n_seeds} seeds", fontsize=10)
