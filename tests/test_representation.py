"""Is representation learning the key? The Fourier measure, the messy inputs, the probe, and
the chapter's verdict (paper Sec. 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from omnigrok.chapters import representation as rep
from omnigrok.config import RunConfig, TaskSpec, run_key
from omnigrok.report.verdict import NOT_TESTED, REPRODUCED
from omnigrok.store import RunResult, log_schedule
from omnigrok.tasks import mnist_run, modadd_run
from omnigrok.tasks.mnist import class_templates, messy
from omnigrok.tasks.modadd import fourier_concentration, fourier_top5, frequency_power
from omnigrok.train import train_ensemble


def waves(p: int, amplitudes: dict[int, float], d_model: int = 4) -> torch.Tensor:
    """An embedding ``[d_model, p]``: the number t as cos(2πkt/p) and sin(2πkt/p) at each
    frequency k, scaled by its amplitude, in dimensions of its own (pairs of rows)."""
    t = torch.arange(p, dtype=torch.float64)
    rows = []
    for k, a in amplitudes.items():
        rows += [a * torch.cos(2 * math.pi * k * t / p), a * torch.sin(2 * math.pi * k * t / p)]
    rows += [torch.zeros(p, dtype=torch.float64)] * (d_model - len(rows))
    return torch.stack(rows)


def test_a_pure_wave_is_concentrated_on_its_one_frequency():
    e = waves(59, {3: 1.0})[:1]  # cos alone, at k = 3
    assert int(frequency_power(e).argmax()) + 1 == 3
    assert float(fourier_concentration(e, top=1)) == pytest.approx(1.0)


def test_two_equal_frequencies_share_the_power_and_the_constant_is_left_out():
    e = waves(59, {3: 1.0, 17: 1.0}) + 5.0  # a constant offset: the mean embedding
    assert float(fourier_concentration(e, top=1)) == pytest.approx(0.5)
    assert float(fourier_concentration(e, top=2)) == pytest.approx(1.0)


def test_power_adds_up_to_the_variance_also_at_an_even_p():
    """Parseval: the paired powers add up to P x the embedding's squared deviation from its
    mean; k = P/2 (even P) is counted once. cos at k = 30 = P/2 holds twice the power of cos
    at k = 5 (its square is 1 at every t, not 1/2 on average): a share of 2/3."""
    p = 60
    e = waves(p, {5: 1.0, 30: 1.0})[[0, 2]]  # the two cosines
    power = frequency_power(e)
    assert len(power) == p // 2
    centred = e - e.mean(dim=-1, keepdim=True)
    assert float(power.sum()) == pytest.approx(p * float(centred.pow(2).sum()))
    assert int(power.argmax()) + 1 == 30
    assert float(fourier_concentration(e, top=1)) == pytest.approx(2 / 3)


def test_a_random_embedding_is_spread_over_all_frequencies():
    e = torch.randn(128, 59, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert 5 / 29 * 0.8 < float(fourier_concentration(e, top=5)) < 0.3
    with pytest.raises(ValueError, match="top"):
        fourier_concentration(e, top=30)


def test_the_probe_reads_the_number_tokens_only_per_run():
    spec = TaskSpec("modadd", p=59)
    clean = waves(59, {7: 1.0})
    noise = torch.randn(4, 59, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w_e = torch.stack([clean, noise])  # two runs
    w_e = torch.cat([w_e, torch.full((2, 4, 1), 100.0, dtype=torch.float64)], dim=-1)  # '='
    values = fourier_top5(spec, {"W_E": w_e})
    assert values.shape == (2,)
    assert float(values[0]) == pytest.approx(1.0) and float(values[1]) < 0.9


def test_messiness_one_is_the_raw_images_and_zero_the_templates():
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 784)), rng.integers(0, 10, 20)
    assert messy(x, y, 1.0) is x
    zero = messy(x, y, 0.0)
    np.testing.assert_array_equal(zero, np.repeat(class_templates()[y][:, None], 784, axis=1))
    assert np.allclose(messy(x, y, 0.5), 0.5 * x + 0.5 * zero)
    np.testing.assert_array_equal(messy(x, y, 0.3), messy(x, y, 0.3))  # nothing random
    assert class_templates()[0] == -0.5 and class_templates()[9] == 0.5
    with pytest.raises(ValueError, match="messiness"):
        messy(x, y, 1.5)


def test_messiness_is_checked_and_keeps_the_raw_runs_keys():
    with pytest.raises(ValueError, match="messiness"):
        TaskSpec("mnist", messiness=1.5)
    with pytest.raises(ValueError, match="messiness"):
        modadd_run(task=TaskSpec("modadd", messiness=0.5))  # only MNIST's inputs can be messy
    raw = mnist_run()
    assert run_key(raw.replace(task=TaskSpec("mnist", messiness=1))) == run_key(raw)
    assert run_key(raw.replace(task=TaskSpec("mnist", messiness=0.5))) != run_key(raw)


def test_the_task_feeds_messy_images_to_train_and_test():
    from omnigrok.task import make_task

    half = TaskSpec("mnist", n_train=50, n_test=30, messiness=0.5)
    raw = make_task(TaskSpec("mnist", n_train=50, n_test=30), dtype="float64")
    mixed = make_task(half, dtype="float64")
    for split in ("train", "test"):
        x, y = getattr(raw, f"x_{split}").numpy(), getattr(raw, f"y_{split}").numpy()
        np.testing.assert_allclose(getattr(mixed, f"x_{split}").numpy(), messy(x, y, 0.5))


def test_a_probe_is_logged_only_by_runs_that_name_it():
    with pytest.raises(ValueError, match="probe"):
        mnist_run(probe="fourier_top5")  # MNIST has no probe
    base = modadd_run(p=11, train_frac=0.5, steps=6, n_log=4)
    probed = train_ensemble([base.replace(probe="fourier_top5")], device="cpu", progress=False)
    plain = train_ensemble([base], device="cpu", progress=False)
    curve = probed[0]["fourier_top5"]
    # A share of power: in (0, 1], up to float32 rounding (at P = 11 the top 5 frequencies are
    # all of them, and the share reads 1.00000012 on this Intel CPU's BLAS).
    assert curve.shape == probed[0].steps.shape and np.all((curve > 0) & (curve <= 1 + 1e-6))
    assert "fourier_top5" not in plain[0].metrics
    for name in plain[0].metrics:  # the probe changes no other curve
        np.testing.assert_array_equal(plain[0][name], probed[0][name])
    assert base.shape() != base.replace(probe="fourier_top5").shape()


def _curve(steps: np.ndarray, at: float, low: float, high: float) -> np.ndarray:
    """``low`` before step ``at``, ``high`` from it on (never: ``at`` = inf)."""
    return np.where(steps >= at, high, low).astype(float)


def _outcome(repr_at: dict, gen_at: dict, zones: dict) -> rep.Outcome:
    """An outcome with curves that step at the given steps: regime -> (per seed), and MNIST's
    seed-mean test accuracy per messiness -> per α."""
    s = rep.Setup("smoke", seeds="0-1", device="cpu")
    modadd = {}
    for regime in rep.REGIMES:
        runs = []
        for c, t_r, t_g in zip(
            s.regime_configs(regime), repr_at[regime], gen_at[regime], strict=True
        ):
            # Ten times the smoke budget: a crossing needs 100 steps to hold (metrics' rule).
            steps = log_schedule(10 * c.steps, c.n_log)
            metrics = {
                rep.PROBE: _curve(steps, t_r, 0.3, 0.9),
                "test_acc_novel": _curve(steps, t_g, 0.0, 1.0),
            }
            runs.append(RunResult(c, steps, metrics))
        modadd[regime] = runs
    from omnigrok.chapters.claim1 import Landscape

    mnist = {}
    for m, acc in zones.items():
        grid = np.tile(np.asarray(acc, float), (len(s.seeds), 1))
        ones = np.ones_like(grid)
        mnist[m] = Landscape("mnist", np.array(s.alphas), ones, ones, ones, grid)
    return rep.Outcome(s, modadd, mnist, {})


def by_regime(*per_regime: list[float]) -> dict:
    """Per-seed values for the regimes, in ``rep.REGIMES`` order."""
    return dict(zip(rep.REGIMES, per_regime, strict=True))


GOOD_ZONES = {0.0: [0.9, 0.95, 0.9], 1.0: [0.1, 0.9, 0.1]}


def test_the_verdict_passes_when_the_representation_leads_and_a_given_one_widens_the_zone():
    inf = math.inf
    o = _outcome(
        by_regime([600, 700], [200, 250], [inf, inf]),
        by_regime([1000, 1100], [400, 400], [inf, inf]),
        GOOD_ZONES,
    )
    v = rep.verdict(o)
    assert v.status == REPRODUCED, v.markdown()
    assert rep.numbers(o)["m0_zone"] == "0.1, 1, 10"


def test_the_verdict_fails_a_representation_that_lags_and_a_zone_that_does_not_widen():
    inf = math.inf
    o = _outcome(
        by_regime([1200, 1300], [200, 250], [inf, inf]),
        by_regime([1000, 1100], [400, 400], [inf, inf]),
        {0.0: [0.1, 0.9, 0.1], 1.0: [0.1, 0.9, 0.1]},
    )
    failed = [line for line in rep.verdict(o).evidence if line.startswith("✗")]
    assert any("forms first" in line for line in failed)
    assert any("and more" in line for line in failed)


def test_the_verdict_is_not_tested_when_nothing_generalizes():
    never = {r: [math.inf, math.inf] for r in rep.REGIMES}
    assert rep.verdict(_outcome(never, never, GOOD_ZONES)).status == NOT_TESTED


def test_the_raw_images_landscape_is_claim_1s_own_runs():
    from omnigrok.chapters import claim1

    s = rep.Setup("quick", device="cpu")
    claim1 = set(claim1.Setup("quick", device="cpu").task_configs("mnist"))
    assert set(s.mnist_configs(1.0)) <= claim1
    assert all(
        isinstance(c, RunConfig) and c.probe == "fourier_top5"
        for c in s.regime_configs("held at 0.8·w0")
    )


def test_the_smoke_profile_runs_and_judges():
    s = rep.Setup("smoke", seeds="0", device="cpu")
    o = rep.run(s, progress=False)
    assert rep.verdict(o).status and rep.numbers(o)["m0"] == "0"
    assert all(rep.PROBE in r.metrics for runs in o.modadd.values() for r in runs)
