"""Rivals on the same runs: the norm constraint against the explanations published since the
paper, on modular addition, same seeds, same step budget (issue 14, item 4).

The paper (Sec. 3.3) removes modular addition's delay by holding the weight norm at 0.8·w0.
Since then: Grokfast (Lee et al. 2024) amplifies the slow part of the gradient with an EMA
filter; Prieto et al. (ICLR 2025) blame "softmax collapse" and generalize without weight decay
with StableMax and with ⊥Grad; and under cross-entropy the logits' scale, not the norm, might
do the work. Each lever is a run-config field (``omnigrok.rivals``); every method here is the
profile's modular-addition run (claim 3's, Nanda et al.'s settings) with one change:

* ``weight decay``: the grokking baseline (γ of the profile), claim 3's unconstrained run;
* ``no lever (γ = 0)``: what the levers without weight decay are measured against;
* ``norm held at 0.8·w0``: γ = 0, projected to the paper's norm (claim 3's held run);
* ``Grokfast-EMA + weight decay``: the baseline with the EMA filter (α 0.98, λ 2, the
  published defaults);
* ``StableMax``, ``⊥Grad``, ``⊥Grad + StableMax``: γ = 0, as Prieto et al. run them;
* ``logit scale held`` (γ = 0) and ``logit scale held + weight decay``: each example's logits
  rescaled to a fixed root-mean-square, so the logits' scale cannot move while the norm does
  (free, or pulled down by the decay). The reverse, the norm held while the logits' scale moves
  freely, is ``norm held at 0.8·w0``.

Per method and seed: the step test accuracy reaches claim 3's threshold (held ``PERSIST``
logged points), its delay (that step over the train step at the same threshold), and the weight
norm when it generalized, over its init norm. A method *removes the delay* where every seed
generalizes within the budget with no delay of its own (claim 3's criterion); it *needs the
norm* where every seed that generalized had its norm below its init norm by then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, constraint, large_init
from omnigrok.chapters.base import Chapter, fetch, modadd_base
from omnigrok.checks import check_float
from omnigrok.config import RunConfig
from omnigrok.metrics import PERSIST, first_step_reaching, grokking_delay, spread
from omnigrok.models import init_params
from omnigrok.norms import global_norm
from omnigrok.plots import PALETTE, plot_seeds, subplots, themed
from omnigrok.store import RunResult
from omnigrok.verdict import Verdict, judge

THRESHOLD = constraint.THRESHOLD["modadd"]  # claim 3's test accuracy for modular addition
DELAY_REMOVED = constraint.DELAY_REMOVED  # test step / train step at most this: no delay
LATE = large_init.LATE  # the baseline's delay must be at least this: a delay to remove
BASELINE = "weight decay"
HELD = "norm held at 0.8·w0"
METHODS = (
    BASELINE,
    "no lever (γ = 0)",
    HELD,
    "Grokfast-EMA + weight decay",
    "StableMax",
    "⊥Grad",
    "⊥Grad + StableMax",
    "logit scale held",
    "logit scale held + weight decay",
)


@dataclass(frozen=True)
class Setup(base.Setup):
    """Every method on the profile's modular-addition run; ``logit_scale``: the logits'
    root-mean-square held by the logit-scale controls (None: the profile's)."""

    chapter = "rivals"
    logit_scale: float | None = None
    base: RunConfig = field(init=False)
    w_held: float = field(init=False)  # 0.8·w0, w0 averaged over the seeds (as claim 3)

    def __post_init__(self) -> None:
        super().__post_init__()
        table = profiles.RIVALS[self.profile]
        scale = table["logit_scale"] if self.logit_scale is None else self.logit_scale
        self._set("logit_scale", check_float("logit_scale", scale, positive=True))
        self._set("base", modadd_base(self.profile))
        w0 = global_norm(init_params(self.base.model, self.seeds)).mean().item()
        self._set("w_held", constraint.MODADD_WC_ALPHA * w0)

    def changes(self, method: str) -> dict:
        """What ``method`` changes in the base run."""
        table = profiles.RIVALS[self.profile]
        off = dict(weight_decay=0.0)
        held_logits = dict(logit_scale=self.logit_scale)
        return {
            BASELINE: {},
            "no lever (γ = 0)": off,
            HELD: dict(off, constraint="fixed", target_norm=self.w_held),
            "Grokfast-EMA + weight decay": dict(
                grad_filter="ema",
                filter_alpha=table["filter_alpha"],
                filter_lamb=table["filter_lamb"],
            ),
            "StableMax": dict(off, softmax="stablemax"),
            "⊥Grad": dict(off, perp_grad=True),
            "⊥Grad + StableMax": dict(off, perp_grad=True, softmax="stablemax"),
            "logit scale held": dict(off, **held_logits),
            "logit scale held + weight decay": held_logits,
        }[method]

    def method_configs(self, method: str) -> list[RunConfig]:
        """The runs of one method, in seed order."""
        run = self.base.replace(**self.changes(method))
        return [run.replace(seed=s) for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        return [c for m in METHODS for c in self.method_configs(m)]


setup = Setup


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    results: dict  # method -> list[RunResult], seed order

    def steps(self, method: str) -> np.ndarray:
        """Per seed: first step test acc >= THRESHOLD, held PERSIST logged points (inf: never)."""
        return np.array(
            [
                first_step_reaching(r.steps, r["test_acc"], THRESHOLD, PERSIST)
                for r in self.results[method]
            ]
        )

    def delays(self, method: str) -> np.ndarray:
        """Per seed: test step / train step at THRESHOLD (inf: never generalized; NaN: never
        fit the training set either)."""
        return np.array(
            [
                grokking_delay(r.steps, r["train_acc"], r["test_acc"], THRESHOLD, PERSIST)
                for r in self.results[method]
            ]
        )

    def norm_ratio(self, method: str) -> np.ndarray:
        """Per seed: the weight norm when it generalized over its init norm (NaN: never)."""
        return np.array(
            [
                large_init.value_at(r, "norm", t) / r["norm"][0]
                for r, t in zip(self.results[method], self.steps(method), strict=True)
            ]
        )

    def removes_delay(self, method: str) -> bool:
        """Every seed generalizes within the budget with no delay of its own."""
        return bool(np.all(self.delays(method) <= DELAY_REMOVED))  # inf and NaN fail

    def needs_norm(self, method: str) -> bool | None:
        """Every seed that generalized had its norm below its init norm by then (None: no seed
        generalized, nothing to say)."""
        ratio = self.norm_ratio(method)
        finite = ratio[np.isfinite(ratio)]
        return None if len(finite) == 0 else bool(np.all(finite < 1))


def run(s: Setup, progress: bool = True) -> Outcome:
    found = fetch(s.configs(), s.device, progress)
    return Outcome(s, {m: [found[c] for c in s.method_configs(m)] for m in METHODS})


def speedup(o: Outcome, method: str) -> np.ndarray:
    """Per seed: the baseline's steps to generalize over the method's (the budget stands in
    where the baseline never got there; NaN where the method never did)."""
    free = o.steps(BASELINE)
    free = np.where(np.isfinite(free), free, o.setup.base.steps)
    mine = o.steps(method)
    return np.where(np.isfinite(mine), free / np.maximum(mine, 1), np.nan)


# Each method's name in ``numbers`` (the notebook's glue keys).
KEYS = dict(
    zip(
        METHODS,
        (
            "weight_decay",
            "no_lever",
            "held",
            "grokfast",
            "stablemax",
            "perp_grad",
            "perp_grad_stablemax",
            "logit_held",
            "logit_held_wd",
        ),
        strict=True,
    )
)


def numbers(o: Outcome) -> dict[str, str]:
    out = {"logit_scale": f"{o.setup.logit_scale:g}", "w_held": f"{o.setup.w_held:.3g}"}
    for m in METHODS:
        k = KEYS[m]
        steps = o.steps(m)
        out[f"{k}_steps"] = str(spread(steps))
        out[f"{k}_generalized"] = f"{int(np.isfinite(steps).sum())} of {len(steps)}"
        out[f"{k}_speedup"] = str(spread(speedup(o, m)))
        out[f"{k}_norm_ratio"] = str(spread(o.norm_ratio(m)))
    removing = [m for m in METHODS if o.removes_delay(m)]
    out["removes_delay"] = ", ".join(removing) or "none"
    return out


def _answer(value: bool | None) -> str:
    return "—" if value is None else "yes" if value else "no"


def table(o: Outcome) -> str:
    """One row per method: steps to generalize, seeds that did, delay, speedup over weight
    decay, norm when it generalized over the init norm, and the two computed answers."""
    lines = [
        f"| method | steps to test acc ≥ {THRESHOLD} | seeds | delay (test/train step) | "
        "speedup vs weight decay | w / w0 then | removes the delay | needs the norm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in METHODS:
        steps = o.steps(m)
        lines.append(
            f"| {m} | {spread(steps)} | {int(np.isfinite(steps).sum())}/{len(steps)} | "
            f"{np.round(o.delays(m), 2).tolist()} | {spread(speedup(o, m))} | "
            f"{spread(o.norm_ratio(m))} | {_answer(o.removes_delay(m))} | "
            f"{_answer(o.needs_norm(m))} |"
        )
    return "\n".join(lines)


def preconditions(o: Outcome) -> dict[str, tuple[bool, str]]:
    d = o.delays(BASELINE)
    return {
        "the weight-decay baseline is late": (
            bool(np.all(d >= LATE)),  # NaN (never fit) and short delays fail; inf passes
            f"test step / train step at acc >= {THRESHOLD}: {np.round(d, 2).tolist()} "
            f"(>= {LATE:g} or never required)",
        )
    }


def method_verdict(o: Outcome, method: str) -> Verdict:
    """One lever: does it remove the delay (every seed generalizes, no delay of its own)? Its
    norm when it did is a note: whether it needs the norm to fall."""
    steps, delays = o.steps(method), o.delays(method)
    checks = {
        "every seed generalizes within the budget": (
            bool(np.all(np.isfinite(steps))),
            f"steps to test acc >= {THRESHOLD}: {steps.tolist()} (budget {o.setup.base.steps})",
        ),
        f"no delay of its own (test step <= {DELAY_REMOVED:g}x train step)": (
            bool(np.all(delays <= DELAY_REMOVED)),
            f"test step / train step: {np.round(delays, 2).tolist()}",
        ),
    }
    notes = [
        f"speedup over weight decay per seed: {np.round(speedup(o, method), 1).tolist()}",
        f"needs the norm: {_answer(o.needs_norm(method))} (w / w0 when it generalized: "
        f"{np.round(o.norm_ratio(method), 3).tolist()})",
    ]
    return judge(f"{method} removes the delay", METHOD_CRITERION, checks, preconditions(o), notes)


METHOD_CRITERION = (
    f"given a delay to remove (every weight-decay seed reaches test acc {THRESHOLD} at least "
    f"{LATE:g}x after its train step, or never), every seed of the method reaches it within "
    f"the budget (held {PERSIST} logged points) at most {DELAY_REMOVED:g}x after its train step"
)

CRITERION = (
    f"given a delay to remove (every weight-decay seed reaches test acc {THRESHOLD} at least "
    f"{LATE:g}x after its train step, or never): the norm held at 0.8·w0 removes the delay "
    f"(every seed within {DELAY_REMOVED:g}x of its train step), and every other method that "
    "removes it had, in every seed, its weight norm below its init norm when it generalized "
    "(it needs the norm); methods that do not remove the delay test nothing and are notes"
)


def verdict(o: Outcome) -> Verdict:
    """The paper's account against its rivals: the delay goes only where the norm does."""
    held = o.delays(HELD)
    checks = {
        "the norm held at 0.8·w0 removes the delay": (
            o.removes_delay(HELD),
            f"test step / train step: {np.round(held, 2).tolist()}",
        )
    }
    notes = []
    for m in METHODS:
        if m in (BASELINE, HELD):
            continue
        ratio = np.round(o.norm_ratio(m), 3).tolist()
        if o.removes_delay(m):
            checks[f"{m} removes the delay and needs the norm"] = (
                bool(o.needs_norm(m)),
                f"w / w0 when it generalized: {ratio} (< 1 in every seed required)",
            )
        else:
            notes.append(
                f"{m} does not remove the delay (test step / train step "
                f"{np.round(o.delays(m), 2).tolist()}); w / w0 when it generalized: {ratio}"
            )
    return judge(
        "Rivals: the delay goes only where the norm does",
        CRITERION,
        checks,
        preconditions(o),
        notes,
    )


def headline(o: Outcome) -> str:
    return f"levers that remove the delay: {numbers(o)['removes_delay']}"


@themed
def figure(o: Outcome, axis: str = "log"):
    """Train and test accuracy over steps, a panel per method, one line per seed."""
    rows = -(-len(METHODS) // 2)
    fig, axes = subplots(rows, 2, row_height=1.9, sharex=True, sharey=True)
    panels = axes.ravel()
    for ax, m in zip(panels, METHODS, strict=False):
        plot_seeds(ax, o.results[m], "train_acc", axis, PALETTE[0], "train")
        plot_seeds(ax, o.results[m], "test_acc", axis, PALETTE[1], "test")
        ax.axhline(THRESHOLD, color="grey", lw=0.8, ls=":")
        ax.set_title(m, fontsize=9)
        ax.set_ylabel("accuracy")
    for ax in panels[len(METHODS) :]:
        ax.axis("off")
    fig.legend(*panels[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    s = o.setup
    fig.suptitle(
        f"modular addition P={s.base.task.p}: profile '{s.profile}', {len(s.seeds)} seeds "
        f"(a line each), {axis} step axis"
    )
    return fig


@themed
def figure_norm(o: Outcome, axis: str = "log"):
    """The weight norm over its init norm, a line per seed, a colour per method."""
    fig, ax = subplots(1, 1, row_height=3.6)
    for i, m in enumerate(METHODS):
        runs = [_over_init(r) for r in o.results[m]]
        plot_seeds(ax, runs, "norm", axis, PALETTE[i % len(PALETTE)], m, ls="-" if i < 8 else "--")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("weight norm w / w0")
    s = o.setup
    ax.set_title(
        f"the norm under each lever: profile '{s.profile}', {len(s.seeds)} seeds (a line each)"
    )
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=7)
    return fig


def _over_init(r: RunResult) -> RunResult:
    """``r`` with its norm curve divided by its init norm."""
    return dataclasses.replace(r, metrics={**r.metrics, "norm": r["norm"] / r["norm"][0]})


CHAPTER = Chapter(
    "rivals",
    "Rivals on the same runs",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim3", "rivals"),
    claim="Only levers that bring the norm down remove the delay (vs Grokfast, StableMax, ⊥Grad)",
    headline=headline,
)
