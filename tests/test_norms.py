"""The paper's weight-norm tools (Sec. 2-3): global norm, scaling by α, projection."""

import numpy as np
import pytest
import torch

from omnigrok.config import MLPSpec, TransformerSpec
from omnigrok.models import NandaTransformer, PlainMLP, init_params
from omnigrok.norms import global_norm, layer_norms, project_to_norm_, scale_


def test_global_norm_counts_every_parameter_once():
    spec = MLPSpec((784, 200, 200, 10))
    params = init_params(spec, [0, 1], dtype=torch.float64)
    plain = PlainMLP(spec).double().load_run(params, 1)
    expected = torch.sqrt(sum(p.pow(2).sum() for p in plain.parameters()))
    assert global_norm(params)[1].item() == pytest.approx(expected.item(), rel=1e-14)
    per_layer = layer_norms(params)
    assert sum(v[1] ** 2 for v in per_layer.values()).sqrt().item() == pytest.approx(
        expected.item(), rel=1e-14
    )


def test_transformer_norm_includes_all_eleven_tensors():
    spec = TransformerSpec(d_vocab=24, d_model=32, d_mlp=64)
    params = init_params(spec, [0], dtype=torch.float64)
    plain = NandaTransformer(spec).double().load_run(params, 0)
    assert len(list(plain.parameters())) == len(params) == 11
    expected = torch.sqrt(sum(p.pow(2).sum() for p in plain.parameters()))
    assert global_norm(params)[0].item() == pytest.approx(expected.item(), rel=1e-14)


@pytest.mark.parametrize("alpha", [0.1, 0.8, 8.0, 1e3])
def test_scaling_by_alpha_multiplies_the_norm_by_alpha(alpha):
    params = init_params(MLPSpec((5, 100, 100, 5), "tanh"), [0, 1], dtype=torch.float64)
    before = global_norm(params)
    scale_(params, torch.tensor([alpha, 1.0], dtype=torch.float64))
    after = global_norm(params)
    assert after[0].item() == pytest.approx(alpha * before[0].item(), rel=1e-13)
    assert after[1].item() == before[1].item()


def test_projection_hits_target_only_where_active():
    params = init_params(MLPSpec((5, 100, 100, 5), "tanh"), [0, 1, 2])
    before = global_norm(params)
    target = torch.tensor([3.0, 50.0, 7.0])
    active = torch.tensor([True, True, False])
    project_to_norm_(params, target, active)
    after = global_norm(params)
    torch.testing.assert_close(after[:2], target[:2], rtol=1e-6, atol=0)
    assert after[2].item() == before[2].item()


def test_trainer_holds_the_norm_after_every_step():
    """Constrained runs, float32, every step logged: the norm stays at its target to 1e-6."""
    from omnigrok.tasks import mnist_run, teacher_student_run
    from omnigrok.train import train_ensemble

    runs = [
        teacher_student_run(steps=60, n_log=200, constraint="fixed", target_norm=5.0, lr=1e-2),
        teacher_student_run(steps=60, n_log=200, constraint="init", init_scale=3.0, seed=1),
    ]
    fixed, held = train_ensemble(runs, device="cpu", progress=False)
    assert len(fixed.steps) == 61
    np.testing.assert_allclose(fixed["norm"][1:], 5.0, rtol=1e-6)
    np.testing.assert_allclose(held["norm"], held["norm"][0], rtol=1e-6)
    mnist = mnist_run(steps=20, n_log=100, constraint="init", init_scale=8.0)
    mnist = mnist.replace(task=mnist.task.__class__("mnist", n_test=100))
    (result,) = train_ensemble([mnist], device="cpu", progress=False)
    np.testing.assert_allclose(result["norm"], result["norm"][0], rtol=1e-6)
