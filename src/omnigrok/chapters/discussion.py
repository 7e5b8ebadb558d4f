"""Numbers for the discussion page: the skeptics' points, answered from runs where we can.

Besides the claims' own outcomes (``omnigrok.chapters.dashboard``), one question needs no training:
"bigger models may need bigger inits". The norm of PyTorch's default init grows with width,
so the same α means a different starting norm for a different model; ``init_norm_by_width``
measures how much.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from omnigrok.models import MLPSpec, init_params
from omnigrok.norms import global_norm
from omnigrok.report.plots import PALETTE, subplots, themed


def init_norm_by_width(
    widths: Sequence[int] = (50, 100, 200, 400, 800, 1600), seeds: Sequence[int] = (0, 1, 2)
) -> dict[int, np.ndarray]:
    """Weight norm at α = 1 of the MNIST MLP 784-w-w-10 for each width w, per seed."""
    return {
        w: global_norm(
            init_params(MLPSpec((784, w, w, 10)), list(seeds), dtype=torch.float64)
        ).numpy()
        for w in widths
    }


@themed
def figure_init_norms(norms: dict[int, np.ndarray], w_c: float | None = None):
    """Init norm against width (log-log), a point per seed; optionally the measured w_c."""
    fig, ax = subplots(1, 1, row_height=3.6)
    for w, values in norms.items():
        ax.scatter([w] * len(values), values, color=PALETTE[0], s=20)
        ax.scatter([w] * len(values), 8 * values, color=PALETTE[1], s=20, marker="s")
    ax.scatter([], [], color=PALETTE[0], label="α = 1 (PyTorch default)")
    ax.scatter([], [], color=PALETTE[1], marker="s", label="α = 8")
    if w_c is not None:
        ax.axhline(w_c, color=PALETTE[3], ls="--", lw=1, label=f"w_c at width 200 = {w_c:.3g}")
    ax.set(
        xscale="log", yscale="log", xlabel="hidden width (log)", ylabel="weight norm at init (log)"
    )
    n_seeds = len(next(iter(norms.values())))
    ax.set_title(f"MNIST MLP 784-w-w-10: init norm vs width\n{n_seeds} seeds (a point each)")
    ax.legend()
    return fig
