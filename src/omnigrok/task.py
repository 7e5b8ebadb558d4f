"""What a task is, to the trainer and the book (the registry itself is ``omnigrok.registry``).

A task (one module in ``omnigrok/tasks/``) turns a ``TaskSpec`` into data on a device, checks
that a run's model and loss fit it, gives its paper preset and its label. The trainer only
asks its data for batches (``TaskData.batch``) and evaluation chunks (``TaskData.chunks``),
so a task whose inputs are padded text or graphs overrides those two and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
import torch

from omnigrok import registry
from omnigrok.checks import check_choice, fail
from omnigrok.config import RunConfig, TaskSpec

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TaskData:
    """Train and test tensors of one task.

    ``y_*`` holds int64 labels when ``n_classes`` is set, else regression targets.
    ``test_groups``: named boolean masks over the test set whose accuracy is logged apart
    (``test_acc_<name>``), e.g. modular addition's ``novel`` pairs.
    """

    x_train: Any
    y_train: torch.Tensor
    x_test: Any
    y_test: torch.Tensor
    n_classes: int | None
    test_groups: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def batch(self, idx: torch.Tensor | None) -> tuple[Any, torch.Tensor]:
        """Inputs and targets of a training batch: ``idx`` ``[K, B]`` (a batch per run), or
        None for the full training set (shared by every run)."""
        if idx is None:
            return self.x_train, self.y_train
        return self.x_train[idx], self.y_train[idx]

    def chunks(self, split: str, size: int) -> Iterator[tuple[Any, torch.Tensor, slice]]:
        """``split`` ('train' or 'test') in consecutive chunks of at most ``size`` examples:
        (inputs, targets, their slice of the split), for evaluation."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        for start in range(0, len(y), size):
            part = slice(start, start + size)
            yield x[part], y[part], part


class Task:
    """One task of the paper. Subclasses set the class attributes and ``arrays``; tasks whose
    data are not plain arrays override ``data``.

    ``fields``: the ``TaskSpec`` fields that mean something for this task (the setup tables
    show those). ``losses``: the losses it allows. ``inputs``/``outputs``: the MLP widths it
    needs at each end, where it trains MLPs. ``probes``: extra curves a run may ask for by name
    (``RunConfig.probe``), each computed from the stacked weights at every logged step as
    ``probe(spec, params) -> [K]`` (e.g. modular addition's Fourier concentration).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[str, ...]] = ("n_train", "n_test", "data_seed")
    losses: ClassVar[tuple[str, ...]] = ("mse", "ce")
    models: ClassVar[tuple[str, ...]] = ("mlp",)
    probes: ClassVar[dict[str, Callable[..., torch.Tensor]]] = {}

    def n_classes(self, spec: TaskSpec) -> int | None:
        """Classes of a classification task; None for regression."""
        return None

    def train_size(self, spec: TaskSpec) -> int:
        """Number of training examples."""
        return spec.n_train

    def io_widths(self, spec: TaskSpec) -> tuple[int, int] | None:
        """(input, output) widths an MLP on this task must have; None: not an MLP task."""
        return None

    def check(self, config: RunConfig) -> None:
        """Raise a one-line error if ``config``'s model, loss or batch does not fit the task."""
        check_choice("model", config.model.kind, self.models)
        check_choice("loss", config.loss, self.losses)
        if config.probe:
            check_choice("probe", config.probe, tuple(self.probes))
        if config.task.messiness != 1 and "messiness" not in self.fields:
            fail("messiness", config.task.messiness, f"1 (raw inputs) for task {self.name!r}")
        ends = self.io_widths(config.task)
        if ends is not None and (config.model.widths[0], config.model.widths[-1]) != ends:
            fail("widths", config.model.widths, f"starting at {ends[0]} and ending at {ends[1]}")
        n_train = self.train_size(config.task)
        if config.batch_size is not None and config.batch_size > n_train:
            fail("batch_size", config.batch_size, f"at most the {n_train} training examples")

    def arrays(self, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``x_train, y_train, x_test, y_test`` as numpy arrays."""
        raise NotImplementedError

    def test_groups(self, spec: TaskSpec, x_train: np.ndarray, x_test: np.ndarray) -> dict:
        """Named boolean masks over the test set whose accuracy is logged apart."""
        return {}

    def data(self, spec: TaskSpec, device: torch.device | str, dtype: str) -> TaskData:
        """The task's tensors on ``device``: float inputs and targets in ``dtype``, integer
        ones as int64."""
        x_train, y_train, x_test, y_test = self.arrays(spec)
        float_dtype = TORCH_DTYPES[dtype]

        def to_tensor(array: np.ndarray) -> torch.Tensor:
            kind = torch.int64 if array.dtype.kind in "iu" else float_dtype
            return torch.as_tensor(array).to(device=device, dtype=kind)

        groups = {
            name: torch.as_tensor(mask, device=device)
            for name, mask in self.test_groups(spec, x_train, x_test).items()
        }
        tensors = (to_tensor(a) for a in (x_train, y_train, x_test, y_test))
        return TaskData(*tensors, self.n_classes(spec), groups)

    def preset(self, **overrides: Any) -> RunConfig:
        """The paper's run of this task; keyword arguments override fields."""
        raise NotImplementedError


def rng(data_seed: int, stream: int) -> np.random.Generator:
    """Independent streams per purpose, so changing one (e.g. n_test) never moves another."""
    return np.random.default_rng(np.random.SeedSequence([data_seed, stream]))


def get(name: str) -> Task:
    """The registered task called ``name``; a one-line error listing the known ones."""
    return cast(Task, registry.get(name))


def make_task(spec: TaskSpec, device: torch.device | str = "cpu", dtype: str = "float32"):
    """Build a task's tensors on ``device``; float inputs and targets in ``dtype``."""
    return get(spec.name).data(spec, device, dtype)
