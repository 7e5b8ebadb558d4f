"""This package against the authors' own code (``KindXiaoming/Omnigrok``), case by case.

``benchmarks/official.py`` runs the official MNIST notebooks' model, init scaling, loss,
optimizer and loop (read from their code cells; only the data loading is pointed at this
package's embedded images) beside this package on the same settings, and writes a record
(``omnigrok/_data/official.json``: package data, so the page reads it on Colab too). This module
reads such a record: each case's quantities, official vs package, their difference against a
tolerance fixed before any run, and a verdict.

The tolerances (``TOLERANCES``) are stated in advance and are not tuned to the record: the two
codes draw their batches from different generators, so they are different seeds of the same
experiment; the spread between this package's own seeds (claim 2 at paper settings: the step
train accuracy reaches 0.95 varies by a few percent, test accuracy at 2e4 steps by ~0.01) sets
the scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnigrok.report.plots import PALETTE, subplots, themed

RECORD = Path(__file__).resolve().parents[1] / "_data" / "official.json"

# How far apart the two codes may be and still "agree", by the kind of quantity compared.
TOLERANCES = {
    "step": ("relative", 0.10),  # a milestone step: within 10%
    "acc": ("absolute", 0.02),  # an accuracy: within 0.02
    "ratio": ("relative", 0.02),  # a norm relative to its start: within 2%
}

# Below this, a difference is float32 storage, not a difference (see ``Comparison.agrees``).
STORAGE = 1e-6

# What each case tests, in the record's order; a case missing from the record is reported so.
CASES = {
    "large_init": "α = 8, γ = 0.01 (claim 2's run), the first steps of its 1e5 (the record says "
    "how many): when it memorizes, how far it has generalized, how far the norm has walked",
    "held_alpha1": "held at the norm of α = 1 for 3,000 steps, no weight decay (the landscape "
    "notebook's loop): the best test accuracy reached",
    "held_alpha8": "held at the norm of α = 8 for 3,000 steps: the best test accuracy reached "
    "(far above w_c: it should stay low)",
}


@dataclass(frozen=True)
class Comparison:
    """One quantity of one case and seed: both codes' values and whether they agree."""

    case: str
    seed: int
    quantity: str
    kind: str
    official: float
    package: float

    @property
    def difference(self) -> float:
        if TOLERANCES[self.kind][0] == "relative":
            return abs(self.package - self.official) / max(abs(self.official), 1e-12)
        return abs(self.package - self.official)

    @property
    def agrees(self) -> bool:
        both_never = math.isinf(self.official) and math.isinf(self.package)
        # STORAGE: float32 stores 1742/10000 as 0.17419999838, so 200 images in 10,000 would
        # read as 0.0200000016 > 0.02; the bound is on the quantity, not on its rounding.
        return both_never or self.difference <= TOLERANCES[self.kind][1] + STORAGE


def load(path: Path = RECORD) -> dict[str, Any]:
    """A record written by ``benchmarks/official.py``; a clear error if it is not one."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"official-code record {path} cannot be read ({err}); write it with "
            "`python benchmarks/official.py --official-repo PATH`"
        ) from err
    for key in ("official_commit", "package_commit", "cases"):
        if key not in record:
            raise ValueError(f"official-code record {path} lacks {key!r}")
    return record


def comparisons(record: Mapping[str, Any]) -> list[Comparison]:
    """Every compared quantity in ``record``: case -> seed -> quantity -> {kind, official,
    package}."""
    out = []
    for case, seeds in record["cases"].items():
        for seed, quantities in seeds.items():
            for name, q in quantities.items():
                if q["kind"] not in TOLERANCES:
                    raise ValueError(f"{case} {name}: kind must be one of {list(TOLERANCES)}")
                out.append(
                    Comparison(
                        case, int(seed), name, q["kind"], float(q["official"]), float(q["package"])
                    )
                )
    return out


def missing_cases(record: Mapping[str, Any]) -> list[str]:
    return [case for case in CASES if case not in record["cases"]]


PHRASES = {
    "agrees": "agrees with",
    "differs": "differs from",
    "incomplete": "is incomplete against",
}


def verdict(record: Mapping[str, Any]) -> tuple[str, str]:
    """("agrees" | "differs" | "incomplete", why): agrees when every quantity of every case is
    within its tolerance; differs naming the quantities that are not; incomplete when a case
    was not run (the cases that were are still judged in the table)."""
    rows = comparisons(record)
    off = [c for c in rows if not c.agrees]
    if off:
        names = "; ".join(f"{c.case} seed {c.seed} {c.quantity}" for c in off)
        return "differs", f"{len(off)} of {len(rows)} quantities outside tolerance: {names}"
    missing = missing_cases(record)
    if missing or not rows:
        return "incomplete", f"not run: {', '.join(missing) or 'every case'}"
    return "agrees", f"all {len(rows)} quantities within tolerance"


def _fmt(value: float, kind: str) -> str:
    if math.isinf(value):
        return "never"
    return f"{value:,.0f}" if kind == "step" else f"{value:.3f}"


def table(record: Mapping[str, Any], case: str) -> str:
    """Markdown table of one case: seed, quantity, official, package, difference, agrees."""
    lines = [
        "| seed | quantity | official code | this package | difference | within tolerance |",
        "|---|---|---|---|---|---|",
    ]
    for c in comparisons(record):
        if c.case != case:
            continue
        how, bound = TOLERANCES[c.kind]
        diff = f"{c.difference:.1%}" if how == "relative" else f"{c.difference:.4f}"
        limit = f"{bound:.0%}" if how == "relative" else f"{bound:g}"
        lines.append(
            f"| {c.seed} | {c.quantity} | {_fmt(c.official, c.kind)} | "
            f"{_fmt(c.package, c.kind)} | {diff} | {'yes' if c.agrees else '**no**'} (≤ {limit}) |"
        )
    return "\n".join(lines)


@themed
def figure(record: Mapping[str, Any]):
    """Each quantity's difference, package minus official, in units of its tolerance: a point
    per seed; inside the shaded band the two codes agree."""
    rows = comparisons(record)
    labels = list(dict.fromkeys(f"{c.case}\n{c.quantity}" for c in rows))
    fig, ax = subplots(1, 1, row_height=0.6 * len(labels) + 1.4)
    ax.axvspan(-1, 1, color=PALETTE[2], alpha=0.15, lw=0, label="within tolerance")
    ax.axvline(0, color="0.4", lw=0.8)
    seen: set[int] = set()
    for c in rows:
        how, bound = TOLERANCES[c.kind]
        scale = bound * (abs(c.official) if how == "relative" else 1.0)
        gap = 0.0 if c.agrees and math.isinf(c.official) else (c.package - c.official) / scale
        y = labels.index(f"{c.case}\n{c.quantity}") + (c.seed % 5 - 2) * 0.08
        first = c.seed not in seen
        seen.add(c.seed)
        color = PALETTE[c.seed % len(PALETTE)]
        ax.scatter(gap, y, color=color, s=24, zorder=3, label=f"seed {c.seed}" if first else None)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    seeds = sorted({c.seed for c in rows})
    ax.set(xlabel="package − official code, in tolerances (linear axis)")
    ax.set_title(f"against the authors' code\nseeds {seeds}, a point each", fontsize=10)
    ax.legend(loc="best")
    return fig
