"""The delay against weight decay over two decades (the skeptics' questions; paper Sec. 3.1:
the large-init run generalizes after about ln(w0 / w) / (lr γ) steps, so t ∝ 1/γ).

Claim 2 checks the estimate over a √2 sweep around its γ; the paper's scaling claim spans
decades. Here the α = 8 MNIST run of claim 2's profile is repeated for γ on a log grid over two
decades (``profiles.DELAY_GAMMA``), seeds as the profile's, and each seed's steps to test
accuracy 0.8 are set against the estimate with claim 1's zone edge w_edge (as in claim 2).

The question has two parts: does t fall as 1/γ (a log-log slope of -1), and where does it stop?
Memorization takes about 2e3 steps whatever γ is, so at large γ the norm reaches the zone
before the model has fit its data, and the delay can no longer shrink as 1/γ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim1, claim2
from omnigrok.chapters.base import Chapter, fetch, large_init_mnist
from omnigrok.config import RunConfig
from omnigrok.report.metrics import Edge, spread
from omnigrok.report.plots import PALETTE, subplots, themed
from omnigrok.report.verdict import Verdict, judge

SLOPE = -1.0  # t ∝ 1/γ
SLOPE_TOLERANCE = 0.25  # a fitted log-log slope within this of -1 counts as 1/γ
MIN_POINTS = 3  # γ values where every seed generalized, needed to fit a slope
DELAY_FACTOR = claim2.DELAY_FACTOR


@dataclass(frozen=True)
class Setup(base.Setup):
    """Claim 2's α = ``init_scale`` MNIST run at each γ of the profile's two-decade grid, and
    claim 1's MNIST landscape for the zone's edge."""

    chapter = "delay_gamma"
    init_scale: float = 8.0
    gammas: tuple[float, ...] = field(init=False)
    base: RunConfig = field(init=False)
    landscape: claim1.Setup = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        p = profiles.DELAY_GAMMA[self.profile]
        gammas = np.geomspace(p["low"], p["high"], p["n"])
        self._set("gammas", tuple(float(g) for g in np.round(gammas, 4)))
        self._set("base", large_init_mnist(self.profile, self.init_scale))
        self._set("init_scale", self.base.init_scale)
        self._set("landscape", claim1.Setup(self.profile, self.seeds, self.device))

    def gamma_configs(self, gamma: float) -> list[RunConfig]:
        return [self.base.replace(weight_decay=gamma, seed=s) for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        runs = [c for g in self.gammas for c in self.gamma_configs(g)]
        return self.landscape.task_configs("mnist") + runs


setup = Setup


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    edge: Edge  # claim 1's zone edge at test accuracy 0.8
    results: dict  # γ -> list[RunResult], seed order
    landscape: claim1.Landscape | None = None  # claim 1's, whose w_c must be interior

    def steps(self, gamma: float) -> np.ndarray:
        return np.array([claim2.times(r)["generalized"] for r in self.results[gamma]])

    def predicted(self, gamma: float) -> np.ndarray:
        return np.array([claim2.predicted_delay(r, self.edge.value) for r in self.results[gamma]])

    def fit(self) -> tuple[float, list[float]]:
        """The log-log slope of the seed-mean steps against γ, over the γ where every seed
        generalized (NaN with fewer than ``MIN_POINTS``), and those γ."""
        used = [g for g in self.setup.gammas if np.all(np.isfinite(self.steps(g)))]
        if len(used) < MIN_POINTS:
            return float("nan"), used
        means = [np.mean(self.steps(g)) for g in used]
        return float(np.polyfit(np.log(used), np.log(means), 1)[0]), used


def run(s: Setup, progress: bool = True) -> Outcome:
    found = fetch(s.configs(), s.device, progress)
    land_runs = [found[c] for c in s.landscape.task_configs("mnist")]
    land = claim1.landscape(s.landscape, "mnist", land_runs)
    results = {g: [found[c] for c in s.gamma_configs(g)] for g in s.gammas}
    return Outcome(s, land.zone_edge(claim2.GENERALIZED), results, land)


def numbers(o: Outcome) -> dict[str, str]:
    slope, used = o.fit()
    out = {
        "slope": f"{slope:.2f}" if np.isfinite(slope) else "none",
        "slope_gammas": ", ".join(f"{g:g}" for g in used) or "none",
        "gammas": ", ".join(f"{g:g}" for g in o.setup.gammas),
        "w_edge": str(o.edge),
    }
    for i, g in enumerate(o.setup.gammas):
        out[f"steps_{i}"] = str(spread(o.steps(g)))
        out[f"predicted_{i}"] = str(spread(o.predicted(g)))
    return out


def table(o: Outcome) -> str:
    """A markdown table, one row per γ: measured and predicted steps over the seeds."""
    lines = ["| γ | steps to test acc ≥ 0.8 | ln(w0/w_edge)/(lr γ) |", "|---|---|---|"]
    for g in o.setup.gammas:
        lines.append(f"| {g:g} | {spread(o.steps(g))} | {spread(o.predicted(g))} |")
    return "\n".join(lines)


def verdict(o: Outcome) -> Verdict:
    slope, used = o.fit()
    ratios = np.concatenate([o.steps(g) / o.predicted(g) for g in o.setup.gammas])
    preconditions = {
        **claim1.w_c_precondition(o.landscape),
        **base.complete_precondition([r for runs in o.results.values() for r in runs]),
        "claim 1's zone edge is measured": (
            o.edge.measured,
            f"w_edge = {o.edge} (a value inside the grid required, not a bound)",
        ),
        f"every seed generalizes at >= {MIN_POINTS} values of γ": (
            len(used) >= MIN_POINTS,
            f"every seed reached test acc {claim2.GENERALIZED} at γ = "
            f"{[round(g, 4) for g in used]} of {[round(g, 4) for g in o.setup.gammas]}",
        ),
    }
    checks = {
        f"t ∝ 1/γ: log-log slope within {SLOPE_TOLERANCE:g} of {SLOPE:g}": (
            bool(np.isfinite(slope) and abs(slope - SLOPE) <= SLOPE_TOLERANCE),
            f"fitted slope {slope:.3g} over γ = {[round(g, 4) for g in used]}",
        ),
        f"the delay is ln(w0/w_edge)/(lr γ) within {DELAY_FACTOR:g}x, every run": (
            bool(np.all((ratios >= 1 / DELAY_FACTOR) & (ratios <= DELAY_FACTOR))),
            f"measured / predicted steps: {np.round(ratios, 2).tolist()} (inf: never "
            "generalized within the budget)",
        ),
    }
    return judge("The delay over two decades of γ", CRITERION, checks, preconditions)


CRITERION = (
    f"with claim 1's w_c an interior minimum of test loss and its zone edge measured, every run "
    f"logged to its budget, and every seed generalizing (test acc >= "
    f"{claim2.GENERALIZED}) at >= {MIN_POINTS} values of γ: the seed-mean steps fall as "
    f"1/γ (log-log slope {SLOPE:g} ± {SLOPE_TOLERANCE:g} over those γ), and every run's steps "
    f"are within {DELAY_FACTOR:g}x of ln(w0/w_edge)/(lr γ)"
)


def headline(o: Outcome) -> str:
    n = numbers(o)
    return f"log-log slope of t against γ: {n['slope']} (over γ = {n['slope_gammas']})"


@themed
def figure(o: Outcome):
    """Steps to test accuracy 0.8 against γ (log-log), a point per seed; the estimate and the
    fitted line; runs that never generalized at the budget's edge."""
    fig, ax = subplots(1, 1, row_height=4.2)
    s = o.setup
    for i, g in enumerate(s.gammas):
        t = o.steps(g)
        shown = np.where(np.isfinite(t), t, s.base.steps)
        ax.scatter(
            [g] * len(t),
            shown,
            color=PALETTE[0],
            s=24,
            label="measured, per seed" if i == 0 else None,
        )
    gammas = np.array(s.gammas)
    predicted = np.array([np.mean(o.predicted(g)) for g in s.gammas])
    if np.all(np.isfinite(predicted)):
        ax.plot(gammas, predicted, color=PALETTE[3], ls="--", lw=1.2, label="ln(w0/w_edge)/(lr γ)")
    slope, used = o.fit()
    if np.isfinite(slope):
        means = np.array([np.mean(o.steps(g)) for g in used])
        fit = np.exp(np.polyval(np.polyfit(np.log(used), np.log(means), 1), np.log(used)))
        ax.plot(used, fit, color=PALETTE[2], lw=1.2, label=f"fit: t ∝ γ^{slope:.2f}")
    ax.axhline(s.base.steps, color="grey", lw=0.8, ls=":", label="budget (never: drawn here)")
    ax.set(xscale="log", yscale="log", xlabel="weight decay γ (log)")
    ax.set_ylabel(f"steps to test acc ≥ {claim2.GENERALIZED} (log)")
    ax.set_title(
        f"MNIST, α={s.init_scale:g}: the delay against γ\n"
        f"profile '{s.profile}', {len(s.seeds)} seeds (a point each)"
    )
    ax.legend(fontsize=8)
    return fig


CHAPTER = Chapter(
    "delay_gamma",
    "The delay over two decades of weight decay",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim1", "delay_gamma"),
    claim="Large-init grokking's delay falls as 1/γ over two decades",
    headline=headline,
)
