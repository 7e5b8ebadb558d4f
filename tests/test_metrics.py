"""Claim metrics on curves whose answers are known."""

import math

import numpy as np
import pytest

from omnigrok.metrics import first_step_reaching, goldilocks_norm, grokking_delay, spread
from omnigrok.verdict import NOT_REPRODUCED, PARTLY, REPRODUCED, judge

STEPS = np.array([0, 10, 100, 1000, 10000])


def test_first_step_reaching_and_never():
    assert first_step_reaching(STEPS, [0, 0.5, 0.95, 1, 1], 0.9) == 100
    assert first_step_reaching(STEPS, [0, 0.1, 0.2, 0.3, 0.4], 0.9) == math.inf


def test_grokking_delay_is_the_ratio_of_test_to_train_steps():
    train = [0, 0.95, 1, 1, 1]
    test = [0, 0.1, 0.2, 0.95, 1]
    assert grokking_delay(STEPS, train, test) == 100
    assert math.isnan(grokking_delay(STEPS, [0] * 5, test))


def test_goldilocks_norm_finds_an_interior_minimum_in_any_order():
    norms = [10.0, 0.1, 1.0, 3.0, 0.3]
    losses = [5.0, 2.0, 0.5, 1.0, 1.5]
    g = goldilocks_norm(norms, losses)
    assert g.w_c == 1.0 and g.interior and g.test_loss_at_w_c == 0.5
    edge = goldilocks_norm([1, 2, 3], [3, 2, 1])
    assert edge.w_c == 3 and not edge.interior
    with pytest.raises(ValueError, match="equal length >= 3"):
        goldilocks_norm([1, 2], [1, 2])


def test_spread_counts_runs_that_never_got_there():
    s = spread([100, 300, math.inf])
    assert (s.mean, s.n, s.n_finite, s.min, s.max) == (200, 3, 2, 100, 300)
    assert "1 of 3 never" in str(s)
    assert str(spread([math.inf, math.inf])) == "never (0 of 2 seeds)"


def test_judge_maps_checks_to_status():
    assert judge("c", "k", {"a": (True, "x"), "b": (True, "y")}).status == REPRODUCED
    assert judge("c", "k", {"a": (True, "x"), "b": (False, "y")}).status == PARTLY
    v = judge("c", "k", {"a": (False, "x")})
    assert v.status == NOT_REPRODUCED and "✗ a: x" in v.markdown()


def test_run_config_round_trips_through_its_dict():
    from omnigrok.config import RunConfig, run_key
    from omnigrok.presets import mnist_run, modadd_run

    for cfg in (mnist_run(constraint="fixed", target_norm=3.0), modadd_run(p=23)):
        again = RunConfig.from_dict(cfg.to_dict())
        assert again == cfg and run_key(again) == run_key(cfg)
