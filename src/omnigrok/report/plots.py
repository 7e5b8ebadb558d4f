"""Figures for the book: curves over steps with one line per seed, reduced landscapes.

Every figure states its profile, seeds and step axis in its titles, shows seeds (a line each,
or a band for min-max over seeds, both drawn by seaborn from long-form data) and is drawn at
the book's column width (``COLUMN_WIDTH``) with fonts that stay readable there: one or two
panels per row, never four. The style is a seaborn theme applied in a context
(``themed``), never as global state, with the Okabe-Ito palette, which stays distinct under
the common colour-vision deficiencies.

matplotlib, seaborn and pandas come with the ``book`` extra; they are imported when a figure is
drawn, so training and the archive need none of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from omnigrok.store import RunResult

# Okabe & Ito (2008), "Color Universal Design": distinguishable by colour-blind readers.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

# The book's text column is about 700 CSS px; at DPI a figure this wide is shown at about its
# own size, so a 10 pt label is about 14 px on the page (checked in the chapter screenshots).
COLUMN_WIDTH = 6.6  # inches
DPI = 110

METRIC_LABELS = {
    "train_acc": "train accuracy",
    "test_acc": "test accuracy",
    "test_acc_novel": "test accuracy, novel pairs",
    "train_loss": "train loss",
    "test_loss": "test loss",
    "norm": "weight norm w",
}

F = TypeVar("F", bound=Callable[..., Any])


def theme() -> Any:
    """A context with the book's seaborn theme: white grid, readable sizes, the palette."""
    import matplotlib as mpl
    import seaborn as sns

    rc = {
        "figure.dpi": DPI,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "grid.alpha": 0.35,
        "legend.frameon": False,
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 8.5,
        "figure.titlesize": 10.5,
        "figure.constrained_layout.use": True,
    }
    style = sns.axes_style("whitegrid")
    return mpl.rc_context({**style, **rc, "axes.prop_cycle": mpl.cycler(color=PALETTE)})


def themed(draw: F) -> F:
    """Draw the decorated figure function inside ``theme()``."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with theme():
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def subplots(nrows: int = 1, ncols: int = 1, row_height: float = 2.9, **kw: Any):
    """``plt.subplots`` at the column width, ``row_height`` inches per row of panels."""
    import matplotlib.pyplot as plt

    if ncols > 2:
        raise ValueError(f"ncols must be at most 2 (readable at the column width), got {ncols}")
    return plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH, row_height * nrows), **kw)


def set_step_axis(ax, axis: str) -> None:
    """``log`` or ``linear`` step axis, labelled as such. Step 0 cannot sit on a log axis, so
    a log plot starts at step 1 (the curves' first point after the init)."""
    if axis not in ("log", "linear"):
        raise ValueError(f"axis must be 'log' or 'linear', got {axis!r}")
    ax.set_xscale(axis)
    ax.set_xlabel(f"optimizer step ({axis} axis)")


def _long(results: Sequence[RunResult], metric: str, axis: str):
    """One row per run and logged step: step, value, seed (the data seaborn draws from).
    Values after a divergence are NaN; a log axis leaves out step 0."""
    import pandas as pd

    frames = []
    for i, r in enumerate(results):
        keep = r.steps > 0 if axis == "log" else np.ones(len(r.steps), bool)
        frames.append(pd.DataFrame({"step": r.steps[keep], "value": r[metric][keep], "run": i}))
    return pd.concat(frames, ignore_index=True).dropna(subset=["value"])


def plot_seeds(
    ax,
    results: Sequence[RunResult],
    metric: str,
    axis: str = "log",
    color: str = PALETTE[0],
    label: str | None = None,
    **line_kw: Any,
) -> None:
    """One line per run (seed) of ``metric`` against steps, never averaged (a mean would blur
    seeds that jump at different times). A diverged run's line ends where it diverged."""
    import seaborn as sns

    data = _long(results, metric, axis)
    if len(data):
        sns.lineplot(
            data=data,
            x="step",
            y="value",
            units="run",
            estimator=None,
            color=color,
            lw=1.1,
            alpha=0.85,
            legend=False,
            ax=ax,
            **line_kw,
        )
    if label is not None:  # one legend entry for all the runs' lines, even if none has data
        ax.plot([], [], color=color, lw=1.1, label=label, **line_kw)
    set_step_axis(ax, axis)
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))


def band(
    ax, x: np.ndarray, per_seed: np.ndarray, color: str, label: str, marker: str = "o"
) -> None:
    """Mean over seeds (line) and min-max over seeds (band); ``per_seed``: ``[seeds, len(x)]``."""
    import pandas as pd
    import seaborn as sns

    per_seed = np.asarray(per_seed, float)
    data = pd.DataFrame(
        {
            "x": np.tile(np.asarray(x, float), per_seed.shape[0]),
            "y": per_seed.ravel(),
        }
    ).dropna()
    if not len(data):
        return
    sns.lineplot(
        data=data,
        x="x",
        y="y",
        estimator="mean",
        errorbar=("pi", 100),  # the band spans every seed: min to max
        color=color,
        marker=marker,
        ms=4,
        lw=1.4,
        label=f"{label} (mean; band: min-max over seeds)",
        ax=ax,
    )
    ax.set(xlabel=None, ylabel=None)


def accuracy_axis(
    fig, ax, x: np.ndarray, accuracy: np.ndarray, label: str, ylabel: str, ylim=None
) -> None:
    """The seed-mean ``accuracy`` against ``x`` on a second y axis of a landscape panel
    (dotted), and one legend below the figure for both axes (seaborn's own, in the middle of
    the curves, removed)."""
    acc = ax.twinx()
    acc.plot(x, accuracy, color=PALETTE[2], ls=":", marker="^", ms=4, lw=1.2, label=label)
    acc.set_ylabel(ylabel)
    if ylim is not None:
        acc.set_ylim(ylim)
    acc.grid(False)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    handles = [h for a in (ax, acc) for h in a.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)


def title(ax, text: str, profile: str, n_seeds: int) -> None:
    ax.set_title(f"{text}\nprofile '{profile}', {n_seeds} seeds")


def log_scale_if_positive(ax, axis: str = "y") -> None:
    """A log scale where there is something positive to put on it (all values <= 0 or NaN,
    e.g. every run diverged, would make matplotlib raise). Within less than a decade, ticks
    are labelled as plain numbers (40, 45), not as 4.5 x 10^1."""
    import matplotlib.ticker as mticker

    values = [v for line in ax.get_lines() for v in np.ravel(getattr(line, f"get_{axis}data")())]
    values = np.asarray(values, float)
    positive = values[np.isfinite(values) & (values > 0)]
    if not len(positive):
        return
    getattr(ax, f"set_{axis}scale")("log")
    if positive.max() / positive.min() < 10:
        plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")
        target = getattr(ax, f"{axis}axis")
        target.set_major_formatter(plain)
        target.set_minor_formatter(plain)
