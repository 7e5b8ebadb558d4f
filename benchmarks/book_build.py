"""Time what a reader runs first (issue 21's targets; measured here, never as a timed test):

* the README's book command, ``python book/build.py`` from the committed archives, on a copy of
  the book folder with an empty results store (target: at most 60 s on 2 cores);
* the README's rerun, ``papermill notebooks/claim3.ipynb out.ipynb -p init_scale 10`` from an
  empty results store: it reads claim 1's landscape and the modular-addition runs from the
  committed archives and trains only claim 3's α = 10 MNIST runs (target: at most 300 s).

    python benchmarks/book_build.py [--json src/omnigrok/_data/benchmarks.json] [--skip-rerun]

Measure on a quiet machine (the load average is recorded beside each figure); ``--json`` adds
the figures to that file under ``"book"``, keeping its other entries.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS_S = {"book_build": 60.0, "claim3_rerun": 300.0}


def _timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, 1-minute load average before starting) of ``command``; fails loudly."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds, load


def book_build(work: Path) -> dict[str, float]:
    """The default build on a copy of book/ (so the checkout's pages stay), nothing stored."""
    ignore = shutil.ignore_patterns("_build", "_nb", "_generated", "_extra", "__pycache__")
    shutil.copytree(REPO / "book", work / "book", ignore=ignore)
    # The MathJax copy is fetched once per checkout by npm; a reader's second build has it.
    if (REPO / "book" / "_extra").is_dir():
        shutil.copytree(REPO / "book" / "_extra", work / "book" / "_extra")
    env = {k: v for k, v in os.environ.items() if k != "OMNIGROK_ARCHIVE"}
    command = [sys.executable, str(work / "book" / "build.py")]
    command += ["--notebooks", str(REPO / "notebooks"), "--results", str(work / "results")]
    seconds, load = _timed(command, env, work)
    trained = len(list((work / "results").rglob("meta.json")))
    return {"seconds": round(seconds, 1), "load_before": load, "runs_trained": trained}


def claim3_rerun(work: Path) -> dict[str, float]:
    """The README's papermill example from an empty results store."""
    env = {k: v for k, v in os.environ.items() if k != "OMNIGROK_ARCHIVE"}
    env["OMNIGROK_RESULTS"] = str(work / "rerun_results")
    command = [sys.executable, "-m", "papermill", "notebooks/claim3.ipynb"]
    command += [str(work / "out.ipynb"), "-p", "init_scale", "10", "--no-progress-bar"]
    seconds, load = _timed(command, env, REPO)
    trained = len(list((work / "rerun_results").rglob("meta.json")))
    return {"seconds": round(seconds, 1), "load_before": load, "runs_trained": trained}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="add the figures to this file under 'book'")
    parser.add_argument("--skip-rerun", action="store_true", help="time the book build only")
    args = parser.parse_args(argv)
    out: dict[str, object] = {"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out["cpus"] = os.cpu_count() or 0
    with tempfile.TemporaryDirectory() as tmp:
        out["book_build"] = book_build(Path(tmp))
        if not args.skip_rerun:
            out["claim3_rerun"] = claim3_rerun(Path(tmp))
    for name, target in TARGETS_S.items():
        if name in out:
            got = out[name]
            assert isinstance(got, dict)
            verdict = "meets" if got["seconds"] <= target else "misses"
            print(f"{name}: {got['seconds']:.1f} s ({verdict} the {target:.0f} s target), {got}")
    if args.json:
        results = json.loads(args.json.read_text()) if args.json.is_file() else {}
        results["book"] = out
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
