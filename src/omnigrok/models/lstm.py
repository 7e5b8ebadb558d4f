"""The IMDb sentiment model (paper Sec. 3.2; official ``imdb/grokking``): a token embedding, a
multi-layer LSTM and a linear read-out of the last position's hidden state, as one logit.

PyTorch's default inits (``nn.Embedding``: N(0, 1); ``nn.LSTM`` and ``nn.Linear``:
U(-1/sqrt(fan), 1/sqrt(fan))), stacked for K runs and drawn from each run's own generator.
The official code reads out ``sigmoid(fc(h_t))`` at the last position of a left-padded review
and trains with ``nn.BCELoss``; the stacked model returns the logit, and the trainer's ``bce``
loss applies the sigmoid inside the loss (the same function, without its rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from omnigrok.checks import check_int
from omnigrok.models.base import Family, Params, generators, stack


@dataclass(frozen=True)
class LSTMSpec:
    """``vocab`` tokens (0 is padding) embedded in ``embed`` dimensions, ``layers`` LSTM layers
    of ``hidden`` units, one output logit. The paper's text says hidden 128, its code 256."""

    vocab: int = 1001
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    kind: str = field(default="lstm", init=False)

    def __post_init__(self) -> None:
        for name in ("vocab", "embed", "hidden", "layers"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=1))

    @classmethod
    def from_dict(cls, d: dict) -> LSTMSpec:
        return cls(**{k: v for k, v in d.items() if k != "kind"})


def init_lstm(spec: LSTMSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32) -> Params:
    """PyTorch's default init of ``LSTMReference`` for each run, in its parameter names."""
    gens = generators(seeds)
    bound = 1.0 / math.sqrt(spec.hidden)

    def uniform(shape):
        return lambda g: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

    layout = {
        "embedding.weight": lambda g: torch.randn(
            spec.vocab, spec.embed, generator=g, dtype=torch.float64
        )
    }
    for layer in range(spec.layers):
        d_in = spec.embed if layer == 0 else spec.hidden
        layout[f"lstm.weight_ih_l{layer}"] = uniform((4 * spec.hidden, d_in))
        layout[f"lstm.weight_hh_l{layer}"] = uniform((4 * spec.hidden, spec.hidden))
        layout[f"lstm.bias_ih_l{layer}"] = uniform((4 * spec.hidden,))
        layout[f"lstm.bias_hh_l{layer}"] = uniform((4 * spec.hidden,))
    layout["fc.weight"] = uniform((1, spec.hidden))
    layout["fc.bias"] = uniform((1,))
    return {name: stack(draw, gens, device, dtype) for name, draw in layout.items()}


def lstm_forward(spec: LSTMSpec, params: Params, tokens: torch.Tensor) -> torch.Tensor:
    """Logits ``[K, B, 1]`` from ``tokens`` ``[B, T]`` (shared by every run) or ``[K, B, T]``.

    Each layer projects all its inputs at once (one batched GEMM over every position), then
    steps through time with one ``[K, B, H] @ [K, H, 4H]`` product per position; gates in
    PyTorch's order (input, forget, cell, output). Only the last layer's last hidden state is
    read out, as the official model's ``sig_out[:, -1]``.
    """
    emb = params["embedding.weight"]  # [K, V, E]
    k = emb.shape[0]
    if tokens.dim() == 2:
        x = emb[:, tokens]  # [K, B, T, E]
    else:
        x = emb[torch.arange(k, device=tokens.device)[:, None, None], tokens]
    _, batch, steps, _ = x.shape  # steps: sequence length
    for layer in range(spec.layers):
        w_ih = params[f"lstm.weight_ih_l{layer}"]
        w_hh = params[f"lstm.weight_hh_l{layer}"]
        bias = params[f"lstm.bias_ih_l{layer}"] + params[f"lstm.bias_hh_l{layer}"]
        projected = torch.baddbmm(
            bias[:, None], x.reshape(k, batch * steps, -1), w_ih.transpose(1, 2)
        ).view(k, batch, steps, -1)
        h = x.new_zeros(k, batch, spec.hidden)
        c = x.new_zeros(k, batch, spec.hidden)
        outputs = []
        w_hh_t = w_hh.transpose(1, 2)
        # unbind, not projected[:, :, t]: each indexing's backward would fill a zero tensor of
        # the whole sequence (quadratic in its length); unbind's backward stacks once.
        for x_t in projected.unbind(dim=2):
            gates = torch.baddbmm(x_t, h, w_hh_t)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if layer < spec.layers - 1:
                outputs.append(h)
        if layer < spec.layers - 1:
            x = torch.stack(outputs, dim=2)  # [K, B, T, H], the next layer's input
    return torch.baddbmm(params["fc.bias"][:, None], h, params["fc.weight"].transpose(1, 2))


class LSTMReference(nn.Module):
    """The official ``SentimentRNN`` without its sigmoid and dropout (0 in the paper's runs):
    ``nn.Embedding``, ``nn.LSTM(batch_first=True)``, ``nn.Linear`` on the last position."""

    def __init__(self, spec: LSTMSpec) -> None:
        super().__init__()
        self.embedding = nn.Embedding(spec.vocab, spec.embed)
        self.lstm = nn.LSTM(spec.embed, spec.hidden, num_layers=spec.layers, batch_first=True)
        self.fc = nn.Linear(spec.hidden, 1)

    @torch.no_grad()
    def load_run(self, params: Params, run: int) -> LSTMReference:
        for name, p in self.named_parameters():
            p.copy_(params[name][run])
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens))
        return self.fc(out[:, -1])


def describe(spec: LSTMSpec) -> str:
    return (
        f"{spec.layers}-layer LSTM, embedding {spec.embed}, hidden {spec.hidden}, "
        f"vocabulary {spec.vocab}"
    )


FAMILY = Family(
    kind="lstm",
    spec=LSTMSpec,
    init=init_lstm,
    forward=lstm_forward,
    reference=LSTMReference,
    describe=describe,
)
