"""The claims dashboard: every claim's headline numbers and verdict, from the store.

Each claim is set up with its chapter's defaults for the profile and run through the store, so
the dashboard shows the very runs the chapters show and retrains nothing that is stored.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnigrok import archive
from omnigrok.chapters import chapter as chapter_named
from omnigrok.chapters import claim3, claim4
from omnigrok.chapters.base import Chapter, Setup
from omnigrok.checks import check_profile
from omnigrok.report.plots import PALETTE, band, log_scale_if_positive, plot_seeds, subplots, themed
from omnigrok.report.verdict import Verdict
from omnigrok.sweep import MissingRuns


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


# Every chapter at the profile the book shows it at: the paper's settings where the paper
# archive holds its runs, else the quick miniature (``omnigrok.archive.book_profiles``).
ARCHIVED = "archived"
# book/build.py's decision, chapter -> profile (JSON), inherited by the pages it executes.
BOOK_PROFILES_ENV = "OMNIGROK_BOOK_PROFILES"


def chapter_profiles(profile: str, names: Sequence[str]) -> dict[str, str]:
    """The profile each chapter in ``names`` is read at: ``profile`` for all, or with
    ``archived``, each at the profile the book shows it at (nothing is trained to decide)."""
    if profile != ARCHIVED:
        profile = check_profile(profile)
        return dict.fromkeys(names, profile)
    # A book build decided every chapter's profile once, before executing any page.
    decided = json.loads(os.environ.get(BOOK_PROFILES_ENV, "{}"))
    if set(names) <= set(decided):
        return {name: decided[name] for name in names}
    return {name: p for name, (p, _) in archive.book_profiles(list(names)).items()}


def check(profile: str, seeds: Any, device: str) -> None:
    """The dashboard's and discussion's parameters, checked before any work: ``profile`` is
    a profile or ``archived``; with ``archived`` each chapter takes its own default seeds."""
    if profile == ARCHIVED:
        if seeds is not None:
            raise ValueError(f"seeds must be None with profile {ARCHIVED!r}, got {seeds!r}")
        Setup("paper", None, device)
    else:
        Setup(profile, seeds, device)


@dataclass(frozen=True)
class Outcomes:
    """Each claim's outcome by chapter name (``claim1`` ... ``claim4``), and the profile each
    was read at."""

    profiles: dict[str, str]
    by_chapter: dict[str, Any]

    def __getitem__(self, chapter: str) -> Any:
        return self.by_chapter[chapter]

    @property
    def profile(self) -> str:
        """The one profile of every row, or ``mixed``."""
        found = set(self.profiles.values())
        return found.pop() if len(found) == 1 else "mixed"


def outcomes(
    profile: str = "quick", seeds: Any = None, device: str = "auto", progress: bool = False
) -> Outcomes:
    """Every claim's chapter set up with its defaults for its profile (``chapter_profiles``)
    and run (from the store: what the chapters show, nothing stored trained again)."""
    chapters = CLAIMS + TASKS + RIVALS + QUESTIONS
    shown = chapter_profiles(profile, [c.name for c in chapters])
    found = {
        c.name: c.run(c.setup(shown[c.name], seeds, device), progress=progress) for c in CLAIMS
    }
    for c in TASKS + RIVALS + QUESTIONS:
        try:
            found[c.name] = c.run(c.setup(shown[c.name], seeds, device), progress=progress)
        except MissingRuns:
            found[c.name] = None
    return Outcomes(shown, found)


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
    lines = [
        "| claim | profile | measured (mean ± sd over seeds) | verdict |",
        "|---|---|---|---|",
    ]
    for chapter, claim, measured, verdict in rows(o):
        status = verdict.status if verdict is not None else "not run"
        profile = o.profiles[chapter]
        lines.append(f"| [{claim}]({chapter}.ipynb) | `{profile}` | {measured} | **{status}** |")
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
    # Wrapped: two labels side by side in a half-column panel collide at one line each.
    ax.set_xticks(range(len(groups)), [textwrap.fill(g, 12) for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)


@themed
def figure(o: Outcomes):
    """One panel per claim, two per row: its headline effect at a glance."""
    fig, ax = subplots(2, 2, row_height=3.0)
    ax = ax.ravel()
    land = o["claim1"]["mnist"]
    band(ax[0], land.norm.mean(0), land.test_loss, PALETTE[1], "test loss")
    band(ax[0], land.norm.mean(0), land.train_loss, PALETTE[0], "train loss")
    tag = {name: f" ({p})" if o.profile == "mixed" else "" for name, p in o.profiles.items()}
    ax[0].set(xlabel="held weight norm (log)", title=f"1. MNIST landscape{tag['claim1']}")
    log_scale_if_positive(ax[0], "x")
    log_scale_if_positive(ax[0], "y")
    plot_seeds(ax[1], o["claim2"].main, "test_acc", "log", PALETTE[1], "test")
    plot_seeds(ax[1], o["claim2"].main, "train_acc", "log", PALETTE[0], "train")
    ax[1].set(title=f"2. MNIST α=8: accuracy{tag['claim2']}", ylabel="accuracy")
    speedups = {
        claim3.TASK_LABELS[task]: claim3.speedup(o["claim3"], task)[0]
        for task in ("mnist", "modadd")
    }
    _points(ax[2], speedups, (PALETTE[2], PALETTE[4]))
    ax[2].set(ylabel="speedup per seed", title=f"3. held at w_c vs free{tag['claim3']}")
    if any(np.any(np.isfinite(v) & (v > 0)) for v in speedups.values()):
        ax[2].set_yscale("log")  # only with something to put on it: a log axis of nothing fails
    widths = [claim4.jump(r) for r in o["claim4"]]
    _points(ax[3], {f"{k} axis": [w[k] for w in widths] for k in ("linear", "log")}, PALETTE[::3])
    ax[3].set(
        ylabel="10→90% jump\n(share of x-range)", title=f"4. how sudden it looks{tag['claim4']}"
    )
    ax[0].legend(fontsize=7.5)
    ax[1].legend()
    which = (
        "each panel's profile in its title" if o.profile == "mixed" else f"profile '{o.profile}'"
    )
    fig.suptitle(f"{which}, a point or line per seed")
    return fig


def summary_numbers(o: Outcomes) -> dict[str, str]:
    verdicts = [r[3] for r in rows(o)]
    return {
        "n_reproduced": str(sum(v is not None and v.status == "reproduced" for v in verdicts)),
        "n_rows": str(len(verdicts)),
    }
