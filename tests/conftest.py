"""Session-wide test setup.

Points ``OMNIGROK_DATA`` at the read-only MNIST folder shared next to the repository (when it
exists) before any test runs, so the real loader is exercised with no network and never
touches the user's cache. Puts ``benchmarks/`` on the import path, as running a script there
does, so tests import its measurement modules (``import measure``) the way its scripts do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO_ROOT.parent / "shared" / "data" / "mnist"
BENCHMARKS = REPO_ROOT / "benchmarks"

if SHARED_MNIST.is_dir():
    os.environ["OMNIGROK_DATA"] = str(SHARED_MNIST)

# Appended, not prepended: a script module there never shadows an installed package.
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))


@pytest.fixture(autouse=True, scope="session")
def isolated_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test's results store lives in a temporary folder, never the user's cache, and
    reads no archive unless the test names one (the paper archive's tests do)."""
    root = tmp_path_factory.mktemp("results")
    os.environ["OMNIGROK_RESULTS"] = str(root)
    os.environ["OMNIGROK_ARCHIVE"] = ""
    return root


@pytest.fixture(scope="session")
def shared_mnist() -> Path:
    """The shared folder with the four official MNIST files; skips the test if it is absent."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"shared MNIST folder {SHARED_MNIST} not found (needed for real-data tests)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def ensemble_equals_solo():
    """A check that K runs trained as one stack give each run's solo curves (to ``rtol``);
    returns the stacked results."""
    import numpy as np

    from omnigrok.train import train_ensemble

    def check(configs, rtol: float = 1e-8):
        together = train_ensemble(configs, device="cpu", progress=False)
        for cfg, result in zip(configs, together, strict=True):
            alone = train_ensemble([cfg], device="cpu", progress=False)[0]
            for name in result.metrics:
                np.testing.assert_allclose(result[name], alone[name], rtol=rtol, atol=1e-12)
        return together

    return check
