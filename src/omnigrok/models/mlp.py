"""Fully connected networks (paper Sec. 3.1: MNIST 784-200-200-10 ReLU; Fig. 2:
teacher-student 5-100-100-5 tanh) with PyTorch's default ``nn.Linear`` init, stacked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from omnigrok.checks import check_choice, check_int, fail
from omnigrok.models.base import Family, Params, generators, stack

ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected network ``widths[0] -> ... -> widths[-1]``, PyTorch's default init."""

    widths: tuple[int, ...]
    activation: str = "relu"
    kind: str = field(default="mlp", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.widths, tuple | list) or len(self.widths) < 2:
            fail("widths", self.widths, "a sequence of at least two layer widths")
        widths = tuple(check_int("widths", w, minimum=1) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        check_choice("activation", self.activation, ACTIVATIONS)

    @classmethod
    def from_dict(cls, d: dict) -> MLPSpec:
        return cls(widths=tuple(d["widths"]), activation=d["activation"])


def init_mlp(spec: MLPSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32) -> Params:
    """PyTorch's default ``nn.Linear`` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
    biases (kaiming_uniform with a=sqrt(5)), for each run. Weights are stored as ``nn.Linear``
    stores them, ``[K, out, in]``."""
    gens = generators(seeds)
    params: Params = {}
    for i, (d_in, d_out) in enumerate(zip(spec.widths[:-1], spec.widths[1:], strict=True)):
        bound = 1.0 / math.sqrt(d_in)

        def uniform(shape, bound=bound):
            return lambda g: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

        params[f"layer{i}.weight"] = stack(uniform((d_out, d_in)), gens, device, dtype)
        params[f"layer{i}.bias"] = stack(uniform((d_out,)), gens, device, dtype)
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


_ACTIVATION_FNS = {"relu": torch.relu, "tanh": tanh}


def mlp_forward(params: Params, x: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """``x``: ``[B, d_in]`` shared by every run, or ``[K, B, d_in]``; returns ``[K, B, d_out]``.

    Inside, activations are ``[K, features, batch]`` (transposed) and weights ``[K, out, in]``:
    then every matrix product the forward and backward make (layer outputs, their input
    gradients, the weight gradients ``[K, out, in]``) has a long last dimension. MKL's batched
    GEMM is slow when it is short: ``[K, 100, 100] @ [K, 100, 5]`` takes 4x the time of the
    same product written ``[K, 5, 100] @ [K, 100, 100]`` (2-core CPU, K = 20), and the output
    layers (5 or 10 outputs) would be such products. The result is a transposed view.
    """
    act = _ACTIVATION_FNS[activation]
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


class PlainMLP(nn.Sequential):
    """The MLP of ``spec`` as ``nn.Sequential`` (PyTorch's default init): the ground truth the
    stacked code is tested against, and the benchmarks' "usual way"."""

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


def train_flops(widths: Sequence[int], batch: int, exact: bool = False) -> int:
    """FLOPs of one training step (forward + backward) of one MLP run:
    ``6 · batch · sum(fan_in · fan_out)`` over the layers.

    Forward is one multiply-add (2 FLOPs) per weight per example; backward is twice that (the
    gradient with respect to the layer's input and to its weights). Biases, activations, the
    loss and the optimizer are left out (O(batch · width), negligible). The convention counts
    the first layer's input gradient, which autograd never computes (the data needs none):
    ``exact=True`` leaves those ``2 · batch · widths[0] · widths[1]`` FLOPs out.
    """
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    flops = 6 * batch * weights
    return flops - 2 * batch * widths[0] * widths[1] if exact else flops


def describe(spec: MLPSpec) -> str:
    return f"MLP {'-'.join(map(str, spec.widths))}, {spec.activation}"


FAMILY = Family(
    kind="mlp",
    spec=MLPSpec,
    init=init_mlp,
    forward=lambda spec, params, x: mlp_forward(params, x, spec.activation),
    reference=PlainMLP,
    describe=describe,
)
