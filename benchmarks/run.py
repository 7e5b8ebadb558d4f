"""Speed benchmark of the stacked trainer against the usual PyTorch loop (the measurements are
in ``measure.py`` beside this script; this prints them).

    python benchmarks/run.py [--device cpu|cuda] [--quick]
        [--json src/omnigrok/_data/benchmarks.json]

``--quick`` runs every benchmark at tiny sizes in seconds: a smoke test, its numbers are noise.
``src/omnigrok/_data/benchmarks.json`` (package data) is what the book's Performance page reads
(``omnigrok.report.speed.load``): measure on a quiet machine, then commit it. ``--json`` keeps
the keys other scripts file there (``ray``, ``book``, ``transformer_stack``) and replaces its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import measure

from omnigrok.report import speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args(argv)

    results = measure.run_all(args.device, quick=args.quick)
    print("Machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()))
    print("\n" + speed.markdown_table(speed.rows(results)))
    print("\n" + speed.markdown_table(results["ratios"]))
    share = results["eval_share"]
    profiles = ", ".join(f"{k} {v:.1%}" for k, v in share["profiles"].items())
    print(f"\nEvaluation share projected for claim 2's profiles: {profiles}")
    if args.json:
        stored = json.loads(args.json.read_text()) if args.json.exists() else {}
        args.json.write_text(json.dumps({**stored, **results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
