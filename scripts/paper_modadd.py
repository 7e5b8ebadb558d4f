"""Modular addition at the paper's settings (P = 113, Nanda et al.'s setup, 5 seeds): claim 4
and claim 3's three regimes, through the same claim modules as the book. Meant for a GPU, where
it takes minutes (on a 2-core CPU, days); prints the numbers and verdicts as JSON.

    python scripts/paper_modadd.py --device cuda [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

from omnigrok.claims import axes, constraint
from omnigrok.claims.common import fetch
from omnigrok.metrics import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    # Claim 3's MNIST target is not used here: only the modular-addition regimes run.
    setup = constraint.setup("paper", device=args.device, mnist_w_c=1.0)
    # All three regimes share one shape, so they train as one stack of 3 x 5 runs.
    configs = [c for r in constraint.REGIMES for c in setup.configs("modadd", r)]
    results = iter(fetch(configs, args.device, True))
    n = len(setup.seeds)
    outcome = constraint.Outcome(
        setup, {("modadd", r): [next(results) for _ in range(n)] for r in constraint.REGIMES}
    )
    steps = {r: spread(outcome.steps_to_generalize("modadd", r)) for r in constraint.REGIMES}
    ratio, lower = constraint.speedup(outcome, "modadd")
    claim4 = axes.run(axes.setup("paper", device=args.device), progress=True)
    report = {
        "seconds": time.perf_counter() - t0,
        "claim3_modadd_steps_to_95": {r: str(s) for r, s in steps.items()},
        "claim3_modadd_speedup": ("≥ " if lower else "") + str(spread(ratio)),
        "claim3_modadd_w_c": setup.w_c["modadd"],
        "claim4_numbers": axes.numbers(claim4),
        "claim4_verdict": axes.verdict(claim4).markdown(),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
