"""The (α, N) phase diagram on MNIST (paper Sec. 3.1, the MNIST phase diagram; the skeptics'
question "grokking happens with limited data trained for a long time").

Claim 2's run (the paper's MLP, AdamW with weight decay) at each initialization scale α and
training-set size N of ``profiles.PHASES``, seeds as the profile's. Each run is put in one of
four phases by when it fits its training set (train acc >= 0.99) and when it generalizes (test
acc >= the threshold at its N, ``Outcome.threshold``), each held by the rule of
``omnigrok.report.metrics``:

* comprehension: generalizes, with no delay (before ``LATE`` x the step it fit, or without
  ever fitting);
* grokking: fits, then generalizes at ``LATE`` x that step or later;
* memorization: fits and never generalizes within the budget;
* confusion: neither.

The test threshold is claim 2's 0.8 where that is within reach, and otherwise ``RELATIVE`` of
what the standard init (α = 1) reaches at the same N (its seeds' mean final test accuracy; never
below ``FLOOR``): with
N ≈ 100-200 images no MLP reaches 0.8 on MNIST's test set, and a fixed 0.8 would leave such cells
only memorization or confusion, by definition rather than by measurement.

A cell's phase is its seeds' majority (a tie is no phase: "split"); how the seeds split is
shown. The paper draws the grokking region at large α and limited N, between memorization
(too little data) and comprehension (enough data, or a small init); the verdict checks where
the measured grokking cells sit.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim2
from omnigrok.chapters.base import Chapter, fetch, large_init_mnist
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.report.metrics import HOLD_RULE
from omnigrok.report.plots import PALETTE, subplots, themed
from omnigrok.report.verdict import Verdict, judge

COMPREHENSION, GROKKING, MEMORIZATION, CONFUSION = (
    "comprehension",
    "grokking",
    "memorization",
    "confusion",
)
PHASES = (COMPREHENSION, GROKKING, MEMORIZATION, CONFUSION)
SPLIT = "split"  # no majority among a cell's seeds
LATE = claim2.LATE  # claim 2's "generalizes late": at >= 3x the step it fit
STANDARD_INIT = 1.0  # α = 1: PyTorch's default init, the scale without grokking in the paper
# Generalized at N: test acc >= min(GENERALIZED, RELATIVE x the α = 1 runs' mean final test acc
# at N), never below FLOOR. 0.9: within a tenth of what the standard init reaches with the same
# images; FLOOR 0.5 (5x chance on 10 classes): a standard init that learns nothing at N does not
# make chance accuracy count as generalization.
GENERALIZED = claim2.GENERALIZED
RELATIVE = 0.9
FLOOR = 0.5


def phase_of(memorized: float, generalized: float) -> str:
    """The phase of one run from its steps to fit and to generalize (``inf``: never)."""
    if math.isfinite(generalized):
        late = math.isfinite(memorized) and generalized >= LATE * max(memorized, 1.0)
        return GROKKING if late else COMPREHENSION
    return MEMORIZATION if math.isfinite(memorized) else CONFUSION


def majority(phases: list[str]) -> str:
    """The phase more than half of the seeds share; ``SPLIT`` where none does."""
    top, count = Counter(phases).most_common(1)[0]
    return top if count > len(phases) / 2 else SPLIT


@dataclass(frozen=True)
class Setup(base.Setup):
    """Claim 2's run (``base.large_init_mnist(profile)``: its steps, γ, lr, test images and
    logging) at every (α, N) of the profile's grid."""

    chapter = "phases"
    alphas: tuple[float, ...] = field(init=False)
    n_trains: tuple[int, ...] = field(init=False)
    base: RunConfig = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        grid = profiles.PHASES[self.profile]
        self._set("alphas", tuple(grid["alphas"]))
        if STANDARD_INIT not in self.alphas:
            raise ValueError(
                f"profiles.PHASES[{self.profile!r}]['alphas'] must hold the standard init "
                f"α = {STANDARD_INIT:g} (the test threshold is relative to it), got {self.alphas}"
            )
        self._set("n_trains", tuple(grid["n_train"]))
        self._set("base", large_init_mnist(self.profile))

    def cell_configs(self, alpha: float, n_train: int) -> list[RunConfig]:
        task = TaskSpec("mnist", n_train=n_train, n_test=self.base.task.n_test)
        # A training set smaller than claim 2's batch (200) is trained full batch.
        batch = min(self.base.batch_size, n_train)
        return [
            self.base.replace(task=task, init_scale=alpha, seed=s, batch_size=batch)
            for s in self.seeds
        ]

    def configs(self) -> list[RunConfig]:
        return [c for a in self.alphas for n in self.n_trains for c in self.cell_configs(a, n)]


setup = Setup


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    results: dict  # (α, N) -> list[RunResult], seed order

    def threshold(self, n_train: int) -> float:
        """The test accuracy that counts as generalization at N: claim 2's 0.8, or ``RELATIVE``
        of the standard init's mean final test accuracy at N where that is lower (never below
        ``FLOOR``)."""
        reached = np.mean([r["test_acc"][-1] for r in self.results[(STANDARD_INIT, n_train)]])
        return float(max(FLOOR, min(GENERALIZED, RELATIVE * reached)))

    def times(self, alpha: float, n_train: int) -> list[dict[str, float]]:
        """Each seed's steps to fit and to generalize (at N's threshold) in the cell (α, N)."""
        threshold = self.threshold(n_train)
        return [claim2.times(r, threshold) for r in self.results[(alpha, n_train)]]

    def phases(self, alpha: float, n_train: int) -> list[str]:
        """Each seed's phase in the cell (α, N)."""
        return [phase_of(**t) for t in self.times(alpha, n_train)]

    def phase(self, alpha: float, n_train: int) -> str:
        return majority(self.phases(alpha, n_train))

    def cells(self, phase: str) -> list[tuple[float, int]]:
        """The (α, N) cells whose majority phase is ``phase``."""
        return [
            (a, n)
            for a in self.setup.alphas
            for n in self.setup.n_trains
            if self.phase(a, n) == phase
        ]

    def disagreeing(self) -> list[tuple[float, int]]:
        """Cells whose seeds do not all agree (majority or not)."""
        return [
            (a, n)
            for a in self.setup.alphas
            for n in self.setup.n_trains
            if len(set(self.phases(a, n))) > 1
        ]


def run(s: Setup, progress: bool = True) -> Outcome:
    found = fetch(s.configs(), s.device, progress)
    results = {
        (a, n): [found[c] for c in s.cell_configs(a, n)] for a in s.alphas for n in s.n_trains
    }
    return Outcome(s, results)


def _cells(cells: list[tuple[float, int]]) -> str:
    return ", ".join(f"(α={a:g}, N={n})" for a, n in cells) or "none"


def _seed_counts(phases: list[str]) -> str:
    counts = Counter(phases)
    return ", ".join(f"{counts[p]} {p}" for p in PHASES if counts[p])


def numbers(o: Outcome) -> dict[str, str]:
    out = {p: _cells(o.cells(p)) for p in (*PHASES, SPLIT)}
    out["disagree"] = _cells(o.disagreeing())
    out["alphas"] = ", ".join(f"{a:g}" for a in o.setup.alphas)
    out["n_trains"] = ", ".join(str(n) for n in o.setup.n_trains)
    out["thresholds"] = ", ".join(f"{o.threshold(n):.3g} at N={n}" for n in o.setup.n_trains)
    return out


def table(o: Outcome) -> str:
    """A markdown table, one row per cell: its phase and each seed's steps and phase."""
    lines = [
        "| α | N | phase | seeds | steps to fit (train ≥ "
        f"{claim2.MEMORIZED}) | test threshold at N | steps to generalize |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in o.setup.alphas:
        for n in o.setup.n_trains:
            steps = o.times(a, n)
            fit = ", ".join(f"{t['memorized']:g}" for t in steps)
            gen = ", ".join(f"{t['generalized']:g}" for t in steps)
            seeds = _seed_counts(o.phases(a, n))
            lines.append(
                f"| {a:g} | {n} | {o.phase(a, n)} | {seeds} | {fit} | {o.threshold(n):.3g} | "
                f"{gen} |"
            )
    return "\n".join(lines) + "\n\ninf: never within the budget."


def _ordered_along_n(o: Outcome, alpha: float) -> bool:
    """In the row α, memorization cells lie at smaller N than grokking cells, and those at
    smaller N than comprehension cells (the paper's order as data grows)."""
    order = {MEMORIZATION: 0, GROKKING: 1, COMPREHENSION: 2}
    ranks = [order[p] for n in o.setup.n_trains if (p := o.phase(alpha, n)) in order]
    return ranks == sorted(ranks)


def verdict(o: Outcome) -> Verdict:
    s = o.setup
    grokking = o.cells(GROKKING)
    largest_n, rows = max(s.n_trains), sorted({a for a, _ in grokking})
    comprehension = o.cells(COMPREHENSION)
    preconditions = {
        "some cell generalizes with no delay (the threshold is within reach)": (
            bool(comprehension),
            f"comprehension cells: {_cells(comprehension)}"
            + ("" if comprehension else " (the test thresholds out of reach)"),
        ),
    }
    checks = {
        "grokking occurs": (bool(grokking), f"grokking cells: {_cells(grokking)}"),
        f"only at large init (α > {STANDARD_INIT:g})": (
            bool(grokking) and all(a > STANDARD_INIT for a, _ in grokking),
            f"α of the grokking cells: {sorted({a for a, _ in grokking})}",
        ),
        f"only with limited data (N < {largest_n})": (
            bool(grokking) and all(n < largest_n for _, n in grokking),
            f"N of the grokking cells: {sorted({n for _, n in grokking})}; at N = {largest_n}: "
            + ", ".join(f"α={a:g} {o.phase(a, largest_n)}" for a in s.alphas),
        ),
        "between memorization (less data) and comprehension (more), along N": (
            bool(rows) and all(_ordered_along_n(o, a) for a in rows),
            "; ".join(f"α={a:g}: " + " → ".join(o.phase(a, n) for n in s.n_trains) for a in rows)
            or "no row with grokking",
        ),
    }
    notes = [f"seeds disagree at {_cells(o.disagreeing())}"] if o.disagreeing() else []
    return judge("The (α, N) phase diagram", CRITERION, checks, preconditions, notes)


CRITERION = (
    f"each run's phase from its steps to fit (train acc >= {claim2.MEMORIZED}) and to "
    f"generalize (test acc >= {GENERALIZED}, or {RELATIVE:g}x the standard init's mean final "
    f"test acc at the same N where that is lower, never below {FLOOR:g}), each {HOLD_RULE}"
    ": grokking if it generalizes at >= {LATE:g}x the step it fit, comprehension "
    "if it generalizes sooner (or without fitting), memorization if it fits and never generalizes, "
    "confusion if neither; a cell's phase is its seeds' majority. Reproduced if, with some cell "
    f"comprehending, grokking cells exist, all at α > {STANDARD_INIT:g} and N below the grid's "
    "largest, and along N each of their rows runs memorization → grokking → comprehension"
)


def headline(o: Outcome) -> str:
    return f"grokking cells: {numbers(o)['grokking']}"


@themed
def figure(o: Outcome):
    """The phase of each (α, N) cell as a seaborn heatmap (large α on top), each cell
    labelled with its phase and how its seeds split."""
    import matplotlib.colors as mcolors
    import seaborn as sns
    from matplotlib.patches import Patch

    s = o.setup
    names = (*PHASES, SPLIT)
    # Okabe-Ito green, vermilion, sky blue, black; grey for no majority.
    colours = (PALETTE[2], PALETTE[3], PALETTE[5], PALETTE[7], "#BBBBBB")
    alphas = sorted(s.alphas, reverse=True)
    codes = np.array([[names.index(o.phase(a, n)) for n in s.n_trains] for a in alphas])
    labels = np.array(
        [[f"{o.phase(a, n)}\n{_seed_label(o.phases(a, n))}" for n in s.n_trains] for a in alphas]
    )
    width = len(s.n_trains)
    fig, ax = subplots(1, 1, row_height=min(1.0 + 0.7 * len(alphas), 6.0))
    sns.heatmap(
        codes,
        ax=ax,
        cmap=mcolors.ListedColormap(colours),
        vmin=-0.5,
        vmax=len(names) - 0.5,
        cbar=False,
        annot=labels,
        fmt="",
        annot_kws={"fontsize": 7 if width > 4 else 8},
        linewidths=1,
        linecolor="white",
        xticklabels=[str(n) for n in s.n_trains],
        yticklabels=[f"{a:g}" for a in alphas],
    )
    # Light text on the dark cells (confusion is black).
    for text, code in zip(ax.texts, codes.ravel(), strict=True):
        text.set_color("white" if names[code] in (CONFUSION, GROKKING) else "black")
    ax.set_xlabel("training-set size N (log grid)")
    ax.set_ylabel("initialization scale α (log grid)")
    ax.set_title(
        f"MNIST, γ={s.base.weight_decay:g}, {s.base.steps} steps: phase per (α, N), the seeds' "
        f"majority\nprofile '{s.profile}', {len(s.seeds)} seeds (counts in each cell)"
    )
    handles = [Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(names))
    return fig


def _seed_label(phases: list[str]) -> str:
    """How the seeds split, in short: '3/3', or '2 grok' and '1 memo' on lines of their own
    (narrow enough for the paper grid's seven columns)."""
    counts = Counter(phases)
    if len(counts) == 1:
        return f"{len(phases)}/{len(phases)}"
    return "\n".join(f"{counts[p]} {p[:4]}" for p in PHASES if counts[p])


CHAPTER = Chapter(
    "phases",
    "The (α, N) phase diagram on MNIST",
    Setup,
    run,
    numbers,
    verdict,
    parts=("phases",),
    claim="Grokking sits at large α and limited N, between memorization and comprehension",
    headline=headline,
)
