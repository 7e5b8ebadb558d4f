"""Every notebook parameter over its accepted range, at the smoke profile: a chapter either
refuses a value with a one-line error naming it (``test_reliability``), or runs to the end and
says what happened, with no traceback: numbers, verdict and figures from runs that diverged at
step 1 or never moved.

The chapters are called as their notebooks call them; one papermill run of claim 3 at α = 1e6
(every MNIST run diverges) checks the page itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from omnigrok.chapters import claim1, claim2, claim3, claim4
from omnigrok.report.page import seed_outcomes

papermill = pytest.importorskip("papermill", reason="the notebook fuzzing needs the [book] extras")

matplotlib.use("Agg")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXTREMES = (1e-6, 1e6)


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    assert fig.get_axes()
    plt.close(fig)


@pytest.mark.parametrize("alpha", EXTREMES)
def test_claim2_runs_to_the_end_at_extreme_init_scales(alpha):
    setup = claim2.Setup("smoke", seeds=[0], device="cpu", init_scale=alpha)
    outcome = claim2.run(setup, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN means of diverged runs
        numbers = claim2.numbers(outcome)
        verdict = claim2.verdict(outcome)
        _close(claim2.figure_curves(outcome, "log"))
        _close(claim2.figure_delays(outcome))
    assert numbers["step_generalized"] and verdict.status
    table = seed_outcomes(outcome.sweep, "test_acc", claim2.GENERALIZED)
    if alpha > 1:
        assert "diverged at step 1" in table  # the page says what happened


@pytest.mark.parametrize("weight_decay", (1e-8, 1e3))
def test_claim2_runs_to_the_end_at_extreme_weight_decays(weight_decay):
    setup = claim2.Setup("smoke", seeds=[0], device="cpu", weight_decay=weight_decay)
    outcome = claim2.run(setup, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert claim2.verdict(outcome).status
        _close(claim2.figure_curves(outcome, "linear"))


@pytest.mark.parametrize("alpha", EXTREMES)
def test_claim3_runs_to_the_end_at_extreme_init_scales(alpha):
    setup = claim3.Setup(
        "smoke", seeds=[0], device="cpu", init_scale=alpha, modadd_init_scale=alpha
    )
    outcome = claim3.run(setup, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert claim3.numbers(outcome)
        assert claim3.verdict(outcome).status
        _close(claim3.figure(outcome, "log"))


@pytest.mark.parametrize("seeds", ([7], "0-2", 2**31 - 1))
def test_any_accepted_seed_runs(seeds):
    """Seeds anywhere in the accepted range (the largest seeds a generator takes)."""
    setup = claim4.Setup("smoke", seeds=seeds, device="cpu")
    results = claim4.run(setup, progress=False)
    assert claim4.verdict(results).status
    _close(claim4.figure(results, setup.profile))
    assert np.all(np.isfinite(results[0]["train_loss"]))


def test_landscape_with_one_seed_has_no_spread_but_a_verdict():
    lands = claim1.run(claim1.Setup("smoke", seeds=[0], device="cpu"), progress=False)
    assert "n=1" in claim1.numbers(lands)["mnist_w_c_seeds"]
    assert claim1.verdict(lands).status


def test_claim3_page_says_every_mnist_run_diverged_without_a_traceback(tmp_path):
    """The issue's example: `papermill claim3 -p init_scale 1e6 -p profile smoke` once ended
    in a matplotlib traceback ("Data cannot be log-scaled") when every run diverged."""
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "claim3.ipynb"),
        str(out),
        parameters={"init_scale": 1e6, "profile": "smoke", "seeds": "0"},
        kernel_name="python3",
        progress_bar=False,
    )
    text = out.read_text()
    assert "diverged at step 1" in text
    assert "Traceback" not in text and '"output_type": "error"' not in text
