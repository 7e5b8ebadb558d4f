"""Claim 3, a norm constraint removes the delay (paper Sec. 3.1 and 3.3, Fig. 5 and 7).

For one init scale, three regimes side by side, on MNIST and on modular addition:

* ``unconstrained``: weight decay γ, the norm free (the grokking baseline);
* ``held at w_c``: weight decay 0, projected after every step to the Goldilocks norm w_c
  (MNIST: claim 1's; modular addition: the paper's constrained run, α = 0.8 of Nanda's init);
* ``held at α·w0``: weight decay 0, projected to the large initial norm: does holding the norm
  high prevent generalization or only delay it?

The paper: on modular addition the constrained run reaches 95% test accuracy at ~280 steps vs
~5e3-8e3 unconstrained. The speedup is measured per seed (paired) with its spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnigrok.claims import large_init
from omnigrok.claims.common import fetch, modadd_base, resolve
from omnigrok.claims.goldilocks import goldilocks_norm_of
from omnigrok.config import RunConfig, check_float
from omnigrok.metrics import first_step_reaching, spread
from omnigrok.models import init_params
from omnigrok.norms import global_norm
from omnigrok.verdict import Verdict, judge

REGIMES = ("unconstrained", "held at w_c", "held at α·w0")
THRESHOLD = {"mnist": large_init.GENERALIZED, "modadd": 0.95}
TASK_LABELS = {"mnist": "MNIST (N=1000)", "modadd": "modular addition"}
MODADD_WC_ALPHA = 0.8  # the paper's constrained modular-addition run


@dataclass(frozen=True)
class Setup:
    profile: str
    seeds: tuple[int, ...]
    device: str
    bases: dict  # task -> unconstrained base RunConfig at the chosen α
    w_c: dict  # task -> target norm of the "held at w_c" regime

    def configs(self, task: str, regime: str) -> list[RunConfig]:
        base = self.bases[task]
        if regime == "held at w_c":
            base = base.replace(weight_decay=0.0, constraint="fixed", target_norm=self.w_c[task])
        elif regime == "held at α·w0":
            base = base.replace(weight_decay=0.0, constraint="init")
        return [base.replace(seed=s) for s in self.seeds]


def setup(
    profile: str = "quick",
    seeds=None,
    device: str = "auto",
    init_scale: float = 8.0,
    modadd_init_scale: float = 1.0,
    mnist_w_c: float | None = None,
) -> Setup:
    """``init_scale``: α of the MNIST runs; ``modadd_init_scale``: α of modular addition's
    (1 is the paper's grokking baseline); ``mnist_w_c``: the MNIST target norm (None: claim
    1's Goldilocks norm for the profile, trained if it is not stored)."""
    profile, seeds, device = resolve(profile, seeds, device)
    init_scale = check_float("init_scale", init_scale, positive=True)
    modadd_init_scale = check_float("modadd_init_scale", modadd_init_scale, positive=True)
    mnist = large_init.setup(profile, seeds, device, init_scale=init_scale).base
    modadd = modadd_base(profile, modadd_init_scale)
    # w_c of modular addition: the norm of Nanda's init at α = 0.8, averaged over the seeds.
    w0 = global_norm(init_params(modadd.model, seeds)).mean().item()
    if mnist_w_c is None:
        mnist_w_c = goldilocks_norm_of("mnist", profile, seeds, device)
    mnist_w_c = check_float("mnist_w_c", mnist_w_c, positive=True)
    w_c = {"mnist": mnist_w_c, "modadd": MODADD_WC_ALPHA * w0}
    return Setup(profile, tuple(seeds), device, {"mnist": mnist, "modadd": modadd}, w_c)


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    results: dict  # (task, regime) -> list[RunResult], seed order

    def steps_to_generalize(self, task: str, regime: str) -> np.ndarray:
        return np.array(
            [
                first_step_reaching(r.steps, r["test_acc"], THRESHOLD[task])
                for r in self.results[task, regime]
            ]
        )


def run(s: Setup, progress: bool = True) -> Outcome:
    results = {}
    for task in s.bases:
        for regime in REGIMES:
            results[task, regime] = fetch(s.configs(task, regime), s.device, progress)
    return Outcome(s, results)


def speedup(o: Outcome, task: str) -> tuple[np.ndarray, bool]:
    """Per seed: steps to generalize unconstrained / held at w_c. Where the unconstrained run
    never got there, the budget stands in and the speedup is a lower bound (flag True)."""
    free = o.steps_to_generalize(task, "unconstrained")
    held = o.steps_to_generalize(task, "held at w_c")
    budget = o.setup.bases[task].steps
    lower_bound = bool(np.any(~np.isfinite(free) & np.isfinite(held)))
    ratio = np.where(np.isfinite(free), free, budget) / np.maximum(held, 1)
    # Where the constrained run never generalized either, there is no speedup to speak of.
    return np.where(np.isfinite(held), ratio, np.nan), lower_bound


def numbers(o: Outcome) -> dict[str, str]:
    out = {}
    for task in o.setup.bases:
        for regime in REGIMES:
            key = regime.replace(" ", "_").replace("·", "").replace("α", "alpha")
            out[f"{task}_{key}_steps"] = str(spread(o.steps_to_generalize(task, regime)))
            out[f"{task}_{key}_final_test"] = str(
                spread([r["test_acc"][-1] for r in o.results[task, regime]])
            )
        ratio, lower = speedup(o, task)
        out[f"{task}_speedup"] = ("≥ " if lower else "") + str(spread(ratio))
        out[f"{task}_w_c"] = f"{o.setup.w_c[task]:.3g}"
    return out


def verdict(o: Outcome) -> Verdict:
    checks = {}
    for task in o.setup.bases:
        ratio, lower = speedup(o, task)
        held = o.steps_to_generalize(task, "held at w_c")
        checks[f"{TASK_LABELS[task]}: held at w_c generalizes"] = (
            bool(np.all(np.isfinite(held))),
            f"test acc >= {THRESHOLD[task]} at steps {held.tolist()}",
        )
        checks[f"{TASK_LABELS[task]}: >= 5x faster than unconstrained, every seed"] = (
            bool(np.all(np.nan_to_num(ratio) >= 5)),
            f"speedup per seed {np.round(ratio, 1).tolist()}"
            + (" (lower bounds)" if lower else ""),
        )
    return judge(
        "3. A constraint removes the delay",
        "on both tasks, every seed held at w_c reaches the test threshold (MNIST 0.8, modular "
        "addition 0.95) at least 5x sooner than the same seed unconstrained",
        checks,
    )


def figure(o: Outcome, axis: str = "log"):
    """Test accuracy and norm over steps for the three regimes, one line per seed."""
    import matplotlib.pyplot as plt

    from omnigrok.plots import PALETTE, plot_seeds

    tasks = list(o.setup.bases)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.2 * len(tasks), 6.4), squeeze=False)
    for j, task in enumerate(tasks):
        for i, regime in enumerate(REGIMES):
            plot_seeds(axes[0, j], o.results[task, regime], "test_acc", axis, PALETTE[i], regime)
            plot_seeds(axes[1, j], o.results[task, regime], "norm", axis, PALETTE[i], regime)
        c = o.setup.bases[task]
        axes[0, j].set_title(
            f"{TASK_LABELS[task]}, α={c.init_scale:g}\nprofile '{o.setup.profile}', "
            f"{len(o.setup.seeds)} seeds (a line each), {axis} step axis",
            fontsize=10,
        )
        axes[0, j].axhline(THRESHOLD[task], color="grey", lw=0.8, ls=":")
        axes[1, j].set_yscale("log")
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    return fig
