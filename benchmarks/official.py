"""Run the authors' own MNIST code beside this package and record how far apart they are.

    python benchmarks/official.py --official-repo PATH [--seeds 0 1] [--out FILE]

PATH is a local clone of https://github.com/KindXiaoming/Omnigrok (never committed here; its
commit goes into the record). The official notebooks' code cells are executed as they are,
with these adaptations only (each is also written into the record):

1. ``torchvision`` is a stand-in whose ``datasets.MNIST`` serves this package's embedded images
   (the first 1000 training images and the 10,000 test images: all the notebooks read), scaled
   to [0, 1] like ``ToTensor``, in torch's default dtype as ``ToTensor`` gives them;
2. ``mnist-grokking.ipynb``: ``optimization_steps`` 20,000 (``--large-init-steps``) instead of
   1e5 (its logging, ``log_freq``, follows from it as in the notebook), ``seed`` set per run;
   the ``!nvidia-smi`` and plotting cells are skipped;
3. ``mnist-landscape.ipynb``: ``steps`` 3,000 instead of 10,000, the data size 1000; the
   notebook sets no seed, so ``torch.manual_seed(seed)`` is called before each run; its
   ``np.savetxt`` of the best values is captured instead of written;
4. the CPU, one thread (``torch.set_num_threads(1)``).

This package runs the same settings (``omnigrok.tasks.mnist_run``), one thread; the record's
comparison and verdict are ``omnigrok.report.official``'s, shown on the book's page "Against the
authors' code".
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnigrok.data.mnist import load_embedded
from omnigrok.provenance import provenance
from omnigrok.report.official import RECORD
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.tasks import mnist_run

GROKKING = "mnist/grokking/mnist-grokking.ipynb"
LANDSCAPE = "mnist/landscape/mnist-landscape.ipynb"
ADAPTATIONS = __doc__.split("adaptations only (each is also written into the record):")[1]
ADAPTATIONS = ADAPTATIONS.split("This package runs")[0].strip()
LARGE_INIT_STEPS, HELD_STEPS = 20_000, 3_000


class _Images(torch.utils.data.Dataset):
    """``torchvision.datasets.MNIST`` as the notebooks use it, from the embedded arrays."""

    def __init__(self, root: str = "", train: bool = True, transform=None, download=False):
        x_train, y_train, x_test, y_test = load_embedded()
        self.x, self.y = (x_train, y_train) if train else (x_test, y_test)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.x[i].astype(np.float64) / 255.0)
        return image.to(torch.get_default_dtype()).unsqueeze(0), int(self.y[i])


def _torchvision() -> types.ModuleType:
    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=_Images)
    fake.transforms = types.SimpleNamespace(ToTensor=lambda: None)
    return fake


def _cells(repo: Path, notebook: str) -> list[str]:
    nb = json.loads((repo / notebook).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _commit(repo: Path) -> str:
    run = ["git", "-C", str(repo), "rev-parse", "HEAD"]
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()


def _crossing(steps: np.ndarray, values: np.ndarray, level: float) -> float:
    """The step a curve first reaches ``level``, linearly interpolated between logged points
    (both codes log at different steps); inf if never."""
    above = np.flatnonzero(np.asarray(values) >= level)
    if len(above) == 0:
        return math.inf
    i = int(above[0])
    if i == 0:
        return float(steps[0])
    s0, s1, v0, v1 = steps[i - 1], steps[i], values[i - 1], values[i]
    return float(s0 + (level - v0) / (v1 - v0) * (s1 - s0))


def _at(steps: np.ndarray, values: np.ndarray, step: float) -> float:
    return float(np.interp(step, steps, values))


def _large_init_quantities(steps, train_acc, test_acc, norm, at: int) -> dict[str, float]:
    steps = np.asarray(steps, float)
    return {
        "train accuracy 0.95 at step": _crossing(steps, np.asarray(train_acc), 0.95),
        f"test accuracy at step {at:,}": _at(steps, np.asarray(test_acc), at),
        f"norm at step {at:,} / at init": _at(steps, np.asarray(norm), at) / norm[0],
    }


def _kind(quantity: str) -> str:
    """How a quantity is compared (``omnigrok.report.official.TOLERANCES``)."""
    if quantity.endswith("at step"):
        return "step"
    return "ratio" if quantity.startswith("norm") else "acc"


def official_large_init(repo: Path, seed: int, n_steps: int) -> dict[str, float]:
    """mnist-grokking.ipynb's cells, adapted as the module docstring says."""
    cells = [c for c in _cells(repo, GROKKING) if not c.startswith("!") and "plt.plot" not in c]
    params = next(c for c in cells if "optimization_steps =" in c)
    patched = re.sub(r"optimization_steps = \d+", f"optimization_steps = {n_steps}", params)
    patched = re.sub(r"\nseed = \d+", f"\nseed = {seed}", patched)
    assert f"optimization_steps = {n_steps}\n" in patched and f"seed = {seed}" in patched
    ns: dict[str, Any] = {}
    for cell in cells:
        exec(patched if cell is params else cell, ns)  # noqa: S102 (the authors' code)
    torch.set_default_dtype(torch.float32)  # the notebook set float64 for its own run
    curves = ("log_steps", "train_accuracies", "test_accuracies", "norms")
    return _large_init_quantities(*(ns[c] for c in curves), at=n_steps)


def official_held(repo: Path, alpha: float, seed: int) -> dict[str, float]:
    """mnist-landscape.ipynb's ``train`` at (1000 images, α), adapted as the docstring says."""
    (cell,) = [c for c in _cells(repo, LANDSCAPE) if "def train(params)" in c]
    patched = cell.replace("steps = 10000", f"steps = {HELD_STEPS}", 1)
    assert patched != cell, "the landscape notebook no longer sets steps = 10000"
    saved: dict[str, float] = {}

    def savetxt(path: str, values: np.ndarray) -> None:
        saved[Path(path).name.split("_")[0]] = float(np.asarray(values).ravel()[0])

    shim = types.ModuleType("numpy")  # numpy, with savetxt captured
    shim.__dict__.update(np.__dict__)
    shim.savetxt = savetxt
    ns: dict[str, Any] = {"np": shim}
    exec(patched, ns)  # noqa: S102 (the authors' code)
    torch.manual_seed(seed)
    ns["train"]([1000, alpha])
    return {"best test accuracy": saved["testacc"]}


def package_large_init(seeds: list[int], n_steps: int) -> dict[int, dict[str, float]]:
    runs = [mnist_run(steps=n_steps, seed=s) for s in seeds]  # α 8, γ 0.01, batch 200
    out = {}
    for r in run_sweep(runs, ResultStore(), "cpu", progress=False):
        curves = (r.steps, r["train_acc"], r["test_acc"], r["norm"])
        quantities = _large_init_quantities(*curves, at=n_steps)
        out[r.config.seed] = quantities
    return out


def package_held(alpha: float, seeds: list[int]) -> dict[int, dict[str, float]]:
    """Held at the α-scaled init's norm, no decay, batch 100, as the landscape notebook."""
    runs = [
        mnist_run(
            steps=HELD_STEPS,
            init_scale=alpha,
            weight_decay=0.0,
            constraint="init",
            batch_size=100,
            seed=s,
        )
        for s in seeds
    ]
    results = run_sweep(runs, ResultStore(), "cpu", progress=False)
    return {r.config.seed: {"best test accuracy": float(np.nanmax(r["test_acc"]))} for r in results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="a clone of it")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds per case")
    parser.add_argument("--out", type=Path, default=RECORD)
    parser.add_argument(
        "--large-init-steps",
        type=int,
        default=LARGE_INIT_STEPS,
        help="steps of the α = 8 case (its float64 loop runs ~5 steps/s on a busy CPU core)",
    )
    args = parser.parse_args(argv)
    for notebook in (GROKKING, LANDSCAPE):
        if not (args.official_repo / notebook).is_file():
            parser.error(f"--official-repo {args.official_repo} has no {notebook}")
    torch.set_num_threads(1)
    sys.modules["torchvision"] = _torchvision()
    started = time.time()
    cases: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}

    def record(case: str, official: dict[int, dict], package: dict[int, dict]) -> None:
        cases[case] = {
            str(seed): {
                name: {"kind": _kind(name), "official": official[seed][name], "package": value}
                for name, value in package[seed].items()
            }
            for seed in args.seeds
        }
        print(f"{case}: {json.dumps(cases[case])}", flush=True)
        write()  # after every case: a record cut short still holds what was run

    def write() -> None:
        out = {
            "official_repository": "https://github.com/KindXiaoming/Omnigrok",
            "official_commit": _commit(args.official_repo),
            "package_commit": provenance(torch.device("cpu"))["commit"],
            "machine": provenance(torch.device("cpu"))["device_name"],
            "torch": torch.__version__,
            "seeds": args.seeds,
            "seconds": round(time.time() - started),
            "adaptations": ADAPTATIONS,
            "cases": cases,
        }
        args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")

    for alpha, case in ((1.0, "held_alpha1"), (8.0, "held_alpha8")):  # the short cases first
        record(
            case,
            {s: official_held(args.official_repo, alpha, s) for s in args.seeds},
            package_held(alpha, args.seeds),
        )
    record(
        "large_init",
        {s: official_large_init(args.official_repo, s, args.large_init_steps) for s in args.seeds},
        package_large_init(args.seeds, args.large_init_steps),
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
