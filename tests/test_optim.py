"""The stacked AdamW against torch.optim.AdamW, one optimizer per run."""

import pytest
import torch

import omnigrok.optim
from omnigrok.optim import StackedAdamW

# Runs with their own values (one fused call per run), all alike (one call on the whole
# stacked tensors), and two groups (calls on row subsets).
SETTINGS = {
    "distinct": ([1e-3, 3e-2, 1e-1], [0.0, 0.01, 1.0]),
    "shared": ([3e-2] * 3, [0.5] * 3),
    "grouped": ([3e-2, 1e-1, 3e-2], [0.5, 0.5, 0.5]),
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernel", "op-by-op"])
def test_stacked_adamw_equals_torch_adamw_per_run(fused, setting, monkeypatch):
    if not fused:
        monkeypatch.setattr("omnigrok.optim._FUSED", None)
    elif omnigrok.optim._FUSED is None:
        pytest.skip("this PyTorch has no fused AdamW kernel")
    torch.manual_seed(0)
    lrs, wds = SETTINGS[setting]
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
    # Runs 0 and 2 share their values; with run 1 frozen they are a group of rows, not all.
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    before = w.detach().clone()
    opt = StackedAdamW({"w": w}, torch.tensor([0.1] * 3), torch.tensor([0.5] * 3))
    w.grad = torch.ones(3, 4, dtype=torch.float64)
    w.grad[1] = float("nan")
    opt.step(torch.tensor([True, False, True]))
    assert torch.equal(w[1], before[1])
    assert not torch.equal(w[0], before[0]) and not torch.equal(w[2], before[2])
    assert torch.isfinite(opt.exp_avg["w"]).all()
