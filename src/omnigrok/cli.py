"""Command line: train a grid of runs of one task and print where the results went.

    python -m omnigrok train --task mnist --init-scale 8 --seeds 0-4 --steps 2000

Every flag is checked before any work (one-line error naming the flag); results go to the store
(``$OMNIGROK_RESULTS``), so repeating a command loads instead of training.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from omnigrok.config import RunConfig
from omnigrok.metrics import first_step_reaching, grokking_delay, spread
from omnigrok.params import DEVICES, check_device, parse_seeds
from omnigrok.presets import mnist_run, modadd_run, teacher_student_run
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep

PRESETS = {"mnist": mnist_run, "teacher_student": teacher_student_run, "modadd": modadd_run}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnigrok", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train runs (seeds x init scales) and summarise them")
    train.add_argument("--task", choices=sorted(PRESETS), required=True)
    train.add_argument(
        "--init-scale", type=float, nargs="+", default=None, help="α (several: a grid)"
    )
    train.add_argument("--seeds", default="0", help="'0-4', '0,3,7' or '2'")
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--weight-decay", type=float, default=None)
    train.add_argument("--batch-size", type=int, default=None, help="default: the paper's")
    train.add_argument("--constraint", choices=["none", "init", "fixed"], default="none")
    train.add_argument("--target-norm", type=float, default=None)
    train.add_argument("--n-train", type=int, default=None, help="MNIST: first N images")
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--device", choices=DEVICES, default="auto")
    train.add_argument("--results", default=None, help="store folder (default $OMNIGROK_RESULTS)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
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
    base = PRESETS[args.task](**overrides)
    seeds = parse_seeds(args.seeds, "--seeds")
    scales = args.init_scale or [base.init_scale]
    return [base.replace(init_scale=a, seed=s) for a in scales for s in seeds]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        configs = configs_from_args(args)
        check_device(args.device)
    except ValueError as err:
        parser.error(str(err).replace("init_scale", "--init-scale"))
    store = ResultStore(args.results)
    results = run_sweep(configs, store=store, device=args.device, progress=not args.quiet)
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
