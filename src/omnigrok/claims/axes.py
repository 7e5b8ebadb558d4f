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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnigrok.claims.common import fetch, modadd_base, resolve
from omnigrok.config import RunConfig
from omnigrok.metrics import first_step_reaching, spread
from omnigrok.train import RunResult
from omnigrok.verdict import Verdict, judge

DEFAULT_SEEDS = 5  # the claim asks for 5 seeds in every profile but smoke


@dataclass(frozen=True)
class Setup:
    profile: str
    seeds: tuple[int, ...]
    device: str
    base: RunConfig

    def configs(self) -> list[RunConfig]:
        return [self.base.replace(seed=s) for s in self.seeds]


def setup(profile: str = "quick", seeds=None, device: str = "auto") -> Setup:
    if seeds is None and profile != "smoke":
        seeds = list(range(DEFAULT_SEEDS))
    profile, seeds, device = resolve(profile, seeds, device)
    return Setup(profile, tuple(seeds), device, modadd_base(profile))


def run(s: Setup, progress: bool = True) -> list[RunResult]:
    return fetch(s.configs(), s.device, progress)


def _position(step: float, total: int, axis: str) -> float:
    """Where ``step`` sits along the plotted x-range [1, total], from 0 to 1."""
    if axis == "log":
        return float(np.log(max(step, 1)) / np.log(total))
    return float(step / total)


def jump(r: RunResult) -> dict[str, float]:
    """The 10% -> 90% test-accuracy transition: its steps and how wide it looks per axis."""
    t10 = first_step_reaching(r.steps, r["test_acc"], 0.1)
    t90 = first_step_reaching(r.steps, r["test_acc"], 0.9)
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


def roughness(r: RunResult, axis: str, n: int = 100) -> float:
    """Largest neighbour-to-neighbour norm change, as a share of its range, sampled evenly
    along ``axis``."""
    steps, norm = r.steps[r.steps > 0], r["norm"][r.steps > 0]
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
    }


def verdict(results: list[RunResult]) -> Verdict:
    j = [jump(r) for r in results]
    lin, log = np.array([x["linear"] for x in j]), np.array([x["log"] for x in j])
    rough_lin = np.array([roughness(r, "linear") for r in results])
    rough_log = np.array([roughness(r, "log") for r in results])
    grokked = np.isfinite(lin)
    checks = {
        "every seed groks within the budget": (
            bool(grokked.all()),
            f"{int(grokked.sum())} of {len(results)} seeds reach 90% test accuracy",
        ),
        "the jump looks narrower on the log axis": (
            bool(grokked.any() and np.all(log[grokked] < lin[grokked])),
            f"share of the x-range: log {np.round(log, 3).tolist()} "
            f"vs linear {np.round(lin, 3).tolist()}",
        ),
        "the norm looks smoother on the log axis": (
            bool(np.all(rough_log < rough_lin)),
            f"largest step between neighbours: log {np.round(rough_log, 3).tolist()} vs "
            f"linear {np.round(rough_lin, 3).tolist()}",
        ),
    }
    return judge(
        "4. Linear vs log step axis",
        "for every seed that groks, the 10%->90% jump takes a smaller share of the log axis than "
        "of the linear axis, and the norm curve shows smaller kinks on the log axis",
        checks,
    )


def figure(results: list[RunResult], profile: str):
    """Accuracy (top) and norm (bottom), linear and log step axis side by side; a colour per
    seed, test accuracy solid and train accuracy dotted, never averaged (a mean blurs a jump)."""
    import matplotlib.pyplot as plt

    from omnigrok.plots import PALETTE, plot_seeds

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.8))
    c = results[0].config
    for j, axis in enumerate(("linear", "log")):
        for n, r in enumerate(results):
            color = PALETTE[n % len(PALETTE)]
            plot_seeds(axes[0, j], [r], "test_acc", axis, color, f"seed {r.config.seed}")
            plot_seeds(axes[0, j], [r], "train_acc", axis, color, None, ls=":")
            plot_seeds(axes[1, j], [r], "norm", axis, color, f"seed {r.config.seed}")
        axes[0, j].set_ylabel("accuracy (solid: test, dotted: train)")
        for ax in axes[:, j]:
            ax.set_title(
                f"P={c.task.p} modular addition, {axis} step axis\n"
                f"profile '{profile}', {len(results)} seeds (a colour each)",
                fontsize=10,
            )
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
