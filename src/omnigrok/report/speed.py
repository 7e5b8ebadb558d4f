"""The Performance page's numbers: the stored speed measurement, the speed issue's targets
judged on it, its tables and its figure. Nothing here measures: ``benchmarks/run.py`` does
(its loops are in ``benchmarks/measure.py``, apart from the code they measure, as nanoGPT keeps
its ``bench.py``) and writes the stored measurement, which this module reads.

The stored measurement ships with the package (``omnigrok/_data/benchmarks.json``), so the page
reads it from a clone, an installed package and Colab alike. It is one machine's measurement of
one commit; ``run.py``, ``ray_scaling.py``, ``book_build.py`` and ``transformer_stack.py`` each
add their key to it in place (``--json``), and a commit records the new measurement.

The targets (``TARGETS``, checked by ``ratios``):

- MNIST paper MLP, K = 20: >= 80% of the measured matmul limit, >= 3x the plain float64 loop
  and >= 2x the plain float32 loop per run;
- teacher-student: >= 20x the plain loop per run (small models are overhead-bound), at the
  largest K measured (claim 1 stacks 33 to 105 such runs);
- P = 113 transformer: the full-batch step >= 1.5x faster than ``NandaTransformer`` (identical
  math, every position computed), logits equal to 1e-5;
- evaluation under 10% of the time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omnigrok.config import RunConfig
from omnigrok.models.mlp import train_flops
from omnigrok.report.plots import PALETTE, subplots, themed
from omnigrok.tasks import mnist_run, teacher_student_run

# name -> (comparison, threshold): the speed issue's acceptance criteria.
TARGETS: dict[str, tuple[str, float]] = {
    "mnist_k20_fraction_of_matmul_limit": (">=", 0.8),
    "mnist_k20_per_run_vs_plain_float64": (">=", 3.0),
    "mnist_k20_per_run_vs_plain_float32": (">=", 2.0),
    "teacher_student_per_run_vs_plain": (">=", 20.0),
    "transformer_speedup": (">=", 1.5),
    "transformer_max_abs_logit_diff": ("<=", 1e-5),
    "eval_share_measured": ("<", 0.10),
    "eval_share_paper_projected": ("<", 0.10),
}

# The last full measurement (``benchmarks/run.py --json``), which the book's Performance page
# reads (measuring during a book build would time a busy machine). Package data, not a file of
# the clone: Colab installs the package only.
STORED = Path(__file__).resolve().parents[1] / "_data" / "benchmarks.json"
REQUIRED = {"machine", "quick", "matmul", "trainer_mnist", "ratios"}
WRITE = "python benchmarks/run.py --json src/omnigrok/_data/benchmarks.json"


def load(path: Path | None = None) -> dict[str, Any]:
    """A measurement written by ``benchmarks/run.py --json`` (None: the stored one); a clear
    error if it is missing or is not one."""
    path = STORED if path is None else Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"benchmark results {path} cannot be read ({err}); write them with `{WRITE}`"
        ) from err
    missing = REQUIRED - set(results)
    if missing:
        raise ValueError(f"benchmark results {path} lack {', '.join(sorted(missing))}")
    return results


def mlp_step_flops(config: RunConfig, exact: bool = False) -> int:
    """``train_flops`` of one step of ``config``'s MLP (full batch: the training set)."""
    return train_flops(config.model.widths, config.batch_size or config.task.n_train, exact=exact)


def largest_k(timed: dict[str, dict]) -> dict:
    """Of trainer timings keyed by K, the one at the largest K (the targets' reference)."""
    return timed[max(timed, key=int)]


def _ratio(name: str, value: float, note: str) -> dict[str, Any]:
    op, target = TARGETS[name]
    passed = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return {
        "name": name,
        "value": value,
        "target": f"{op} {target:g}",
        "passed": bool(passed and math.isfinite(value)),
        "note": note,
    }


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets from ``run_all``'s results: value, target, pass/fail each."""
    ceiling = _ceilings(results)["teacher_student"]
    trainer = largest_k(results["trainer_mnist"])
    k = trainer["k"]
    plain = results["plain_mnist"]

    def per_run(fast: dict, slow: dict) -> float:
        return fast["run_steps_per_second"] / slow["run_steps_per_second"]

    tf, ev = results["transformer"], results["eval_share"]
    ts_plain, ts_trainer = results["teacher_student"]["plain"], ceiling["trainer"]
    return [
        _ratio(
            "mnist_k20_fraction_of_matmul_limit",
            trainer["fraction_of_limit"],
            f"K={k}; {trainer['gflops']:.1f} of {results['matmul']['gflops']:.1f} GFLOP/s "
            f"(6·B·Σ fan_in·fan_out; {trainer['fraction_of_limit_exact']:.2f} counting only "
            "the FLOPs autograd does)",
        ),
        _ratio("mnist_k20_per_run_vs_plain_float64", per_run(trainer, plain["float64"]), f"K={k}"),
        _ratio("mnist_k20_per_run_vs_plain_float32", per_run(trainer, plain["float32"]), f"K={k}"),
        _ratio(
            "teacher_student_per_run_vs_plain",
            per_run(ts_trainer, ts_plain),
            f"K={ts_trainer['k']}; no code can pass "
            f"{ceiling['ceiling']:.1f}x here (its GEMMs alone at the matmul limit)",
        ),
        _ratio("transformer_speedup", tf["speedup"], "stacked step vs NandaTransformer, K=1"),
        _ratio("transformer_max_abs_logit_diff", tf["max_abs_logit_diff"], "float32, at init"),
        _ratio(
            "eval_share_measured",
            ev["share"],
            f"{ev['steps']} steps, {ev['log_points']} log points, K={ev['k']}",
        ),
        _ratio(
            "eval_share_paper_projected",
            ev["paper_projected"],
            f"{ev['paper_steps']} steps, {ev['paper_log_points']} log points",
        ),
    ]


def gemm_ceiling(plain_seconds: float, exact_flops: float, limit_gflops: float) -> float:
    """The highest per-run speedup over a plain step of ``plain_seconds`` that any code doing
    the same matrix products could reach here: the ratio if a step cost only its
    ``exact_flops`` at the measured matmul limit (elementwise work, the optimizer, the loss
    and all overhead free)."""
    return plain_seconds / (exact_flops / (limit_gflops * 1e9))


def _ceilings(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per MLP task: the trainer at the largest K, its speedup over the plain loop (float32)
    and that speedup's ``gemm_ceiling``."""
    limit = results["matmul"]["gflops"]
    pairs = {
        "mnist": (results["trainer_mnist"], results["plain_mnist"]["float32"], mnist_run()),
        "teacher_student": (
            results["teacher_student"]["trainer"],
            results["teacher_student"]["plain"],
            teacher_student_run(),
        ),
    }
    out = {}
    for task, (trainers, slow, cfg) in pairs.items():
        fast = largest_k(trainers)
        speedup = fast["run_steps_per_second"] / slow["run_steps_per_second"]
        ceiling = gemm_ceiling(slow["seconds_per_step"], mlp_step_flops(cfg, exact=True), limit)
        out[task] = {"trainer": fast, "speedup": speedup, "ceiling": ceiling}
    return out


def ceilings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each MLP speedup next to its ``gemm_ceiling``: how much of what is possible it gets."""
    labels = {
        "mnist": "MNIST K={k} vs plain float32",
        "teacher_student": "teacher-student K={k} vs plain",
    }
    return [
        {
            "speedup": labels[task].format(k=c["trainer"]["k"]),
            "measured": c["speedup"],
            "ceiling": c["ceiling"],
            "share of ceiling": c["speedup"] / c["ceiling"],
        }
        for task, c in _ceilings(results).items()
    ]


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per timed loop: name, dtype, K, seconds per step, run-steps/s, GFLOP/s."""
    timed = [
        *results["plain_mnist"].values(),
        *results["trainer_mnist"].values(),
        results["teacher_student"]["plain"],
        *results["teacher_student"]["trainer"].values(),
    ]
    tf = results["transformer"]
    timed += [
        {**tf[key], "dtype": tf["dtype"]} for key in ("plain", "stacked", "trainer") if key in tf
    ]
    table = [
        {
            "benchmark": r["name"],
            "dtype": r["dtype"],
            "K": r["k"],
            "ms/step": 1e3 * r["seconds_per_step"],
            "run-steps/s": r["run_steps_per_second"],
            "GFLOP/s": r.get("gflops", math.nan),
        }
        for r in timed
    ]
    m = results["matmul"]
    table.insert(
        0,
        {
            "benchmark": f"matmul limit n={m['n']}",
            "dtype": m["dtype"],
            "K": None,
            "ms/step": 1e3 * m["seconds_best"],
            "run-steps/s": math.nan,
            "GFLOP/s": m["gflops"],
        },
    )
    return table


# The Performance page's columns of ``stack_rows``: the book's column holds seven.
STACK_PAGE_COLUMNS = (
    "malloc",
    "threads",
    "K",
    "s/run-step",
    "vs K=1",
    "of limit",
    "faults/run-step",
)


def stack_rows(result: dict[str, Any], page: bool = False) -> list[dict[str, Any]]:
    """The stored ``transformer_stack`` measurement (``benchmarks/transformer_stack.py``): one
    row per allocator setting, thread count and K, the stack then its control (one run, batch
    x K); per run-step: seconds, against K = 1, minor page faults, system seconds. ``page``:
    the stacks only, in ``STACK_PAGE_COLUMNS``."""
    table = []
    for measured in result["measurements"]:
        stacks = measured["stacks"]
        alone = stacks["1"]["seconds_per_step"] if "1" in stacks else None
        entries = [("stack", k, r) for k, r in stacks.items()]
        if not page:
            entries += [("1 run, batch x K", k, r) for k, r in measured["controls"].items()]
        for kind, k, r in sorted(entries, key=lambda e: (int(e[1]), e[0] != "stack")):
            per_run = r["seconds_per_step"] / int(k)
            row = {
                "malloc": measured["malloc"],
                "threads": measured["torch_threads"],
                "K": int(k),
                "runs": kind,
                "s/step": r["seconds_per_step"],
                "s/run-step": per_run,
                "vs K=1": per_run / alone if alone else None,
                "GFLOP/s": r["gflops"],
                "of limit": r["fraction_of_limit"],
                "faults/run-step": r["minor_faults_per_step"] / int(k),
                "sys s/run-step": r["system_seconds_per_step"] / int(k),
            }
            table.append({c: row[c] for c in STACK_PAGE_COLUMNS} if page else row)
    return table


def ray_rows(result: dict[str, Any]) -> list[dict]:
    """The page's table of a stored ``ray_scaling`` result (``benchmarks/ray_scaling.py``): the
    sweep's median wall time here (one thread) and on 1 and 2 workers, the scaling and the cost
    per task."""
    stacks = int(result["sweep"].split()[0])

    def t(seconds: float) -> str:
        return f"{seconds:.3g} s"

    return [
        {
            "measure": "sweep, here on one thread (local executor)",
            "value": t(result["local_one_thread_s"]),
        },
        {"measure": "sweep on Ray, 1 worker", "value": t(result["workers_s"]["1"])},
        {"measure": "sweep on Ray, 2 workers", "value": t(result["workers_s"]["2"])},
        {
            "measure": "scaling 1 → 2 workers (ideal 2x)",
            "value": f"{result['scaling_1_to_2_workers']:.2f}x",
        },
        {
            "measure": f"overhead per Ray task ({stacks} tasks)",
            "value": t(result["overhead_per_task_s"]),
        },
        {"measure": "overhead of an empty (1-step) task", "value": t(result["empty_task_s"])},
    ]


def markdown_table(rows: list[dict]) -> str:
    """A markdown table of ``rows`` (dicts with the same keys); floats to 4 significant
    digits, NaN and None as blanks."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(r[k]) for k in header) + " |" for r in rows]
    return "\n".join(lines)


@themed
def figure(results: dict[str, Any]):
    """Run-steps per second of each loop (log scale), plain loops and the trainer side by side,
    with the machine in the title."""
    table = [r for r in rows(results) if math.isfinite(r["run-steps/s"])]
    labels = [f"{r['benchmark']} ({r['dtype']})" for r in table]
    colors = [
        PALETTE[1] if "plain" in r["benchmark"].lower() or "Nanda" in r["benchmark"] else PALETTE[0]
        for r in table
    ]
    fig, ax = subplots(1, 1, row_height=0.32 * len(table) + 1.3)
    ax.barh(labels, [r["run-steps/s"] for r in table], color=colors)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="run-steps per second (log; higher is faster)")
    m = results["machine"]
    ax.set_title(
        f"orange: the usual single-run loop, blue: this project's code\n"
        f"{m.get('cpu', '')}, {m.get('torch_threads', '')} threads, device {m.get('device', '')}"
    )
    return fig
