"""Claims 1-3 on one of the paper's other tasks (Sec. 3.2: IMDb, QM9): what their chapters share.

Each such chapter runs, with seeds:

1. **the landscape**: the norm held at α·w0 by projection after every step (Adam, no decay, as
   the official landscape scripts), α on a log grid from 0.1 to 10;
2. **the large init** (the official grokking run) against **the baseline** (α = 1, no decay);
3. **the large init held at w_c** (no decay), w_c read off the landscape.

A chapter module subclasses ``Setup`` (building ``run``, the profile's grokking run, in its
``__post_init__`` and handing it to ``derive``), says how it reads w_c off its landscape, and
judges the regimes by its task's measure (accuracy for IMDb, loss for QM9).

Their pages are one template: ``show_result`` (runs, glued figures and numbers, the verdict),
``show_settings`` and ``show_every_run``, each given the chapter module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from omnigrok.chapters import base, claim1, claim2, claim3
from omnigrok.chapters.base import fetch
from omnigrok.checks import check_float
from omnigrok.config import RunConfig
from omnigrok.report.metrics import PERSIST, first_step_reaching, spread
from omnigrok.report.page import glue, glue_all, prologue, seed_outcomes, show_markdown
from omnigrok.report.paper import provenance
from omnigrok.report.plots import PALETTE, log_scale_if_positive, plot_seeds, subplots, themed
from omnigrok.report.verdict import Verdict
from omnigrok.store import RunResult

REGIMES = ("large init", "baseline", "held at w_c")
WAITS = "its runs held at w_c wait for its landscape (w_c)"  # what the archive says meanwhile
# The verdicts' thresholds are claim 2's and claim 3's (one rule for every task).
LATE = claim2.LATE
EDGE_FACTOR = claim2.EDGE_FACTOR
SPEEDUP_MIN = claim3.SPEEDUP_MIN
DELAY_REMOVED = claim3.DELAY_REMOVED


@dataclass(frozen=True)
class Setup(base.Setup):
    """The profile's runs of one task: the landscape grid, the large init (α = ``init_scale``,
    γ = ``weight_decay``; None: the profile's), the α = 1 baseline without decay, and the large
    init held at ``w_c`` (None: read off the landscape when it has run)."""

    init_scale: float = 1.0
    weight_decay: float | None = None
    w_c: float | None = None
    alphas: tuple[float, ...] = field(init=False)
    landscape_base: RunConfig = field(init=False)
    bases: dict = field(init=False)  # regime -> base RunConfig (seed varies)

    task = ""  # the task's name (omnigrok.tasks)

    def derive(
        self, run: RunConfig, gamma: float, n_alpha: int, land_steps: int, land_lr: float
    ) -> None:
        """Set the runs from ``run`` (the profile's grokking run at α = 1), the checked decay
        ``gamma``, and the landscape's grid size, steps and learning rate."""
        alpha = check_float("init_scale", self.init_scale, positive=True)
        if self.w_c is not None:
            self._set("w_c", check_float("w_c", self.w_c, positive=True))
        self._set("init_scale", alpha)
        self._set("weight_decay", gamma)
        self._set("alphas", tuple(float(a) for a in np.round(np.geomspace(0.1, 10, n_alpha), 4)))
        self._set(
            "landscape_base",
            run.replace(steps=land_steps, lr=land_lr, weight_decay=0.0, constraint="init"),
        )
        bases = {
            "large init": run.replace(init_scale=alpha, weight_decay=gamma),
            "baseline": run.replace(init_scale=1.0, weight_decay=0.0),
        }
        if self.w_c is not None:
            bases["held at w_c"] = run.replace(
                init_scale=alpha, weight_decay=0.0, constraint="fixed", target_norm=self.w_c
            )
        self._set("bases", bases)

    def best_norm(self, land: claim1.Landscape) -> float:
        """The held norm this task's chapter takes as w_c (its measure decides)."""
        raise NotImplementedError

    def landscape_configs(self) -> list[RunConfig]:
        """The landscape's runs, α-major (``claim1.landscape`` reads them in this order)."""
        b = self.landscape_base
        return [b.replace(init_scale=a, seed=s) for a in self.alphas for s in self.seeds]

    def regime_configs(self, regime: str) -> list[RunConfig]:
        if regime not in self.bases:
            raise ValueError(
                "w_c is not known until the landscape is run; pass it, or use run(setup)"
            )
        return [self.bases[regime].replace(seed=s) for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        return self.landscape_configs() + [
            c for regime in REGIMES if regime in self.bases for c in self.regime_configs(regime)
        ]

    def planned(self) -> list[RunConfig]:
        known = self if self.w_c is not None else dataclasses.replace(self, w_c=1.0)
        return known.configs()


@dataclass(frozen=True)
class Outcome:
    """A task chapter's runs: its setup, the landscape and each regime's runs (seed order).
    Chapter modules say which test curve generalizing is read on (``metric``; ``lower``: a loss,
    better when lower) and add what their measure means: ``target``, the fitting step and the
    zone's ``edge``."""

    setup: Setup
    landscape: claim1.Landscape
    results: dict  # regime -> list[RunResult], seed order

    metric: ClassVar[str] = ""
    lower: ClassVar[bool] = False

    @property
    def target(self) -> float:
        """The test value (of ``metric``) that counts as generalized: the chapter's."""
        raise NotImplementedError

    def generalized(self, regime: str) -> np.ndarray:
        """Each seed's step from which its ``metric`` stays at the ``target`` or better."""
        return self.steps_to(regime, self.metric, self.target, lower=self.lower)

    def steps_to(
        self, regime: str, metric: str, threshold: float, lower: bool = False
    ) -> np.ndarray:
        """Each seed's first step from which ``metric`` stays at least ``threshold`` (``lower``:
        at most, for a loss) by ``omnigrok.report.metrics``' rule; inf where it never does."""
        sign = -1.0 if lower else 1.0
        return np.array(
            [
                first_step_reaching(
                    r.steps, sign * np.asarray(r[metric]), sign * threshold, PERSIST
                )
                for r in self.results[regime]
            ]
        )

    def at(self, regime: str, metric: str, steps: np.ndarray) -> np.ndarray:
        """Each seed's ``metric`` at its own step of ``steps`` (NaN where that step is inf)."""
        runs = self.results[regime]
        return np.array([claim2.value_at(r, metric, t) for r, t in zip(runs, steps, strict=True)])


def with_w_c(s: Setup, progress: bool = True):
    """``s`` with w_c known: as given, or ``s.best_norm`` of the landscape (loaded if stored,
    else trained)."""
    if s.w_c is not None:
        return s
    configs = s.landscape_configs()
    found = fetch(configs, s.device, progress)
    land = claim1.landscape(s, s.task, [found[c] for c in configs])
    return dataclasses.replace(s, w_c=s.best_norm(land))


def fetch_all(s: Setup, progress: bool) -> tuple[claim1.Landscape, dict[str, list[RunResult]]]:
    """The landscape and each regime's runs (seed order) of a setup with w_c known: one
    ``run_sweep`` (the three regimes share a shape: one stack)."""
    found = fetch(s.configs(), s.device, progress)
    land = claim1.landscape(s, s.task, [found[c] for c in s.landscape_configs()])
    return land, {regime: [found[c] for c in s.regime_configs(regime)] for regime in REGIMES}


def run(outcome: Callable, s: Setup, progress: bool = True):
    """A task chapter's run: the landscape first when w_c is not given (loaded if stored), then
    every run in one ``run_sweep``, as the chapter's ``outcome`` (its ``Outcome`` class)."""
    s = with_w_c(s, progress)
    return outcome(s, *fetch_all(s, progress))


def ratio(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """``later / earlier`` step by step (an earlier step 0 counts as 1), NaN where the earlier
    step never came."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(earlier), later / np.maximum(earlier, 1), np.nan)


def regime_numbers(o, fit: Callable[[str], np.ndarray], fit_key: str, metric: str) -> dict:
    """Each regime's final ``metric``, the step it fit (``<regime>_<fit_key>``: ``fit``), the
    step it generalized and their ratio; the large init's norm when it generalized, and how
    much sooner the run held at w_c did. ``o``: an outcome with ``results``, ``generalized``
    and ``at`` (both chapters' ``Outcome``)."""
    out = {}
    for regime in REGIMES:
        key = regime.replace(" ", "_")
        runs = o.results[regime]
        out[f"{key}_final_test"] = str(spread([r[metric][-1] for r in runs]))
        out[f"{key}_{fit_key}"] = str(spread(fit(regime)))
        out[f"{key}_generalized"] = str(spread(o.generalized(regime)))
        out[f"{key}_delay"] = str(spread(ratio(o.generalized(regime), fit(regime))))
    gen = o.generalized("large init")
    out["norm_at_generalization"] = str(spread(o.at("large init", "norm", gen)))
    out["speedup"] = str(spread(ratio(gen, o.generalized("held at w_c"))))
    return out


def claim_1_checks(land: claim1.Landscape) -> dict[str, tuple[bool, str]]:
    """Claim 1's L and U checks on a task's landscape, named as this chapter's."""
    return {f"claim 1, {k.split(': ', 1)[1]}": v for k, v in claim1.shape_checks(land).items()}


def claim_1_preconditions(land: claim1.Landscape) -> dict[str, tuple[bool, str]]:
    """What every claim of a task chapter needs from its landscape: w_c an interior minimum of
    test loss (claim 1's precondition). On a monotone landscape there is no Goldilocks norm to
    hold a run at or to walk into, so claims 2 and 3 cannot be tested either."""
    pre = claim1.interior_precondition(land)
    return {f"claim 1, {k.split(': ', 1)[1]}": v for k, v in pre.items()}


def late_checks(
    o, fit: Callable[[str], np.ndarray], reached: str, fit_word: str
) -> dict[str, tuple[bool, str]]:
    """Claim 2 after the fit: every large-init seed generalizes at least ``LATE`` x its fitting
    step, with its norm then within ``EDGE_FACTOR`` of the zone's edge (``o.edge()``).
    ``reached``: what generalizing means, for the evidence ("test acc >= the target 0.61")."""
    first, gen = fit("large init"), o.generalized("large init")
    norm_at_gen = o.at("large init", "norm", gen)
    edge = o.edge()
    with np.errstate(invalid="ignore"):
        at_edge = norm_at_gen / edge.value
    return {
        "claim 2, generalizes late": (
            bool(np.all(np.isfinite(gen)) and np.all(gen >= LATE * np.maximum(first, 1))),
            f"{reached} at steps {gen.tolist()} (>= {LATE:g}x the {fit_word} step required)",
        ),
        "claim 2, when its norm reaches the zone's edge": (
            bool(edge.measured and np.all((at_edge >= 1 / EDGE_FACTOR) & (at_edge <= EDGE_FACTOR))),
            f"norm then {np.round(norm_at_gen, 1).tolist()} = {np.round(at_edge, 2).tolist()}x "
            f"the zone's edge {edge} at the target (between 1/{EDGE_FACTOR:g} and "
            f"{EDGE_FACTOR:g}x required; a bound is not enough)",
        ),
    }


def constraint_checks(o, fit: Callable[[str], np.ndarray]) -> dict[str, tuple[bool, str]]:
    """Claim 3: held at w_c, every seed generalizes at least ``SPEEDUP_MIN`` x sooner than the
    large init, within ``DELAY_REMOVED`` x its own fitting step."""
    held = o.generalized("held at w_c")
    speed = ratio(o.generalized("large init"), held)
    held_delay = ratio(held, fit("held at w_c"))
    return {
        f"claim 3, held at w_c is >= {SPEEDUP_MIN:g}x faster, every seed": (
            bool(np.all(np.isfinite(held)) and np.all(speed >= SPEEDUP_MIN)),
            f"held at w_c = {o.setup.w_c:.3g} reaches the target at steps {held.tolist()}; "
            f"speedup per seed {np.round(speed, 1).tolist()}",
        ),
        "claim 3, held at w_c has no delay of its own": (
            bool(np.all(held_delay <= DELAY_REMOVED)),
            f"test step / train step {np.round(held_delay, 2).tolist()} (<= {DELAY_REMOVED:g} "
            "required)",
        ),
    }


@themed
def figure_curves(o, axis: str, model: str, measure: str, ylabel: str, target: str):
    """The three regimes over training: ``test_<measure>`` (top; ``measure``: ``acc`` or
    ``loss``, a loss on a log axis) and the weight norm (bottom), one line per seed; the large
    init's ``train_<measure>`` dotted; the target (labelled ``target``) and w_c dashed."""
    fig, (top, bottom) = subplots(2, 1, row_height=3.1, sharex=True)
    for i, regime in enumerate(REGIMES):
        plot_seeds(top, o.results[regime], f"test_{measure}", axis, PALETTE[i], regime)
        plot_seeds(bottom, o.results[regime], "norm", axis, PALETTE[i], None)
    plot_seeds(
        top,
        o.results["large init"],
        f"train_{measure}",
        axis,
        PALETTE[0],
        "large init, train",
        ls=":",
    )
    top.axhline(o.target, color="grey", lw=0.8, ls="--", label=f"target {target}")
    if measure == "loss":
        log_scale_if_positive(top)
    top.set_ylabel(ylabel)
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    w_c = o.setup.w_c
    bottom.axhline(w_c, color=PALETTE[3], ls="--", lw=1, label=f"w_c = {w_c:.3g}")
    log_scale_if_positive(bottom)
    bottom.set_ylabel("weight norm w (log)")
    bottom.legend()
    s = o.setup
    top.set_title(
        f"{model}, large init α={s.init_scale:g} (γ={s.weight_decay:g}), baseline α=1 (γ=0)\n"
        f"profile '{s.profile}', {len(s.seeds)} seeds (a line each), {axis} step axis"
    )
    return fig


class TaskChapter(Protocol):
    """What a task chapter module (``imdb``, ``qm9``) gives its page."""

    def run(self, s: Any, progress: bool = True) -> Any: ...

    def numbers(self, o: Any) -> dict[str, str]: ...

    def verdict(self, o: Any) -> Verdict: ...

    def figure_landscape(self, o: Any) -> Any: ...

    def figure_curves(self, o: Any, axis: str = "log") -> Any: ...


def show_result(chapter: TaskChapter, s: Setup, progress: bool = True) -> Outcome:
    """A task chapter's page up to its prose: every run (the landscape first, for w_c), each
    figure and number glued as ``<chapter>_<name>`` for the prose, and the verdict shown (its
    status; the criterion and evidence folded)."""
    o = chapter.run(s, progress=progress)
    name = o.setup.chapter
    glue(f"{name}_landscape", chapter.figure_landscape(o))
    glue(f"{name}_curves_log", chapter.figure_curves(o, "log"))
    glue(f"{name}_curves_linear", chapter.figure_curves(o, "linear"))
    glue_all(name, chapter.numbers(o))
    glue(f"{name}_alpha", f"{o.setup.init_scale:g}")
    glue(f"{name}_gamma", f"{o.setup.weight_decay:g}")
    show_markdown(chapter.verdict(o).markdown())
    return o


def show_settings(o: Outcome) -> None:
    """The page's prologue (``page.prologue``): the landscape's runs and the regimes' runs,
    a table each (w_c is known once the landscape has run)."""
    s = o.setup
    regimes = [c for regime in REGIMES for c in s.regime_configs(regime)]
    prologue(
        s, {"The landscape": s.landscape_configs(), "Large init, baseline and constraint": regimes}
    )


def show_every_run(o: Outcome) -> None:
    """Each regime's runs, seed by seed, against the target (``page.seed_outcomes``), and where
    they were computed."""
    runs = [r for regime in REGIMES for r in o.results[regime]]
    show_markdown(seed_outcomes(runs, o.metric, o.target, lower=o.lower))
    show_markdown("**Where these runs come from.** " + provenance(runs))
