"""Stacked models against their plain one-run versions, and the inits the paper specifies."""

import math

import pytest
import torch

from omnigrok.config import MLPSpec, TransformerSpec
from omnigrok.models import NandaTransformer, PlainMLP, forward, init_params, tanh
from omnigrok.norms import global_norm


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("shared", [True, False])
def test_stacked_mlp_equals_plain_mlp(shared, activation):
    """Outputs and every parameter's gradient, run by run (the stacked forward uses its own
    layout and, on the CPU, its own tanh)."""
    spec = MLPSpec((7, 11, 13, 3), activation)
    params = init_params(spec, [0, 1, 2], dtype=torch.float64)
    for p in params.values():
        p.requires_grad_(True)
    x = torch.randn(3, 5, 7, dtype=torch.float64)
    out = forward(spec, params, x[0] if shared else x)
    out.pow(2).sum().backward()
    for run in range(3):
        plain = PlainMLP(spec).double().load_run(params, run)
        expected = plain(x[0] if shared else x[run])
        torch.testing.assert_close(out[run], expected, rtol=1e-12, atol=1e-12)
        expected.pow(2).sum().backward()
        for name, p in plain.named_parameters():
            index, kind = name.split(".")
            layer = [m for m in plain if isinstance(m, torch.nn.Linear)].index(plain[int(index)])
            torch.testing.assert_close(
                params[f"layer{layer}.{kind}"].grad[run], p.grad, rtol=1e-12, atol=1e-12
            )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_tanh_equals_torch_tanh(dtype):
    """The sigmoid-based CPU tanh: values and gradients, including saturation and non-finite."""
    x = torch.cat([torch.linspace(-30, 30, 10001), torch.tensor([0.0, 1e-30, -1e-8, 1e4])])
    x = torch.cat([x, torch.tensor([math.inf, -math.inf, math.nan])]).to(dtype)
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, expected = tanh(mine), torch.tanh(theirs)
    atol = 1e-15 if dtype == torch.float64 else 3e-7
    torch.testing.assert_close(y, expected, rtol=0, atol=atol, equal_nan=True)
    grad = torch.linspace(-2, 2, len(x), dtype=dtype)
    y.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=4 * atol, equal_nan=True)


def test_stacked_transformer_equals_full_sequence_model():
    spec = TransformerSpec(d_vocab=24, d_model=32, n_heads=4, d_mlp=64)
    params = init_params(spec, [3, 4], dtype=torch.float64)
    tokens = torch.randint(0, 23, (50, 3))
    tokens[:, 2] = 23
    out = forward(spec, params, tokens)
    for run in range(2):
        plain = NandaTransformer(spec).double().load_run(params, run)
        torch.testing.assert_close(out[run], plain(tokens), rtol=1e-10, atol=1e-10)


def test_mlp_init_is_pytorch_default():
    """Weights and biases uniform in +-1/sqrt(fan_in), with nn.Linear's variance."""
    params = init_params(MLPSpec((784, 200, 200, 10)), [0])
    w, b = params["layer0.weight"], params["layer0.bias"]
    bound = 1 / math.sqrt(784)
    assert w.abs().max() <= bound and b.abs().max() <= bound
    assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.02)
    plain = torch.stack([PlainMLP(MLPSpec((784, 200, 200, 10)))[0].weight.var() for _ in range(3)])
    assert w.var().item() == pytest.approx(plain.mean().item(), rel=0.03)


def test_transformer_init_norm_matches_nanda():
    """The paper's modular-addition norm: ~42.2 at α = 1 with Nanda's init (d_vocab = 114)."""
    norms = global_norm(init_params(TransformerSpec(), list(range(8)), dtype=torch.float64))
    assert norms.mean().item() == pytest.approx(42.2, abs=0.2)
    assert norms.std().item() < 0.5


def test_runs_do_not_depend_on_their_neighbours():
    spec = MLPSpec((5, 100, 100, 5), "tanh")
    alone = init_params(spec, [7])
    stacked = init_params(spec, [1, 7, 9])
    for name in alone:
        assert torch.equal(alone[name][0], stacked[name][1])
        assert not torch.equal(stacked[name][0], stacked[name][1])
