"""How far a run trained in a stack drifts from the same run trained alone: the measurement
behind ``omnigrok.verify``'s whole-run tolerances.

    OMP_NUM_THREADS=1 python benchmarks/verify_drift.py [--out benchmarks/verify_drift.json]
        [--scratch DIR] [--only quick|paper]

Copies the committed archives to a temporary folder (they are never read in place, never
written), picks runs that were trained in stacks (a few per task family, cheap enough for one
thread: the quick archive's claim 2 MNIST runs, landscapes of MNIST, teacher-student, QM9 and
IMDb, the quick QM9 and IMDb regimes; from the paper archive landscape runs, two claim 2 runs,
its headline one among them, and a claim 3 run held at w_c), recomputes each alone from
scratch on one thread as ``verify --whole`` does, and records every book number
(``omnigrok.milestones.book_numbers``) on both sides with their difference in the unit of its
tolerance. ``--scratch`` keeps the recomputed runs in a results store, so a second call only
re-reads them (to re-summarise after a change of the comparison).
The quick archive's modular-addition runs are left out: a CPU trains the transformer one run
per stack (``sweep.CPU_STACK``), so they recompute bit for bit (``verify`` shows it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from omnigrok import milestones, verify
from omnigrok.config import RunConfig
from omnigrok.provenance import cpu_name
from omnigrok.store import COMMITTED_ARCHIVES, ResultStore

# (archive, what, which runs, how many): the first ``n`` matching runs, by seed then α.
Pick = tuple[str, str, Callable[[dict], bool], int]


def _is(task: str, steps: int, held: str, a: float = 0.0, wd: float = -1.0) -> Callable:
    """Runs of ``task`` for ``steps`` with constraint ``held`` (and, if given, init scale ``a``
    and weight decay ``wd``); MNIST at the chapters' N = 1000 (the phases vary N)."""

    def match(c: dict) -> bool:
        return (
            (c["task"]["name"], c["steps"], c["constraint"]) == (task, steps, held)
            and (not a or math.isclose(c["init_scale"], a, rel_tol=1e-3))
            and (wd < 0 or math.isclose(c["weight_decay"], wd, rel_tol=1e-3))
            and (task != "mnist" or c["task"]["n_train"] == 1000)
        )

    return match


# Cheap first, the paper's 1e5-step runs last (about 4 min each on a quiet core).
PICKS: tuple[Pick, ...] = (
    ("quick", "claim 2 MNIST, α=8 γ=0.2", _is("mnist", 10000, "none", 8.0, 0.2), 3),
    ("quick", "claim 2 MNIST, α=5.66 γ=0.2", _is("mnist", 10000, "none", 5.657, 0.2), 1),
    ("quick", "claim 2 MNIST, α=11.3 γ=0.2", _is("mnist", 10000, "none", 11.31, 0.2), 1),
    ("quick", "claim 3 MNIST held at w_c", _is("mnist", 10000, "fixed"), 1),
    ("quick", "claim 1 MNIST landscape", _is("mnist", 2000, "init"), 6),
    ("quick", "claim 1 teacher-student landscape", _is("teacher_student", 5000, "init"), 6),
    ("quick", "QM9 landscape", _is("qm9", 2000, "init"), 4),
    ("quick", "QM9 large init", _is("qm9", 10000, "none", 3.0), 1),
    ("quick", "QM9 baseline", _is("qm9", 10000, "none", 1.0), 1),
    ("quick", "QM9 held at w_c", _is("qm9", 10000, "fixed"), 1),
    ("quick", "IMDb landscape", _is("imdb", 1000, "init"), 4),
    ("quick", "IMDb large init", _is("imdb", 3000, "none", 6.0), 1),
    ("quick", "IMDb baseline", _is("imdb", 3000, "none", 1.0), 1),
    ("quick", "IMDb held at w_c", _is("imdb", 3000, "fixed"), 1),
    ("paper", "claim 1 teacher-student landscape", _is("teacher_student", 20000, "init"), 6),
    ("paper", "claim 1 MNIST landscape", _is("mnist", 10000, "init"), 6),
    ("paper", "QM9 landscape", _is("qm9", 2000, "init"), 4),
    ("paper", "claim 2 MNIST headline, α=8 γ=0.01", _is("mnist", 100000, "none", 8.0, 0.01), 1),
    ("paper", "claim 2 MNIST, α=11.3 γ=0.01", _is("mnist", 100000, "none", 11.31, 0.01), 1),
    ("paper", "claim 3 MNIST held at w_c", _is("mnist", 100000, "fixed"), 1),
)


def _manifests(archive: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(archive.glob("??/*/meta.json"))]


def _picked(archive: Path, match: Callable[[dict], bool], n: int) -> list[dict]:
    """The first ``n`` matching runs by seed, spread over α (a landscape's small, middle and
    large init at its first seed before the next)."""
    found = [m for m in _manifests(archive) if match(m["config"])]
    alphas = sorted({m["config"]["init_scale"] for m in found})
    spread = [alphas[round(i * (len(alphas) - 1) / max(n - 1, 1))] for i in range(n)]
    by_seed = sorted(found, key=lambda m: (m["config"]["seed"], m["config"]["init_scale"]))
    if len(alphas) > 1:
        chosen = []
        for a in spread:
            chosen.append(next(m for m in by_seed if m["config"]["init_scale"] == a))
        return chosen
    return by_seed[:n]


def _stack_size(archive: Path, meta: dict) -> int:
    """Runs trained in ``meta``'s stack: the archived runs of its task sharing its timing."""
    return sum(
        m["timing"] == meta["timing"] and m["config"]["task"] == meta["config"]["task"]
        for m in _manifests(archive)
    )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no inf: null is "never reached"


def measure(archive: Path, meta: dict, scratch: ResultStore) -> dict:
    """One run: recomputed alone (or re-read from ``scratch``), its book numbers compared."""
    config = RunConfig.from_dict(meta["config"])
    archived = ResultStore(archive, archives=()).load(config)
    fresh = scratch.load(config)
    if fresh is None:
        fresh = verify.recompute(config)
        scratch.save(fresh)
    numbers = []
    for a, b, diff in milestones.compare_whole(archived, fresh):
        numbers.append(
            {
                "name": a.name,
                "kind": a.kind,
                "archived": _finite(a.value),
                "recomputed": _finite(b.value),
                "difference": _finite(diff),
            }
        )
    ok, pointwise = verify.compare_start(archived, fresh, verify.VERIFY_STEPS)
    return {
        "key": meta["key"],
        "task": config.task.name,
        "stack": _stack_size(archive, meta),
        "trained_on": meta.get("device_name", meta["device"]),
        "steps": config.steps,
        # Training and evaluation seconds of the recomputation (kept in the scratch store).
        "recompute_seconds": round(sum(fresh.timing.values()), 1),
        "pointwise_first_steps_ok": ok,
        "pointwise": pointwise,
        "numbers": numbers,
    }


def summary(runs: list[dict]) -> dict:
    """Per task and kind of number: the largest difference measured, where, the tolerance
    ``omnigrok.verify`` states for it and its margin (tolerance / largest)."""
    out: dict[str, dict] = {}
    for task in sorted({r["task"] for r in runs}):
        tol = milestones.tolerance(task)
        for kind in milestones.KINDS:
            rows = [
                (n["difference"] if n["difference"] is not None else math.inf, r, n)
                for r in runs
                if r["task"] == task
                for n in r["numbers"]
                if n["kind"] == kind
            ]
            if all(n["archived"] is None and n["recomputed"] is None for _, _, n in rows):
                continue  # a curve the task does not log (a regression's accuracy)
            worst, run, number = max(rows, key=lambda x: x[0])
            out.setdefault(task, {})[kind] = {
                "largest": _finite(worst),
                "where": f"{run['archive']} {run['what']} ({run['key']}): {number['name']}, "
                f"archived {number['archived']}, recomputed {number['recomputed']}",
                "tolerance": tol[kind],
                "margin": _finite(round(tol[kind] / worst, 2)) if worst > 0 else None,
                "runs": len({r["key"] for _, r, _ in rows}),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("verify_drift.json"))
    parser.add_argument("--scratch", type=Path, default=None, help="store of recomputed runs")
    parser.add_argument("--only", choices=("quick", "paper"), default=None, help="one archive")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load = os.getloadavg()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = ResultStore(args.scratch or Path(tmp) / "scratch", archives=())
        copies = {}
        for name, folder in COMMITTED_ARCHIVES.items():
            copies[name] = Path(tmp) / name
            shutil.copytree(folder, copies[name], ignore=shutil.ignore_patterns("checkpoints"))
        for archive, what, match, n in PICKS:
            if args.only not in (None, archive):
                continue
            for meta in _picked(copies[archive], match, n):
                run = {"archive": archive, "what": what, **measure(copies[archive], meta, scratch)}
                runs.append(run)
                worst = {k: v["largest"] for k, v in summary([run])[run["task"]].items()}
                print(f"{archive} {what} {run['key']}: {run['recompute_seconds']} s; {worst}")
    record = {
        "what": "stack-versus-alone drift of the book numbers (omnigrok.milestones): "
        "archived runs trained in stacks, recomputed alone from scratch on one thread",
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_before": [round(x, 2) for x in load],
        },
        "units": {
            "step": "how far each side's step lies outside the other's steps at the level "
            "made easier and harder by its curve's value tolerance, relative to the later step; "
            "reached on one side only: (end - step) / end (omnigrok.milestones.step_gap)",
            "norm": "relative",
            "train acc, test acc": "absolute",
            "train loss, test loss": "|log10(a / b)|",
        },
        "largest": summary(runs),
        "runs": runs,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["largest"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
