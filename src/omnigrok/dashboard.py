"""The claims dashboard: every claim's headline numbers and verdict, from the store.

Each claim is set up with its chapter's defaults for the profile and run through the store, so
the dashboard shows the very runs the chapters show and retrains nothing that is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from omnigrok.claims import axes, constraint, goldilocks, large_init
from omnigrok.verdict import Verdict


@dataclass(frozen=True)
class Outcomes:
    """Each claim's runs for one profile."""

    profile: str
    landscapes: dict
    large_init: large_init.Outcome
    constraint: constraint.Outcome
    axes: list


def outcomes(profile: str = "quick", seeds: Any = None, device: str = "auto") -> Outcomes:
    return Outcomes(
        profile,
        goldilocks.run(goldilocks.setup(profile, seeds, device), progress=False),
        large_init.run(large_init.setup(profile, seeds, device), progress=False),
        constraint.run(constraint.setup(profile, seeds, device), progress=False),
        axes.run(axes.setup(profile, seeds, device), progress=False),
    )


def rows(o: Outcomes) -> list[tuple[str, str, str, Verdict]]:
    """(chapter, claim, headline numbers, verdict) per claim."""
    g, li, c, a = (
        goldilocks.numbers(o.landscapes),
        large_init.numbers(o.large_init),
        constraint.numbers(o.constraint),
        axes.numbers(o.axes),
    )
    return [
        (
            "claim1",
            "Goldilocks zone: train loss L, test loss U in the held norm",
            f"w_c MNIST {g['mnist_w_c_seeds']}; teacher-student {g['teacher_student_w_c_seeds']}",
            goldilocks.verdict(o.landscapes),
        ),
        (
            "claim2",
            "Large init (α=8) on MNIST: memorize, then generalize as w walks into the zone",
            f"memorized at step {li['step_memorized']}; generalized at {li['step_generalized']}; "
            f"norm then {li['norm_at_generalization']} vs the Goldilocks zone's edge "
            f"{li['w_edge']} (w_c {li['w_c']})",
            large_init.verdict(o.large_init),
        ),
        (
            "claim3",
            "Holding the norm at w_c removes the delay",
            f"speedup MNIST {c['mnist_speedup']}; modular addition {c['modadd_speedup']}",
            constraint.verdict(o.constraint),
        ),
        (
            "claim4",
            "A log step axis makes grokking look sudden",
            f"jump width: log axis {a['width_log']}, linear axis {a['width_linear']}; "
            f"(t90-t10)/t10 = {a['relative_width']}",
            axes.verdict(o.axes),
        ),
    ]


def claims_table(o: Outcomes) -> str:
    """Markdown table, one row per claim, linking to its chapter."""
    lines = ["| claim | measured (mean ± sd over seeds) | verdict |", "|---|---|---|"]
    for chapter, claim, measured, verdict in rows(o):
        lines.append(f"| [{claim}]({chapter}.ipynb) | {measured} | **{verdict.status}** |")
    return "\n".join(lines)


def _points(ax, groups: dict[str, Any], colors) -> None:
    """A column of points per group; a group with no finite value is labelled "none"."""
    for i, (values, color) in enumerate(zip(groups.values(), colors, strict=False)):
        values = np.asarray(values, float)
        finite = values[np.isfinite(values)]
        ax.scatter(np.full(len(finite), i), finite, color=color, s=22)
        if len(finite) < len(values):
            ax.annotate(
                f"{len(values) - len(finite)} never",
                (i, 0.5),
                xycoords=("data", "axes fraction"),
                ha="center",
                fontsize=7,
            )
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)


def figure(o: Outcomes):
    """One small panel per claim: its headline effect at a glance."""
    import matplotlib.pyplot as plt

    from omnigrok.plots import PALETTE, band, plot_seeds

    fig, ax = plt.subplots(1, 4, figsize=(15, 3.4))
    land = o.landscapes["mnist"]
    band(ax[0], land.norm.mean(0), land.test_loss, PALETTE[1], "test loss")
    band(ax[0], land.norm.mean(0), land.train_loss, PALETTE[0], "train loss")
    ax[0].set(
        xscale="log", yscale="log", xlabel="held weight norm (log)", title="1. MNIST landscape"
    )
    plot_seeds(ax[1], o.large_init.main, "test_acc", "log", PALETTE[1], "test")
    plot_seeds(ax[1], o.large_init.main, "train_acc", "log", PALETTE[0], "train")
    ax[1].set_title("2. MNIST α=8: accuracy")
    speedups = {
        constraint.TASK_LABELS[task]: constraint.speedup(o.constraint, task)[0]
        for task in ("mnist", "modadd")
    }
    _points(ax[2], speedups, (PALETTE[2], PALETTE[4]))
    ax[2].set(ylabel="speedup per seed", title="3. held at w_c vs free")
    if any(np.any(np.isfinite(v) & (v > 0)) for v in speedups.values()):
        ax[2].set_yscale("log")  # only with something to put on it: a log axis of nothing fails
    widths = [axes.jump(r) for r in o.axes]
    _points(ax[3], {f"{k} axis": [w[k] for w in widths] for k in ("linear", "log")}, PALETTE[::3])
    ax[3].set(ylabel="10→90% jump, share of x-range", title="4. how sudden it looks")
    for a in ax[:2]:
        a.legend(fontsize=7)
    fig.suptitle(f"profile '{o.profile}', a point or line per seed", fontsize=10)
    fig.tight_layout()
    return fig


def summary_numbers(o: Outcomes) -> dict[str, str]:
    verdicts = [r[3] for r in rows(o)]
    return {"n_reproduced": str(sum(v.status == "reproduced" for v in verdicts))}
