"""Claim checks on synthetic curves whose verdicts are known, so a verdict can fail."""

import math

import numpy as np

from omnigrok.claims import axes, constraint, goldilocks, large_init
from omnigrok.presets import modadd_run
from omnigrok.train import RunResult


def landscape(test_loss, train_loss=None):
    alphas = np.geomspace(0.1, 10, 5)
    norms = np.tile(alphas * 10, (2, 1))
    train = np.tile(train_loss if train_loss is not None else [1.0, 0.1, 1e-3, 1e-4, 1e-4], (2, 1))
    return goldilocks.Landscape(
        "mnist", alphas, norms, train, np.tile(test_loss, (2, 1)), norms * 0
    )


def test_lu_shapes_pass_and_fail_as_they_should():
    good = goldilocks.shape_checks(landscape([1.0, 0.3, 0.1, 0.5, 2.0]))
    assert all(ok for ok, _ in good.values())
    monotone = goldilocks.shape_checks(landscape([2.0, 1.0, 0.5, 0.3, 0.1]))
    assert not monotone["MNIST (N=1000): test loss U-shaped"][0]
    flat_train = goldilocks.shape_checks(landscape([1, 0.3, 0.1, 0.5, 2], [1, 1, 1, 1, 1]))
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
    j = axes.jump(r)
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

    ratio, lower = constraint.speedup(Fake(), "modadd")
    assert ratio[0] == 8 and ratio[1] == 10 and math.isnan(ratio[2])
    assert lower


def test_delay_ordering_needs_every_value_finite_and_increasing():
    assert large_init._increasing([100, 200, 400])
    assert not large_init._increasing([100, 90, 400])
    assert not large_init._increasing([100, math.inf, math.inf])


def test_zone_edge_interpolates_where_accuracy_falls_below_the_threshold():
    land = landscape([1, 0.3, 0.1, 0.5, 2])
    acc = np.array([0.1, 0.9, 0.9, 0.7, 0.2])
    land = goldilocks.Landscape(
        land.task, land.alphas, land.norm, land.train_loss, land.test_loss, np.tile(acc, (2, 1))
    )
    norms = land.norm[0]
    edge = land.zone_edge(0.8)
    # Halfway (in accuracy) from the 3rd to the 4th grid point, on a log-norm scale.
    assert math.isclose(edge, math.sqrt(norms[2] * norms[3]))
    assert math.isnan(land.zone_edge(0.95))
