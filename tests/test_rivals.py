"""The rivals' levers (``omnigrok.rivals``) against their published definitions, one run at a
time in plain PyTorch, and a stack mixing them against its runs trained alone."""

import dataclasses
import functools
import math
import re
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnigrok import train
from omnigrok.chapters import claim1, claim3, rival_methods, rivals
from omnigrok.config import RunConfig, run_key
from omnigrok.models import NandaTransformer, PlainMLP, TransformerSpec, init_params
from omnigrok.norms import scale_
from omnigrok.report.verdict import NOT_REPRODUCED, NOT_TESTED, PARTLY, REPRODUCED, STATUSES
from omnigrok.rivals import GradFilter, log_stablemax, perp_grad_, stablemax_cross_entropy
from omnigrok.store import CURVES, RunResult
from omnigrok.task import make_task
from omnigrok.tasks import mnist_run, modadd_run
from omnigrok.train import BudgetExhausted, _Batches, train_ensemble

P = 7


def tiny(**overrides) -> RunConfig:
    """Modular addition at P = 7 on a transformer small enough to train in a blink."""
    base = dict(
        p=P,
        train_frac=0.5,
        model=TransformerSpec(d_vocab=P + 1, d_model=8, n_heads=2, d_mlp=16),
        steps=25,
        n_log=6,
        dtype="float64",
        lr=1e-2,
        weight_decay=0.0,
    )
    return modadd_run(**{**base, **overrides})


# -- the definitions ----------------------------------------------------------------------------


def s_by_hand(x: float) -> float:
    """Prieto et al.'s s(x), written out."""
    return x + 1 if x >= 0 else 1 / (1 - x)


def test_stablemax_is_its_definition_normalized():
    x = torch.tensor([[-3.0, -0.5, 0.0, 0.25, 4.0]], dtype=torch.float64)
    s = [s_by_hand(v) for v in x[0].tolist()]
    expected = [math.log(v / sum(s)) for v in s]
    np.testing.assert_allclose(log_stablemax(x)[0].numpy(), expected, rtol=1e-14)


def test_stablemax_cross_entropy_is_minus_the_mean_log_probability_per_run():
    gen = torch.Generator().manual_seed(0)
    out = torch.randn(2, 4, 5, generator=gen, dtype=torch.float64) * 3  # [K, B, C]
    y = torch.tensor([0, 4, 2, 2])
    for k in range(2):
        by_hand = 0.0
        for b in range(4):
            s = [s_by_hand(v) for v in out[k, b].tolist()]
            by_hand -= math.log(s[y[b]] / sum(s)) / 4
        assert stablemax_cross_entropy(out, y)[k].item() == pytest.approx(by_hand, rel=1e-13)


def test_stablemax_gradient_is_finite_far_out_on_either_side():
    x = torch.tensor([[-1e6, 1.0, 1e6]], dtype=torch.float64, requires_grad=True)
    log_stablemax(x)[0, 1].backward()
    assert torch.isfinite(x.grad).all()


def test_perp_grad_is_the_hand_projection_rescaled_per_tensor_and_run():
    gen = torch.Generator().manual_seed(1)
    params = {
        n: torch.randn(3, *shape, generator=gen, dtype=torch.float64)
        for n, shape in {"a": (4, 5), "b": (6,)}.items()
    }
    grads = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in params.items()}
    for n, p in params.items():
        p.grad = grads[n].clone()
    runs = torch.tensor([True, False, True])
    perp_grad_(params, runs)
    for n, p in params.items():
        for k in range(3):
            w, g = p[k].flatten().numpy(), grads[n][k].flatten().numpy()
            expected = g
            if runs[k]:
                orth = g - (w @ g) / (w @ w) * w
                expected = orth * np.linalg.norm(g) / np.linalg.norm(orth)
                assert abs(expected @ w) < 1e-10 * np.linalg.norm(w) * np.linalg.norm(g)
            np.testing.assert_allclose(p.grad[k].flatten().numpy(), expected, rtol=1e-12)


def gradfilter_ema(model, grads, alpha, lamb):
    """Grokfast's published ``gradfilter_ema`` (Lee et al. 2024), as its rule reads."""
    if grads is None:
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        grads[n] = grads[n] * alpha + p.grad.detach() * (1 - alpha)
        p.grad = p.grad + grads[n] * lamb
    return grads


def test_grad_filter_follows_the_published_rule_per_run():
    gen = torch.Generator().manual_seed(2)
    params = {"w": torch.zeros(2, 3, dtype=torch.float64)}
    filt = GradFilter(
        params,
        torch.tensor([0.9, 0.5], dtype=torch.float64),
        torch.tensor([2.0, 3.0], dtype=torch.float64),
        torch.tensor([True, False]),
    )
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    state = None
    for _ in range(4):
        g = torch.randn(2, 3, generator=gen, dtype=torch.float64)
        params["w"].grad = g.clone()
        filt.apply_(params)
        model.w.grad = g[0].clone()
        state = gradfilter_ema(model, state, 0.9, 2.0)
        np.testing.assert_allclose(params["w"].grad[0], model.w.grad, rtol=1e-14)
        np.testing.assert_array_equal(params["w"].grad[1], g[1])  # filter off: untouched


# -- the trainer against a plain one-run loop ------------------------------------------------------


def hold_by_hand(out: torch.Tensor, c: float) -> torch.Tensor:
    return out * c / out.pow(2).mean(dim=-1, keepdim=True).sqrt()


def stablemax_ce_by_hand(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = torch.where(out >= 0, out.clamp(min=0) + 1, 1 / (1 - out.clamp(max=0)))
    return -(s / s.sum(-1, keepdim=True)).log().gather(1, y[:, None]).mean()


def perp_by_hand(model) -> None:
    """Their OrthoGrad, with its 1e-30 guards (biases start at zero: w·w = 0)."""
    with torch.no_grad():
        for p in model.parameters():
            w, g = p.flatten(), p.grad.flatten()
            orth = g - (w @ g) / (w @ w + 1e-30) * w
            p.grad.copy_((orth * g.norm() / (orth.norm() + 1e-30)).view_as(p))


def step_by_hand(model, opt, cfg, out, loss_of, ema):
    """One plain optimizer step with the run's levers written out: the held output scale, the
    loss, ⊥Grad, then Grokfast's filter; returns the filter's state."""
    if cfg.logit_scale is not None:
        out = hold_by_hand(out, cfg.logit_scale)
    loss = loss_of(out)
    opt.zero_grad()
    loss.backward()
    if cfg.perp_grad:
        perp_by_hand(model)
    if cfg.grad_filter == "ema":
        ema = gradfilter_ema(model, ema, cfg.filter_alpha, cfg.filter_lamb)
    opt.step()
    return ema


LEVERS = {
    "grokfast": dict(grad_filter="ema", filter_alpha=0.9, filter_lamb=2.0, weight_decay=0.5),
    "stablemax": dict(softmax="stablemax"),
    "perp_grad": dict(perp_grad=True),
    "logit_scale": dict(logit_scale=2.0, weight_decay=0.5),
}


@pytest.mark.parametrize("lever", LEVERS)
def test_trainer_equals_a_plain_loop_with_the_lever(lever):
    """K = 1 through the trainer vs Nanda's module, torch.optim.AdamW and the lever by hand."""
    cfg = tiny(seed=3, **LEVERS[lever])
    result = train_ensemble([cfg], device="cpu", progress=False, keep_weights=True)[0]
    data = make_task(cfg.task, "cpu", "float64")
    params = init_params(cfg.model, [cfg.seed], dtype=torch.float64)
    model = NandaTransformer(cfg.model).double().load_run(params, 0)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    ce = stablemax_ce_by_hand if cfg.softmax == "stablemax" else F.cross_entropy
    ema = None
    for _ in range(cfg.steps):
        ema = step_by_hand(model, opt, cfg, model(data.x_train), lambda o: ce(o, data.y_train), ema)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(result.weights[name], p.detach().numpy(), rtol=1e-8, atol=1e-11)
    # The lever changed something: the same run without it ends elsewhere.
    plain = train_ensemble([tiny(seed=3)], device="cpu", progress=False, keep_weights=True)[0]
    assert not np.allclose(plain.weights["W_U"], result.weights["W_U"])


MNIST_LEVERS = {
    "grokfast": dict(grad_filter="ema", filter_alpha=0.8, filter_lamb=0.1, weight_decay=2.0),
    "perp_grad": dict(perp_grad=True),
    "output_scale": dict(logit_scale=0.3162, weight_decay=0.01),
}


@pytest.mark.parametrize("lever", MNIST_LEVERS)
def test_mnist_trainer_equals_a_plain_loop_with_the_lever(lever):
    """K = 1 MNIST (MSE, minibatches) through the trainer vs nn.Sequential, AdamW and the lever
    by hand: the levers MNIST's rivals use, under the loss they use there."""
    cfg = mnist_run(n_train=1000, steps=20, n_log=6, dtype="float64", init_scale=8.0, seed=2)
    cfg = cfg.replace(task=cfg.task.__class__("mnist", n_train=1000, n_test=200))
    cfg = cfg.replace(**MNIST_LEVERS[lever])
    result = train_ensemble([cfg], device="cpu", progress=False, keep_weights=True)[0]
    data = make_task(cfg.task, "cpu", "float64")
    params = init_params(cfg.model, [cfg.seed], dtype=torch.float64)
    scale_(params, torch.tensor([cfg.init_scale], dtype=torch.float64))
    model = PlainMLP(cfg.model).double().load_run(params, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = _Batches([cfg.seed], data.n_train, cfg.batch_size, "cpu")
    ema = None
    for step in range(cfg.steps):
        idx = batches.indices(step)[0]
        target = F.one_hot(data.y_train[idx], 10).double()
        loss_of = functools.partial(F.mse_loss, target=target)
        ema = step_by_hand(model, opt, cfg, model(data.x_train[idx]), loss_of, ema)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        np.testing.assert_allclose(
            result.weights[f"layer{i}.weight"], lin.weight.detach().numpy(), rtol=1e-8, atol=1e-11
        )
    plain = train_ensemble(
        [
            cfg.replace(
                perp_grad=False,
                grad_filter="none",
                filter_alpha=0.98,
                filter_lamb=2.0,
                logit_scale=None,
            )
        ],
        device="cpu",
        progress=False,
        keep_weights=True,
    )[0]
    assert not np.allclose(plain.weights["layer2.weight"], result.weights["layer2.weight"])


def test_a_runs_curves_do_not_depend_on_its_stack_mates():
    configs = [
        tiny(seed=0, weight_decay=1.0),
        tiny(seed=1, softmax="stablemax"),
        tiny(seed=0, softmax="stablemax", perp_grad=True),
        tiny(seed=2, grad_filter="ema", weight_decay=1.0),
        tiny(seed=1, logit_scale=3.0),
        tiny(seed=0, constraint="fixed", target_norm=6.0),
    ]
    together = train_ensemble(configs, device="cpu", progress=False)
    for cfg, result in zip(configs, together, strict=True):
        alone = train_ensemble([cfg], device="cpu", progress=False)[0]
        for name in result.metrics:
            np.testing.assert_allclose(result[name], alone[name], rtol=1e-8, atol=1e-12)


def test_a_filtered_stack_resumes_from_its_checkpoint_as_if_unbroken(tmp_path, monkeypatch):
    configs = [tiny(seed=0, grad_filter="ema"), tiny(seed=1)]
    unbroken = train_ensemble(configs, device="cpu", progress=False)
    clock = {"now": 0.0}
    monkeypatch.setattr(
        train,
        "time",
        types.SimpleNamespace(perf_counter=lambda: 0.0, monotonic=lambda: clock["now"]),
    )
    checkpoint = tmp_path / "stack.pt"

    def tick(step: int) -> None:
        clock["now"] = float(step)

    with pytest.raises(BudgetExhausted):
        train_ensemble(configs, "cpu", False, checkpoint=checkpoint, deadline=9.5, on_step=tick)
    monkeypatch.undo()
    resumed = train_ensemble(configs, "cpu", False, checkpoint=checkpoint)
    for a, b in zip(unbroken, resumed, strict=True):
        for name in CURVES:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-12, equal_nan=True)


# -- the records --------------------------------------------------------------------------------


def test_levers_at_their_defaults_keep_every_key():
    cfg = tiny()
    d = cfg.to_dict()
    for name in ("softmax", "perp_grad", "grad_filter", "filter_alpha", "filter_lamb"):
        assert name not in d
    assert "logit_scale" not in d
    assert run_key(cfg) != run_key(cfg.replace(perp_grad=True))
    assert RunConfig.from_dict(cfg.replace(grad_filter="ema").to_dict()).grad_filter == "ema"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(softmax="sparsemax"), "softmax must be one of 'softmax', 'stablemax'"),
        (dict(grad_filter="ma"), "grad_filter must be one of 'none', 'ema'"),
        (dict(grad_filter="ema", filter_alpha=1.0), "filter_alpha must be a number in [0, 1)"),
        (dict(grad_filter="ema", filter_lamb=-1), "filter_lamb must be a non-negative"),
        (dict(filter_lamb=5.0), "filter_lamb must be 2.0 when grad_filter='none'"),
        (dict(perp_grad=1), "perp_grad must be True or False"),
        (dict(logit_scale=0.0), "logit_scale must be a positive"),
        (dict(loss="mse", softmax="stablemax"), "softmax must be 'softmax' unless loss='ce'"),
    ],
)
def test_a_bad_lever_fails_naming_it(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny(**change)


# -- the chapter --------------------------------------------------------------------------------


def synthetic(setup, task, method, t_train, t_test, norm_then):
    """Curves for every seed of ``method`` on ``task``: train acc steps to 1 at ``t_train``, test
    acc at ``t_test`` (None: never), the norm ramping from w0 to ``norm_then`` x w0 by
    ``t_test``, with w0 = w_c / 0.8 (modular addition's w_c is 0.8·w0: halfway is 0.894)."""
    steps = np.arange(0, 1001, 10)
    train_acc = (steps >= t_train).astype(float)
    test_acc = (steps >= t_test).astype(float) if t_test is not None else np.zeros(len(steps))
    end = t_test if t_test is not None else 1000
    w0 = setup.w_held[task] / 0.8
    norm = w0 * (1 + (norm_then - 1) * np.clip(steps / end, 0, 1))
    metrics = dict(train_acc=train_acc, test_acc=test_acc, norm=norm)
    return [RunResult(c, steps, metrics) for c in setup.method_configs(task, method)]


def test_the_verdict_asks_every_lever_as_good_as_the_constraint_to_need_the_norm():
    s = rivals.Setup("smoke", seeds=[0, 1], device="cpu", mnist_w_c=5.0)
    results = {}
    for task in rivals.TASKS:
        for m in rival_methods.METHODS[task]:
            results[task, m] = synthetic(s, task, m, 100, None, 1.0)
        results[task, rival_methods.BASELINE] = synthetic(
            s, task, rival_methods.BASELINE, 100, 800, 0.7
        )
        results[task, rival_methods.HELD] = synthetic(s, task, rival_methods.HELD, 100, 150, 0.8)
        results[task, rival_methods.GROKFAST] = synthetic(
            s, task, rival_methods.GROKFAST, 100, 180, 0.85
        )
    o = rivals.Outcome(s, results)
    assert o.removes_delay("modadd", rival_methods.HELD) and o.needs_norm(
        "modadd", rival_methods.HELD
    )
    assert np.allclose(o.norm_needed("modadd", rival_methods.HELD), 0.8**0.5)
    assert not o.removes_delay("modadd", "StableMax")
    assert o.needs_norm("modadd", "StableMax") is None
    assert rivals.verdict(o).status == REPRODUCED
    assert rivals.method_verdict(o, "modadd", "StableMax").status == NOT_REPRODUCED
    assert np.allclose(rivals.speedup(o, "mnist", rival_methods.HELD), 800 / 150)
    assert rivals.fastest(o, "mnist").startswith(rival_methods.HELD)
    # A lever that removes the delay with its norm up, or barely down (0.95 w0: not halfway
    # to w_c), or one as fast as the constraint with its delay kept and its norm where it
    # started: the norm is not what did it, on either task.
    for task, lever, t_train, norm in (
        ("modadd", "StableMax", 100, 1.3),
        ("modadd", "StableMax", 100, 0.95),
        ("mnist", "output scale held", 40, 1.0),
    ):
        changed = dict(results)
        changed[task, lever] = synthetic(s, task, lever, t_train, 140, norm)
        o = rivals.Outcome(s, changed)
        assert o.as_fast_as_held(task, lever) and o.needs_norm(task, lever) is False
        assert o.removes_delay(task, lever) == (t_train == 100)
        v = rivals.verdict(o)
        assert v.status == PARTLY
        assert any(line.startswith("✗") and lever in line for line in v.evidence), v.markdown()
        assert rivals.fastest(o, task).startswith(lever)
    # Slower than the constraint and late: a note, whatever its norm.
    changed = dict(results)
    changed["mnist", "output scale held"] = synthetic(s, "mnist", "output scale held", 40, 400, 1)
    assert rivals.verdict(rivals.Outcome(s, changed)).status == REPRODUCED
    # Nor on a claim 1 landscape without an interior minimum, where MNIST's w_c came from it.
    flat = np.tile(np.geomspace(2.0, 0.1, 7), (2, 1))
    monotone = claim1.Landscape("mnist", np.geomspace(0.1, 10, 7), flat, flat, flat, flat)
    v = rivals.verdict(rivals.Outcome(s, results, monotone))
    assert v.status == NOT_TESTED and "claim 1's w_c is an interior minimum" in v.markdown()
    # Without a late baseline on one task there is nothing to judge.
    results["mnist", rival_methods.BASELINE] = synthetic(
        s, "mnist", rival_methods.BASELINE, 100, 150, 0.9
    )
    assert rivals.verdict(rivals.Outcome(s, results)).status == NOT_TESTED


def test_each_method_changes_one_thing_of_claim_3s_run():
    s = rivals.Setup("smoke", device="cpu", mnist_w_c=1.0)
    held = claim3.Setup("smoke", device="cpu", mnist_w_c=1.0)
    for task in rivals.TASKS:
        base = held.regime_configs(task, "unconstrained")
        assert s.method_configs(task, rival_methods.BASELINE) == base
        assert s.method_configs(task, rival_methods.HELD) == held.regime_configs(
            task, "held at w_c"
        )
        for m in rival_methods.METHODS[task]:
            assert rival_methods.KEYS[m]
            if m in (rival_methods.BASELINE, rival_methods.HELD):
                continue
            changed = {
                f.name
                for f in dataclasses.fields(RunConfig)
                if getattr(s.method_configs(task, m)[0], f.name) != getattr(base[0], f.name)
            }
            assert changed <= set(s.changes(task, m)), (task, m, changed)
    assert len(set(s.configs())) == sum(len(rival_methods.METHODS[t]) for t in rivals.TASKS) * len(
        s.seeds
    )
    assert len({c.shape() for c in s.configs()}) == 2  # one stack per task
    # Grokfast's published MNIST run is its filter and its decay, each also run alone.
    run = s.method_configs("mnist", rival_methods.GROKFAST_STRONG)[0]
    assert (run.grad_filter, run.filter_alpha, run.filter_lamb, run.weight_decay) == (
        "ema",
        0.8,
        0.1,
        2.0,
    )
    assert s.method_configs("mnist", rival_methods.STRONG_DECAY)[0].weight_decay == 2.0


def test_mnist_waits_for_claim_1s_w_c_as_claim_3_does():
    s = rivals.Setup("smoke", device="cpu")
    assert s.mnist_w_c is None
    landscape = s.claim3.landscape.task_configs("mnist")
    assert s.configs()[: len(landscape)] == landscape
    with pytest.raises(ValueError, match="mnist_w_c is not known"):
        s.method_configs("mnist", rival_methods.HELD)
    assert len(s.planned()) == len(landscape) + len(
        rivals.Setup("smoke", device="cpu", mnist_w_c=1.0).configs()
    )


def test_the_chapter_runs_at_smoke_and_judges(tmp_path):
    s = rivals.Setup("smoke", seeds=[0], device="cpu")
    o = rivals.run(s, progress=False)
    assert o.setup.mnist_w_c is not None  # read off claim 1's MNIST landscape
    assert rivals.verdict(o).status in STATUSES
    for task in rivals.TASKS:
        for m in rival_methods.METHODS[task]:
            assert rivals.method_verdict(o, task, m).status in STATUSES
        assert rivals.numbers(o)[f"{task}_weight_decay_steps"]
        tables = rivals.table(o, task).split("\n\n")  # speed; norm and answers
        assert [len(t.splitlines()) for t in tables] == [2 + len(rival_methods.METHODS[task])] * 2
        assert rivals.numbers(o)[f"{task}_fastest"]
        for draw in (rivals.figure, rivals.figure_norm):
            draw(o, task).savefig(tmp_path / "figure.png")


def test_a_bad_chapter_parameter_fails_before_any_training():
    with pytest.raises(ValueError, match="logit_scale must be a positive finite number"):
        rivals.Setup("smoke", logit_scale=-1.0)
    with pytest.raises(ValueError, match="mnist_w_c must be a positive finite number"):
        rivals.Setup("smoke", mnist_w_c=0.0)
