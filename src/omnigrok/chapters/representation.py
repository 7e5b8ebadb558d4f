"""Is representation learning the key? (the skeptics' questions; paper Sec. 4.)

The other chapters measure norms and accuracies; this one measures representations, in the two
ways the question splits:

* **does generalization follow the representation when the norm is held fixed?** On modular
  addition the embedding of the numbers is logged along training as its *Fourier
  concentration*: the share of its (non-constant) power in its 5 strongest frequencies
  (``tasks.modadd.fourier_concentration``; Nanda et al.'s key frequencies). Three regimes side
  by side: claim 3's grokking run (weight decay 1), the paper's constrained run (the norm held
  at 0.8·w0, weight decay 0), and weight decay 0 with the norm free (no pull towards the zone).
  Per seed: the step where the concentration has made half its rise, and the step where test
  accuracy on novel pairs reaches 0.95 (claim 3's threshold).
* **does generalization follow the norm when the representation is given?** The paper's MNIST
  experiment (its ``mnist-repr`` code): each image x of class c is fed as m·x + (1 - m)·t_c,
  t_c a constant image whose level names the class, so m = 0 hands the model a perfect
  representation and m = 1 is MNIST. Claim 1's reduced landscape (norm held at α·w0, weight
  decay 0) for each m: where in α does it generalize?
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from omnigrok import profiles
from omnigrok.chapters import base, claim1, claim2, landscape_modadd
from omnigrok.chapters.base import Chapter, fetch, modadd_base
from omnigrok.config import RunConfig
from omnigrok.report.metrics import PERSIST, first_step_reaching, spread
from omnigrok.report.plots import PALETTE, band, plot_seeds, subplots, themed
from omnigrok.report.verdict import Verdict, judge
from omnigrok.store import RunResult
from omnigrok.tasks.modadd import TOP_FREQUENCIES

PROBE = f"fourier_top{TOP_FREQUENCIES}"
REGIMES = ("weight decay 1", "held at 0.8·w0", "weight decay 0, free")
HELD_ALPHA = landscape_modadd.PAPER_ALPHA  # the paper's constrained run: 0.8 of the init norm
GENERALIZED = 0.95  # novel-pair test accuracy: claim 3's threshold on modular addition
# A representation "forms" when the concentration rises by at least MIN_RISE (a share of the
# power: Nanda's init at P = 59 holds ~0.2 in its top 5, an embedding on 5 frequencies 1); its
# step is the first logged step past HALF of its rise, held by omnigrok.report.metrics' rule.
MIN_RISE = 0.1
HALF = 0.5
ZONE = claim2.GENERALIZED  # MNIST: final test accuracy that counts as generalizing


@dataclass(frozen=True)
class Setup(base.Setup):
    """Modular addition in three regimes with the Fourier probe (``profiles.MODADD``), and
    claim 1's MNIST landscape at every ``alpha_stride``-th α for each input messiness m
    (``profiles.REPRESENTATION``)."""

    chapter = "representation"
    messiness: tuple[float, ...] = field(init=False)
    alphas: tuple[float, ...] = field(init=False)
    regimes: dict = field(init=False)  # regime -> modular-addition base RunConfig
    landscape: claim1.Setup = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        p = profiles.REPRESENTATION[self.profile]
        landscape = claim1.Setup(self.profile, self.seeds, self.device)
        free = modadd_base(self.profile).replace(probe=PROBE)
        regimes = {
            "weight decay 1": free,
            # Each seed held at 0.8 of its own init norm (as the modular-addition landscape's
            # α = 0.8 run), not at a mean over the seeds chosen.
            "held at 0.8·w0": free.replace(
                weight_decay=0.0, constraint="init", init_scale=HELD_ALPHA
            ),
            "weight decay 0, free": free.replace(weight_decay=0.0),
        }
        self._set("messiness", tuple(sorted(p["messiness"])))
        self._set("alphas", landscape.alphas[:: p["alpha_stride"]])
        self._set("regimes", regimes)
        self._set("landscape", landscape)

    def regime_configs(self, regime: str) -> list[RunConfig]:
        return [self.regimes[regime].replace(seed=s) for s in self.seeds]

    def mnist_configs(self, messiness: float) -> list[RunConfig]:
        """Claim 1's MNIST runs with inputs at ``messiness``, α-major over ``alphas`` (m = 1:
        claim 1's own runs, the same stored results)."""
        held = self.landscape.bases["mnist"]
        held = held.replace(task=dataclasses.replace(held.task, messiness=messiness))
        return [held.replace(init_scale=a, seed=s) for a in self.alphas for s in self.seeds]

    def configs(self) -> list[RunConfig]:
        modadd = [c for r in REGIMES for c in self.regime_configs(r)]
        return modadd + [c for m in self.messiness for c in self.mnist_configs(m)]


setup = Setup


def representation_step(r: RunResult) -> float:
    """The step the embedding's Fourier concentration has made ``HALF`` its rise (held
    by ``omnigrok.report.metrics``' rule); ``inf`` where it never rises by ``MIN_RISE``."""
    c = np.asarray(r[PROBE], float)
    rise = np.nanmax(c) - c[0]
    if not rise >= MIN_RISE:  # NaN (a diverged run) fails too
        return float("inf")
    return first_step_reaching(r.steps, c, c[0] + HALF * rise, PERSIST)


def generalization_step(r: RunResult) -> float:
    """First step novel-pair test accuracy >= ``GENERALIZED``, held (``report.metrics``)."""
    return first_step_reaching(r.steps, r["test_acc_novel"], GENERALIZED, PERSIST)


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    modadd: dict  # regime -> list[RunResult], seed order
    mnist: dict  # messiness -> claim1.Landscape over ``setup.alphas``
    mnist_runs: dict  # messiness -> list[RunResult], α-major as ``Setup.mnist_configs``

    def results(self) -> list[RunResult]:
        """Every run of the page (for its provenance)."""
        return sum(self.modadd.values(), []) + sum(self.mnist_runs.values(), [])

    def steps(self, regime: str) -> tuple[np.ndarray, np.ndarray]:
        """Per seed: (representation step, generalization step)."""
        runs = self.modadd[regime]
        return (
            np.array([representation_step(r) for r in runs]),
            np.array([generalization_step(r) for r in runs]),
        )

    def concentration(self, regime: str, at: int) -> np.ndarray:
        """Per seed: the concentration at logged point ``at`` (0: init, -1: end)."""
        return np.array([r[PROBE][at] for r in self.modadd[regime]])

    def zone(self, messiness: float) -> np.ndarray:
        """Which α of the grid generalize at ``messiness``: seed-mean final test acc >= ZONE."""
        return self.mnist[messiness].test_acc.mean(0) >= ZONE


def run(s: Setup, progress: bool = True) -> Outcome:
    found = fetch(s.configs(), s.device, progress)
    modadd = {r: [found[c] for c in s.regime_configs(r)] for r in REGIMES}
    runs = {m: [found[c] for c in s.mnist_configs(m)] for m in s.messiness}
    mnist = {m: claim1.landscape(s, "mnist", runs[m]) for m in s.messiness}
    return Outcome(s, modadd, mnist, runs)


def _key(regime: str) -> str:
    return regime.replace(" ", "_").replace(",", "").replace("·", "").replace(".", "")


def _alphas(o: Outcome, mask: np.ndarray) -> str:
    return ", ".join(f"{a:g}" for a in np.array(o.setup.alphas)[mask]) or "none"


def numbers(o: Outcome) -> dict[str, str]:
    out = {}
    for regime in REGIMES:
        t_repr, t_gen = o.steps(regime)
        k = _key(regime)
        out[f"{k}_repr_step"] = str(spread(t_repr))
        out[f"{k}_gen_step"] = str(spread(t_gen))
        out[f"{k}_conc_init"] = str(spread(o.concentration(regime, 0)))
        out[f"{k}_conc_end"] = str(spread(o.concentration(regime, -1)))
    for i, m in enumerate(o.setup.messiness):
        acc = o.mnist[m].test_acc
        out[f"m{i}"] = f"{m:g}"
        out[f"m{i}_zone"] = _alphas(o, o.zone(m))
        out[f"m{i}_best_acc"] = str(spread(acc.max(1)))
        out[f"m{i}_acc_range"] = f"{np.ptp(acc.mean(0)):.3g}"
    given, raw = o.setup.messiness[0], o.setup.messiness[-1]
    out["given_m"], out["given_zone"] = f"{given:g}", _alphas(o, o.zone(given))
    out["raw_m"], out["raw_zone"] = f"{raw:g}", _alphas(o, o.zone(raw))
    return out


def table(o: Outcome) -> str:
    """Modular addition, a row per regime: steps and concentrations over the seeds."""
    lines = [
        f"| regime | concentration, init → end | representation step | test acc ≥ "
        f"{GENERALIZED} (novel pairs) |",
        "|---|---|---|---|",
    ]
    for regime in REGIMES:
        t_repr, t_gen = o.steps(regime)
        init, end = o.concentration(regime, 0), o.concentration(regime, -1)
        lines.append(
            f"| {regime} | {spread(init)} → {spread(end)} | {spread(t_repr)} | {spread(t_gen)} |"
        )
    return "\n".join(lines)


def mnist_table(o: Outcome) -> str:
    """MNIST, a row per messiness: final test accuracy per α (seed mean) and the zone."""
    head = " | ".join(f"α={a:g}" for a in o.setup.alphas)
    lines = [f"| m | {head} | α with test acc ≥ {ZONE} |", "|---" * (len(o.setup.alphas) + 2) + "|"]
    for m in o.setup.messiness:
        cells = " | ".join(f"{v:.3f}" for v in o.mnist[m].test_acc.mean(0))
        lines.append(f"| {m:g} | {cells} | {_alphas(o, o.zone(m))} |")
    return "\n".join(lines)


def modadd_checks(o: Outcome) -> tuple[dict, list[str]]:
    checks, notes = {}, []
    steps = {r: o.steps(r) for r in REGIMES}
    general = {r: np.isfinite(steps[r][1]) for r in REGIMES}
    lines, ok = [], True
    for r in REGIMES:
        t_repr, t_gen = steps[r]
        g = general[r]
        ok &= bool(np.all(t_repr[g] <= t_gen[g]))
        lines.append(f"{r}: representation {t_repr.tolist()}, generalization {t_gen.tolist()}")
    checks[
        "modular addition: in every run that generalizes, the representation forms first (its "
        "concentration makes half its rise no later than test acc reaches "
        f"{GENERALIZED})"
    ] = (ok, "steps per seed (inf: never): " + "; ".join(lines))
    held_repr, held_gen = steps["held at 0.8·w0"]
    checks["modular addition, norm held at 0.8·w0: every seed generalizes and forms it"] = (
        bool(np.all(np.isfinite(held_gen)) and np.all(np.isfinite(held_repr))),
        f"representation steps {held_repr.tolist()}, generalization steps {held_gen.tolist()}",
    )
    end = {r: o.concentration(r, -1) for r in REGIMES}
    won = np.concatenate([end[r][general[r]] for r in REGIMES])
    lost = np.concatenate([end[r][~general[r]] for r in REGIMES])
    if len(won) and len(lost):
        checks[
            "modular addition: every run that generalized ends more concentrated than every "
            "run that did not"
        ] = (
            bool(won.min() > lost.max()),
            f"final concentration: generalized {np.round(np.sort(won), 3).tolist()}, not "
            f"{np.round(np.sort(lost), 3).tolist()}",
        )
    else:
        notes.append(
            "modular addition: "
            + ("every run generalized" if len(won) else "no run generalized")
            + ": no contrast between runs that did and runs that did not"
        )
    return checks, notes


def mnist_checks(o: Outcome) -> dict:
    ms = o.setup.messiness
    zones = {m: o.zone(m) for m in ms}
    widths = [int(zones[m].sum()) for m in ms]
    given, raw = zones[ms[0]], zones[ms[-1]]
    return {
        f"MNIST: given the representation (m = {ms[0]:g}) the zone holds every α of the raw "
        f"images' (m = {ms[-1]:g}) and more": (
            bool(np.all(given[raw]) and given.sum() > raw.sum()),
            f"α with test acc ≥ {ZONE}: m = {ms[0]:g}: {_alphas(o, given)}; m = {ms[-1]:g}: "
            f"{_alphas(o, raw)}",
        ),
        "MNIST: the zone narrows as the inputs get messier (never wider at a larger m)": (
            bool(np.all(np.diff(widths) <= 0)),
            "α in the zone per m: "
            + ", ".join(f"m = {m:g}: {w}" for m, w in zip(ms, widths, strict=True))
            + f" (of {len(o.setup.alphas)})",
        ),
    }


def preconditions(o: Outcome) -> dict:
    ms = o.setup.messiness
    raw = o.zone(ms[-1])
    some = any(np.isfinite(o.steps(r)[1]).any() for r in REGIMES)
    return {
        f"modular addition: some run reaches test acc {GENERALIZED} on novel pairs": (
            some,
            "generalized runs per regime: "
            + ", ".join(f"{r}: {int(np.isfinite(o.steps(r)[1]).sum())}" for r in REGIMES),
        ),
        f"MNIST: the raw images (m = {ms[-1]:g}) have a zone (some α reaches {ZONE})": (
            bool(raw.any()),
            f"α with test acc ≥ {ZONE} at m = {ms[-1]:g}: {_alphas(o, raw)}",
        ),
        "MNIST: more than one messiness, from a given representation (m = 0) up": (
            len(ms) > 1 and ms[0] == 0.0,
            f"m = {', '.join(f'{m:g}' for m in ms)}",
        ),
    }


def verdict(o: Outcome) -> Verdict:
    checks, notes = modadd_checks(o)
    checks.update(mnist_checks(o))
    return judge(
        "Is representation learning the key?", CRITERION, checks, preconditions(o), notes=notes
    )


CRITERION = (
    f"given runs that generalize: on modular addition, in every run that reaches test accuracy "
    f"{GENERALIZED} on novel pairs the embedding's top-{TOP_FREQUENCIES} Fourier concentration "
    f"has made half its rise (of at least {MIN_RISE:g}) no later, every seed held at 0.8·w0 "
    "does both, and runs that generalized end more concentrated than runs that did not (where "
    "both exist); on MNIST, with the norm held at α·w0, the set of α whose seed-mean final "
    f"test accuracy reaches {ZONE} (the zone) at m = 0 holds the raw images' zone and more, "
    "and never widens as m grows"
)


def headline(o: Outcome) -> str:
    t_repr, t_gen = o.steps("held at 0.8·w0")
    ms = o.setup.messiness
    return (
        f"held at 0.8·w0: representation at {spread(t_repr)}, generalization at "
        f"{spread(t_gen)} steps; MNIST zone {int(o.zone(ms[0]).sum())} α at m = {ms[0]:g} vs "
        f"{int(o.zone(ms[-1]).sum())} at m = {ms[-1]:g}"
    )


@themed
def figure_modadd(o: Outcome, axis: str = "log"):
    """Novel-pair test accuracy (top) and the embedding's Fourier concentration (bottom)
    over steps, the three regimes, one line per seed."""
    fig, ax = subplots(2, 1, row_height=2.9, sharex=True)
    for i, regime in enumerate(REGIMES):
        plot_seeds(ax[0], o.modadd[regime], "test_acc_novel", axis, PALETTE[i], regime)
        plot_seeds(ax[1], o.modadd[regime], PROBE, axis, PALETTE[i])
    ax[0].axhline(GENERALIZED, color="grey", lw=0.8, ls=":")
    ax[0].set_ylabel("test accuracy\n(novel pairs)")
    ax[1].set_ylabel(f"share of embedding power\nin its top {TOP_FREQUENCIES} frequencies")
    ax[1].set_ylim(0, 1.02)
    fig.legend(*ax[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    p = o.setup.regimes["weight decay 1"].task.p
    fig.suptitle(
        f"modular addition, P = {p}: accuracy and Fourier concentration\n"
        f"profile '{o.setup.profile}', {len(o.setup.seeds)} seeds (a line each), {axis} step axis"
    )
    return fig


@themed
def figure_mnist(o: Outcome):
    """Final test accuracy against α (the norm held at α·w0), a curve per input messiness m,
    mean and min-max band over seeds."""
    fig, ax = subplots(1, 1, row_height=4.0)
    for i, m in enumerate(o.setup.messiness):
        land = o.mnist[m]
        band(ax, land.alphas, land.test_acc, PALETTE[i % len(PALETTE)], f"m = {m:g}")
    ax.axhline(ZONE, color="grey", lw=0.8, ls=":", label=f"zone: test acc ≥ {ZONE}")
    ax.set(
        xscale="log",
        xlabel="init scale α (norm held at α·w0, weight decay 0; log axis)",
        ylabel="final test accuracy",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7.5, loc="lower left")
    ax.set_title(
        "MNIST: inputs m·x + (1 - m)·(class template); m = 0 gives the representation\n"
        f"profile '{o.setup.profile}', {len(o.setup.seeds)} seeds"
    )
    return fig


CHAPTER = Chapter(
    "representation",
    "Is representation learning the key?",
    Setup,
    run,
    numbers,
    verdict,
    parts=("claim1", "representation"),
    claim="Generalization follows the representation; the norm matters where it must be learned",
    headline=headline,
)
