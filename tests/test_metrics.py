"""Claim metrics on curves whose answers are known."""

import math

import numpy as np
import pytest

from omnigrok.report.metrics import (
    PERSIST,
    Reached,
    first_step_reaching,
    goldilocks_norm,
    grokking_delay,
    reaching,
    refine_minimum,
    spread,
    upper_edge,
)
from omnigrok.report.verdict import NOT_REPRODUCED, NOT_TESTED, PARTLY, REPRODUCED, judge

STEPS = np.array([0, 10, 100, 1000, 10000])


def test_first_step_reaching_and_never():
    assert first_step_reaching(STEPS, [0, 0.5, 0.95, 1, 1], 0.9) == 100
    assert first_step_reaching(STEPS, [0, 0.1, 0.2, 0.3, 0.4], 0.9) == math.inf


def old_first_step_reaching(steps, values, threshold, persist=3) -> float:
    """The rule before issue 22: 3 consecutive logged points, a slice past the end complete."""
    above = np.asarray(values, float) >= threshold
    for i in np.flatnonzero(above):
        if above[i : i + persist].all():
            return float(np.asarray(steps)[i])
    return math.inf


LOGGED = np.unique(np.r_[np.arange(31), np.rint(np.geomspace(30, 10_000, 120))]).astype(int)


def test_a_threshold_counts_only_where_the_curve_stays_above_it():
    steps = np.arange(0, 1000, 100)
    blip = [0, 0.95, 0.2, 0.3, 0.95, 0.96, 0.97, 0.99, 1, 1]  # one noisy point at step 100
    assert PERSIST == 3
    assert old_first_step_reaching(steps, blip, 0.9, persist=1) == 100
    assert first_step_reaching(steps, blip, 0.9) == 400
    # NaN (a diverged run) never counts as reached.
    assert first_step_reaching(steps, [math.nan] * 10, 0.9) == math.inf
    with pytest.raises(ValueError, match="persist"):
        first_step_reaching(steps, blip, 0.9, persist=0)


def test_a_three_point_transient_is_not_reached():
    steps = np.arange(0, 1000, 100)
    transient = [0.1, 0.1, 0.1, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1]
    assert old_first_step_reaching(steps, transient, 0.8) == 300
    assert first_step_reaching(steps, transient, 0.8) == math.inf
    nan_gap = [0, 1, math.nan, 1, 1, 1, 0, 0, 0, 0]  # three points, then back down for good
    assert old_first_step_reaching(steps, nan_gap, 0.9) == 300
    assert first_step_reaching(steps, nan_gap, 0.9) == math.inf


def test_a_crossing_the_run_end_cuts_short_is_not_reached_but_reported():
    steps = np.arange(0, 1000, 100)
    touches = [0.85] * 9 + [0.9]  # a plateau at 85% whose last point touches 90%
    assert old_first_step_reaching(steps, touches, 0.9) == 900
    r = reaching(steps, touches, 0.9)
    assert r.step == math.inf and r.unconfirmed == 900
    assert str(r) == "900 at the end of the run, not confirmed"
    late = reaching(steps, [0] * 8 + [1, 1], 0.9)  # two points, 100 steps: the hold is not over
    assert late == Reached(math.inf, 800.0) and first_step_reaching(steps, [0] * 8 + [1, 1], 0.9)
    assert str(reaching(steps, [0] * 10, 0.9)) == "never"


def test_the_hold_is_in_steps_not_logged_points():
    # Logged every step early on: three points over steps 20-22 are not a hold of 100 steps.
    values = np.where((LOGGED >= 20) & (LOGGED <= 22), 0.95, 0.5)
    values = np.where(LOGGED >= 2000, 0.95, values)
    assert old_first_step_reaching(LOGGED, values, 0.9) == 20
    assert first_step_reaching(LOGGED, values, 0.9) == LOGGED[LOGGED >= 2000][0]


def test_a_curve_that_holds_is_reached_by_both_rules_and_may_dip_later():
    clean = np.where(LOGGED >= 500, 0.95, 0.1)
    first = LOGGED[LOGGED >= 500][0]
    assert old_first_step_reaching(LOGGED, clean, 0.9) == first
    assert first_step_reaching(LOGGED, clean, 0.9) == first
    dip = clean.copy()
    dip[-5:-2] = 0.5  # a later dip of 3 of the ~60 points from there on: allowed
    assert reaching(LOGGED, dip, 0.9) == Reached(float(first))
    drops = np.where(LOGGED >= 3000, 0.5, clean)  # back below for most of the rest: not
    assert first_step_reaching(LOGGED, drops, 0.9) == math.inf


def test_grokking_delay_is_the_ratio_of_test_to_train_steps():
    steps = np.arange(0, 10_001, 10)
    train = np.where(steps >= 10, 1.0, 0.0)
    test = np.where(steps >= 1000, 0.95, 0.1)
    assert grokking_delay(steps, train, test) == 100
    assert math.isnan(grokking_delay(steps, np.zeros(len(steps)), test))


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


def test_seed_outcomes_say_when_the_run_ended_before_a_crossing_held():
    from omnigrok.report.page import seed_outcomes
    from omnigrok.store import RunResult
    from omnigrok.tasks import mnist_run

    steps = np.arange(0, 1001, 100)
    touches = RunResult(mnist_run(steps=1000), steps, {"test_acc": np.r_[[0.85] * 10, 0.9]})
    held = RunResult(mnist_run(steps=1000, seed=1), steps, {"test_acc": np.r_[0.1, [0.9] * 10]})
    table = seed_outcomes([touches, held], "test_acc", 0.9)
    assert "| 1000 at the end of the run, not confirmed |" in table
    assert "crossed at the end of the run, not confirmed |" in table
    assert "| 1 | 100 | 0.9 | 0.9 | reached |" in table
