"""The stacked AdamW against torch.optim.AdamW, one optimizer per run."""

import pytest
import torch

import omnigrok.optim
from omnigrok.optim import StackedAdamW


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "op-by-op"])
def test_stacked_adamw_equals_torch_adamw_per_run(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr("omnigrok.optim._FUSED", None)
    elif omnigrok.optim._FUSED is None:
        pytest.skip("this PyTorch has no fused AdamW kernel")
    else:
        monkeypatch.setattr("omnigrok.optim.FUSED_MIN_NUMEL", 0)
    torch.manual_seed(0)
    lrs, wds = [1e-3, 3e-2, 1e-1], [0.0, 0.01, 1.0]
    stacked = {
        "w": torch.randn(3, 4, 5, dtype=torch.float64),
        "b": torch.randn(3, 5, dtype=torch.float64),
    }
    plain = [{n: p[i].clone().requires_grad_() for n, p in stacked.items()} for i in range(3)]
    for p in stacked.values():
        p.requires_grad_()
    opt = StackedAdamW(
        stacked,
        torch.tensor(lrs, dtype=torch.float64),
        torch.tensor(wds, dtype=torch.float64),
        betas=(0.9, 0.98),
        eps=1e-8,
    )
    torch_opts = [
        torch.optim.AdamW(list(p.values()), lr=lr, weight_decay=wd, betas=(0.9, 0.98), eps=1e-8)
        for p, lr, wd in zip(plain, lrs, wds, strict=True)
    ]
    active = torch.ones(3, dtype=torch.bool)
    for _ in range(25):
        grads = {n: torch.randn_like(p) for n, p in stacked.items()}
        for n, p in stacked.items():
            p.grad = grads[n].clone()
        opt.step(active)
        for i, (params, topt) in enumerate(zip(plain, torch_opts, strict=True)):
            for n, p in params.items():
                p.grad = grads[n][i].clone()
            topt.step()
    for i in range(3):
        for n in stacked:
            torch.testing.assert_close(stacked[n][i], plain[i][n], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "op-by-op"])
def test_frozen_runs_do_not_move_even_with_nan_gradients(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr("omnigrok.optim._FUSED", None)
    monkeypatch.setattr("omnigrok.optim.FUSED_MIN_NUMEL", 0)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    before = w.detach().clone()
    opt = StackedAdamW({"w": w}, torch.tensor([0.1, 0.1]), torch.tensor([0.5, 0.5]))
    w.grad = torch.tensor([[1.0, 2.0, 3.0], [float("nan")] * 3], dtype=torch.float64)
    opt.step(torch.tensor([True, False]))
    assert torch.equal(w[1], before[1])
    assert not torch.equal(w[0], before[0])
    assert torch.isfinite(opt.exp_avg["w"]).all()
