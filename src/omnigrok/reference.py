"""Plain, one-run ``nn.Module`` versions of the models: the ground truth the stacked code is
tested against, and the "usual way" baseline the benchmarks measure.

``PlainMLP`` is an ``nn.Sequential`` of ``nn.Linear``; ``NandaTransformer`` computes every
position with a causal mask exactly as Nanda et al.'s code (paper Sec. 3.3). Both can take run
k's weights out of a stack of parameters (``load_run``), so a test can start a plain model from
the very same init as the ensemble.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from omnigrok.config import MLPSpec, TransformerSpec
from omnigrok.models import Params


class PlainMLP(nn.Sequential):
    """The MLP of ``spec`` as ``nn.Sequential`` (PyTorch's default init)."""

    def __init__(self, spec: MLPSpec) -> None:
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[spec.activation]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(spec.widths[:-1], spec.widths[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out))
            if i < len(spec.widths) - 2:
                layers.append(act())
        super().__init__(*layers)

    @torch.no_grad()
    def load_run(self, params: Params, run: int) -> PlainMLP:
        """Copy run ``run`` of stacked ``params`` (weights stored ``[K, out, in]``) into self."""
        linears = [m for m in self if isinstance(m, nn.Linear)]
        for i, lin in enumerate(linears):
            lin.weight.copy_(params[f"layer{i}.weight"][run])
            lin.bias.copy_(params[f"layer{i}.bias"][run])
        return self


class NandaTransformer(nn.Module):
    """Nanda et al.'s one-layer transformer, every position computed, causal mask, no
    LayerNorm; returns the logits at the last position ``[B, d_vocab]``."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        d, h, dh, dm, dv = spec.d_model, spec.n_heads, spec.d_head, spec.d_mlp, spec.d_vocab
        self.d_head = dh
        self.W_E = nn.Parameter(torch.randn(d, dv) / math.sqrt(d))
        self.W_pos = nn.Parameter(torch.randn(spec.n_ctx, d) / math.sqrt(d))
        self.W_Q = nn.Parameter(torch.randn(h, dh, d) / math.sqrt(d))
        self.W_K = nn.Parameter(torch.randn(h, dh, d) / math.sqrt(d))
        self.W_V = nn.Parameter(torch.randn(h, dh, d) / math.sqrt(d))
        self.W_O = nn.Parameter(torch.randn(d, h * dh) / math.sqrt(d))
        self.W_in = nn.Parameter(torch.randn(dm, d) / math.sqrt(d))
        self.b_in = nn.Parameter(torch.zeros(dm))
        self.W_out = nn.Parameter(torch.randn(d, dm) / math.sqrt(d))
        self.b_out = nn.Parameter(torch.zeros(d))
        self.W_U = nn.Parameter(torch.randn(d, dv) / math.sqrt(dv))
        self.register_buffer("mask", torch.tril(torch.ones(spec.n_ctx, spec.n_ctx)))

    @torch.no_grad()
    def load_run(self, params: Params, run: int) -> NandaTransformer:
        for name, p in self.named_parameters():
            p.copy_(params[name][run])
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.W_E.T[tokens] + self.W_pos  # [B, P, d]
        q = torch.einsum("ihd,bpd->biph", self.W_Q, x)
        k = torch.einsum("ihd,bpd->biph", self.W_K, x)
        v = torch.einsum("ihd,bpd->biph", self.W_V, x)
        scores = torch.einsum("biph,biqh->biqp", k, q)
        n = x.shape[1]
        scores = torch.tril(scores) - 1e10 * (1 - self.mask[:n, :n])
        attn = torch.softmax(scores / math.sqrt(self.d_head), dim=-1)
        z = torch.einsum("biph,biqp->biqh", v, attn)
        z = z.permute(0, 2, 1, 3).reshape(x.shape[0], n, -1)
        x = x + z @ self.W_O.T
        x = x + torch.relu(x @ self.W_in.T + self.b_in) @ self.W_out.T + self.b_out
        return (x @ self.W_U)[:, -1]
