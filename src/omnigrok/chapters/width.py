"""The discussion's "bigger models may need bigger inits": the Goldilocks norm against width.

Claim 1's reduced landscape on MNIST (paper Sec. 2, Fig. 1: the norm held at α·w0 by projection
after every step, weight decay 0, α on the same log grid) repeated for hidden widths other than
the paper's 200, the rest of the setup unchanged. The default init's norm w0 grows with width,
so the question becomes: does the best norm w_c grow as fast? If it does, the best α
(α_c = w_c / w0) is the same at every width, and "α = 8" is the same distance from the zone for
any model size; if w_c grows more slowly, a wider model at the same α starts further out.

Width 200 is claim 1's own runs (the same configs, so the same stored results).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim1
from omnigrok.chapters.base import Chapter, fetch
from omnigrok.config import MLPSpec, RunConfig
from omnigrok.report.metrics import refined_minimum
from omnigrok.report.plots import PALETTE, log_scale_if_positive, subplots, themed, title

# How w_c's growth exponent is compared with w0's: the same when they differ by at most
# EXPONENT_TOLERANCE or by at most SEM_FACTOR standard errors of the seeds' exponents (stated
# criteria, not a significance test). Over widths 50 to 400, an exponent 0.1 off moves α_c by
# 8^0.1 = 1.23x, less than one step of claim 1's α grid (1.58x).
EXPONENT_TOLERANCE = 0.1
SEM_FACTOR = 2.0


@dataclass(frozen=True)
class Setup(base.Setup):
    """Claim 1's MNIST landscape for each hidden width of the profile (``profiles.WIDTHS``)."""

    chapter = "width"
    landscape: claim1.Setup = field(init=False)  # claim 1's: α grid, MNIST base
    widths: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set("landscape", claim1.Setup(self.profile, self.seeds, self.device))
        self._set("widths", profiles.WIDTHS[self.profile])

    def width_configs(self, width: int) -> list[RunConfig]:
        """The MNIST landscape runs with hidden width ``width``, α-major as claim 1's."""
        mnist = self.landscape.bases["mnist"]
        spec = MLPSpec((mnist.model.widths[0], width, width, mnist.model.widths[-1]))
        return self.landscape.task_configs("mnist", mnist.replace(model=spec))

    def configs(self) -> list[RunConfig]:
        return [c for width in self.widths for c in self.width_configs(width)]


setup = Setup


def run(s: Setup, progress: bool = True) -> dict[int, claim1.Landscape]:
    """Train (or load) each width's landscape, every width in one sweep."""
    found = fetch(s.configs(), s.device, progress)
    return {
        w: claim1.landscape(s.landscape, "mnist", [found[c] for c in s.width_configs(w)])
        for w in s.widths
    }


@dataclass(frozen=True)
class Scaling:
    """w_c and w0 against width, per seed, and their growth exponents (log-log slopes)."""

    widths: np.ndarray
    w_c: np.ndarray  # [seeds, widths]: each seed's landscape minimum
    w0: np.ndarray  # [seeds, widths]: each seed's init norm at α = 1
    exponent_w_c: np.ndarray  # [seeds]
    exponent_w0: float

    @property
    def alpha_c(self) -> np.ndarray:
        """The best α per seed and width, ``w_c / w0``."""
        return self.w_c / self.w0

    def comparison(self) -> str:
        """'slower than', 'as fast as' or 'faster than': w_c's growth against w0's, the
        same within ``EXPONENT_TOLERANCE`` or ``SEM_FACTOR`` standard errors of the seeds'
        exponents (one seed has no spread: the tolerance alone)."""
        e = self.exponent_w_c
        sem = e.std(ddof=1) / np.sqrt(len(e)) if len(e) > 1 else 0.0
        gap = e.mean() - self.exponent_w0
        if abs(gap) <= max(EXPONENT_TOLERANCE, SEM_FACTOR * sem):
            return "as fast as"
        return "slower than" if gap < 0 else "faster than"


def _slope(widths: np.ndarray, values: np.ndarray) -> float:
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def scaling(lands: dict[int, claim1.Landscape]) -> Scaling:
    """Each seed's w_c at each width (the minimum of its own test-loss curve, refined between
    grid points by ``refined_minimum``), and the growth exponents of w_c (per seed) and of the
    init norm w0 (the held norm over α)."""
    widths = np.array(sorted(lands), dtype=float)
    w_c = np.array(
        [
            [refined_minimum(n, t) for n, t in zip(lands[w].norm, lands[w].test_loss, strict=True)]
            for w in sorted(lands)
        ]
    ).T
    # constraint="init" holds each run at α·w0, so norm / α is that seed's w0.
    w0 = np.array([(lands[w].norm / lands[w].alphas).mean(1) for w in sorted(lands)]).T
    return Scaling(
        widths=widths,
        w_c=w_c,
        w0=w0,
        exponent_w_c=np.array([_slope(widths, seed) for seed in w_c]),
        exponent_w0=_slope(widths, w0.mean(0)),
    )


def numbers(sc: Scaling) -> dict[str, str]:
    """The prose's numbers: exponents with their spread, α_c at the smallest and largest width."""
    e = sc.exponent_w_c
    spread = f" ± {e.std(ddof=1):.2f}" if len(e) > 1 else ""
    lo, hi = sc.alpha_c[:, 0], sc.alpha_c[:, -1]
    return {
        "exponent_w_c": f"{e.mean():.2f}{spread}",
        "exponent_w0": f"{sc.exponent_w0:.2f}",
        "comparison": sc.comparison(),
        "widths": ", ".join(f"{w:g}" for w in sc.widths),
        "w_c": ", ".join(f"{v:.3g}" for v in sc.w_c.mean(0)),
        "alpha_c_first": f"{lo.mean():.2f}",
        "alpha_c_last": f"{hi.mean():.2f}",
        "width_first": f"{sc.widths[0]:g}",
        "width_last": f"{sc.widths[-1]:g}",
        "n_seeds": str(len(e)),
        "tolerance": f"{EXPONENT_TOLERANCE:g}",
    }


@themed
def figure(lands: dict[int, claim1.Landscape], sc: Scaling, profile: str):
    """Top: final test loss against the held norm, one line per seed, a colour per width.
    Bottom: w_c and w0 against width (log-log), a point per seed, with the fitted lines."""
    fig, (top, bottom) = subplots(2, 1, row_height=3.0)
    for i, width in enumerate(sorted(lands)):
        land, color = lands[width], PALETTE[i % len(PALETTE)]
        for j, (norm, loss) in enumerate(zip(land.norm, land.test_loss, strict=True)):
            top.plot(norm, loss, color=color, lw=1, label=f"width {width}" if j == 0 else None)
    top.set(xlabel="held weight norm w (log)", ylabel="final test loss (log)")
    log_scale_if_positive(top, "x")
    log_scale_if_positive(top, "y")
    top.legend()
    n_seeds = sc.w_c.shape[0]
    for values, color, marker, name, exponent in (
        (sc.w_c, PALETTE[3], "o", "w_c", sc.exponent_w_c.mean()),
        (sc.w0, PALETTE[0], "s", "w0 (α = 1)", sc.exponent_w0),
    ):
        for seed_values in values:
            bottom.scatter(sc.widths, seed_values, color=color, marker=marker, s=18)
        # Through the seeds' geometric mean: its slope is the mean of the per-seed slopes.
        log_mean = np.log(values).mean(0)
        fit = np.exp(np.polyval(np.polyfit(np.log(sc.widths), log_mean, 1), np.log(sc.widths)))
        bottom.plot(sc.widths, fit, color=color, lw=1, label=f"{name} ∝ width^{exponent:.2f}")
    bottom.set(xscale="log", yscale="log", xlabel="hidden width (log)", ylabel="norm (log)")
    bottom.legend()
    title(top, "MNIST: final test loss vs held norm, by width", profile, n_seeds)
    title(bottom, "MNIST 784-w-w-10: w_c and init norm vs width", profile, n_seeds)
    return fig


def _numbers(lands: dict[int, claim1.Landscape]) -> dict[str, str]:
    return numbers(scaling(lands))


CHAPTER = Chapter(
    "width",
    "Bigger models, bigger inits? w_c against width",
    Setup,
    run,
    _numbers,
    parts=("width",),
)
