"""What every model family shares: the parameter layout and per-run init streams.

A family's parameters are plain leaf tensors in an ordered dict, each with the run axis in
front (``[K, ...]``); the weight-norm tools and the optimizer treat them as one flat vector per
run. Run k is drawn from its own generator, so its init never depends on which runs share the
stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Params = dict[str, torch.Tensor]


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One generator per run; the offset keeps init streams apart from batch-order streams."""
    return [torch.Generator().manual_seed(1_000_003 * int(s) + 17) for s in seeds]


def stack(draw: Callable[[torch.Generator], torch.Tensor], gens, device, dtype) -> torch.Tensor:
    """Run k's tensor ``draw(gens[k])`` for every run, stacked on a leading run axis.

    Drawn on the CPU in float64 for every device and precision: the same seed then gives the
    same init everywhere, and float32 runs are the float64 init rounded."""
    return torch.stack([draw(g) for g in gens]).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Family:
    """A model family, as the trainer, the store and the book see it.

    ``spec``: its frozen, validated record class (with a ``kind`` field naming the family);
    ``init(spec, seeds, device, dtype)``: the standard (α = 1) init, one run per seed;
    ``forward(spec, params, x)``: outputs ``[K, B, n_out]`` of the stacked model;
    ``reference(spec)``: the plain one-run ``nn.Module`` it must equal (with
    ``load_run(params, k)``); ``describe(spec)``: one line for the setup tables.
    """

    kind: str
    spec: type
    init: Callable[..., Params]
    forward: Callable[[Any, Params, Any], torch.Tensor]
    reference: Callable[[Any], nn.Module]
    describe: Callable[[Any], str]
