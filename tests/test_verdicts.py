"""Every claim's criterion on synthetic outcomes where it must pass and where it must fail.

Each weakness of the criteria before issue 10 has a case here that the old criterion (written
out below as ``old_*``, as it was) passes and the new one fails; every chapter's ``verdict()``
runs on hand-built outcomes, so a verdict is exercised without training or building the book.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from omnigrok.chapters import claim1, claim2, claim3, claim4
from omnigrok.report.metrics import Edge, goldilocks_norm
from omnigrok.report.verdict import NOT_REPRODUCED, NOT_TESTED, PARTLY, REPRODUCED
from omnigrok.store import RunResult
from omnigrok.tasks import mnist_run, modadd_run

# ---------------------------------------------------------------- claim 1: L and U shapes

ALPHAS = np.geomspace(0.1, 10, 7)
U_GOOD = [1.0, 0.4, 0.2, 0.1, 0.3, 0.9, 2.0]
L_GOOD = [0.09, 0.02, 1e-3, 1e-5, 1e-7, 1e-6, 1e-7]


def land(test_loss, train_loss=L_GOOD, task="mnist", seeds=3) -> claim1.Landscape:
    """A landscape with every seed equal to the given curves, norms 10x α."""
    tile = lambda v: np.tile(np.asarray(v, float), (seeds, 1))  # noqa: E731
    norm = tile(ALPHAS * 10)
    return claim1.Landscape(task, ALPHAS, norm, tile(train_loss), tile(test_loss), norm * 0)


def old_l(lnd: claim1.Landscape) -> bool:
    train = np.nanmean(lnd.train_loss, 0)
    return bool(train[0] / np.median(train[len(train) // 2 :]) >= 10)


def old_u(lnd: claim1.Landscape) -> bool:
    test = np.nanmean(lnd.test_loss, 0)
    g = goldilocks_norm(lnd.norm.mean(0), test)
    return bool(g.interior and min(test[0], test[-1]) / g.test_loss_at_w_c >= 1.5)


def test_l_and_u_pass_on_an_lu_landscape():
    ok, what = claim1.l_check(land(U_GOOD))
    assert ok, what
    assert claim1.u_check(land(U_GOOD))[0]


def test_l_fails_on_a_v():
    # The quick MNIST landscape at 2000 steps: 1e-5 at w_c, back to 1e-1 at the largest norms.
    v = land(U_GOOD, [0.09, 0.02, 1e-3, 1e-5, 1e-3, 1e-2, 1e-1])
    assert old_l(v)
    ok, what = claim1.l_check(v)
    assert not ok and "from w_c up at most 0.1, a drop of 0.9x" in what


def test_l_passes_when_the_fitted_losses_are_numerically_zero_but_noisy():
    # Teacher-student at the paper's settings: from w_c up, 1e-14 to 1e-5 are all "fitted".
    lnd = land(U_GOOD, [0.024, 0.01, 1e-3, 5e-7, 1e-13, 3e-6, 1e-5])
    assert claim1.l_check(lnd)[0]
    # One seed that has not converged at one norm does not make the median a V.
    lnd.train_loss[0, 5] = 4e-3
    assert claim1.l_check(lnd)[0]


def test_l_fails_where_small_norms_fit_as_well():
    ok, what = claim1.l_check(land(U_GOOD, [1e-5] * 7))
    assert not ok and "a drop of 1x" in what


def test_u_fails_on_a_monotone_curve_whose_last_point_ticks_up():
    uptick = land([2.0, 1.0, 0.6, 0.4, 0.25, 0.1, 0.16])
    assert old_u(uptick)
    ok, what = claim1.u_check(uptick)
    assert not ok and "minimum at grid point 6 of 7: not inside the grid" in what


def test_u_fails_on_a_minimum_that_does_not_rise_over_two_points():
    flat_then_up = land([2.0, 1.0, 0.6, 0.1, 0.1, 0.1, 2.0])  # nothing rises next to it
    assert old_u(flat_then_up)
    assert not claim1.u_check(flat_then_up)[0]


def pre22_l(lnd: claim1.Landscape) -> bool:
    """Claim 1's L check before issue 22: inclusive bounds, the level at w_c floored at 1e-3
    of the smallest norm's loss, w_c from the seed-mean test loss, seed medians only."""
    norm, train = lnd.norm.mean(0), np.median(lnd.train_loss, 0)
    i = int(np.argmin(np.abs(norm - lnd.goldilocks().w_c)))
    worst = train[i:].max()
    return bool(train[0] / worst >= 10 and worst / max(train[i], 1e-3 * train[0]) <= 10)


def pre22_u(lnd: claim1.Landscape) -> bool:
    """Claim 1's U check before issue 22: the seed mean only, two points next to the minimum."""
    test = lnd.test_loss.mean(0)
    i = int(np.argmin(test))
    left, right = test[: i + 1][::-1], test[i:]
    sides = [v for v in (left, right) if len(v) - 1 >= 2 and np.all(np.diff(v[:3]) > 0)]
    return len(sides) == 2 and min(test[0], test[-1]) / test[i] >= 1.5


def test_l_fails_a_rise_of_10x_again_above_w_c():
    again = land(U_GOOD, [0.09, 0.02, 1e-3, 1e-5, 1e-5, 2e-4, 2e-4])  # 20x the level at w_c
    assert pre22_l(again)  # under the old floor, 1e-3 of 0.09
    ok, what = claim1.l_check(again)
    assert not ok and "20x the level at w_c" in what


def test_l_fails_a_rise_of_1e7_from_a_numerically_zero_level():
    rise = land(U_GOOD, [9.0, 3.0, 0.1, 1e-9, 1e-9, 1e-4, 1e-2])
    assert pre22_l(rise)
    assert not claim1.l_check(rise)[0]


def test_l_passes_fitted_losses_that_scatter_below_the_fitted_level():
    # From w_c up a fitted loss anywhere in 1e-14..5e-5 (the stored teacher-student landscape)
    scatter = land(U_GOOD, [0.024, 0.01, 1e-3, 5e-7, 1e-14, 5e-5, 3e-6])
    assert pre22_l(scatter) and claim1.l_check(scatter)[0]


def test_l_and_u_are_not_tested_when_w_c_is_the_grids_last_point():
    monotone = {t: land([2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1], task=t) for t in claim1.TASKS}
    assert pre22_l(monotone["mnist"])  # "flat from w_c up" was one point, and passed
    v = claim1.verdict(monotone)
    assert v.status == NOT_TESTED
    assert v.evidence[0].startswith("✗ precondition: MNIST (N=1000): w_c is an interior minimum")
    assert "grid point 7 of 7" in v.evidence[0]


def test_u_fails_a_w():
    w = land([2.0, 1.0, 0.1, 0.3, 0.5, 0.15, 2.0])  # a second dip after the minimum
    assert pre22_u(w)
    ok, what = claim1.u_check(w)
    assert not ok and "falls after grid point 5" in what


def test_u_fails_two_monotone_seeds_whose_mean_is_a_u():
    down = np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.12, 0.06])
    lnd = land(U_GOOD, seeds=2)
    lnd.test_loss[:] = np.stack([down, down[::-1]])
    assert pre22_u(lnd)
    ok, what = claim1.u_check(lnd)
    assert not ok and "0 of 2 seeds have the shape" in what


def test_u_passes_a_u_with_a_small_wiggle_and_one_odd_seed():
    wiggle = land([1.0, 1.03, 0.2, 0.1, 0.3, 0.9, 2.0])  # 3% up on the way down: noise
    assert pre22_u(wiggle)
    ok, what = claim1.u_check(wiggle)
    assert ok and "3 of 3 seeds" in what
    odd = land(U_GOOD)
    odd.test_loss[2] = [2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1]  # one seed monotone: a majority holds
    assert claim1.u_check(odd)[0]


def test_l_and_u_say_why_on_all_nan_and_on_a_short_grid():
    nan = land([math.nan] * 7, [math.nan] * 7)
    v = claim1.verdict({"mnist": nan, "teacher_student": land(U_GOOD, task="teacher_student")})
    assert v.status == NOT_TESTED and "no finite seed-mean test loss" in v.evidence[0]
    assert "not finite" in " ".join(v.evidence)
    alphas = np.array([0.5, 1.0])
    short = claim1.Landscape("mnist", alphas, *(np.ones((2, 2)) for _ in range(4)))
    v = claim1.verdict({"mnist": short, "teacher_student": land(U_GOOD, task="teacher_student")})
    assert v.status == NOT_TESTED and "a grid of 2 norms (>= 5 required)" in v.evidence[0]


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_nan_anywhere_fails_l_and_u_saying_why():
    nan_ends = land([1.0, 0.4, 0.2, 0.1, 0.3, math.nan, math.nan])
    assert old_u(nan_ends)  # min(1.0, nan) is 1.0 in Python; nanmean skips the rest
    ok, what = claim1.u_check(nan_ends)
    assert not ok and "not finite" in what and "α = [4.642, 10.0]" in what
    one_seed = land(U_GOOD)
    one_seed.train_loss[1, -1] = math.nan  # one seed diverged at the largest norm
    ok, what = claim1.l_check(one_seed)
    assert not ok and "train loss not finite" in what


def test_claim1_verdict_on_synthetic_landscapes():
    good = {"mnist": land(U_GOOD), "teacher_student": land(U_GOOD, task="teacher_student")}
    v = claim1.verdict(good)
    assert v.status == REPRODUCED and len(v.evidence) == 6  # 2 preconditions, 4 checks
    assert "L-shaped" in v.criterion and "U-shaped" in v.criterion
    bad = dict(good, mnist=land(U_GOOD, [0.09, 0.02, 1e-3, 1e-5, 1e-3, 1e-2, 1e-1]))
    assert claim1.verdict(bad).status == PARTLY
    numbers = claim1.numbers(good)
    assert {"mnist_w_c", "mnist_w_c_seeds", "mnist_alpha_c", "mnist_w_c_refined"} <= set(numbers)


# ---------------------------------------------------------------- claim 2: large init


W0, W_EDGE = 10.0, 20.0  # init norm at α = 1 and claim 1's zone edge


def log_steps(total: int) -> np.ndarray:
    """A log-and-linear schedule like the trainer's."""
    points = np.r_[np.arange(31), np.geomspace(30, total, 120), np.linspace(0, total, 120)]
    return np.unique(np.rint(points).astype(int))


def large_init_run(cfg, at: float = 1.0, mem_step: int = 40, scale: float = 1.0) -> RunResult:
    """Memorizes at ``mem_step``; the norm decays as exp(-lr γ t) from α·W0 (times ``scale``)
    and test accuracy jumps when the norm reaches ``at`` x W_EDGE."""
    steps = log_steps(cfg.steps)
    rate = cfg.lr * cfg.weight_decay
    norm0 = cfg.init_scale * W0 * scale
    norm = np.maximum(norm0 * np.exp(-rate * steps), 0.02 * W_EDGE)
    t_gen = math.log(norm0 / (at * W_EDGE)) / rate
    metrics = {
        "train_acc": np.where(steps >= mem_step, 1.0, 0.1),
        "test_acc": np.where(steps >= t_gen, 0.9, 0.1),
        "norm": norm,
    }
    return RunResult(cfg, steps, metrics)


def large_init_outcome(edge: Edge | None = None, **run_kw) -> claim2.Outcome:
    base = mnist_run(steps=20_000, weight_decay=0.5, init_scale=8.0, n_log=100)
    f = claim2.SWEEP_FACTOR
    s = claim2.Setup("quick", (0, 1), "cpu", base=base)
    assert s.alphas == tuple(8.0 * f**i for i in (-1, 0, 1))
    assert s.weight_decays == tuple(0.5 * f**i for i in (-1, 0, 1))
    sweep = [large_init_run(c, **run_kw) for c in s.sweep()]
    main = [r for r in sweep if r.config in set(s.main())]
    edge = edge or Edge(W_EDGE)
    return claim2.Outcome(s, 0.5 * W_EDGE, edge.value, main, sweep, edge, land(U_GOOD))


def passed(verdict, name: str) -> list[bool]:
    """Whether each check line (not a note) that contains ``name`` passed."""
    return [line.startswith("✓") for line in verdict.evidence if name in line and line[0] != "·"]


def test_claim2_reproduced_when_the_norm_walks_to_the_edge():
    o = large_init_outcome()
    v = claim2.verdict(o)
    assert v.status == REPRODUCED, v.markdown()
    numbers = claim2.numbers(o)
    assert numbers["w_edge"] == "20"
    assert {"norm_at_memorization", "measured_over_predicted"} <= set(numbers)


def old_claim2_edge_check(o: claim2.Outcome) -> bool:
    gen = np.array([claim2.times(r)["generalized"] for r in o.main])
    gen_norm = np.array([claim2.value_at(r, "norm", g) for r, g in zip(o.main, gen, strict=True)])
    return bool(np.all(np.isfinite(gen)) and np.all(gen_norm <= 1.5 * o.w_edge))


def test_claim2_fails_a_run_that_generalizes_far_inside_the_zone():
    o = large_init_outcome(at=0.1)  # generalizes at 0.1 w_edge: the zone is not where claim 1 says
    assert old_claim2_edge_check(o)
    v = claim2.verdict(o)
    assert passed(v, "it generalizes when the norm reaches the zone's edge") == [False]
    assert passed(v, "within 2x of the step its norm enters the zone") == [False]
    assert v.status == PARTLY


def test_claim2_fails_a_run_that_is_already_in_the_zone_when_it_memorizes():
    # Norm 1.1-1.2 x w_edge at memorization; generalization waits for 0.8 w_edge anyway.
    o = large_init_outcome(scale=1.2 * W_EDGE / (8 * W0 * claim2.SWEEP_FACTOR), at=0.8)
    v = claim2.verdict(o)
    assert passed(v, "the norm is outside the zone when it memorizes") == [False]
    assert passed(v, "it generalizes when the norm reaches the zone's edge") == [True]


def test_claim2_is_not_tested_without_a_measured_zone_edge():
    bound = claim2.verdict(large_init_outcome(edge=Edge(W_EDGE, is_bound=True)))
    assert bound.status == NOT_TESTED and "w_edge = ≥ 20" in bound.evidence[1]
    assert claim2.numbers(large_init_outcome(edge=Edge(W_EDGE, is_bound=True)))["w_edge"] == (
        "≥ 20"
    )
    none = claim2.verdict(large_init_outcome(edge=Edge(math.nan, note="no norm reaches 0.8")))
    assert none.status == NOT_TESTED and "no norm reaches 0.8" in none.evidence[1]


def test_claim2_a_diverged_run_fails_saying_why():
    o = large_init_outcome()
    o.main[0].metrics["norm"][100:] = math.nan
    v = claim2.verdict(o)
    assert v.status == PARTLY
    assert any("✗ it generalizes" in line and "a diverged run" in line for line in v.evidence)


def test_claim2_fails_a_run_whose_norm_never_moves():
    # Accuracy jumps at ln(w0/w_edge)/(lr γ), as predicted, but the norm stays at w0.
    o = large_init_outcome()
    for r in o.sweep:
        r.metrics["norm"] = np.full(len(r.steps), r["norm"][0])
    old = claim2._measured_over_predicted(o.sweep, o.w_edge)
    assert np.all((old >= 0.5) & (old <= 2))  # the old check: within 2x of the prediction
    v = claim2.verdict(o)
    assert passed(v, "within 2x of the step its norm enters the zone") == [False]
    assert v.status == PARTLY


def test_claim2_is_not_tested_on_a_monotone_claim_1_landscape():
    monotone = land([2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1])
    o = large_init_outcome()
    v = claim2.verdict(dataclasses.replace(o, landscape=monotone))
    assert claim2.verdict(o).status == REPRODUCED and v.status == NOT_TESTED
    assert v.evidence[0].startswith("✗ precondition: claim 1's w_c is an interior minimum")


def test_claim2_a_run_cut_short_or_logged_only_at_step_0_is_not_tested():
    o = large_init_outcome()
    r = o.sweep[0]
    o.sweep[0] = RunResult(r.config, r.steps[:100], {k: v[:100] for k, v in r.metrics.items()})
    v = claim2.verdict(o)
    assert v.status == NOT_TESTED
    assert any("logged to step" in line and "of 20000" in line for line in v.evidence)
    only_0 = {k: v[:1] for k, v in r.metrics.items()}
    o = large_init_outcome()
    o.sweep[:] = [RunResult(x.config, x.steps[:1], only_0) for x in o.sweep]
    o.main[:] = o.sweep[:2]
    v = claim2.verdict(o)
    assert v.status == NOT_TESTED and "logged to step 0 of 20000" in " ".join(v.evidence)


# ---------------------------------------------------------------- claim 3: constraint

T3 = 10_000


def step_run(cfg, t_train: float, t_test: float, norm0: float) -> RunResult:
    """Train accuracy 1 from ``t_train``, test accuracy 1 from ``t_test`` (inf: never)."""
    steps = np.r_[np.arange(0, 100), np.arange(100, T3 + 1, 10)]
    metrics = {
        "train_acc": np.where(steps >= t_train, 1.0, 0.0),
        "test_acc": np.where(steps >= t_test, 1.0, 0.0),
        "norm": np.full(len(steps), norm0),
    }
    return RunResult(cfg, steps, metrics)


def constraint_outcome(
    free=(100, 5000), held=(200, 250), high=(100, math.inf), seeds=(0, 1, 2)
) -> claim3.Outcome:
    """Each regime's (train step, test step), the same for every seed and both tasks.
    MNIST held high sits at 8x w_c (a control); modular addition at 1.25x (not one)."""
    bases = {
        "mnist": mnist_run(steps=T3, init_scale=8.0, n_log=50),
        "modadd": modadd_run(p=23, steps=T3, n_log=50),
    }
    s = claim3.Setup("quick", seeds, "cpu", mnist_w_c=10.0, modadd_w_c=24.0, bases=bases)
    norms = {"mnist": (80.0, 10.0, 80.0), "modadd": (30.0, 24.0, 30.0)}
    times = dict(zip(claim3.REGIMES, (free, held, high), strict=True))
    results = {
        (task, regime): [
            step_run(c, *times[regime], norms[task][k]) for c in s.regime_configs(task, regime)
        ]
        for task in bases
        for k, regime in enumerate(claim3.REGIMES)
    }
    return claim3.Outcome(s, results)


def test_claim3_reproduced_at_the_papers_size_of_effect():
    o = constraint_outcome()  # 5000 vs 250 steps: 20x, as 280 vs 5e3-8e3 in the paper
    v = claim3.verdict(o)
    assert v.status == REPRODUCED, v.markdown()
    assert any("only 1.25x w_c" in line and "not judged" in line for line in v.evidence)
    numbers = claim3.numbers(o)
    assert numbers["mnist_speedup"].startswith("20 ")
    assert numbers["mnist_held_at_w_c_delay"].startswith("1.25 ")


def test_claim3_numbers_name_the_seeds_that_never_got_there():
    o = constraint_outcome()
    assert "never reached" not in claim3.numbers(o)["mnist_speedup"]
    stalled = o.results["mnist", "held at w_c"][1]
    o.results["mnist", "held at w_c"][1] = step_run(stalled.config, 200, math.inf, 10.0)
    o.results["mnist", "unconstrained"][2] = step_run(
        o.results["mnist", "unconstrained"][2].config, 100, math.inf, 80.0
    )
    speedup = claim3.numbers(o)["mnist_speedup"]
    assert speedup.startswith("≥ "), speedup  # seed 2's unconstrained budget is a bound
    assert speedup.endswith("never reached 0.8: unconstrained seeds [2], held at w_c seeds [1]")
    assert "never reached" not in claim3.numbers(o)["modadd_speedup"]


def old_claim3(o: claim3.Outcome) -> bool:
    return all(np.all(np.nan_to_num(claim3.speedup(o, t)[0]) >= 5) for t in o.setup.bases)


def test_claim3_fails_a_5x_speedup_that_keeps_its_delay():
    o = constraint_outcome(held=(50, 1000))  # 5x sooner, but 20x after its own train step
    assert old_claim3(o)
    v = claim3.verdict(o)
    assert passed(v, "faster than unconstrained") == [False, False]  # both tasks
    assert passed(v, "no delay of its own") == [False, False]
    # Only the MNIST control passes (held at 8 w0 never generalizes): not the claim's effect.
    assert v.status == PARTLY and passed(v, "control") == [True]


def test_claim3_removing_the_delay_is_judged_apart_from_the_speedup():
    # 20x sooner than unconstrained, yet 10x after its own train step: faster, still grokking.
    v = claim3.verdict(constraint_outcome(held=(25, 250)))
    failed = [line for line in v.evidence if line.startswith("✗")]
    assert v.status == PARTLY and len(failed) == 2
    assert all("no delay of its own" in line for line in failed)


def test_claim3_judges_the_held_high_control():
    v = claim3.verdict(constraint_outcome(high=(100, 300)))  # held at 8 w0 works as well
    failed = [line for line in v.evidence if line.startswith("✗")]
    assert v.status == PARTLY and len(failed) == 1 and "control" in failed[0]


def test_claim3_is_not_tested_without_a_delay_to_remove():
    v = claim3.verdict(constraint_outcome(free=(100, 150)))
    assert v.status == NOT_TESTED
    assert v.evidence[0].startswith("✗ precondition: MNIST (N=1000): the unconstrained run is late")


def test_claim3_a_held_run_that_never_generalizes_fails_saying_so():
    v = claim3.verdict(constraint_outcome(held=(200, math.inf)))
    assert v.status == NOT_REPRODUCED
    assert any("held at w_c never reached 0.8 (seeds [0, 1, 2])" in line for line in v.evidence)


def old_claim3_preconditions_pass(o: claim3.Outcome) -> bool:
    """Claim 3's preconditions before issue 22: only that the unconstrained run is late."""
    return all(np.all(o.delays(task, "unconstrained") >= claim3.LATE) for task in o.setup.bases)


def test_claim3_is_not_tested_when_the_held_runs_sit_at_8x_w_c():
    o = constraint_outcome()
    for r in o.results["mnist", "held at w_c"]:
        r.metrics["norm"] = np.full(len(r.steps), 80.0)  # logged at 8x the w_c it claims
    assert old_claim3_preconditions_pass(o)
    v = claim3.verdict(o)
    assert v.status == NOT_TESTED
    assert any(
        line.startswith("✗ precondition: the held runs keep their norm") and "700.00% off" in line
        for line in v.evidence
    )


def test_claim3_is_not_tested_on_a_monotone_claim_1_or_a_run_cut_short():
    o = constraint_outcome()
    monotone = dataclasses.replace(o, landscape=land([2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1]))
    assert old_claim3_preconditions_pass(monotone)
    assert claim3.verdict(dataclasses.replace(o, landscape=land(U_GOOD))).status == REPRODUCED
    v = claim3.verdict(monotone)
    assert v.status == NOT_TESTED
    assert any(line.startswith("✗ precondition: claim 1's w_c") for line in v.evidence)
    r = o.results["modadd", "unconstrained"][0]
    cut = RunResult(r.config, r.steps[:150], {k: v[:150] for k, v in r.metrics.items()})
    o.results["modadd", "unconstrained"][0] = cut
    v = claim3.verdict(o)
    assert (
        v.status == NOT_TESTED
        and "modadd α=1 γ=1 seed 0: logged to step 590 of 10000" in " ".join(v.evidence)
    )


def test_claim3_a_control_that_turns_nan_is_no_control():
    o = constraint_outcome()
    for r in o.results["mnist", "held at α·w0"]:
        r.metrics["test_acc"] = np.where(r.steps > 500, math.nan, r["test_acc"])
    v = claim3.verdict(o)
    assert passed(v, "control") == [False] and v.status == PARTLY
    assert any("not finite (diverged), not a control" in line for line in v.evidence)


# ---------------------------------------------------------------- claim 4: axes

T4 = 10_000
STEPS4 = np.r_[np.arange(0, 100), np.arange(100, T4 + 1, 10)]
# The norm falls early (where a log axis stretches time) and flattens: smoother on a log axis.
NORM4 = 40 * np.exp(-STEPS4 / 300) + 10


def ramp(t10: float, t90: float) -> np.ndarray:
    """Accuracy rising linearly through 0.1 at ``t10`` and 0.9 at ``t90``."""
    slope = 0.8 / (t90 - t10)
    return np.clip(0.1 + slope * (STEPS4 - t10), 0, 1)


def axes_run(acc: np.ndarray, seed: int = 0, novel: np.ndarray | None = None) -> RunResult:
    metrics = {"test_acc": acc, "train_acc": np.minimum(1.0, 10 * acc), "norm": NORM4}
    if novel is not None:
        metrics["test_acc_novel"] = novel
    return RunResult(modadd_run(p=23, steps=T4, seed=seed), STEPS4, metrics)


def old_claim4_jump(results) -> bool:
    j = [claim4.jump(r) for r in results]
    return bool(all(x["log"] < x["linear"] for x in j))


def test_claim4_reproduced_when_a_gradual_rise_looks_sudden_on_the_log_axis():
    results = [axes_run(ramp(3000, 5000), seed) for seed in range(3)]
    j = claim4.jump(results[0])
    assert (j["t10"], j["t90"]) == (3000, 5000) and j["relative"] == pytest.approx(2 / 3)
    v = claim4.verdict(results)
    assert v.status == REPRODUCED, v.markdown()
    assert "looks sudden on the log axis" in v.evidence[-1] and "but is not" in v.evidence[-1]
    assert claim4.numbers(results)["curve"].startswith("all test pairs (test_acc,")


def test_claim4_fails_a_gradual_ramp_over_most_of_the_run():
    # 68% of the run (t90 before the run's end by more than the hold: a t90 the end cuts short
    # is not reached, issue 22)
    results = [axes_run(ramp(2500, 9300))]
    assert old_claim4_jump(results)
    v = claim4.verdict(results)
    assert passed(v, "looks sudden on the log axis") == [False]
    assert passed(v, "not sudden by the axis-free width") == [True]
    assert "does not look sudden even on the log axis" in v.evidence[-1]


def test_claim4_fails_a_jump_that_is_sudden_whatever_the_axis():
    results = [axes_run(ramp(6000, 6300))]  # (t90 - t10)/t10 = 0.05
    assert old_claim4_jump(results)
    v = claim4.verdict(results)
    assert passed(v, "not sudden by the axis-free width") == [False]
    assert "is sudden whatever the axis" in v.evidence[-1]


def test_claim4_fails_an_early_jump_that_the_linear_axis_shows_narrower():
    v = claim4.verdict([axes_run(ramp(50, 100))])
    assert passed(v, "looks sudden on the log axis") == [True]
    assert passed(v, "the axis makes it so") == [False]
    assert "narrower on the linear axis" in v.evidence[-1]


def test_claim4_measures_on_novel_pairs_where_they_are_logged():
    # All test pairs: a plateau at 0.3 from step 60 (memorized mirrors) puts t10 there.
    plateau = np.maximum(ramp(3000, 5000), np.where(STEPS4 >= 60, 0.3, 0.0))
    with_novel = axes_run(plateau, novel=ramp(3000, 5000))
    assert claim4.accuracy_curve(with_novel) == "test_acc_novel"
    assert claim4.jump(with_novel)["t10"] == 3000
    assert claim4.jump(axes_run(plateau))["t10"] == 60  # what test_acc alone would say
    v = claim4.verdict([with_novel])
    assert v.status == REPRODUCED and "test_acc_novel" in v.criterion + " ".join(v.evidence)


def test_claim4_milestones_per_seed_on_all_and_novel_pairs():
    plateau = np.maximum(ramp(3000, 5000), np.where(STEPS4 >= 60, 0.3, 0.0))
    stalled = np.minimum(ramp(3000, 5000), 0.6)
    table = claim4.milestones(
        [axes_run(plateau, 0, novel=ramp(3000, 5000)), axes_run(plateau, 1, novel=stalled)]
    )
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["milestone"] == ["seed 0", "seed 1"]
    # Memorized mirrors put all-pairs 10% at step 60; the novel pairs say 3000.
    assert rows["test, all pairs ≥ 10%"] == ["60", "60"]
    assert rows["test, novel ≥ 10%"] == ["3000", "3000"]
    assert rows["test, novel ≥ 90%"] == ["5000", "never"]
    assert len(rows) == 2 + len(claim4.MILESTONES)
    # Runs stored before the novel curve was logged: its rows are left out, not shown as never.
    assert "novel" not in claim4.milestones([axes_run(plateau)])


def test_claim4_is_not_tested_when_a_seed_never_groks():
    stalls = np.where(STEPS4 >= 500, 0.5, 0.0)
    v = claim4.verdict([axes_run(ramp(3000, 5000)), axes_run(stalls, seed=1)])
    assert v.status == NOT_TESTED
    assert v.evidence[0].startswith("✗ precondition: every seed groks within the budget: 1 of 2")


def test_claim4_a_diverged_norm_fails_saying_why():
    r = axes_run(ramp(3000, 5000))
    r.metrics["norm"] = np.where(STEPS4 > 7000, math.nan, NORM4)
    v = claim4.verdict([r])
    assert v.status == PARTLY
    assert any(line.startswith("✗ the norm") and "not finite" in line for line in v.evidence)


def test_claim4_a_constant_norm_is_called_constant_not_diverged():
    r = axes_run(ramp(3000, 5000))
    r.metrics["norm"] = np.full(len(STEPS4), 7.0)
    v = claim4.verdict([r])
    line = next(x for x in v.evidence if "the norm looks smoother" in x)
    assert line.startswith("✗") and "norm constant (no kinks on either axis) for seeds [0]" in line
    assert "not finite" not in line
    assert claim4.verdict([axes_run(ramp(3000, 5000))]).status == REPRODUCED


def test_claim4_a_run_logged_only_at_step_0_is_not_tested():
    r = axes_run(ramp(3000, 5000))
    only_0 = RunResult(r.config, r.steps[:1], {k: v[:1] for k, v in r.metrics.items()})
    v = claim4.verdict([only_0])
    assert v.status == NOT_TESTED and "0 of 1 seeds" in v.evidence[0]
    assert "logged at fewer than two steps after 0" in " ".join(v.evidence)


def test_claim4_t10_and_t90_need_persistence():
    blip = ramp(3000, 5000)
    blip[50] = 0.95  # one evaluation at step 50 above 90%
    r = axes_run(blip)
    assert r.steps[np.argmax(blip >= 0.9)] == 50  # the first point at 90%: the old reading
    assert claim4.jump(r)["t90"] == 5000


# ------------------------------------------------- claim 1 on modular addition: where 0.8·w0 sits


def held_modadd(w_c_alpha: float, acc_at_paper: float) -> claim1.Landscape:
    """A U-shaped held-norm landscape with its minimum at ``w_c_alpha`` (norm 10x α) and test
    accuracy ``acc_at_paper`` at α = 0.8 (1 elsewhere near the minimum)."""
    alphas = np.array(sorted({*np.round(np.geomspace(0.1, 10, 7), 4), 0.8}))
    norm = np.tile(alphas * 10, (3, 1))
    test = np.tile(0.1 + np.log(alphas / w_c_alpha) ** 2, (3, 1))
    train = np.tile(np.where(alphas < 0.3, 1.0, 1e-6), (3, 1))
    acc = np.tile(np.where(np.isclose(alphas, 0.8), acc_at_paper, 1.0), (3, 1))
    return claim1.Landscape("modadd", alphas, norm, train, test, acc)


def test_modadd_landscape_places_the_papers_norm():
    from omnigrok.chapters import landscape_modadd

    at = landscape_modadd.verdict(held_modadd(0.8, 0.99))
    assert at.status == REPRODUCED, at.markdown()
    edge = landscape_modadd.verdict(held_modadd(0.2, 0.97))  # in the zone, 4x w_c
    assert passed(edge, "inside the zone") == [True] and passed(edge, "is at w_c") == [False]
    stalled = landscape_modadd.verdict(held_modadd(0.8, 0.6))  # at w_c but stalls
    assert passed(stalled, "inside the zone") == [False]


def test_task_chapters_and_modadd_need_an_interior_w_c():
    from omnigrok.chapters import landscape_modadd, task_claims

    monotone = land([2.0, 1.0, 0.6, 0.4, 0.3, 0.2, 0.1], task="modadd")
    ((name, (ok, what)),) = task_claims.claim_1_preconditions(monotone).items()
    assert name == "claim 1, w_c is an interior minimum of test loss" and not ok
    assert task_claims.claim_1_preconditions(land(U_GOOD, task="modadd")) == {
        name: (True, task_claims.claim_1_preconditions(land(U_GOOD))[name][1])
    }
    held = held_modadd(0.8, 0.99)
    held.test_loss[:] = np.linspace(2.0, 0.1, held.test_loss.shape[1])  # monotone: no w_c
    v = landscape_modadd.verdict(held)
    assert v.status == NOT_TESTED and "precondition: w_c is an interior minimum" in v.evidence[0]


def odd_run(r: RunResult, kind: str) -> RunResult:
    """``r`` logged only at step 0, with every curve NaN, or with a constant finite norm."""
    if kind == "step 0 only":
        return RunResult(r.config, r.steps[:1], {k: v[:1] for k, v in r.metrics.items()})
    if kind == "all NaN":
        return RunResult(r.config, r.steps, {k: np.full(len(r.steps), math.nan) for k in r.metrics})
    return RunResult(r.config, r.steps, {**r.metrics, "norm": np.full(len(r.steps), 3.0)})


@pytest.mark.parametrize("kind", ["step 0 only", "all NaN", "constant norm"])
def test_every_criterion_gives_a_verdict_with_reasons_on_odd_runs(kind):
    o = constraint_outcome()
    results = {k: [odd_run(r, kind) for r in v] for k, v in o.results.items()}
    v3 = claim3.verdict(claim3.Outcome(o.setup, results))
    o = large_init_outcome()
    sweep = [odd_run(r, kind) for r in o.sweep]
    odd2 = dataclasses.replace(o, sweep=sweep, main=sweep[:2])
    v2, numbers = claim2.verdict(odd2), claim2.numbers(odd2)
    v4 = claim4.verdict([odd_run(axes_run(ramp(3000, 5000)), kind)])
    for v in (v2, v3, v4):
        assert v.status != REPRODUCED and any(line.startswith("✗") for line in v.evidence)
    assert set(numbers) >= {"step_generalized", "step_norm_enters_zone"}


def test_claim3_held_runs_log_their_alpha_scaled_init_at_step_0():
    """A run held at w_c logs its α-scaled init at step 0 (projection comes after the first
    optimizer step): that is held, not 700% off (the quick archive's runs look like this)."""
    o = constraint_outcome()
    for r in o.results["mnist", "held at w_c"]:
        r.metrics["norm"] = np.where(r.steps == 0, 80.0, 10.0)
    assert claim3.verdict(o).status == REPRODUCED
