"""Stacked models: K runs' parameters along a leading run axis, one forward for all.

Each model is a pair of functions, ``init_*`` (parameters for K runs, run k drawn from its own
generator so it never depends on which runs share the stack) and ``*_forward`` (inputs for K
runs -> outputs ``[K, B, n_out]``). Parameters are plain leaf tensors in an ordered dict; the
weight-norm tools and the optimizer treat them as one flat vector per run.

Inits follow the paper (Sec. 3): the MLPs use PyTorch's default ``nn.Linear`` init, the
transformer Nanda et al.'s (every matrix randn/sqrt(d_model), the unembedding randn/sqrt(d_vocab),
zero biases). Scaling by α happens afterwards, in ``omnigrok.norms``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from omnigrok.config import MLPSpec, TransformerSpec

Params = dict[str, torch.Tensor]


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    # One generator per run; the offset keeps init streams apart from batch-order streams.
    return [torch.Generator().manual_seed(1_000_003 * int(s) + 17) for s in seeds]


def _stack(draw, gens: list[torch.Generator], device, dtype) -> torch.Tensor:
    # Draw on the CPU in float64 for every device and precision: the same seed then gives the
    # same init everywhere, and float32 runs are the float64 init rounded.
    return torch.stack([draw(g) for g in gens]).to(device=device, dtype=dtype)


def init_mlp(spec: MLPSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32) -> Params:
    """PyTorch's default ``nn.Linear`` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
    biases (kaiming_uniform with a=sqrt(5)), for each run. Weights are stored as ``nn.Linear``
    stores them, ``[K, out, in]``."""
    gens = _generators(seeds)
    params: Params = {}
    for i, (d_in, d_out) in enumerate(zip(spec.widths[:-1], spec.widths[1:], strict=True)):
        bound = 1.0 / math.sqrt(d_in)

        def uniform(shape, bound=bound):
            return lambda g: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

        params[f"layer{i}.weight"] = _stack(uniform((d_out, d_in)), gens, device, dtype)
        params[f"layer{i}.bias"] = _stack(uniform((d_out,)), gens, device, dtype)
    return params


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) as 2·sigmoid(2x) - 1, with tanh's own backward ``g · (1 - y²)``.

    PyTorch's CPU tanh kernel is slow: 430 µs for 200k float32 values on a 2-core AVX2 machine
    (torch 2.13), where sigmoid takes 100 µs; it was a fifth of a teacher-student step. The two
    agree to a few float32 ulps of 1 (tested against ``torch.tanh``). GPUs keep ``torch.tanh``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh``, computed through sigmoid on the CPU (see ``_SigmoidTanh``)."""
    return _SigmoidTanh.apply(x) if x.device.type == "cpu" else torch.tanh(x)


_ACTIVATIONS = {"relu": torch.relu, "tanh": tanh}


def mlp_forward(params: Params, x: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """``x``: ``[B, d_in]`` shared by every run, or ``[K, B, d_in]``; returns ``[K, B, d_out]``.

    Inside, activations are ``[K, features, batch]`` (transposed) and weights ``[K, out, in]``:
    then every matrix product the forward and backward make (layer outputs, their input
    gradients, the weight gradients ``[K, out, in]``) has a long last dimension. MKL's batched
    GEMM is slow when it is short: ``[K, 100, 100] @ [K, 100, 5]`` takes 4x the time of the
    same product written ``[K, 5, 100] @ [K, 100, 100]`` (2-core CPU, K = 20), and the output
    layers (5 or 10 outputs) would be such products. The result is a transposed view.
    """
    act = _ACTIVATIONS[activation]
    n_layers = len(params) // 2
    h = x
    for i in range(n_layers):
        w, b = params[f"layer{i}.weight"], params[f"layer{i}.bias"]
        if i == 0 and x.dim() == 2:
            # A shared input: one GEMM [K*out, in] @ [in, B] beats K small ones. With x^T
            # contiguous, the weight gradient grad @ x is a GEMM with a transposed operand, which
            # MKL does 2.5x faster than with a plain [B, in] one when in is small (5).
            k, d_out, d_in = w.shape
            x_t = x.T.contiguous()
            h = torch.addmm(b.reshape(k * d_out, 1), w.reshape(k * d_out, d_in), x_t)
            h = h.view(k, d_out, -1)
        else:
            h = torch.baddbmm(b.unsqueeze(-1), w, h.transpose(1, 2) if i == 0 else h)
        if i < n_layers - 1:
            h = act(h)
    return h.transpose(1, 2)


def init_transformer(
    spec: TransformerSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32
) -> Params:
    """Nanda et al.'s init for each run. Layouts follow their code (``W_Q: [H, d_head, d_model]``,
    ``W_in: [d_mlp, d_model]``...), with the run axis in front."""
    d, h, dh, dm, dv = spec.d_model, spec.n_heads, spec.d_head, spec.d_mlp, spec.d_vocab
    gens = _generators(seeds)

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
    return {name: _stack(draw, gens, device, dtype) for name, draw in layout.items()}


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
    position (``omnigrok.reference.NandaTransformer`` computes every position; tests compare).
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


def init_params(
    spec: MLPSpec | TransformerSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32
) -> Params:
    """Standard (α = 1) init of ``spec`` for one run per seed."""
    if isinstance(spec, MLPSpec):
        return init_mlp(spec, seeds, device, dtype)
    return init_transformer(spec, seeds, device, dtype)


def forward(spec: MLPSpec | TransformerSpec, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Outputs ``[K, B, n_out]`` of the stacked model ``spec``."""
    if isinstance(spec, MLPSpec):
        return mlp_forward(params, x, spec.activation)
    return transformer_forward(params, x)
