"""Rivals on the same runs: the norm constraint against the explanations published since the
paper, on modular addition and on MNIST, same seeds, same step budget (issue 14, item 4).

The paper removes the delay by holding the weight norm at w_c (Sec. 3.1 MNIST, Sec. 3.3
modular addition, where w_c is 0.8·w0). Since then: Grokfast (Lee et al. 2024) amplifies the
slow part of the gradient with an EMA filter; Prieto et al. (ICLR 2025) blame "softmax
collapse" and generalize without weight decay with StableMax and with ⊥Grad; and the outputs'
scale, not the norm, might do the work. Each lever is a run-config field (``omnigrok.rivals``);
every method is one task's run of claim 3 (its unconstrained run: Nanda et al.'s settings on
modular addition, the α = 8 run of claim 2 on MNIST) with one change (the methods and what each
changes: ``chapters/rival_methods.py``).

Per task, method and seed: the step test accuracy reaches claim 3's threshold (held by the rule
of ``report.metrics``), its delay (over the train step at that threshold), and the weight norm
when it generalized over its init norm. A method *removes the delay* where every seed
generalizes within the budget with no delay of its own (claim 3's criterion); it is *as fast as
the constraint* where every seed generalizes and its median step is at most the held run's; it
*needs the norm* where every seed that generalized had brought its norm at least halfway (on a
log scale) from its init norm w0 to w_c by then: w / w0 at most sqrt(w_c / w0), 0.89 on modular
addition (w_c = 0.8·w0), about 0.35 on MNIST at α = 8. A lever that removes the delay, or is as
fast as the constraint, without the norm is evidence against the paper's account. The
output-scale control also tests the lazy-to-rich account (Kumar et al., ICLR 2024): there a
large init delays generalization through its outputs' scale, not its norm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim1, claim2, claim3, rival_methods
from omnigrok.chapters.base import Chapter, fetch
from omnigrok.chapters.rival_methods import (
    BASELINE,
    HELD,
    KEYS,
    METHODS,
)
from omnigrok.checks import check_float
from omnigrok.config import RunConfig
from omnigrok.report.metrics import HOLD_RULE, PERSIST, first_step_reaching, grokking_delay, spread
from omnigrok.report.plots import PALETTE, plot_seeds, subplots, themed
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult

TASKS = ("modadd", "mnist")
TASK_LABELS = claim3.TASK_LABELS
THRESHOLD = claim3.THRESHOLD  # claim 3's test accuracy per task
DELAY_REMOVED = claim3.DELAY_REMOVED  # test step / train step at most this: no delay
LATE = claim2.LATE  # the baseline's delay must be at least this: a delay to remove


@dataclass(frozen=True)
class Setup(base.Setup):
    """Every method on claim 3's run of each task. ``logit_scale``: the logits' root-mean-square
    held by modular addition's logit-scale controls (None: the profile's); ``mnist_w_c``: the
    MNIST norm held (None: claim 1's Goldilocks norm, as claim 3)."""

    chapter = "rivals"
    logit_scale: float | None = None
    mnist_w_c: float | None = None
    from_claim_1: bool = False  # mnist_w_c was read off claim 1's landscape (``with_w_c``)
    claim3: claim3.Setup = field(init=False)  # the base and held runs of each task

    def __post_init__(self) -> None:
        super().__post_init__()
        table = profiles.RIVALS[self.profile]
        scale = table["logit_scale"] if self.logit_scale is None else self.logit_scale
        self._set("logit_scale", check_float("logit_scale", scale, positive=True))
        held = claim3.Setup(self.profile, self.seeds, self.device, mnist_w_c=self.mnist_w_c)
        self._set("claim3", held)
        self._set("mnist_w_c", held.w_c["mnist"])

    @property
    def w_held(self) -> dict:
        """Task -> the norm its held runs keep (MNIST: None until claim 1's w_c is known)."""
        return self.claim3.w_c

    def base(self, task: str) -> RunConfig:
        """The task's unconstrained run of claim 3 (seed 0)."""
        return self.claim3.bases[task]

    def changes(self, task: str, method: str) -> dict:
        """What ``method`` changes in the task's base run (``HELD``: claim 3's regime)."""
        return rival_methods.changes(self.profile, self.logit_scale, task, method)

    def method_configs(self, task: str, method: str) -> list[RunConfig]:
        """The runs of one method on one task, in seed order."""
        if method == HELD:
            return self.claim3.regime_configs(task, "held at w_c")
        run = self.base(task).replace(**self.changes(task, method))
        return [run.replace(seed=s) for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        """Every method's runs; while MNIST's w_c is unknown, claim 1's MNIST landscape in
        place of MNIST's runs held at w_c (which need it), as claim 3."""
        known = self.mnist_w_c is not None
        waiting = [] if known else self.claim3.landscape.task_configs("mnist")
        return waiting + [
            c
            for task in TASKS
            for m in METHODS[task]
            if known or (task, m) != ("mnist", HELD)
            for c in self.method_configs(task, m)
        ]

    def planned(self) -> list[RunConfig]:
        """Every run, MNIST's w_c stood in by 1 where unknown (it changes values, not cost)."""
        known = self if self.mnist_w_c is not None else dataclasses.replace(self, mnist_w_c=1.0)
        return self.claim3.landscape.task_configs("mnist") + known.configs()


setup = Setup


def with_w_c(s: Setup, progress: bool = True) -> Setup:
    """``s`` with MNIST's w_c known: as given, or from claim 1's MNIST landscape (claim 3's)."""
    if s.mnist_w_c is not None:
        return s
    held = claim3.with_w_c(s.claim3, progress)
    return dataclasses.replace(s, mnist_w_c=held.w_c["mnist"], from_claim_1=True)


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    results: dict  # (task, method) -> list[RunResult], seed order
    landscape: claim1.Landscape | None = None  # claim 1's MNIST one (None: w_c was given)

    def steps(self, task: str, method: str) -> np.ndarray:
        """Per seed: first step test acc >= the task's threshold, held by the rule of
        ``report.metrics`` (inf: never)."""
        return np.array(
            [
                first_step_reaching(r.steps, r["test_acc"], THRESHOLD[task], PERSIST)
                for r in self.results[task, method]
            ]
        )

    def delays(self, task: str, method: str) -> np.ndarray:
        """Per seed: test step / train step at the threshold (inf: never generalized; NaN:
        never fit the training set either)."""
        return np.array(
            [
                grokking_delay(r.steps, r["train_acc"], r["test_acc"], THRESHOLD[task], PERSIST)
                for r in self.results[task, method]
            ]
        )

    def norm_ratio(self, task: str, method: str) -> np.ndarray:
        """Per seed: the weight norm when it generalized over its init norm (NaN: never)."""
        return np.array(
            [
                claim2.value_at(r, "norm", t) / r["norm"][0]
                for r, t in zip(self.results[task, method], self.steps(task, method), strict=True)
            ]
        )

    def as_fast_as_held(self, task: str, method: str) -> bool:
        """Every seed generalizes, the median step at most the norm constraint's."""
        steps, held = self.steps(task, method), self.steps(task, HELD)
        return bool(np.all(np.isfinite(steps)) and np.median(steps) <= np.median(held))

    def norm_needed(self, task: str, method: str) -> np.ndarray:
        """Per seed: the largest w / w0 that counts as having brought the norm down, halfway
        (log scale) from w0 to the task's w_c: sqrt(w_c / w0), at most 1."""
        w_c = self.setup.w_held[task]
        return np.array(
            [min(1.0, float(np.sqrt(w_c / r["norm"][0]))) for r in self.results[task, method]]
        )

    def removes_delay(self, task: str, method: str) -> bool:
        """Every seed generalizes within the budget with no delay of its own."""
        return bool(np.all(self.delays(task, method) <= DELAY_REMOVED))  # inf and NaN fail

    def needs_norm(self, task: str, method: str) -> bool | None:
        """Every seed that generalized had brought its norm halfway down to w_c by then
        (``norm_needed``; None: no seed generalized, nothing to say)."""
        ratio, needed = self.norm_ratio(task, method), self.norm_needed(task, method)
        finite = np.isfinite(ratio)
        return None if not finite.any() else bool(np.all(ratio[finite] <= needed[finite]))


def run(s: Setup, progress: bool = True) -> Outcome:
    """Every method's runs through one ``run_sweep``; where MNIST's w_c is not given, claim 1's
    MNIST landscape first (loaded, if stored), as claim 3; the outcome keeps it, for its
    precondition."""
    land = None
    if s.mnist_w_c is None or s.from_claim_1:  # stored by now where read off it before
        land = claim3.claim_1(s.claim3, progress)
        s = dataclasses.replace(s, mnist_w_c=land.goldilocks().w_c, from_claim_1=True)
    found = fetch(s.configs(), s.device, progress)
    results = {
        (task, m): [found[c] for c in s.method_configs(task, m)]
        for task in TASKS
        for m in METHODS[task]
    }
    return Outcome(s, results, land)


def speedup(o: Outcome, task: str, method: str) -> np.ndarray:
    """Per seed: the baseline's steps to generalize over the method's (the budget stands in
    where the baseline never got there; NaN where the method never did)."""
    free = o.steps(task, BASELINE)
    free = np.where(np.isfinite(free), free, o.setup.base(task).steps)
    mine = o.steps(task, method)
    return np.where(np.isfinite(mine), free / np.maximum(mine, 1), np.nan)


def numbers(o: Outcome) -> dict[str, str]:
    s, table = o.setup, profiles.RIVALS[o.setup.profile]
    out = {
        "logit_scale": f"{s.logit_scale:g}",
        "mnist_output_scale": f"{table['mnist_output_scale']:.3g}",
        "mnist_strong_decay": f"{table['mnist_strong_decay']:g}",
    }
    for task in TASKS:
        out[f"{task}_w_held"] = f"{s.w_held[task]:.3g}"
        out[f"{task}_weight_decay"] = f"{s.base(task).weight_decay:g}"
        for m in METHODS[task]:
            k, steps = f"{task}_{KEYS[m]}", o.steps(task, m)
            out[f"{k}_steps"] = str(spread(steps))
            out[f"{k}_generalized"] = f"{int(np.isfinite(steps).sum())} of {len(steps)}"
            out[f"{k}_speedup"] = str(spread(speedup(o, task, m)))
            out[f"{k}_norm_ratio"] = str(spread(o.norm_ratio(task, m)))
        removing = [m for m in METHODS[task] if o.removes_delay(task, m)]
        out[f"{task}_removes_delay"] = ", ".join(removing) or "none"
        out[f"{task}_fastest"] = fastest(o, task)
    return out


def fastest(o: Outcome, task: str) -> str:
    """The method whose every seed generalized with the fewest steps (median), with its
    speedup over weight decay and whether it needs the norm."""
    done = [m for m in METHODS[task] if np.all(np.isfinite(o.steps(task, m)))]
    if not done:
        return "none generalized in every seed"
    m = min(done, key=lambda m: np.median(o.steps(task, m)))
    return (
        f"{m} ({np.median(o.steps(task, m)):g} steps, median; "
        f"{np.median(speedup(o, task, m)):.3g}x weight decay; needs the norm: "
        f"{ANSWER[o.needs_norm(task, m)]})"
    )


ANSWER = {None: "—", True: "yes", False: "no"}  # a computed answer, as a table shows it


def table(o: Outcome, task: str) -> str:
    """Two tables, a row per method of ``task`` in each: how fast (steps to generalize, delay per
    seed, speedup over weight decay), then w / w0 when it generalized and the three computed
    answers (one table of all eight columns was wider than the book's column)."""
    speed = [
        f"| method | steps to test acc ≥ {THRESHOLD[task]} | delay per seed (test / train "
        "step) | speedup vs weight decay |",
        "|---|---|---|---|",
    ]
    answers = [
        "| method | w / w0 when it generalized | removes the delay | as fast as held | "
        "needs the norm |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS[task]:
        speed.append(
            f"| {m} | {spread(o.steps(task, m))} | {np.round(o.delays(task, m), 2).tolist()} | "
            f"{spread(speedup(o, task, m))} |"
        )
        answers.append(
            f"| {m} | {spread(o.norm_ratio(task, m))} | {ANSWER[o.removes_delay(task, m)]} | "
            f"{ANSWER[o.as_fast_as_held(task, m)]} | {ANSWER[o.needs_norm(task, m)]} |"
        )
    return "\n".join(speed) + "\n\n" + "\n".join(answers)


def preconditions(o: Outcome, task: str) -> dict[str, tuple[bool, str]]:
    d = o.delays(task, BASELINE)
    return {
        f"{TASK_LABELS[task]}: the weight-decay baseline is late": (
            bool(np.all(d >= LATE)),  # NaN (never fit) and short delays fail; inf passes
            f"test step / train step at acc >= {THRESHOLD[task]}: {np.round(d, 2).tolist()} "
            f"(>= {LATE:g} or never required)",
        )
    }


def method_verdict(o: Outcome, task: str, method: str) -> Verdict:
    """One lever on one task: does it remove the delay (every seed generalizes, no delay of its
    own)? Its norm when it did is a note: whether it needs the norm to fall."""
    steps, delays = o.steps(task, method), o.delays(task, method)
    checks = {
        "every seed generalizes within the budget": (
            bool(np.all(np.isfinite(steps))),
            f"steps to test acc >= {THRESHOLD[task]}: {steps.tolist()} "
            f"(budget {o.setup.base(task).steps})",
        ),
        f"no delay of its own (test step <= {DELAY_REMOVED:g}x train step)": (
            bool(np.all(delays <= DELAY_REMOVED)),
            f"test step / train step: {np.round(delays, 2).tolist()}",
        ),
    }
    notes = [
        f"speedup over weight decay per seed: {np.round(speedup(o, task, method), 1).tolist()}",
        f"as fast as the norm held at w_c: {ANSWER[o.as_fast_as_held(task, method)]}",
        f"needs the norm: {ANSWER[o.needs_norm(task, method)]} (w / w0 when it generalized: "
        f"{np.round(o.norm_ratio(task, method), 3).tolist()}; halfway to w_c: "
        f"{np.round(o.norm_needed(task, method), 3).tolist()})",
    ]
    return judge(
        f"{TASK_LABELS[task]}: {method} removes the delay",
        METHOD_CRITERION,
        checks,
        preconditions(o, task),
        notes,
    )


METHOD_CRITERION = (
    f"given a delay to remove (every weight-decay seed reaches the task's test threshold at "
    f"least {LATE:g}x after its train step, or never), every seed of the method reaches it "
    f"within the budget ({HOLD_RULE}) at most {DELAY_REMOVED:g}x after its "
    "train step"
)

CRITERION = (
    f"on each task, given a delay to remove (every weight-decay seed reaches the test threshold "
    f"at least {LATE:g}x after its train step, or never): the norm held at w_c removes the "
    f"delay (every seed within {DELAY_REMOVED:g}x of its train step), and every other method "
    "that removes it, or is as fast as the norm held at w_c (every seed generalizes, median "
    "step at most the held run's), had in every seed brought its weight norm at least halfway "
    "from w0 to w_c on a log scale (w / w0 <= sqrt(w_c / w0)) when it generalized: it needs the "
    "norm; slower methods test nothing and are notes"
)


def task_checks(o: Outcome, task: str) -> tuple[dict, list[str]]:
    """The verdict's checks and notes for one task."""
    label = TASK_LABELS[task]
    checks = {
        f"{label}: the norm held at w_c removes the delay": (
            o.removes_delay(task, HELD),
            f"test step / train step: {np.round(o.delays(task, HELD), 2).tolist()}",
        )
    }
    notes = []
    for m in METHODS[task]:
        if m in (BASELINE, HELD):
            continue
        ratio = np.round(o.norm_ratio(task, m), 3).tolist()
        needed = np.round(o.norm_needed(task, m), 3).tolist()
        delays = np.round(o.delays(task, m), 2).tolist()
        if o.removes_delay(task, m) or o.as_fast_as_held(task, m):
            how = "removes the delay" if o.removes_delay(task, m) else "is as fast as held"
            checks[f"{label}: {m} {how} and needs the norm"] = (
                bool(o.needs_norm(task, m)),
                f"w / w0 when it generalized: {ratio} (at most {needed} required); median step "
                f"{np.median(o.steps(task, m)):g} vs held {np.median(o.steps(task, HELD)):g}; "
                f"test step / train step {delays}",
            )
        else:
            notes.append(
                f"{label}: {m} neither removes the delay nor is as fast as held (test step / "
                f"train step {delays}); w / w0 when it generalized: {ratio}"
            )
    return checks, notes


def verdict(o: Outcome) -> Verdict:
    """The paper's account against its rivals: the delay goes only where the norm does."""
    checks, notes, pre = {}, [], {}
    for task in TASKS:
        c, n = task_checks(o, task)
        checks.update(c)
        notes += n
        pre.update(preconditions(o, task))
    # What the held runs and the norm ratios stand on: claim 1's w_c (where MNIST's was read
    # off it) an interior minimum, and every run finished.
    pre |= claim1.w_c_precondition(o.landscape, o.setup.mnist_w_c)
    pre |= base.complete_precondition([r for runs in o.results.values() for r in runs])
    return judge("Rivals: the delay goes only where the norm does", CRITERION, checks, pre, notes)


def headline(o: Outcome) -> str:
    return f"fastest lever: modular addition: {fastest(o, 'modadd')}; MNIST: {fastest(o, 'mnist')}"


@themed
def figure(o: Outcome, task: str, axis: str = "log"):
    """Train and test accuracy over steps on ``task``, a panel per method, one line per seed."""
    methods = METHODS[task]
    rows = -(-len(methods) // 2)
    fig, axes = subplots(rows, 2, row_height=1.9, sharex=True, sharey=True)
    panels = axes.ravel()
    for ax, m in zip(panels, methods, strict=False):
        plot_seeds(ax, o.results[task, m], "train_acc", axis, PALETTE[0], "train")
        plot_seeds(ax, o.results[task, m], "test_acc", axis, PALETTE[1], "test")
        ax.axhline(THRESHOLD[task], color="grey", lw=0.8, ls=":")
        ax.set_title(m, fontsize=9)
        ax.set_ylabel("accuracy")
    for ax in panels[len(methods) :]:
        ax.axis("off")
    fig.legend(*panels[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    s = o.setup
    fig.suptitle(
        f"{TASK_LABELS[task]}: profile '{s.profile}', {len(s.seeds)} seeds (a line each), "
        f"{axis} step axis"
    )
    return fig


@themed
def figure_norm(o: Outcome, task: str, axis: str = "log"):
    """The weight norm over its init norm on ``task``, a line per seed, a colour per method."""
    fig, ax = subplots(1, 1, row_height=3.6)
    for i, m in enumerate(METHODS[task]):
        runs = [_over_init(r) for r in o.results[task, m]]
        plot_seeds(ax, runs, "norm", axis, PALETTE[i % len(PALETTE)], m, ls="-" if i < 8 else "--")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("weight norm w / w0")
    s = o.setup
    ax.set_title(
        f"{TASK_LABELS[task]}: the norm under each lever, profile '{s.profile}', "
        f"{len(s.seeds)} seeds (a line each)",
        fontsize=9,
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
    parts=("claim1", "claim3", "rivals"),
    claim="Only levers that bring the norm down remove the delay or match the constraint (vs "
    "Grokfast, StableMax, ⊥Grad, a held output scale)",
    headline=headline,
    prepare=with_w_c,
    waits="its MNIST runs held at w_c wait for claim 1's MNIST landscape (w_c)",
)
