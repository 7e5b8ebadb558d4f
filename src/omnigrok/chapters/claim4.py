"""Claim 4, linear vs log step axis (paper Sec. 3.3 plots on a log axis; the discussion asks
whether that makes grokking look more sudden and the norm smoother than they are).

Modular addition in Nanda et al.'s setup (P = 113 in the paper profile), unconstrained, one line
per seed. Two measures of how each axis *shows* the same curves:

* jump width: the 10% -> 90% test-accuracy transition as a share of the plotted x-range, on
  each axis (a small share looks like a sudden jump). Also the axis-free ratio
  (t90 - t10) / t10: the transition's length relative to the time before it.
* norm roughness: sample the norm curve at 100 points evenly spaced along each axis and take
  the largest change between neighbours as a share of the norm's whole range (large = a
  visible kink, small = looks smooth).

Which accuracy: early on, test accuracy on modular addition counts test pairs (a, b) whose
mirror (b, a) is in training (a + b = b + a: ~30% of test pairs at train fraction 0.3), which
the model gets right by memorizing, not by generalizing; that plateau puts t10 anywhere. Where
a run logs ``test_acc_novel`` (accuracy on the test pairs whose mirror is not in training) the
transition is measured on it, else on ``test_acc``, and the verdict says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from omnigrok.chapters import base
from omnigrok.chapters.base import Chapter, fetch, modadd_base
from omnigrok.config import RunConfig
from omnigrok.report.metrics import HOLD_RULE, PERSIST, first_step_reaching, reaching, spread
from omnigrok.report.plots import PALETTE, plot_seeds, subplots, themed
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult
from omnigrok.task import make_task

# "Looks more sudden than it is", in numbers. Looks sudden: the 10% -> 90% rise takes at most
# SUDDEN_SHARE of the plotted x-range (a tenth of a figure's width reads as a step), and less of
# the log axis than of the linear one (else the axis is not what makes it look sudden: an early
# jump is narrower on the linear axis). Is not sudden: the axis-free width (t90 - t10) / t10
# is at least NOT_SUDDEN_WIDTH (the rise lasts at least half as long as all the training
# before it). A genuinely sudden jump (6000 -> 6300 of 10^4: width 0.05) fails the second; a
# gradual ramp over 72% of the run (2500 -> 9700: 15% of the log axis) fails the first.
SUDDEN_SHARE = 0.1
NOT_SUDDEN_WIDTH = 0.5


@dataclass(frozen=True)
class Setup(base.Setup):
    """Modular addition, unconstrained, at the profile's settings (``profiles.MODADD``);
    five seeds by default in every profile but smoke."""

    chapter = "claim4"
    base: RunConfig = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("base", modadd_base(self.profile))

    def configs(self) -> list[RunConfig]:
        return [self.base.replace(seed=s) for s in self.seeds]


setup = Setup


def run(s: Setup, progress: bool = True) -> list[RunResult]:
    found = fetch(s.configs(), s.device, progress)
    return [found[c] for c in s.configs()]


def _position(step: float, total: int, axis: str) -> float:
    """Where ``step`` sits along the plotted x-range [1, total], from 0 to 1."""
    if axis == "log":
        return float(np.log(max(step, 1)) / np.log(total))
    return float(step / total)


def accuracy_curve(r: RunResult) -> str:
    """The curve the transition is measured on: ``test_acc_novel`` (test pairs whose mirror is
    not in training: generalization proper) where the run logs it, else ``test_acc``."""
    return "test_acc_novel" if "test_acc_novel" in r.metrics else "test_acc"


def jump(r: RunResult) -> dict[str, float]:
    """The 10% -> 90% transition of ``accuracy_curve(r)`` (each threshold held by
    ``omnigrok.report.metrics``' rule): its steps and how wide it looks per axis."""
    acc = r[accuracy_curve(r)]
    t10 = first_step_reaching(r.steps, acc, 0.1, PERSIST)
    t90 = first_step_reaching(r.steps, acc, 0.9, PERSIST)
    total = r.config.steps
    if not (np.isfinite(t10) and np.isfinite(t90)):
        return {"t10": t10, "t90": t90, "relative": np.nan, "linear": np.nan, "log": np.nan}
    return {
        "t10": t10,
        "t90": t90,
        "relative": (t90 - t10) / max(t10, 1),
        "linear": _position(t90, total, "linear") - _position(t10, total, "linear"),
        "log": _position(t90, total, "log") - _position(t10, total, "log"),
    }


def reading(j: dict[str, float]) -> str:
    """One seed's transition in words: what each axis shows against the axis-free width."""
    if not np.isfinite(j["relative"]):
        return "no 10% -> 90% transition within the budget"
    looks = j["log"] <= SUDDEN_SHARE
    narrower = j["log"] < j["linear"]
    gradual = j["relative"] >= NOT_SUDDEN_WIDTH
    shares = f"log {j['log']:.3g}, linear {j['linear']:.3g} of the x-range"
    width = f"(t90 - t10)/t10 = {j['relative']:.3g}"
    if looks and narrower and gradual:
        return f"looks sudden on the log axis ({shares}) but is not ({width}): as claimed"
    if not looks:
        return f"does not look sudden even on the log axis ({shares}; {width})"
    if not narrower:
        return f"looks narrower on the linear axis than on the log one ({shares}; {width})"
    return f"is sudden whatever the axis ({width}; {shares})"


def roughness(r: RunResult, axis: str, n: int = 100) -> float:
    """Largest neighbour-to-neighbour norm change, as a share of its range, sampled evenly
    along ``axis``: 0 for a constant norm (no kinks on any axis), NaN where fewer than two
    steps after 0 are logged or the norm is not finite."""
    steps, norm = r.steps[r.steps > 0], np.asarray(r["norm"], float)[r.steps > 0]
    if len(steps) < 2 or not np.all(np.isfinite(norm)):
        return math.nan
    if norm.max() == norm.min():
        return 0.0
    if axis == "log":
        x = np.geomspace(steps[0], steps[-1], n)
    else:
        x = np.linspace(steps[0], steps[-1], n)
    sampled = np.interp(x, steps, norm)
    return float(np.abs(np.diff(sampled)).max() / (norm.max() - norm.min()))


def numbers(results: list[RunResult]) -> dict[str, str]:
    j = [jump(r) for r in results]
    return {
        "t10": str(spread([x["t10"] for x in j])),
        "t90": str(spread([x["t90"] for x in j])),
        "relative_width": str(spread([x["relative"] for x in j])),
        "width_linear": str(spread([x["linear"] for x in j])),
        "width_log": str(spread([x["log"] for x in j])),
        "rough_linear": str(spread([roughness(r, "linear") for r in results])),
        "rough_log": str(spread([roughness(r, "log") for r in results])),
        "curve": _curves(results),
    }


def symmetry(results: list[RunResult]) -> dict[str, str]:
    """The memorized-symmetry plateau: the share of test pairs whose mirror (b, a) is in
    training, and test accuracy on all pairs vs on the novel ones at twice the step each seed
    memorized (train accuracy >= 0.99). Addition commutes, so right after memorization the
    mirrored pairs score and the novel ones do not; "" values where a run lacks the novel
    curve (stored before it was logged)."""
    if "test_acc_novel" not in results[0].metrics:
        return {"mirrored_share": "", "plateau_all": "", "plateau_novel": "", "plateau_step": ""}
    novel = make_task(results[0].config.task).test_groups["novel"]
    at = [2 * first_step_reaching(r.steps, r["train_acc"], 0.99) for r in results]
    value = lambda r, m, t: float(np.interp(t, r.steps, r[m])) if np.isfinite(t) else np.nan  # noqa: E731
    return {
        "mirrored_share": f"{1 - novel.double().mean().item():.2f}",
        "plateau_step": str(spread(at)),
        "plateau_all": str(
            spread([value(r, "test_acc", t) for r, t in zip(results, at, strict=True)])
        ),
        "plateau_novel": str(
            spread([value(r, "test_acc_novel", t) for r, t in zip(results, at, strict=True)])
        ),
    }


# The milestones the discussion asks for per seed (issue: five seeds at P = 113 on a linear
# axis): memorization (train 95%), then test 10, 50, 90 and 95% on all test pairs and on the
# novel ones. On all pairs the early milestones can be met by memorized mirrors alone.
MILESTONES: tuple[tuple[str, float], ...] = (
    ("train_acc", 0.95),
    *((m, level) for m in ("test_acc", "test_acc_novel") for level in (0.1, 0.5, 0.9, 0.95)),
)
CURVE_WORDS = {"train_acc": "train", "test_acc": "test, all pairs", "test_acc_novel": "test, novel"}


def milestones(results: list[RunResult]) -> str:
    """A markdown table, a row per milestone and a column per seed: the step each seed's curve
    first reached the level, held by ``report.metrics``' rule ("never", or a crossing the run's
    end left unconfirmed). Seeds as columns keep it within the column width at five seeds.
    Novel-pair rows only where the runs log ``test_acc_novel``."""
    seeds = [r.config.seed for r in results]
    rows = [
        "| milestone | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    for metric, level in MILESTONES:
        if any(metric not in r.metrics for r in results):
            continue
        cells = []
        for r in results:
            reached = reaching(r.steps, r[metric], level, PERSIST)
            text = str(reached)
            cells.append("end, unconfirmed" if "not confirmed" in text else text)
        rows.append(f"| {CURVE_WORDS[metric]} ≥ {level:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _curves(results: list[RunResult]) -> str:
    """Which accuracy the transition was measured on, in words."""
    names = sorted({accuracy_curve(r) for r in results})
    words = {
        "test_acc_novel": "test pairs whose mirror is not in training (test_acc_novel)",
        "test_acc": "all test pairs (test_acc, whose early plateau includes memorized mirrors)",
    }
    return "; ".join(words[n] for n in names)


def _norm_why(results: list[RunResult], values: np.ndarray) -> str:
    """Why some seeds' norm roughness (``values``) says nothing, as an evidence suffix ("" if
    none): a norm that is not finite (diverged), logged at fewer than two steps, or constant."""
    why = {
        "not finite (a diverged run?)": [
            r.config.seed for r in results if not np.all(np.isfinite(r["norm"]))
        ],
        "logged at fewer than two steps after 0": [
            r.config.seed for r in results if np.count_nonzero(r.steps > 0) < 2
        ],
        "constant (no kinks on either axis)": [
            r.config.seed for r, v in zip(results, values, strict=True) if v == 0
        ],
    }
    parts = [f"norm {what} for seeds {seeds}" for what, seeds in why.items() if seeds]
    return f" ({'; '.join(parts)})" if parts else ""


CRITERION = (
    "given that every seed rises from 10% to 90% accuracy within the budget (each "
    f"{HOLD_RULE}; on test pairs whose mirror is not in training where logged), "
    f"for every seed the rise looks sudden on the log axis (at most {SUDDEN_SHARE:g} of the "
    "x-range, and narrower than on the linear axis) while the axis-free width (t90 - t10)/t10 "
    f"says it is not sudden (at least {NOT_SUDDEN_WIDTH:g}), and the norm curve shows smaller "
    "kinks on the log axis"
)


def verdict(results: list[RunResult]) -> Verdict:
    j = [jump(r) for r in results]
    lin, log = np.array([x["linear"] for x in j]), np.array([x["log"] for x in j])
    rel = np.array([x["relative"] for x in j])
    rough_lin = np.array([roughness(r, "linear") for r in results])
    rough_log = np.array([roughness(r, "log") for r in results])
    grokked = np.isfinite(rel)
    curve = _curves(results)
    preconditions = {
        "every seed groks within the budget": (
            bool(grokked.all()),
            f"{int(grokked.sum())} of {len(results)} seeds rise from 10% to 90% on {curve}; "
            f"t10 {[x['t10'] for x in j]}, t90 {[x['t90'] for x in j]}",
        ),
    }
    checks = {
        "the jump looks sudden on the log axis": (
            bool(np.all(log <= SUDDEN_SHARE)),
            f"share of the log x-range: {np.round(log, 3).tolist()} (at most {SUDDEN_SHARE:g} "
            "required)",
        ),
        "the axis makes it so: narrower on the log axis than on the linear one": (
            bool(np.all(log < lin)),
            f"share of the x-range: log {np.round(log, 3).tolist()} vs linear "
            f"{np.round(lin, 3).tolist()}",
        ),
        "it is not sudden by the axis-free width": (
            bool(np.all(rel >= NOT_SUDDEN_WIDTH)),
            f"(t90 - t10)/t10 = {np.round(rel, 3).tolist()} (at least {NOT_SUDDEN_WIDTH:g} "
            f"required) on {curve}",
        ),
        "the norm looks smoother on the log axis": (
            bool(np.all(rough_log < rough_lin)),
            f"largest step between neighbours: log {np.round(rough_log, 3).tolist()} vs "
            f"linear {np.round(rough_lin, 3).tolist()}" + _norm_why(results, rough_log + rough_lin),
        ),
    }
    notes = [f"seed {r.config.seed}: {reading(x)}" for r, x in zip(results, j, strict=True)]
    return judge("4. Linear vs log step axis", CRITERION, checks, preconditions, notes)


@themed
def figure(results: list[RunResult], profile: str):
    """Linear and log step axis side by side; a colour per seed, never averaged (a mean blurs a
    jump). Top: test accuracy on all pairs (solid) and train accuracy (dotted); middle, where
    logged: test accuracy on the novel pairs (mirror not in training), the generalization
    proper; bottom: the weight norm."""
    novel = all("test_acc_novel" in r.metrics for r in results)
    rows = ["test_acc", "test_acc_novel", "norm"] if novel else ["test_acc", "norm"]
    fig, axes = subplots(len(rows), 2, row_height=2.4, sharey="row", sharex="col")
    c = results[0].config
    for j, axis in enumerate(("linear", "log")):
        for n, r in enumerate(results):
            color = PALETTE[n % len(PALETTE)]
            for i, metric in enumerate(rows):
                label = f"seed {r.config.seed}" if (i, j) == (0, 0) else None
                plot_seeds(axes[i, j], [r], metric, axis, color, label)
            plot_seeds(axes[0, j], [r], "train_acc", axis, color, None, ls=":")
        axes[0, j].set_title(f"{axis} step axis")
        for i in range(len(rows) - 1):
            axes[i, j].set_xlabel("")
    ylabels = {
        "test_acc": "accuracy, all pairs\n(solid test, dotted train)",
        "test_acc_novel": "test accuracy,\nnovel pairs",
        "norm": "weight norm",
    }
    for i, metric in enumerate(rows):
        axes[i, 0].set_ylabel(ylabels[metric])
        axes[i, 1].set_ylabel("")
    axes[-1, 0].legend(*axes[0, 0].get_legend_handles_labels(), loc="best", fontsize="small")
    fig.suptitle(
        f"P={c.task.p} modular addition, profile '{profile}', {len(results)} seeds (a colour each)"
    )
    return fig


def headline(results: list[RunResult]) -> str:
    a = numbers(results)
    return (
        f"jump width: log axis {a['width_log']}, linear axis {a['width_linear']}; "
        f"(t90-t10)/t10 = {a['relative_width']}"
    )


CHAPTER = Chapter(
    "claim4",
    "Claim 4: linear vs log step axis",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim4",),
    claim="A log step axis makes grokking look sudden",
    headline=headline,
)
