"""Claim 2, large-init grokking on MNIST (paper Sec. 3.1, Fig. 4).

Multiply every parameter of the standard init by α = 8 and train with AdamW (weight decay γ):
the model memorizes its 1000 images fast, then its norm walks down towards the Goldilocks zone
of claim 1, and only then does it generalize. The paper's estimate of the delay is the time
the decoupled decay needs to shrink the norm from w0 to the zone: t ≈ ln(w0 / w) / (lr · γ).

Which w? Generalization is judged by a test-accuracy threshold, so the norm to reach is where
claim 1's landscape says held-norm test accuracy reaches that threshold: the zone's upper edge
w_edge. The test-loss minimum w_c lies deeper inside the zone; both are reported. A sweep
over α and γ tests the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from omnigrok.chapters import base, claim1
from omnigrok.chapters.base import Chapter, fetch, large_init_mnist
from omnigrok.checks import check_float
from omnigrok.config import RunConfig
from omnigrok.report.metrics import HOLD_RULE, PERSIST, Edge, first_step_reaching, spread
from omnigrok.report.plots import PALETTE, plot_seeds, subplots, themed, title
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult

MEMORIZED = 0.99  # train accuracy that counts as memorization
GENERALIZED = 0.8  # test accuracy that counts as generalization (paper's run ends at ~0.89)

MEMORIZED_TEST_MAX = 0.6  # "memorized" means: while test accuracy is still at most this
LATE = 3.0  # "generalizes late": the test step at least this many times the memorization step
# Where the norm must be, against claim 1's zone edge w_edge (paper Sec. 3.1: the large-init
# run generalizes once its norm has decayed into the Goldilocks zone). At generalization: within
# EDGE_FACTOR of w_edge on both sides (a run that generalizes at 0.1 w_edge says the zone is
# not where claim 1 puts it). At memorization: above EDGE_FACTOR x w_edge, i.e. outside the
# zone and outside the band that counts as "at the edge", so the two are told apart. 1.5 is
# about one step of claim 1's quick α grid (1.58x).
EDGE_FACTOR = 1.5
# The delay, judged on the norm's own path: every run of the sweep generalizes within this
# factor of the step its logged norm enters the zone (falls to w_edge and stays). The paper's
# estimate ln(w0/w)/(lr γ) predicts that step from the initial norm alone, so a run whose norm
# never moves but whose accuracy jumps at the predicted step would pass it; it is reported,
# not judged.
DELAY_FACTOR = 2.0

SWEEP_FACTOR = 2**0.5  # the delay sweep: α and γ each divided and multiplied by this


@dataclass(frozen=True)
class Setup(base.Setup):
    """The headline run (α = ``init_scale``, γ = ``weight_decay``; None: the profile's,
    ``profiles.LARGE_INIT``), its delay sweep, and claim 1's MNIST landscape, whose zone edge
    the norm is compared with. ``base``: a whole base run instead (its α and γ are used)."""

    chapter = "claim2"
    init_scale: float = 8.0
    weight_decay: float | None = None
    base: RunConfig | None = None  # the headline run: α and γ as asked
    alphas: tuple[float, ...] = field(init=False)  # delay sweep over α at the base γ
    weight_decays: tuple[float, ...] = field(init=False)  # and over γ at the base α
    landscape: claim1.Setup = field(init=False)  # claim 1's runs, for w_c and w_edge

    def __post_init__(self) -> None:
        super().__post_init__()
        # Claim 2 needs decay: without it the norm never walks to the zone. Its rule (γ > 0) is
        # stricter than a run's (γ >= 0), so it is checked here, on what was asked.
        if self.base is None:
            gamma = self.weight_decay
            if gamma is not None:
                gamma = check_float("weight_decay", gamma, positive=True)
            self._set("base", large_init_mnist(self.profile, self.init_scale, gamma))
        gamma = check_float("weight_decay", self.base.weight_decay, positive=True)
        alpha = self.base.init_scale
        self._set("init_scale", alpha)
        self._set("weight_decay", gamma)
        self._set("alphas", tuple(alpha * SWEEP_FACTOR**i for i in (-1, 0, 1)))
        self._set("weight_decays", tuple(gamma * SWEEP_FACTOR**i for i in (-1, 0, 1)))
        self._set("landscape", claim1.Setup(self.profile, self.seeds, self.device))

    def main(self) -> list[RunConfig]:
        return [self.base.replace(seed=s) for s in self.seeds]

    def sweep(self) -> list[RunConfig]:
        """Every (α, γ) of the delay sweep, seeds innermost; includes the main runs."""
        pairs = [(a, self.base.weight_decay) for a in self.alphas]
        pairs += [
            (self.base.init_scale, g) for g in self.weight_decays if g != self.base.weight_decay
        ]
        return [
            self.base.replace(init_scale=a, weight_decay=g, seed=s)
            for a, g in pairs
            for s in self.seeds
        ]

    def configs(self) -> list[RunConfig]:
        return self.landscape.task_configs("mnist") + self.sweep()


setup = Setup


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    w_c: float  # claim 1's test-loss minimum
    w_edge: float  # claim 1's largest held norm with test accuracy >= GENERALIZED
    main: list[RunResult]
    sweep: list[RunResult]
    edge: Edge | None = None  # w_edge with whether it is only a bound (None: a value)
    landscape: claim1.Landscape | None = None  # claim 1's, whose w_c must be interior

    @property
    def zone_edge(self) -> Edge:
        """``w_edge`` as an ``Edge``: a value, a bound ("≥") or NaN with the reason."""
        return self.edge if self.edge is not None else Edge(self.w_edge)


def run(s: Setup, progress: bool = True) -> Outcome:
    found = fetch(s.configs(), s.device, progress)
    land_runs = [found[c] for c in s.landscape.task_configs("mnist")]
    land = claim1.landscape(s.landscape, "mnist", land_runs)
    sweep = [found[c] for c in s.sweep()]
    main = [found[c] for c in s.main()]
    edge = land.zone_edge(GENERALIZED)
    return Outcome(s, land.goldilocks().w_c, edge.value, main, sweep, edge, land)


def times(r: RunResult, generalized: float = GENERALIZED) -> dict[str, float]:
    """Steps to memorize (train acc >= MEMORIZED) and to generalize (test acc >=
    ``generalized``), each held by ``omnigrok.report.metrics``' rule."""
    return {
        "memorized": first_step_reaching(r.steps, r["train_acc"], MEMORIZED, PERSIST),
        "generalized": first_step_reaching(r.steps, r["test_acc"], generalized, PERSIST),
    }


def entry_step(r: RunResult, w_edge: float) -> float:
    """The step the logged norm enters the zone: falls to ``w_edge`` or below and stays there
    (``omnigrok.report.metrics``' rule for a threshold); inf where it never does."""
    return first_step_reaching(r.steps, -np.asarray(r["norm"], float), -w_edge, PERSIST)


def predicted_delay(r: RunResult, w_target: float) -> float:
    """ln(w0 / w_target) / (lr γ): steps for the decoupled decay alone to bring w0 there."""
    c = r.config
    return float(np.log(r["norm"][0] / w_target) / (c.lr * c.weight_decay))


def value_at(r: RunResult, metric: str, step: float) -> float:
    """``metric`` at ``step`` (interpolated between logged steps); NaN for a step that never
    came (a threshold never reached)."""
    return float(np.interp(step, r.steps, r[metric])) if np.isfinite(step) else math.nan


def numbers(o: Outcome) -> dict[str, str]:
    t = [times(r) for r in o.main]
    mem, gen = [x["memorized"] for x in t], [x["generalized"] for x in t]
    first_mem = [value_at(r, "test_acc", m) for m, r in zip(mem, o.main, strict=True)]
    return {
        "w_c": f"{o.w_c:.3g}",
        "w_edge": str(o.zone_edge),
        "norm_start": str(spread([r["norm"][0] for r in o.main])),
        "norm_end": str(spread([r["norm"][-1] for r in o.main])),
        "norm_at_memorization": str(
            spread([value_at(r, "norm", m) for r, m in zip(o.main, mem, strict=True)])
        ),
        "norm_at_generalization": str(
            spread([value_at(r, "norm", g) for r, g in zip(o.main, gen, strict=True)])
        ),
        "step_memorized": str(spread(mem)),
        "step_generalized": str(spread(gen)),
        "test_acc_at_memorization": str(spread(first_mem)),
        "test_acc_final": str(spread([r["test_acc"][-1] for r in o.main])),
        "delay_ratio": str(spread(_ratio(gen, mem))),
        "predicted_delay": str(spread([predicted_delay(r, o.w_edge) for r in o.main])),
        "measured_over_predicted": str(spread(_measured_over_predicted(o.sweep, o.w_edge))),
        "step_norm_enters_zone": str(spread([entry_step(r, o.w_edge) for r in o.main])),
        "generalized_over_entry": str(spread(_after_entry(o.sweep, o.w_edge))),
    }


def _ratio(later, earlier) -> np.ndarray:
    """later / earlier per seed; NaN where either never happened."""
    later, earlier = np.asarray(later, float), np.maximum(np.asarray(earlier, float), 1)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(later) & np.isfinite(earlier), later / earlier, np.nan)


def _after_entry(runs: list[RunResult], w_edge: float) -> np.ndarray:
    """Per run: steps to generalize / steps for the logged norm to enter the zone; NaN where
    the norm never entered it (or generalization never came: inf / inf)."""
    gen = np.array([times(r)["generalized"] for r in runs], float)
    entry = np.array([entry_step(r, w_edge) for r in runs], float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(entry), gen / np.maximum(entry, 1), np.nan)


def _measured_over_predicted(runs: list[RunResult], w_edge: float) -> np.ndarray:
    """Per run: steps to generalize / ln(w0/w_edge)/(lr γ); inf where it never generalized,
    NaN where the prediction is not a positive number of steps (w0 already inside the zone)."""
    out = []
    for r in runs:
        measured, predicted = times(r)["generalized"], predicted_delay(r, w_edge)
        out.append(measured / predicted if np.isfinite(predicted) and predicted > 0 else np.nan)
    return np.array(out, float)


def _mean_delay(results: list[RunResult], **match) -> float:
    sel = [r for r in results if all(getattr(r.config, k) == v for k, v in match.items())]
    return float(np.mean([times(r)["generalized"] for r in sel]))


def _increasing(values: list[float]) -> bool:
    """Strictly increasing and all finite (a run that never generalized orders nothing)."""
    v = np.asarray(values, float)
    return bool(np.all(np.isfinite(v)) and np.all(np.diff(v) > 0))


def _diverged(runs: list[RunResult]) -> str:
    """Which runs have a norm that is not finite somewhere (diverged), as an evidence suffix;
    "" if none."""
    bad = [
        f"α={r.config.init_scale:.3g} γ={r.config.weight_decay:.3g} seed {r.config.seed}"
        for r in runs
        if not np.all(np.isfinite(r["norm"]))
    ]
    return f" (not finite norm, a diverged run: {'; '.join(bad)})" if bad else ""


def _round(values: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(values, float), digits).tolist()


def preconditions(o: Outcome) -> dict[str, tuple[bool, str]]:
    """What the claim needs before it can be judged: claim 1's w_c an interior minimum (a
    Goldilocks zone at all), a zone edge to compare the norm with, and every run finished."""
    edge = o.zone_edge
    return {
        **claim1.w_c_precondition(o.landscape),
        "claim 1's zone edge is measured": (
            edge.measured,
            f"w_edge = {edge} (largest held norm with test acc >= {GENERALIZED}; a value inside "
            "the grid required, not a bound)",
        ),
        **base.complete_precondition(o.sweep),
    }


def verdict(o: Outcome) -> Verdict:
    t = [times(r) for r in o.main]
    mem = np.array([x["memorized"] for x in t])
    gen = np.array([x["generalized"] for x in t])
    mem_norm = np.array([value_at(r, "norm", m) for r, m in zip(o.main, mem, strict=True)])
    gen_norm = np.array([value_at(r, "norm", g) for r, g in zip(o.main, gen, strict=True)])
    s, w_edge = o.setup, o.w_edge
    by_alpha = [
        _mean_delay(o.sweep, init_scale=a, weight_decay=s.base.weight_decay) for a in s.alphas
    ]
    by_gamma = [
        _mean_delay(o.sweep, init_scale=s.base.init_scale, weight_decay=g) for g in s.weight_decays
    ]
    test_at_mem = np.array([value_at(r, "test_acc", m) for m, r in zip(mem, o.main, strict=True)])
    after = _after_entry(o.sweep, w_edge)
    entry = [entry_step(r, w_edge) for r in o.sweep]
    with np.errstate(invalid="ignore"):
        at_edge = gen_norm / w_edge
        outside = mem_norm / w_edge
    nan_main = _diverged(o.main)
    checks = {
        "memorizes first": (
            bool(np.all(np.isfinite(mem)) and np.all(test_at_mem <= MEMORIZED_TEST_MAX)),
            f"train acc >= {MEMORIZED} at steps {mem.tolist()}, test acc then "
            f"{_round(test_at_mem, 2)} (at most {MEMORIZED_TEST_MAX} required)",
        ),
        "generalizes late": (
            bool(np.all(np.isfinite(gen)) and np.all(gen >= LATE * np.maximum(mem, 1))),
            f"test acc >= {GENERALIZED} at steps {gen.tolist()} (>= {LATE:g}x the memorization "
            "step required)",
        ),
        "the norm is outside the zone when it memorizes": (
            bool(np.all(outside > EDGE_FACTOR)),
            f"norm at memorization {_round(mem_norm, 1)} = {_round(outside, 2)}x w_edge "
            f"(above {EDGE_FACTOR:g}x required){nan_main}",
        ),
        "it generalizes when the norm reaches the zone's edge": (
            bool(np.all((at_edge >= 1 / EDGE_FACTOR) & (at_edge <= EDGE_FACTOR))),
            f"norm when it generalizes {_round(gen_norm, 1)} = {_round(at_edge, 2)}x w_edge "
            f"(between 1/{EDGE_FACTOR:g} and {EDGE_FACTOR:g}x required; w_c = {o.w_c:.3g})"
            f"{nan_main}",
        ),
        f"it generalizes within {DELAY_FACTOR:g}x of the step its norm enters the zone, "
        "every run": (
            bool(np.all((after >= 1 / DELAY_FACTOR) & (after <= DELAY_FACTOR))),
            f"the logged norm falls to w_edge at steps {_round(entry, 0)} over the sweep (inf: "
            f"never); steps to generalize / that step: {_round(after, 2)} (between "
            f"1/{DELAY_FACTOR:g} and {DELAY_FACTOR:g} required; NaN: the norm never entered)"
            f"{_diverged(o.sweep)}",
        ),
        "delay grows with α and shrinks with γ": (
            bool(_increasing(by_alpha) and _increasing(by_gamma[::-1])),
            f"mean steps to generalize over α={_round(s.alphas, 3)}: {_round(by_alpha, 0)}; "
            f"over γ={_round(s.weight_decays, 4)}: {_round(by_gamma, 0)}",
        ),
    }
    return judge("2. Large-init grokking", CRITERION, checks, preconditions(o))


CRITERION = (
    f"given a zone edge w_edge from claim 1 (held-norm test acc >= {GENERALIZED}; a bound is not "
    f"enough), every seed memorizes (train acc >= {MEMORIZED}, {HOLD_RULE}) "
    f"while test acc is <= {MEMORIZED_TEST_MAX} and its norm above {EDGE_FACTOR:g}x w_edge, "
    f"generalizes (test acc >= {GENERALIZED}) at >= {LATE:g}x that step with its norm within "
    f"{EDGE_FACTOR:g}x of w_edge on either side; every run of the α and γ sweep generalizes "
    f"within {DELAY_FACTOR:g}x of the step its logged norm enters the zone (falls to w_edge and "
    "stays), and the delay orders with α and γ as ln(w0/w_edge)/(lr γ) predicts; claim 1's w_c "
    "must be an interior minimum of test loss and every run logged to its budget; a norm that "
    "is not finite fails the check"
)


@themed
def figure_curves(o: Outcome, axis: str = "log"):
    """Accuracy (top) and norm (bottom) over steps, one line per seed, w_c and the zone's edge
    drawn on the norm panel."""
    fig, (ax1, ax2) = subplots(2, 1, row_height=2.7, sharex=True)
    plot_seeds(ax1, o.main, "train_acc", axis, PALETTE[0], "train")
    plot_seeds(ax1, o.main, "test_acc", axis, PALETTE[1], "test")
    ax1.set_ylabel("accuracy")
    ax1.legend()
    plot_seeds(ax2, o.main, "norm", axis, PALETTE[2], "weight norm")
    ax2.axhline(o.w_c, color=PALETTE[3], ls="--", lw=1, label=f"w_c = {o.w_c:.3g} (claim 1)")
    ax2.axhline(o.w_edge, color=PALETTE[4], ls=":", lw=1.2, label=f"zone edge = {o.zone_edge}")
    ax2.legend()
    c = o.setup.base
    ax1.set_title(
        f"MNIST, α={c.init_scale:g}, γ={c.weight_decay:g}: one line per seed\n"
        f"profile '{o.setup.profile}', {len(o.main)} seeds, {axis} step axis"
    )
    return fig


@themed
def figure_delays(o: Outcome):
    """Measured steps to generalize against the estimate ln(w0/w_edge)/(lr γ), a point per seed."""
    import matplotlib.pyplot as plt

    fig, ax = subplots(1, 1, row_height=4.6)
    base = o.setup.base
    keys = sorted({(r.config.init_scale, r.config.weight_decay) for r in o.sweep})
    predicted = [p for r in o.sweep if np.isfinite(p := predicted_delay(r, o.w_edge)) and p > 0]
    for i, (a, g) in enumerate(keys):
        sel = [r for r in o.sweep if (r.config.init_scale, r.config.weight_decay) == (a, g)]
        x = [predicted_delay(r, o.w_edge) for r in sel]
        y = [times(r)["generalized"] for r in sel]
        y = [v if np.isfinite(v) else base.steps for v in y]  # never: drawn at the budget's edge
        ax.scatter(x, y, color=PALETTE[i % len(PALETTE)], label=f"α={a:.3g}, γ={g:.3g}", s=26)
    lim = [max(min(predicted + [base.steps]) / 3, 1), base.steps * 1.5]
    ax.plot(lim, lim, color="grey", lw=1, ls=":", label="measured = predicted")
    ax.axhline(base.steps, color="grey", lw=0.8, ls="--")
    ax.set(
        xlim=lim,
        ylim=lim,
        xscale="log",
        yscale="log",
        xlabel="predicted delay ln(w0/w_edge)/(lr γ) [steps]",
    )
    # After the log scale (setting it installs its own formatters): minor-tick labels of a
    # short log range collide.
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylabel(f"measured: steps to test acc ≥ {GENERALIZED}")
    title(ax, "Delay: measured vs predicted", o.setup.profile, len(o.setup.seeds))
    ax.legend(loc="upper left")
    return fig


def headline(o: Outcome) -> str:
    li = numbers(o)
    return (
        f"memorized at step {li['step_memorized']}; generalized at {li['step_generalized']}; "
        f"norm then {li['norm_at_generalization']} vs the Goldilocks zone's edge "
        f"{li['w_edge']} (w_c {li['w_c']})"
    )


CHAPTER = Chapter(
    "claim2",
    "Claim 2: large-init grokking on MNIST",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim1", "claim2"),
    claim="Large init (α=8) on MNIST: memorize, then generalize as w walks into the zone",
    headline=headline,
)
