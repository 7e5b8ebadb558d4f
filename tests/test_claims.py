"""Claim checks on synthetic curves whose verdicts are known, so a verdict can fail."""

import math

import numpy as np
import pytest

from omnigrok.chapters import claim1, claim2, claim3, claim4, width
from omnigrok.report.metrics import refined_minimum
from omnigrok.store import RunResult
from omnigrok.tasks import modadd_run


def landscape(test_loss, train_loss=None):
    alphas = np.geomspace(0.1, 10, 5)
    norms = np.tile(alphas * 10, (2, 1))
    train = np.tile(train_loss if train_loss is not None else [1.0, 0.1, 1e-3, 1e-4, 1e-4], (2, 1))
    return claim1.Landscape("mnist", alphas, norms, train, np.tile(test_loss, (2, 1)), norms * 0)


def test_lu_shapes_pass_and_fail_as_they_should():
    good = claim1.shape_checks(landscape([1.0, 0.3, 0.1, 0.5, 2.0]))
    assert all(ok for ok, _ in good.values()), good
    monotone = claim1.shape_checks(landscape([2.0, 1.0, 0.5, 0.3, 0.1]))
    assert not monotone["MNIST (N=1000): test loss U-shaped"][0]
    flat_train = claim1.shape_checks(landscape([1, 0.3, 0.1, 0.5, 2], [1, 1, 1, 1, 1]))
    assert not flat_train["MNIST (N=1000): train loss L-shaped"][0]


def curve(test_acc, norm, steps=None) -> RunResult:
    steps = np.arange(len(test_acc)) * 100 if steps is None else steps
    cfg = modadd_run(steps=int(steps[-1]))
    metrics = {"test_acc": np.asarray(test_acc, float), "norm": np.asarray(norm, float)}
    return RunResult(cfg, np.asarray(steps), metrics)


def test_a_late_jump_looks_narrower_on_the_log_axis():
    steps = np.arange(0, 10001, 100)
    acc = np.clip((steps - 6000) / 2000, 0, 1) * 0.99 + 0.01
    r = curve(acc, 40 - steps / 1000, steps)
    j = claim4.jump(r)
    assert (j["t10"], j["t90"]) == (6200, 7800)
    assert math.isclose(j["linear"], 0.16)
    assert j["log"] < j["linear"]
    assert math.isclose(j["relative"], 1600 / 6200)


def test_speedup_is_nan_where_the_constrained_run_never_generalized():
    class Fake:
        setup = type("S", (), {"bases": {"modadd": modadd_run(steps=1000)}})

        def steps_to_generalize(self, task, regime):
            if regime == "unconstrained":
                return np.array([800.0, math.inf, 900.0])
            return np.array([100.0, 100.0, math.inf])

    ratio, lower = claim3.speedup(Fake(), "modadd")
    assert ratio[0] == 8 and ratio[1] == 10 and math.isnan(ratio[2])
    assert lower


def test_delay_ordering_needs_every_value_finite_and_increasing():
    assert claim2._increasing([100, 200, 400])
    assert not claim2._increasing([100, 90, 400])
    assert not claim2._increasing([100, math.inf, math.inf])


def test_zone_edge_interpolates_where_accuracy_falls_below_the_threshold():
    land = landscape([1, 0.3, 0.1, 0.5, 2])
    acc = np.array([0.1, 0.9, 0.9, 0.7, 0.2])
    land = claim1.Landscape(
        land.task, land.alphas, land.norm, land.train_loss, land.test_loss, np.tile(acc, (2, 1))
    )
    norms = land.norm[0]
    edge = land.zone_edge(0.8)
    # Halfway (in accuracy) from the 3rd to the 4th grid point, on a log-norm scale.
    assert math.isclose(edge.value, math.sqrt(norms[2] * norms[3])) and edge.measured
    none = land.zone_edge(0.95)
    assert math.isnan(none.value) and "no norm reaches ≥ 0.95" in str(none)
    # Every norm reaches 0.05: the edge is beyond the grid, only a bound, shown as one.
    bound = land.zone_edge(0.05)
    assert bound.is_bound and not bound.measured and str(bound) == f"≥ {norms[-1]:.3g}"


def width_landscapes(exponent_w_c: float, noise: float = 0.02) -> dict:
    """Synthetic landscapes: w0 = 3·sqrt(width); test loss a parabola in log norm around a
    w_c that grows as width^exponent_w_c, equals w0 at width 200, and varies a little by seed."""
    alphas = np.geomspace(0.1, 10, 11)
    rng = np.random.default_rng(0)
    lands = {}
    for w in (50, 100, 200, 400):
        w0 = 3 * np.sqrt(w)
        norms = np.tile(alphas * w0, (3, 1))
        w_c = 3 * np.sqrt(200) * (w / 200) ** exponent_w_c
        w_c = w_c * (1 + noise * rng.standard_normal((3, 1)))
        test = np.exp(0.5 * np.log(norms / w_c) ** 2)
        lands[w] = claim1.Landscape("mnist", alphas, norms, test * 0, test, test * 0)
    return lands


def test_refined_minimum_finds_the_vertex_between_grid_points():
    norms = np.geomspace(1, 100, 11)
    assert refined_minimum(norms, np.exp(np.log(norms / 7.3) ** 2)) == pytest.approx(7.3, 1e-6)
    # At the grid's edge there is nothing to refine with: the grid point.
    assert refined_minimum(norms, norms) == 1.0


@pytest.mark.parametrize(
    ("exponent", "expected"), [(0.5, "as fast as"), (0.1, "slower than"), (0.9, "faster than")]
)
def test_width_scaling_compares_w_c_growth_with_the_init_norm(exponent, expected):
    sc = width.scaling(width_landscapes(exponent))
    assert sc.exponent_w0 == pytest.approx(0.5)
    assert sc.exponent_w_c.mean() == pytest.approx(exponent, abs=0.05)
    assert sc.comparison() == expected
    assert width.numbers(sc)["comparison"] == expected
    np.testing.assert_allclose(sc.alpha_c, sc.w_c / sc.w0)


def test_width_setup_varies_only_the_hidden_width():
    s = width.setup("smoke", device="cpu")
    runs = {w: s.width_configs(w) for w in s.widths}
    assert runs[200] == s.landscape.task_configs("mnist")  # claim 1's own runs: the same store keys
    for w, configs in runs.items():
        assert {c.model.widths for c in configs} == {(784, w, w, 10)}
        assert [c.replace(model=runs[200][0].model) for c in configs] == runs[200]


def test_book_cost_counts_wider_models_by_their_flops():
    from omnigrok import profiles
    from omnigrok.chapters import performance
    from omnigrok.config import MLPSpec
    from omnigrok.tasks import mnist_run, modadd_run

    assert performance.relative_cost(mnist_run()) == 1.0
    wide = mnist_run().replace(model=MLPSpec((784, 400, 400, 10)))
    assert performance.relative_cost(wide) == pytest.approx(
        (784 * 400 + 400 * 400 + 4000) / 198_800
    )
    assert performance.relative_cost(modadd_run()) == 1.0
    widths = {c.model.widths[1] for c in performance.book_runs("smoke") if c.task.name == "mnist"}
    assert set(profiles.WIDTHS["smoke"]) <= widths


def test_the_comparison_tables_say_what_the_official_mnist_code_does():
    from omnigrok.chapters import claim1, claim2
    from omnigrok.report import paper

    table1 = paper.comparison("claim1", claim1.Setup("paper").configs())
    assert "| precision | — | float32 (no dtype set) |" in table1
    assert "logs the per-sample sum, 10x the mean" in table1
    assert "redrawn at every evaluation (the best value kept) | first 2000 (harder" in table1
    table2 = paper.comparison("claim2", claim2.Setup("paper").main())
    assert "logs the per-sample sum, 10x the mean" in table2
    assert "claim 1's landscape (w_c, zone edge) | — | float32;" in table2
