"""The claims dashboard: every claim's headline numbers and verdict, from the store.

Each claim is set up with its chapter's defaults for the profile and run through the store, so
the dashboard shows the very runs the chapters show and retrains nothing that is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from omnigrok.chapters import axes, constraint
from omnigrok.chapters import chapter as chapter_named
from omnigrok.chapters.base import Chapter
from omnigrok.plots import PALETTE, band, log_scale_if_positive, plot_seeds, subplots, themed
from omnigrok.sweep import MissingRuns
from omnigrok.verdict import Verdict


def _named(*names: str) -> tuple[Chapter, ...]:
    return tuple(chapter_named(name) for name in names)


# The paper's claims, in the book's order: what the dashboard shows a row of.
CLAIMS = _named("claim1", "claim2", "claim3", "claim4")
# The claims on the paper's other tasks: a row each where their runs can be had (a paper
# build reads the archive, which may not hold them yet: the row then says so).
TASKS = _named("imdb", "qm9")
# The rivals published since the paper, on the same runs: a row, where its runs can be had.
RIVALS = _named("rivals")
# The skeptics' questions answered by runs (claim 1 on the transformer, the delay over two decades
# of γ, the (α, N) phases, Sec. 4's representation): a row each, likewise where its runs can be had.
QUESTIONS = _named("landscape_modadd", "delay_gamma", "phases", "representation")


@dataclass(frozen=True)
class Outcomes:
    """Each claim's outcome for one profile, by chapter name (``claim1`` ... ``claim4``)."""

    profile: str
    by_chapter: dict[str, Any]

    def __getitem__(self, chapter: str) -> Any:
        return self.by_chapter[chapter]


def outcomes(
    profile: str = "quick", seeds: Any = None, device: str = "auto", progress: bool = False
) -> Outcomes:
    """Every claim's chapter set up with its defaults for the profile and run (from the
    store: what the chapters show, nothing stored trained again)."""
    found = {c.name: c.run(c.setup(profile, seeds, device), progress=progress) for c in CLAIMS}
    for c in TASKS + RIVALS + QUESTIONS:
        try:
            found[c.name] = c.run(c.setup(profile, seeds, device), progress=progress)
        except MissingRuns:
            found[c.name] = None
    return Outcomes(profile, found)


def rows(o: Outcomes) -> list[tuple[str, str, str, Verdict | None]]:
    """(chapter, claim, headline numbers, verdict) per claim, per task's claims and per
    question; None for one whose runs are not stored (read-only builds)."""
    out = []
    for c in CLAIMS + TASKS + RIVALS + QUESTIONS:
        if o[c.name] is None:
            out.append((c.name, c.claim, MISSING, None))
        else:
            out.append((c.name, c.claim, c.headline(o[c.name]), c.verdict(o[c.name])))
    return out


MISSING = "not in the archive yet (`python -m omnigrok archive --status`)"


def claims_table(o: Outcomes) -> str:
    """Markdown table, one row per claim, linking to its chapter."""
    lines = ["| claim | measured (mean ± sd over seeds) | verdict |", "|---|---|---|"]
    for chapter, claim, measured, verdict in rows(o):
        status = verdict.status if verdict is not None else "not run"
        lines.append(f"| [{claim}]({chapter}.ipynb) | {measured} | **{status}** |")
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
            )
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)


@themed
def figure(o: Outcomes):
    """One panel per claim, two per row: its headline effect at a glance."""
    fig, ax = subplots(2, 2, row_height=3.0)
    ax = ax.ravel()
    land = o["claim1"]["mnist"]
    band(ax[0], land.norm.mean(0), land.test_loss, PALETTE[1], "test loss")
    band(ax[0], land.norm.mean(0), land.train_loss, PALETTE[0], "train loss")
    ax[0].set(xlabel="held weight norm (log)", title="1. MNIST landscape")
    log_scale_if_positive(ax[0], "x")
    log_scale_if_positive(ax[0], "y")
    plot_seeds(ax[1], o["claim2"].main, "test_acc", "log", PALETTE[1], "test")
    plot_seeds(ax[1], o["claim2"].main, "train_acc", "log", PALETTE[0], "train")
    ax[1].set(title="2. MNIST α=8: accuracy", ylabel="accuracy")
    speedups = {
        constraint.TASK_LABELS[task]: constraint.speedup(o["claim3"], task)[0]
        for task in ("mnist", "modadd")
    }
    _points(ax[2], speedups, (PALETTE[2], PALETTE[4]))
    ax[2].set(ylabel="speedup per seed", title="3. held at w_c vs free")
    if any(np.any(np.isfinite(v) & (v > 0)) for v in speedups.values()):
        ax[2].set_yscale("log")  # only with something to put on it: a log axis of nothing fails
    widths = [axes.jump(r) for r in o["claim4"]]
    _points(ax[3], {f"{k} axis": [w[k] for w in widths] for k in ("linear", "log")}, PALETTE[::3])
    ax[3].set(ylabel="10→90% jump\n(share of x-range)", title="4. how sudden it looks")
    ax[0].legend(fontsize=7.5)
    ax[1].legend()
    fig.suptitle(f"profile '{o.profile}', a point or line per seed")
    return fig


def summary_numbers(o: Outcomes) -> dict[str, str]:
    verdicts = [r[3] for r in rows(o)]
    return {
        "n_reproduced": str(sum(v is not None and v.status == "reproduced" for v in verdicts)),
        "n_rows": str(len(verdicts)),
    }
