"""QM9 polarizability (paper Sec. 3.2, official ``qm9``): the first ``n_train + n_test``
molecules of QM9 (100 in the paper's grokking run), split at random (50/50), each a padded
graph (``omnigrok.data.qm9``); the NNConv graph network regresses the isotropic polarizability α
(Bohr³, PyG's target 1) with MSE. ``data_seed`` fixes the split and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from omnigrok.checks import fail
from omnigrok.config import RunConfig, TaskSpec
from omnigrok.data import qm9
from omnigrok.models.graphnet import GraphNetSpec, Graphs
from omnigrok.registry import register
from omnigrok.task import TORCH_DTYPES, Task, TaskData, rng

EVAL_MOLECULES = 64  # per evaluation chunk: each bond holds an in × out matrix per run


@dataclass(frozen=True)
class GraphData(TaskData):
    """``TaskData`` of padded molecules; evaluates in chunks of at most ``EVAL_MOLECULES``
    (the edge networks' matrices, K × molecules × bonds × 512 floats, bound the memory)."""

    def chunks(self, split: str, size: int) -> Iterator[tuple[Any, torch.Tensor, slice]]:
        return super().chunks(split, min(size, EVAL_MOLECULES))


class Qm9(Task):
    name = "qm9"
    fields = ("n_train", "n_test", "data_seed")
    losses = ("mse",)
    models = ("graphnet",)

    def label(self, spec: TaskSpec) -> str:
        return f"QM9 (N={spec.n_train + spec.n_test})"

    def check(self, config: RunConfig) -> None:
        super().check(config)
        if config.task.n_test < 1:
            fail("n_test", config.task.n_test, "at least 1 (the molecules held out)")
        widths = (config.model.node_features, config.model.edge_features)
        if widths != (len(qm9.NODE_FEATURES), len(qm9.BOND_TYPES)):
            fail(
                "node_features, edge_features",
                widths,
                f"({len(qm9.NODE_FEATURES)}, {len(qm9.BOND_TYPES)}), QM9's atom and bond features",
            )

    def split(self, spec: TaskSpec) -> tuple[qm9.Molecules, np.ndarray, np.ndarray]:
        """The molecules and the train and test rows (a random split, as ``random_split``)."""
        molecules = qm9.load_molecules(spec.n_train + spec.n_test)
        order = rng(spec.data_seed, 4).permutation(len(molecules))
        return molecules, order[: spec.n_train], order[spec.n_train :]

    def data(self, spec: TaskSpec, device: torch.device | str, dtype: str) -> GraphData:
        molecules, train, test = self.split(spec)
        rows = np.concatenate([train, test])
        padded = molecules.padded(rows)
        float_dtype = TORCH_DTYPES[dtype]
        tensors = {
            name: torch.as_tensor(a).to(
                device=device, dtype=float_dtype if a.dtype.kind == "f" else None
            )
            for name, a in padded.items()
        }
        graphs = Graphs(**tensors)
        y = torch.as_tensor(molecules.y[rows, None]).to(device=device, dtype=float_dtype)
        n = len(train)
        return GraphData(graphs[:n], y[:n], graphs[n:], y[n:], None)

    def preset(self, **overrides: Any) -> RunConfig:
        """The official grokking run: 100 molecules (50/50), the NNConv network 11-32-16,
        readout 32, MSE on the polarizability, AdamW lr 1e-3 with no weight decay, batch 32,
        α = 3 (its baseline: α = 1); 50,000 epochs of 2 batches in the code."""
        base = dict(
            task=TaskSpec("qm9", n_train=50, n_test=50),
            model=GraphNetSpec(),
            steps=100_000,
            batch_size=32,
            loss="mse",
            lr=1e-3,
            weight_decay=0.0,
            init_scale=3.0,
        )
        return RunConfig(**{**base, **overrides})


TASK = register(Qm9())
qm9_run = TASK.preset
