"""Model families: one module each (``mlp``, ``transformer``), found by their ``FAMILY``.

A family module holds its spec record, its init (α = 1; scaling by α happens in
``omnigrok.norms``), its stacked forward, the plain one-run ``nn.Module`` it is tested against,
and a one-line description. Adding a family is one new module here defining ``FAMILY``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any

import torch

from omnigrok.checks import check_choice
from omnigrok.models.base import Family, Params
from omnigrok.models.mlp import MLPSpec, PlainMLP, init_mlp, mlp_forward, tanh
from omnigrok.models.transformer import (
    NandaTransformer,
    TransformerSpec,
    init_transformer,
    transformer_forward,
)

FAMILIES: dict[str, Family] = {}


def register(fam: Family) -> Family:
    """Add a model family (the modules here are found and added on import)."""
    FAMILIES[fam.kind] = fam
    return fam


for _info in pkgutil.iter_modules(__path__):
    _family = getattr(importlib.import_module(f"{__name__}.{_info.name}"), "FAMILY", None)
    if isinstance(_family, Family):
        register(_family)


def family(spec: Any) -> Family:
    """The family of a model spec (by its ``kind``); a one-line error for anything else."""
    kind = getattr(spec, "kind", None)
    if kind not in FAMILIES or not isinstance(spec, FAMILIES[kind].spec):
        allowed = ", ".join(f.spec.__name__ for f in FAMILIES.values())
        raise ValueError(f"model must be a model spec ({allowed}), got {spec!r}")
    return FAMILIES[kind]


def spec_from_dict(d: dict[str, Any]) -> Any:
    """A model spec back from its ``to_dict`` form (``kind`` picks the family)."""
    kind = check_choice("model kind", d.get("kind"), tuple(FAMILIES))
    return FAMILIES[kind].spec.from_dict(d)


def init_params(spec: Any, seeds: Sequence[int], device="cpu", dtype=torch.float32) -> Params:
    """Standard (α = 1) init of ``spec`` for one run per seed."""
    return family(spec).init(spec, seeds, device, dtype)


def forward(spec: Any, params: Params, x: Any) -> torch.Tensor:
    """Outputs ``[K, B, n_out]`` of the stacked model ``spec``."""
    return family(spec).forward(spec, params, x)


def describe(spec: Any) -> str:
    return family(spec).describe(spec)


__all__ = [
    "FAMILIES",
    "Family",
    "MLPSpec",
    "NandaTransformer",
    "Params",
    "PlainMLP",
    "TransformerSpec",
    "describe",
    "family",
    "register",
    "forward",
    "init_mlp",
    "init_params",
    "init_transformer",
    "mlp_forward",
    "spec_from_dict",
    "tanh",
    "transformer_forward",
]
