"""Claim metrics on curves whose answers are known."""

import math

import numpy as np
import pytest

from omnigrok.metrics import (
    PERSIST,
    first_step_reaching,
    goldilocks_norm,
    grokking_delay,
    refine_minimum,
    spread,
    upper_edge,
)
from omnigrok.verdict import NOT_REPRODUCED, NOT_TESTED, PARTLY, REPRODUCED, judge

STEPS = np.array([0, 10, 100, 1000, 10000])


def test_first_step_reaching_and_never():
    assert first_step_reaching(STEPS, [0, 0.5, 0.95, 1, 1], 0.9) == 100
    assert first_step_reaching(STEPS, [0, 0.1, 0.2, 0.3, 0.4], 0.9) == math.inf


def test_a_threshold_counts_only_where_the_curve_stays_above_it():
    steps = np.arange(0, 1000, 100)
    blip = [0, 0.95, 0.2, 0.3, 0.95, 0.96, 0.97, 0.99, 1, 1]  # one noisy point at step 100
    assert PERSIST == 3
    assert first_step_reaching(steps, blip, 0.9, persist=1) == 100  # the old reading
    assert first_step_reaching(steps, blip, 0.9) == 400
    # NaN (a diverged run) never counts as reached and breaks a streak.
    assert first_step_reaching(steps, [0, 1, math.nan, 1, 1, 1, 0, 0, 0, 0], 0.9) == 300
    # A crossing that holds to the run's last logged point counts: the run ended, not the curve.
    assert first_step_reaching(steps, [0] * 8 + [1, 1], 0.9) == 800
    with pytest.raises(ValueError, match="persist"):
        first_step_reaching(steps, blip, 0.9, persist=0)


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


def test_spread_is_a_sample_standard_deviation_like_every_other_seed_spread():
    # ddof=1, as the width chapter's exponents: [1, 2, 3] has sd 1 (ddof=0 would say 0.816).
    assert spread([1, 2, 3]).std == pytest.approx(1.0)
    one = spread([5.0, math.inf])
    assert math.isnan(one.std) and str(one) == "5 (n=1, no spread; 1 of 2 never)"


GRID = np.geomspace(0.1, 10, 11)  # claim 1's quick α grid: 1.58x between points


def asymmetric_parabola(norms, w_c):
    """log loss = (log w/w_c)^2, 16x steeper above w_c than below: an asymmetric U."""
    x = np.log(np.asarray(norms) / w_c)
    return np.exp(np.where(x < 0, 0.5, 8.0) * x**2)


def asymmetric_v(norms, w_c):
    """log loss falls with slope 0.5 towards w_c and rises with slope 4 beyond it."""
    x = np.log(np.asarray(norms) / w_c)
    return np.exp(np.where(x < 0, -0.5, 4.0) * x)


def old_refined_minimum(norms, losses):
    """The criterion before: the vertex of a parabola through the minimum and its neighbours."""
    x, y = np.log(norms), np.log(losses)
    i = int(np.argmin(y))
    a, b, _ = np.polyfit(x[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    return float(np.exp(np.clip(-b / (2 * a), x[i - 1], x[i + 1])))


@pytest.mark.parametrize("shape", [asymmetric_parabola, asymmetric_v], ids=lambda f: f.__name__)
@pytest.mark.parametrize("w_c", [1.0, 1.23, 0.57])
def test_refined_minimum_is_unbiased_on_an_asymmetric_u(shape, w_c):
    losses = shape(GRID, w_c)
    m = refine_minimum(GRID, losses)
    assert m.value == pytest.approx(w_c, rel=1e-3)
    assert m.model == ("parabola" if shape is asymmetric_parabola else "V")
    # Half a grid cell either side.
    assert m.high / m.value == pytest.approx(10 ** (0.1), rel=1e-9)
    assert m.low < w_c < m.high and f"{w_c:.3g}" in str(m)
    if w_c == 1.0 and shape is asymmetric_parabola:  # the case: read as 0.82 before
        assert old_refined_minimum(GRID, losses) == pytest.approx(0.816, abs=0.01)


def test_refined_minimum_stays_on_the_grid_where_it_cannot_refine():
    at_edge = refine_minimum(GRID, GRID)  # monotone: the minimum is the grid's first point
    assert (at_edge.value, at_edge.model) == (GRID[0], "grid")
    losses = asymmetric_parabola(GRID, 1.0)
    losses[6] = math.nan  # a diverged run next to the minimum: nothing to fit with
    assert refine_minimum(GRID, losses).model == "grid"
    # Three points only: the symmetric parabola, biased but kept between its neighbours.
    three = refine_minimum(GRID[4:7], asymmetric_parabola(GRID[4:7], 1.1))
    assert three.model == "symmetric parabola" and GRID[4] < three.value < GRID[6]


def test_upper_edge_says_when_it_is_only_a_bound():
    acc = np.array([0.1, 0.5, 0.9, 0.9, 0.85])
    bound = upper_edge(GRID[:5], acc, 0.8)  # the largest norm still reaches 0.8
    assert bound.is_bound and not bound.measured and str(bound).startswith("≥ ")
    edge = upper_edge(GRID[:5], [0.1, 0.5, 0.9, 0.9, 0.7], 0.8)
    assert edge.measured and GRID[3] < edge.value < GRID[4]
    nan = upper_edge(GRID[:5], [0.1, 0.5, 0.9, math.nan, 0.7], 0.8)
    assert math.isnan(nan.value) and "not finite" in str(nan)


def test_judge_maps_checks_to_status():
    assert judge("c", "k", {"a": (True, "x"), "b": (True, "y")}).status == REPRODUCED
    assert judge("c", "k", {"a": (True, "x"), "b": (False, "y")}).status == PARTLY
    v = judge("c", "k", {"a": (False, "x")})
    assert v.status == NOT_REPRODUCED and "✗ a: x" in v.markdown()
    with pytest.raises(ValueError, match="at least one check"):
        judge("c", "k", {})


def test_a_precondition_is_not_evidence_for_the_claim():
    # Before, "every seed groks" was a check: passing it alone made a claim "partly reproduced".
    pre = {"every seed groks": (True, "5 of 5")}
    only_pre = judge("c", "k", {"the effect": (False, "none")}, preconditions=pre)
    assert only_pre.status == NOT_REPRODUCED
    failed = judge("c", "k", {"the effect": (True, "big")}, {"baseline groks": (False, "0 of 5")})
    assert failed.status == NOT_TESTED
    lines = failed.markdown()
    assert "✗ precondition: baseline groks: 0 of 5" in lines
    assert "(not counted: a precondition failed) the effect" in lines
    noted = judge("c", "k", {"a": (True, "x")}, notes=["control not judged"])
    assert noted.status == REPRODUCED and "· control not judged" in noted.markdown()


def test_run_config_round_trips_through_its_dict():
    from omnigrok.config import RunConfig, run_key
    from omnigrok.tasks import mnist_run, modadd_run

    for cfg in (mnist_run(constraint="fixed", target_norm=3.0), modadd_run(p=23)):
        again = RunConfig.from_dict(cfg.to_dict())
        assert again == cfg and run_key(again) == run_key(cfg)
