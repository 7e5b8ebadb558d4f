"""The ensemble trainer: equal to separate runs, equal to a plain PyTorch loop, repeatable."""

import numpy as np
import pytest
import torch

from omnigrok.models import PlainMLP, init_params
from omnigrok.norms import global_norm, scale_
from omnigrok.store import log_schedule
from omnigrok.task import make_task
from omnigrok.tasks import mnist_run, teacher_student_run
from omnigrok.train import _Batches, train_ensemble

SMALL_MNIST = dict(n_train=1000, steps=50, n_log=12, dtype="float64")


def small_mnist(**overrides):
    cfg = mnist_run(**{**SMALL_MNIST, **overrides})
    # 500 test images keep evaluation cheap; the training set is the paper's.
    return cfg.replace(task=cfg.task.__class__("mnist", n_train=1000, n_test=500))


def assert_curves_close(a, b, rtol):
    assert np.array_equal(a.steps, b.steps)
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=1e-12, err_msg=name)


def test_ensemble_equals_separate_runs_float64():
    configs = [
        small_mnist(seed=0, init_scale=1.0, weight_decay=0.0),
        small_mnist(seed=1, init_scale=8.0, weight_decay=0.01),
        small_mnist(seed=2, init_scale=3.0, weight_decay=0.1, constraint="init"),
        small_mnist(seed=3, init_scale=0.5, weight_decay=0.0, constraint="fixed", target_norm=20.0),
        small_mnist(seed=0, init_scale=8.0, weight_decay=1.0, lr=3e-3),
    ]
    together = train_ensemble(configs, device="cpu", progress=False)
    for cfg, result in zip(configs, together, strict=True):
        alone = train_ensemble([cfg], device="cpu", progress=False)[0]
        assert_curves_close(result, alone, rtol=1e-8)
    # The runs really differ, so equality above is not trivial.
    assert not np.allclose(together[0]["test_loss"], together[1]["test_loss"])


def test_same_seed_gives_identical_curves_twice():
    cfg = teacher_student_run(steps=200, n_log=40, seed=5)
    first = train_ensemble([cfg], device="cpu", progress=False)[0]
    second = train_ensemble([cfg], device="cpu", progress=False)[0]
    for name in first.metrics:
        assert np.array_equal(first[name], second[name], equal_nan=True), name


def test_trainer_equals_plain_pytorch_loop():
    """K = 1 through the trainer vs nn.Sequential + torch.optim.AdamW + a hand projection."""
    cfg = small_mnist(seed=4, init_scale=4.0, weight_decay=0.05, constraint="init", steps=30)
    result = train_ensemble([cfg], device="cpu", progress=False, keep_weights=True)[0]

    data = make_task(cfg.task, "cpu", "float64")
    params = init_params(cfg.model, [cfg.seed], dtype=torch.float64)
    scale_(params, torch.tensor([cfg.init_scale], dtype=torch.float64))
    target = global_norm(params)[0]
    model = PlainMLP(cfg.model).double().load_run(params, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = _Batches([cfg.seed], data.n_train, cfg.batch_size, "cpu")
    for step in range(cfg.steps):
        idx = batches.indices(step)[0]
        out = model(data.x_train[idx])
        target_y = torch.nn.functional.one_hot(data.y_train[idx], 10).double()
        loss = torch.nn.functional.mse_loss(out, target_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            norm = torch.sqrt(sum(p.pow(2).sum() for p in model.parameters()))
            for p in model.parameters():
                p.mul_(target / norm)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        np.testing.assert_allclose(
            result.weights[f"layer{i}.weight"], lin.weight.detach().numpy(), rtol=1e-9, atol=1e-12
        )
    assert result["norm"][-1] == pytest.approx(target.item(), rel=1e-10)


def test_minibatches_cover_each_epoch_once_and_differ_by_seed():
    batches = _Batches([0, 1], n=1000, batch_size=200, device="cpu")
    epoch = torch.cat([batches.indices(s) for s in range(5)], dim=1)
    for run in range(2):
        assert sorted(epoch[run].tolist()) == list(range(1000))
    assert not torch.equal(epoch[0], epoch[1])
    assert not torch.equal(batches.indices(5), batches.indices(0))


def test_log_schedule_is_dense_early_and_spans_both_axes():
    steps = log_schedule(100_000, 250)
    assert steps[0] == 0 and steps[-1] == 100_000
    assert np.array_equal(steps[:31], np.arange(31))
    assert len(steps) >= 200
    # Linear axis: no gap wider than 1% of the run; log axis: no decade with fewer than 20 points.
    assert np.diff(steps).max() <= 1000
    for lo in (10, 100, 1000, 10_000):
        assert ((steps >= lo) & (steps < 10 * lo)).sum() >= 20


def test_diverging_run_is_frozen_and_others_match_their_solo_runs():
    good = [teacher_student_run(steps=100, n_log=20, seed=s, dtype="float64") for s in (0, 1)]
    bad = teacher_student_run(steps=100, n_log=20, seed=2, dtype="float64", init_scale=1e200)
    results = train_ensemble([good[0], bad, good[1]], device="cpu", progress=False)
    assert results[1].diverged_at is not None and 0 < results[1].diverged_at <= 100
    logged_after = results[1].steps >= results[1].diverged_at
    assert np.isnan(results[1]["test_loss"][logged_after]).all()
    for cfg, result in zip(good, (results[0], results[2]), strict=True):
        assert result.diverged_at is None
        assert_curves_close(result, train_ensemble([cfg], device="cpu", progress=False)[0], 1e-8)


def test_cpu_training_flushes_subnormal_floats():
    """Subnormals cost x86 CPUs up to 100x (a transformer held at α = 0.1 slowed 13x); the
    trainer flushes them to zero on the CPU."""
    import torch

    from omnigrok.tasks import teacher_student_run
    from omnigrok.train import train_ensemble

    torch.set_flush_denormal(False)
    assert (torch.tensor([1e-40]) * 1.0).item() != 0.0  # kept: x86 supports subnormals
    train_ensemble([teacher_student_run(steps=2, n_log=2)], "cpu", False)
    assert (torch.tensor([1e-40]) * 1.0).item() == 0.0


def test_a_stop_rule_ends_a_run_where_it_has_held_and_keeps_other_keys():
    """``stop_acc``: the run's curves end at the first logged step where train and test
    accuracy have stayed at or above it for max(1000 steps, the step they got there); a stack
    mate without the rule, or one that stops later, is unaffected (each equals its solo run)."""
    import numpy as np

    from omnigrok.stop_rule import stop_step
    from omnigrok.tasks import modadd_run
    from omnigrok.train import train_ensemble

    steps = np.array([0, 100, 500, 900, 1400, 1600, 3000, 3300])
    hi = np.ones(8)
    assert stop_step(steps, hi, hi, 0.99) == 1400  # held from 0: the first step >= 1000
    late = np.r_[0, 0, 1, 1, 1, 1, 1, 1]  # there from 500: held until >= 1500
    assert stop_step(steps, hi, late, 0.99) == 1600
    broken = np.r_[0, 0, 1, 1, 0.5, 1, 1, 1]  # again from 1600: held for 1600 more, to 3200
    assert stop_step(steps, hi, broken, 0.99) == 3300
    assert stop_step(steps, hi, np.r_[0, 0, 1, 1, 1, np.nan, 1, 1], 0.99) is None
    # P = 23 memorizes by step ~80 and holds test accuracy ~0.5 (its mirrored pairs): a level
    # it reaches early and keeps, so the rule must end it near step 80 + 1000.
    base = modadd_run(p=23, train_frac=0.5, lr=3e-3, steps=1500, n_log=60, dtype="float64")
    plain, ruled = base, base.replace(stop_acc=0.5)
    assert run_key_of(plain) != run_key_of(ruled) and "stop_acc" not in plain.to_dict()
    alone = train_ensemble([plain], "cpu", False)[0]
    stop = stop_step(alone.steps, alone["train_acc"], alone["test_acc"], 0.5)
    assert stop is not None and stop < 1500, "the fixture run must hold the level within budget"
    stopped, mate = train_ensemble([ruled, plain.replace(seed=1)], "cpu", False)
    assert stopped.steps[-1] == stop and mate.steps[-1] == 1500
    np.testing.assert_allclose(stopped["test_acc"], alone["test_acc"][: len(stopped.steps)])


def run_key_of(config):
    from omnigrok.config import run_key

    return run_key(config)
