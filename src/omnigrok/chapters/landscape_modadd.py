"""Claim 1 on modular addition itself: the transformer's reduced landscape (issue of the
skeptics' questions; paper Sec. 3.3 constrains this model at 0.8 of its init norm).

Claim 3 holds Nanda et al.'s transformer at 0.8·w0, the paper's constrained run, without
mapping the landscape that setting is read from. This chapter maps it: the norm held at α·w0
(weight decay 0, projection after every step) for α on a log grid from 0.1 to 10 with 0.8
added, the profile's modular-addition setting otherwise (claims 3 and 4) but for its steps
(``profiles.MODADD_LANDSCAPE``, where the choice is measured). It asks whether train loss is
L-shaped and test loss U-shaped in the norm here too, and where 0.8·w0 sits: at the test-loss
minimum w_c, or only inside the zone, near its edge.

Accuracy is read on the *novel* test pairs (whose mirror (b, a) is not in training): a model
that memorized (b, a) answers (a, b) without generalizing (see claim 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim1
from omnigrok.chapters.base import Chapter, fetch, final, modadd_base
from omnigrok.config import RunConfig
from omnigrok.report.metrics import spread
from omnigrok.report.plots import PALETTE, accuracy_axis, subplots, themed
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult

PAPER_ALPHA = 0.8  # the paper's constrained run: 0.8 of Nanda et al.'s init norm
ZONE = 0.95  # test accuracy (novel pairs) that counts as inside the zone: claim 3's threshold
AT_W_C = 1.5  # "at w_c": within this factor of the test-loss minimum (claim 2's edge factor)


@dataclass(frozen=True)
class Setup(base.Setup):
    """The profile's modular addition (``profiles.MODADD``), unconstrained in claims 3 and 4,
    here held at α·w0 with weight decay 0 for every α of the grid, for the landscape's own
    steps (``profiles.MODADD_LANDSCAPE``: at paper settings 6,000 of claim 3's 20,000)."""

    chapter = "landscape_modadd"
    alphas: tuple[float, ...] = field(init=False)
    held: RunConfig = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        n_alpha = profiles.MODADD_LANDSCAPE[self.profile]["n_alpha"]
        grid = np.round(np.geomspace(0.1, 10, n_alpha), 4)
        self._set("alphas", tuple(sorted({float(a) for a in grid} | {PAPER_ALPHA})))
        steps = profiles.MODADD_LANDSCAPE[self.profile]["steps"]
        held = modadd_base(self.profile).replace(weight_decay=0.0, constraint="init", steps=steps)
        self._set("held", held)

    def configs(self) -> list[RunConfig]:
        """α-major, as ``claim1.landscape`` reads them."""
        return [self.held.replace(init_scale=a, seed=s) for a in self.alphas for s in self.seeds]


setup = Setup


def _accuracy(r: RunResult) -> str:
    return "test_acc_novel" if "test_acc_novel" in r.metrics else "test_acc"


def run(s: Setup, progress: bool = True) -> claim1.Landscape:
    """The landscape (one sweep), test accuracy read on the novel pairs."""
    found = fetch(s.configs(), s.device, progress)
    results = [found[c] for c in s.configs()]
    n_a, n_s = len(s.alphas), len(s.seeds)
    grids = {m: final(results, m).reshape(n_a, n_s).T for m in ("norm", "train_loss", "test_loss")}
    acc = np.array([r[_accuracy(r)][-1] for r in results]).reshape(n_a, n_s).T
    return claim1.Landscape("modadd", np.array(s.alphas), test_acc=acc, **grids)


def _paper_index(land: claim1.Landscape) -> int:
    return int(np.flatnonzero(np.isclose(land.alphas, PAPER_ALPHA))[0])


def numbers(land: claim1.Landscape) -> dict[str, str]:
    i = _paper_index(land)
    g = land.goldilocks()
    return {
        "w_c": f"{g.w_c:.3g}",
        "w_c_seeds": str(spread([x.w_c for x in land.goldilocks_per_seed()])),
        "w_c_refined": str(land.refined()),
        "alpha_c": f"{land.alphas[np.argmin(np.abs(land.norm.mean(0) - g.w_c))]:.3g}",
        "paper_norm": str(spread(land.norm[:, i])),
        "paper_test_acc": str(spread(land.test_acc[:, i])),
        "edge": str(land.zone_edge(ZONE)),
        "paper_over_w_c": f"{land.norm[:, i].mean() / g.w_c:.3g}",
    }


def verdict(land: claim1.Landscape) -> Verdict:
    checks = {k.split(": ", 1)[1]: v for k, v in claim1.shape_checks(land).items()}
    i = _paper_index(land)
    acc, norm = land.test_acc[:, i], land.norm[:, i].mean()
    w_c = land.goldilocks().w_c
    checks[f"0.8·w0 is inside the zone (novel-pair test acc >= {ZONE}, every seed)"] = (
        bool(np.all(acc >= ZONE)),
        f"at α = {PAPER_ALPHA} (w = {norm:.3g}): test acc on novel pairs "
        f"{np.round(acc, 3).tolist()}",
    )
    ratio = norm / w_c
    checks[f"0.8·w0 is at w_c (within {AT_W_C:g}x of the test-loss minimum)"] = (
        bool(1 / AT_W_C <= ratio <= AT_W_C),
        f"0.8·w0 = {norm:.3g} is {ratio:.3g}x w_c = {w_c:.3g}; the zone's upper edge at "
        f"{ZONE}: {land.zone_edge(ZONE)}",
    )
    pre = {k.split(": ", 1)[1]: v for k, v in claim1.interior_precondition(land).items()}
    return judge("Claim 1 on modular addition", CRITERION, checks, pre)


CRITERION = (
    "on the transformer for modular addition: train loss L-shaped and test loss U-shaped in "
    "the held norm (claim 1's criterion), and the paper's constrained norm 0.8·w0 both inside "
    f"the zone (test accuracy on novel pairs >= {ZONE} for every seed) and at its minimum "
    f"(within {AT_W_C:g}x of the test-loss minimum w_c)"
)


def headline(land: claim1.Landscape) -> str:
    n = numbers(land)
    return f"w_c {n['w_c_seeds']}; 0.8·w0 = {n['paper_norm']} ({n['paper_over_w_c']}x w_c)"


@themed
def figure(land: claim1.Landscape, profile: str):
    """Train and test loss against the held norm, mean and min-max band over seeds, with the
    novel-pair test accuracy on a second axis; 0.8·w0 and w_c marked."""
    fig, ax = subplots(1, 1, row_height=4.0)
    x = land.norm.mean(0)
    w_c = land.goldilocks().w_c
    paper = x[_paper_index(land)]
    claim1.draw_losses(ax, land, w_c, f"w_c = {w_c:.3g} (test-loss minimum)")
    ax.axvline(paper, color=PALETTE[4], ls="-.", lw=1, label=f"0.8·w0 = {paper:.3g} (the paper's)")
    accuracy_axis(
        fig,
        ax,
        x,
        land.test_acc.mean(0),
        "test accuracy, novel pairs (seed mean, right axis)",
        "test accuracy (novel pairs)",
        ylim=(-0.02, 1.02),
    )
    ax.set_title(
        f"modular addition, reduced landscape\nprofile '{profile}', {land.norm.shape[0]} seeds"
    )
    return fig


CHAPTER = Chapter(
    "landscape_modadd",
    "Claim 1 on modular addition",
    Setup,
    run,
    numbers,
    verdict,
    parts=("landscape_modadd",),
    claim="The transformer's landscape: L and U in the held norm, and where 0.8·w0 sits",
    headline=headline,
)
