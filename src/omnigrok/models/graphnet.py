"""The QM9 graph network (paper Sec. 3.2; official ``qm9``'s ``ExampleNet``): two edge-conditioned
convolutions (PyTorch Geometric's ``NNConv``, sum aggregation, a root weight and a bias), each
followed by ReLU, a sum over each molecule's atoms, a hidden layer with ReLU and one output.

``NNConv(in, out, net)`` sends along each bond j -> i the message ``x_j @ W(e_ji)``, where the
edge network ``net`` (Linear(4, 32), ReLU, Linear(32, in·out)) turns the bond's features into
an ``in × out`` matrix; atom i sums its messages and adds ``lin(x_i) + bias``.

Written here in plain torch rather than with PyTorch Geometric: PyG's layers hold one run's
parameters, while the trainer holds K runs' parameters stacked on a leading axis and trains
them as one model. Molecules come padded (``Graphs``, padding masked), so a batch is a few
batched matrix products for all K runs at once. QM9's bond features are the one-hot of the
bond's type, so the edge network's matrix depends on the type alone: the stacked forward
computes it once per type (4 per run) and sums each atom's incoming neighbours by type, the
same function as one matrix per bond, without the K × B × E × in × out tensor (measured 4x
less time per step, K = 9, on this CPU). ``GraphNetReference`` is the network for one run on PyG's
flat batch layout with a matrix per bond; the tests check both against PyG's own ``NNConv``.

Init: PyTorch's defaults, as the official model gets them: every ``nn.Linear`` (edge networks,
``fc_1``, ``out``) U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; ``NNConv``'s root
weight U(-1/sqrt(in), 1/sqrt(in)) and its bias zero. Parameter names are PyG's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from omnigrok.checks import check_int
from omnigrok.models.base import Family, Params, generators, stack


@dataclass(frozen=True)
class GraphNetSpec:
    """``node_features`` and ``edge_features`` in, convolutions of ``channels`` (32, 16 in the
    official code), edge networks with ``edge_hidden`` units, a ``readout`` hidden layer, one
    output."""

    node_features: int = 11
    edge_features: int = 4
    channels: tuple[int, ...] = (32, 16)
    edge_hidden: int = 32
    readout: int = 32
    kind: str = field(default="graphnet", init=False)

    def __post_init__(self) -> None:
        for name in ("node_features", "edge_features", "edge_hidden", "readout"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=1))
        if not isinstance(self.channels, tuple | list) or not self.channels:
            raise ValueError(
                f"channels must be a non-empty sequence of widths, got {self.channels!r}"
            )
        channels = tuple(check_int("channels", c, minimum=1) for c in self.channels)
        object.__setattr__(self, "channels", channels)

    @classmethod
    def from_dict(cls, d: dict) -> GraphNetSpec:
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**{**d, "channels": tuple(d["channels"])})


@dataclass(frozen=True)
class Graphs:
    """Padded molecules: ``nodes`` ``[..., M, A, F]``, ``node_mask`` ``[..., M, A]``, bond
    ends ``src``/``dst`` ``[..., M, E]`` (atom numbers within the molecule), ``edge_type``
    ``[..., M, E]`` (a bond's features are its one-hot), ``edge_mask`` ``[..., M, E]``.
    Indexing takes molecules, as a tensor's first axis would: a ``[K, B]`` index gives each run
    its own batch."""

    nodes: torch.Tensor
    node_mask: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor
    edge_type: torch.Tensor
    edge_mask: torch.Tensor

    def __len__(self) -> int:
        return self.nodes.shape[0]

    def __getitem__(self, idx) -> Graphs:
        return Graphs(*(getattr(self, f.name)[idx] for f in fields(self)))


def init_graphnet(
    spec: GraphNetSpec, seeds: Sequence[int], device="cpu", dtype=torch.float32
) -> Params:
    """PyTorch's default init of ``GraphNetReference`` for each run, in PyG's names."""
    gens = generators(seeds)

    def uniform(shape, fan_in):
        bound = 1.0 / math.sqrt(fan_in)
        return lambda g: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound

    layout = {}
    widths = (spec.node_features, *spec.channels)
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
        conv = f"conv{i}"
        layout[f"{conv}.bias"] = lambda g, d=d_out: torch.zeros(d, dtype=torch.float64)
        layout[f"{conv}.nn.0.weight"] = uniform(
            (spec.edge_hidden, spec.edge_features), spec.edge_features
        )
        layout[f"{conv}.nn.0.bias"] = uniform((spec.edge_hidden,), spec.edge_features)
        layout[f"{conv}.nn.2.weight"] = uniform((d_in * d_out, spec.edge_hidden), spec.edge_hidden)
        layout[f"{conv}.nn.2.bias"] = uniform((d_in * d_out,), spec.edge_hidden)
        layout[f"{conv}.lin.weight"] = uniform((d_out, d_in), d_in)
    layout["fc_1.weight"] = uniform((spec.readout, widths[-1]), widths[-1])
    layout["fc_1.bias"] = uniform((spec.readout,), widths[-1])
    layout["out.weight"] = uniform((1, spec.readout), spec.readout)
    layout["out.bias"] = uniform((1,), spec.readout)
    return {name: stack(draw, gens, device, dtype) for name, draw in layout.items()}


def _linear(params: Params, name: str, x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[K, ..., in]`` through run k's ``name`` layer (weight ``[K, out, in]``)."""
    k, *middle, d_in = x.shape
    w = params[f"{name}.weight"]
    flat = x.reshape(k, -1, d_in)
    bias = params.get(f"{name}.bias")
    out = (
        flat @ w.transpose(1, 2)
        if bias is None
        else torch.baddbmm(bias[:, None], flat, w.transpose(1, 2))
    )
    return out.view(k, *middle, w.shape[1])


def _conv(params: Params, conv: str, x: torch.Tensor, g: Graphs) -> torch.Tensor:
    """One ``NNConv`` for K runs: ``x`` ``[K, B, A, in]`` -> ``[K, B, A, out]``.

    Atom i receives sum over bonds j -> i of ``x_j @ W(type)``: the sources are first summed per
    (target atom, bond type), then multiplied by the type's matrix, one product for all types.
    """
    k, b, a, d_in = x.shape
    d_out = params[f"{conv}.lin.weight"].shape[1]
    n_types = params[f"{conv}.nn.0.weight"].shape[2]
    one_hot = torch.eye(n_types, dtype=x.dtype, device=x.device).expand(k, n_types, n_types)
    hidden = F.relu(_linear(params, f"{conv}.nn.0", one_hot))
    weight = _linear(params, f"{conv}.nn.2", hidden)  # [K, types, in * out]: W(type)
    e = g.src.shape[-1]
    sources = torch.gather(x, 2, g.src[..., None].expand(k, b, e, d_in))  # [K, B, E, in]
    sources = sources * g.edge_mask[..., None]
    slot = (g.dst * n_types + g.edge_type)[..., None].expand(k, b, e, d_in)
    by_type = x.new_zeros(k, b, a * n_types, d_in).scatter_add(2, slot, sources)
    summed = by_type.view(k, b * a, n_types * d_in) @ weight.view(k, n_types * d_in, d_out)
    root = _linear(params, f"{conv}.lin", x)
    return summed.view(k, b, a, d_out) + root + params[f"{conv}.bias"][:, None, None, :]


def graphnet_forward(spec: GraphNetSpec, params: Params, g: Graphs) -> torch.Tensor:
    """Predictions ``[K, B, 1]`` for molecules ``g`` shared by every run (``[B, ...]``) or
    one batch per run (``[K, B, ...]``)."""
    k = params["out.bias"].shape[0]
    if g.nodes.dim() == 3:  # shared: a view per run, no copy
        g = Graphs(*(t.expand(k, *t.shape) for t in (getattr(g, f.name) for f in fields(g))))
    x = g.nodes
    for i in range(1, len(spec.channels) + 1):
        x = F.relu(_conv(params, f"conv{i}", x, g))
    pooled = (x * g.node_mask[..., None]).sum(dim=2)  # padding atoms hold relu(bias): masked
    return _linear(params, "out", F.relu(_linear(params, "fc_1", pooled)))


class EdgeConv(nn.Module):
    """PyG's ``NNConv`` (sum aggregation, root weight, bias) for one run on a flat batch."""

    def __init__(self, d_in: int, d_out: int, spec: GraphNetSpec) -> None:
        super().__init__()
        self.d_in, self.d_out = d_in, d_out
        self.bias = nn.Parameter(torch.zeros(d_out))
        self.nn = nn.Sequential(
            nn.Linear(spec.edge_features, spec.edge_hidden),
            nn.ReLU(),
            nn.Linear(spec.edge_hidden, d_in * d_out),
        )
        self.lin = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x, edge_index, edge_attr):
        weight = self.nn(edge_attr).view(-1, self.d_in, self.d_out)
        messages = (x[edge_index[0]].unsqueeze(1) @ weight).squeeze(1)
        summed = x.new_zeros(len(x), self.d_out).index_add_(0, edge_index[1], messages)
        return summed + self.lin(x) + self.bias


class GraphNetReference(nn.Module):
    """The official ``ExampleNet`` for one run, on PyG's flat batch (``x``, ``edge_index``,
    ``edge_attr``, ``batch``: each atom's molecule), in plain torch."""

    def __init__(self, spec: GraphNetSpec) -> None:
        super().__init__()
        widths = (spec.node_features, *spec.channels)
        self.convs = [f"conv{i}" for i in range(1, len(widths))]
        for name, d_in, d_out in zip(self.convs, widths[:-1], widths[1:], strict=True):
            self.add_module(name, EdgeConv(d_in, d_out, spec))
        self.fc_1 = nn.Linear(widths[-1], spec.readout)
        self.out = nn.Linear(spec.readout, 1)

    @torch.no_grad()
    def load_run(self, params: Params, run: int) -> GraphNetReference:
        for name, p in self.named_parameters():
            p.copy_(params[name][run])
        return self

    def forward(self, x, edge_index, edge_attr, batch, n_graphs: int) -> torch.Tensor:
        for name in self.convs:
            x = F.relu(getattr(self, name)(x, edge_index, edge_attr))
        pooled = x.new_zeros(n_graphs, x.shape[1]).index_add_(0, batch, x)
        return self.out(F.relu(self.fc_1(pooled)))


def describe(spec: GraphNetSpec) -> str:
    convs = "-".join(str(c) for c in (spec.node_features, *spec.channels))
    return (
        f"NNConv graph network {convs} (edge nets {spec.edge_features}-{spec.edge_hidden}-in·out), "
        f"sum pool, readout {spec.readout}-1"
    )


FAMILY = Family(
    kind="graphnet",
    spec=GraphNetSpec,
    init=init_graphnet,
    forward=graphnet_forward,
    reference=GraphNetReference,
    describe=describe,
)
