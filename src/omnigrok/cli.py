"""Command line: train a grid of runs of one task and print where the results went.

    python -m omnigrok train --task mnist --init-scale 8 --seeds 0-4 --steps 2000
    python -m omnigrok archive --profile paper --device cuda --budget-s 540
    python -m omnigrok verify
    python -m omnigrok verify --whole --sample 3
    python -m omnigrok results list
    python -m omnigrok results export --out runs.csv --task mnist

Every flag is checked before any work (one-line error naming the flag); results go to the store
(``$OMNIGROK_RESULTS``), so repeating a command loads instead of training.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from omnigrok import __version__, archive, verify
from omnigrok.checks import DEVICES, PROFILES, check_choice, check_device, parse_seeds
from omnigrok.config import RunConfig
from omnigrok.executors import EXECUTOR_HELP, resolve_executor
from omnigrok.registry import TASKS
from omnigrok.report import export
from omnigrok.report.metrics import first_step_reaching, grokking_delay, spread
from omnigrok.store import COMMITTED_ARCHIVES, CorruptResult, ResultStore
from omnigrok.sweep import run_sweep


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except None (its help says what happens) and switches."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help or ""
        return super()._get_help_string(action) or ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnigrok", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"omnigrok {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train runs (seeds x init scales) and summarise them",
        formatter_class=_Help,
    )
    train.add_argument("--task", choices=sorted(TASKS), required=True, help="which task")
    train.add_argument(
        "--init-scale",
        type=float,
        nargs="+",
        default=None,
        help="α, multiplying every parameter of the standard init (several: a grid; "
        "default: the task preset's, 8 for MNIST)",
    )
    train.add_argument("--seeds", default="0", help="'0-4', '0,3,7' or '2'")
    train.add_argument(
        "--steps", type=int, default=None, help="optimizer steps (default: the preset's, 1e5 MNIST)"
    )
    train.add_argument("--lr", type=float, default=None, help="AdamW lr (default: the preset's)")
    train.add_argument(
        "--weight-decay", type=float, default=None, help="AdamW's γ (default: the preset's)"
    )
    train.add_argument("--batch-size", type=int, default=None, help="default: the paper's")
    train.add_argument(
        "--constraint",
        choices=["none", "init", "fixed"],
        default="none",
        help="hold the weight norm: at its init value, or at --target-norm",
    )
    train.add_argument(
        "--target-norm", type=float, default=None, help="the held norm for --constraint fixed"
    )
    train.add_argument("--n-train", type=int, default=None, help="MNIST: first N images")
    train.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="precision"
    )
    train.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA if present")
    train.add_argument("--results", default=None, help="store folder (default $OMNIGROK_RESULTS)")
    train.add_argument("--executor", default=None, help=EXECUTOR_HELP)
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    produce = sub.add_parser(
        "archive",
        help="train what the paper archive lacks, within a time budget (resumable)",
        formatter_class=_Help,
    )
    produce.add_argument("--profile", choices=PROFILES, default="paper", help="settings")
    produce.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA if present")
    produce.add_argument(
        "--budget-s", type=float, default=540.0, help="seconds to train before pausing"
    )
    produce.add_argument(
        "--parts", default=",".join(archive.PARTS), help="comma-separated, in priority order"
    )
    produce.add_argument(
        "--tasks", default=None, help="comma-separated tasks to train (default: all)"
    )
    produce.add_argument(
        "--archive",
        type=Path,
        default=None,
        help="folder (default: the profile's committed archive, archive/paper or archive/quick;"
        " --status reads both)",
    )
    produce.add_argument("--status", action="store_true", help="only say what is stored/left")
    produce.add_argument("--executor", default=None, help=EXECUTOR_HELP)
    produce.add_argument("--quiet", action="store_true", help="no progress bar")

    check = sub.add_parser(
        "verify",
        help="recompute archived runs and compare them with what the archive holds",
        formatter_class=_Help,
    )
    check.add_argument(
        "--archive",
        type=Path,
        nargs="+",
        default=None,
        help="folders (default: the committed archives, archive/paper and archive/quick)",
    )
    which = check.add_mutually_exclusive_group()
    which.add_argument(
        "--keys", nargs="+", default=None, help="runs to recompute (default: one per task)"
    )
    which.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="recompute N runs drawn at random from the archives (the seed is printed)",
    )
    check.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="the --sample draw's seed (default: a fresh one)",
    )
    check.add_argument(
        "--whole",
        action="store_true",
        help="recompute each run to its end and compare what the book reads (milestone steps, "
        "the weight norm there, final accuracies, losses, norm) within measured tolerances; "
        "the first --steps still pointwise",
    )
    check.add_argument(
        "--steps",
        type=int,
        default=verify.VERIFY_STEPS,
        help="steps recomputed and compared at every logged step",
    )
    check.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="recompute on")

    results = sub.add_parser(
        "results", help="list the stored runs or export their curves as a table"
    )
    what = results.add_subparsers(dest="results_command", required=True, help="what to do")
    listing = what.add_parser(
        "list", help="one line per stored run: key, task, seed, α, wd, ...", formatter_class=_Help
    )
    exporting = what.add_parser(
        "export",
        help="one row per (run, logged step): config columns and curves",
        formatter_class=_Help,
    )
    for p in (listing, exporting):
        p.add_argument("--results", default=None, help="store folder (default $OMNIGROK_RESULTS)")
        p.add_argument(
            "--archive",
            type=Path,
            action="append",
            default=None,
            help="read-only archive folder to include (repeatable; default $OMNIGROK_ARCHIVE, "
            "else the checkout's archive/paper)",
        )
        p.add_argument("--task", choices=TASKS, default=None, help="only this task's runs")
    exporting.add_argument("--out", type=Path, required=True, help="the file to write")
    exporting.add_argument(
        "--format",
        choices=export.FORMATS,
        default=None,
        help="table format (default: parquet for a .parquet --out, else csv; parquet needs "
        "pyarrow)",
    )
    return parser


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """The runs a ``train`` command asks for; raises ValueError naming a bad flag."""
    overrides = {
        "steps": args.steps,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "constraint": args.constraint,
        "target_norm": args.target_norm,
        "dtype": args.dtype,
    }
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.n_train is not None:
        if args.task != "mnist":
            raise ValueError("--n-train applies to --task mnist only")
        overrides["n_train"] = args.n_train
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = TASKS[args.task].preset(**overrides)
    seeds = parse_seeds(args.seeds, "--seeds")
    scales = args.init_scale or [base.init_scale]
    return [base.replace(init_scale=a, seed=s) for a in scales for s in seeds]


def _archive(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in parts if p not in archive.PARTS]
    if bad or not parts:
        parser.error(f"--parts must be a comma-separated subset of {','.join(archive.PARTS)}")
    tasks = None
    if args.tasks is not None:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if not tasks or any(t not in TASKS for t in tasks):
            parser.error(f"--tasks must be a comma-separated subset of {','.join(TASKS)}")
    if args.budget_s < 0 or not math.isfinite(args.budget_s):
        parser.error(f"--budget-s must be a non-negative number of seconds, got {args.budget_s}")
    if args.archive is None and not args.status and args.profile not in COMMITTED_ARCHIVES:
        parser.error(
            f"--profile {args.profile} has no committed archive (only "
            f"{', '.join(COMMITTED_ARCHIVES)}): name a folder with --archive"
        )
    try:
        _check_device_for(args.device, args.executor)
    except ValueError as err:
        parser.error(str(err))
    if args.status:
        for s in archive.status(args.profile, args.archive):
            print(s.line())
        return 0
    done = archive.produce(
        args.profile,
        args.budget_s,
        args.device,
        parts,
        args.archive,
        tasks=tasks,
        progress=not args.quiet,
        executor=args.executor,
    )
    return 0 if done else 3


def _check_device_for(device: str, executor: str | None) -> None:
    """``device`` must exist here for the local executor; on Ray, on the cluster's workers."""
    if resolve_executor(executor).kind == "local":
        check_device(device)
    else:
        check_choice("device", device, DEVICES)


def _verify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")
    if args.seed is not None and args.sample is None:
        parser.error("--seed applies to --sample only")
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    folders = args.archive or [a for a in COMMITTED_ARCHIVES.values() if a.is_dir()]
    for folder in folders:
        if not folder.is_dir():
            parser.error(f"--archive {folder} is not a folder")
    if args.keys is not None and len(folders) > 1:
        parser.error("--keys needs one --archive, the one that holds them")
    keys: dict[Path, list[str] | None] = {f: args.keys for f in folders}
    if args.sample is not None:
        seed = secrets.randbelow(2**32) if args.seed is None else args.seed
        try:
            drawn = verify.sample_runs(folders, args.sample, seed)
        except ValueError as err:
            parser.error(f"--{err}")
        keys = {f: [k for a, k in drawn if a == f] for f in folders}
        again = f"--sample {args.sample} --seed {seed}"
        print(f"sample: {args.sample} run(s) drawn with seed {seed} (again: {again})")
    status = 0
    for folder in folders:
        try:
            checks = verify.verify(folder, keys[folder], args.steps, args.device, args.whole)
        except ValueError as err:
            parser.error(str(err).replace("keys", "--keys"))
        for c in checks:
            print(c.line())
        failed = [c for c in checks if c.failed]
        n = len(verify.archived_keys(folder))
        outcome = f"{len(failed)} failed" if failed else "all ok"
        if elsewhere := [c for c in checks if c.elsewhere]:
            models = ", ".join(sorted({c.elsewhere for c in elsewhere}))
            outcome += f"; {len(elsewhere)} not checkable here (trained on {models})"
        print(f"{folder}: {n} archived runs checked; {outcome}")
        status |= bool(failed)
    return status


def _results(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for folder in args.archive or ():
        if not folder.is_dir():
            parser.error(f"--archive {folder} is not a folder")
    store = ResultStore(args.results, archives=args.archive)
    runs = export.stored_runs(store, args.task)
    if args.results_command == "list":
        if not runs:
            print(f"no stored runs in {store.root} or its archives")
            return 0
        print("\n".join(export.list_lines(runs)))
        print(f"{len(runs)} runs")
        return 0
    if not runs:
        only = f" of --task {args.task}" if args.task else ""
        parser.error(f"no stored runs{only} in {store.root} or its archives to export")
    try:
        n = export.export(runs, args.out, args.format)
    except ImportError as err:
        parser.error(str(err).replace("format ", "--format "))
    except CorruptResult as err:
        print(f"omnigrok: error: stored run {err}; remove it or train it again", file=sys.stderr)
        return 1
    print(f"{n} rows ({len(runs)} runs) written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "results":
        return _results(args, parser)
    if args.command == "archive":
        return _archive(args, parser)
    if args.command == "verify":
        return _verify(args, parser)
    try:
        configs = configs_from_args(args)
        _check_device_for(args.device, args.executor)
    except ValueError as err:
        parser.error(str(err).replace("init_scale", "--init-scale"))
    store = ResultStore(args.results)
    results = run_sweep(
        configs, store=store, device=args.device, progress=not args.quiet, executor=args.executor
    )
    print(f"results: {store.root}")
    for scale in dict.fromkeys(c.init_scale for c in configs):
        group = [r for r in results if r.config.init_scale == scale]
        print(f"\nα = {scale:g}: {len(group)} seed(s)")
        for r in group:
            print(f"  seed {r.config.seed}: {store.path(r.config)}")
            if r.diverged_at is not None:
                print(f"    diverged at step {r.diverged_at}")
        print(f"  final weight norm: {spread([r['norm'][-1] for r in group])}")
        if math.isnan(group[0]["train_acc"][0]):
            print(f"  final test loss: {spread([r['test_loss'][-1] for r in group])}")
            continue
        print(f"  final train acc:  {spread([r['train_acc'][-1] for r in group])}")
        print(f"  final test acc:   {spread([r['test_acc'][-1] for r in group])}")
        t_train = [first_step_reaching(r.steps, r["train_acc"], 0.9) for r in group]
        t_test = [first_step_reaching(r.steps, r["test_acc"], 0.9) for r in group]
        delay = [grokking_delay(r.steps, r["train_acc"], r["test_acc"]) for r in group]
        print(f"  step train acc >= 0.9: {spread(t_train)}")
        print(f"  step test acc >= 0.9:  {spread(t_test)}")
        print(f"  grokking delay (test/train step ratio): {spread(delay)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
