"""Nanda et al.'s one-layer transformer for modular addition (paper Sec. 3.3): learned
positional embeddings, ReLU MLP, no LayerNorm, logits read at the last position; their init
(every matrix randn/sqrt(d_model), the unembedding randn/sqrt(d_vocab), zero biases)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from omnigrok.checks import check_int, fail
from omnigrok.models.base import Family, Params, generators, stack


@dataclass(frozen=True)
class TransformerSpec:
    """Nanda et al.'s one-layer transformer (paper Sec. 3.3)."""

    d_vocab: int = 114
    n_ctx: int = 3
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    kind: str = field(default="transformer", init=False)

    def __post_init__(self) -> None:
        for name in ("d_vocab", "n_ctx", "d_model", "n_heads", "d_mlp"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=1))
        if self.d_model % self.n_heads:
            fail("n_heads", self.n_heads, f"a divisor of d_model={self.d_model}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_dict(cls, d: dict) -> TransformerSpec:
        return cls(**{k: v for k, v in d.items() if k != "kind"})


def init_transformer(
    spec: TransformerSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32
) -> Params:
    """Nanda et al.'s init for each run. Layouts follow their code (``W_Q: [H, d_head, d_model]``,
    ``W_in: [d_mlp, d_model]``...), with the run axis in front."""
    d, h, dh, dm, dv = spec.d_model, spec.n_heads, spec.d_head, spec.d_mlp, spec.d_vocab
    gens = generators(seeds)

    def randn(shape, scale):
        return lambda g: torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(scale)

    def zeros(shape):
        return lambda g: torch.zeros(shape, dtype=torch.float64)

    layout = {
        "W_E": randn((d, dv), d),
        "W_pos": randn((spec.n_ctx, d), d),
        "W_Q": randn((h, dh, d), d),
        "W_K": randn((h, dh, d), d),
        "W_V": randn((h, dh, d), d),
        "W_O": randn((d, h * dh), d),
        "W_in": randn((dm, d), d),
        "b_in": zeros((dm,)),
        "W_out": randn((d, dm), d),
        "b_out": zeros((d,)),
        "W_U": randn((d, dv), dv),
    }
    return {name: stack(draw, gens, device, dtype) for name, draw in layout.items()}


def _embed(params: Params, tokens: torch.Tensor) -> torch.Tensor:
    """Token plus position embeddings, ``[K, B, n_ctx, d_model]``.

    A one-hot matrix product rather than a gather: the gather's backward accumulates into
    the same few rows of W_E (the '=' token is in every example), which serialises on a GPU;
    the product's backward is one GEMM, and on a CPU both cost about the same."""
    w_e = params["W_E"].transpose(1, 2)  # [K, d_vocab, d_model]
    one_hot = F.one_hot(tokens, w_e.shape[1]).to(w_e.dtype)  # [(K,) B, n_ctx, d_vocab]
    x = torch.matmul(one_hot.flatten(-3, -2), w_e)  # [K, B * n_ctx, d_model]
    return x.unflatten(1, tokens.shape[-2:]) + params["W_pos"][:, None]


def transformer_forward(params: Params, tokens: torch.Tensor) -> torch.Tensor:
    """Logits at the last position, ``[K, B, d_vocab]``; ``tokens``: ``[B, n_ctx]`` shared, or
    ``[K, B, n_ctx]``.

    Only the last position feeds the logits, so only its query, its attention output and its
    MLP are computed; keys and values still come from every position. Under the causal mask
    the last position sees all positions, so this is exactly Nanda et al.'s model at that
    position (``NandaTransformer`` computes every position; tests compare).
    """
    x = _embed(params, tokens)
    k_runs, batch, n_ctx, d_model = x.shape
    _, n_heads, d_head, _ = params["W_Q"].shape
    # Keys and values of every position in one GEMM per run; the query of the last only.
    w_kv = torch.cat([params["W_K"], params["W_V"]], dim=1).reshape(k_runs, -1, d_model)
    kv = torch.bmm(x.reshape(k_runs, batch * n_ctx, d_model), w_kv.transpose(1, 2))
    k, v = kv.view(k_runs, batch, n_ctx, 2, n_heads, d_head).unbind(dim=3)
    last = x[:, :, -1]
    w_q = params["W_Q"].reshape(k_runs, n_heads * d_head, d_model)
    q = torch.bmm(last, w_q.transpose(1, 2)).view(k_runs, batch, 1, n_heads, d_head)
    # With n_ctx = 3, scores and mixing are cheaper as broadcasts than as tiny batched GEMMs.
    scores = (q * k).sum(dim=-1) / math.sqrt(d_head)  # [K, B, n_ctx, H]
    z = (scores.softmax(dim=2).unsqueeze(-1) * v).sum(dim=2)  # [K, B, H, d_head]
    z = z.reshape(k_runs, batch, n_heads * d_head)
    resid = last + torch.bmm(z, params["W_O"].transpose(1, 2))
    hidden = torch.relu(
        torch.baddbmm(params["b_in"][:, None], resid, params["W_in"].transpose(1, 2))
    )
    resid = resid + torch.baddbmm(params["b_out"][:, None], hidden, params["W_out"].transpose(1, 2))
    return torch.bmm(resid, params["W_U"])


class NandaTransformer(nn.Module):
    """Nanda et al.'s one-layer transformer as they wrote it: every position computed, causal
    mask, no LayerNorm; returns the logits at the last position ``[B, d_vocab]``. The ground
    truth ``transformer_forward`` is tested against, and the benchmarks' "usual way"."""

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


def describe(spec: TransformerSpec) -> str:
    return (
        f"1-layer transformer, d_model {spec.d_model}, {spec.n_heads} heads, "
        f"d_mlp {spec.d_mlp}, ReLU, no LayerNorm"
    )


FAMILY = Family(
    kind="transformer",
    spec=TransformerSpec,
    init=init_transformer,
    forward=lambda spec, params, x: transformer_forward(params, x),
    reference=NandaTransformer,
    describe=describe,
)
