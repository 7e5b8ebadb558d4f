"""The three tasks of the paper as tensors ready on a device.

MNIST (paper Sec. 3.1), teacher-student regression (paper Fig. 2) and modular addition with
Nanda et al.'s token layout (paper Sec. 3.3). Inputs of the MLP tasks are floats; modular
addition gives integer tokens ``a b =``. Targets are class labels for classification and
vectors for regression; ``one_hot`` turns labels into MSE targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from omnigrok.config import TaskSpec

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class TaskData:
    """Train and test tensors of one task.

    ``y_*`` holds int64 labels when ``n_classes`` is set, else regression targets.
    ``test_groups``: named boolean masks over the test set whose accuracy is logged apart
    (``test_acc_<name>``), e.g. modular addition's ``novel`` pairs.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int | None
    test_groups: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]


def _rng(data_seed: int, stream: int) -> np.random.Generator:
    # Independent streams per purpose, so changing one (e.g. n_test) never moves another.
    return np.random.default_rng(np.random.SeedSequence([data_seed, stream]))


def mnist(task: TaskSpec) -> tuple[np.ndarray, ...]:
    """First ``n_train`` MNIST training images and all test images (``n_test`` > 0 keeps the
    first ``n_test``), pixels in [0, 1], flattened for the MLP."""
    from omnigrok.mnist import load_mnist

    x_train, y_train, x_test, y_test = load_mnist(task.n_train)
    if task.n_test:
        x_test, y_test = x_test[: task.n_test], y_test[: task.n_test]
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64) / 255.0  # noqa: E731
    return flat(x_train), y_train.astype(np.int64), flat(x_test), y_test.astype(np.int64)


def teacher_weights(data_seed: int, widths: tuple[int, ...] = (5, 100, 100, 5)) -> list:
    """The fixed random teacher: PyTorch-default-init tanh MLP drawn from ``data_seed``."""
    rng = _rng(data_seed, 1)
    layers = []
    for d_in, d_out in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / np.sqrt(d_in)
        layers.append(
            (rng.uniform(-bound, bound, (d_in, d_out)), rng.uniform(-bound, bound, d_out))
        )
    return layers


def teacher_student(task: TaskSpec) -> tuple[np.ndarray, ...]:
    """Inputs from N(0, I) labelled by the fixed 5-100-100-5 tanh teacher (paper Fig. 2)."""
    n_test = task.n_test or 100
    x = _rng(task.data_seed, 0).standard_normal((task.n_train + n_test, 5))
    h = x
    layers = teacher_weights(task.data_seed)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.tanh(h)
    return x[: task.n_train], h[: task.n_train], x[task.n_train :], h[task.n_train :]


def modular_addition(task: TaskSpec) -> tuple[np.ndarray, ...]:
    """All pairs (a, b) as tokens ``a b =`` (``=`` is token ``p``), label (a + b) mod p;
    a ``train_frac`` share of the pairs, chosen by ``data_seed``, is the training set."""
    p = task.p
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    tokens = np.stack([a.ravel(), b.ravel(), np.full(p * p, p)], axis=1).astype(np.int64)
    labels = (tokens[:, 0] + tokens[:, 1]) % p
    order = _rng(task.data_seed, 2).permutation(p * p)
    n_train = int(task.train_frac * p * p)
    train, test = order[:n_train], order[n_train:]
    if task.n_test:
        test = test[: task.n_test]
    return tokens[train], labels[train], tokens[test], labels[test]


def novel_pairs(x_train: np.ndarray, x_test: np.ndarray, p: int) -> np.ndarray:
    """Which test pairs (a, b) have their mirror (b, a) outside the training set.

    Addition commutes, so a model that memorized (b, a) answers (a, b) without having
    generalized: early test accuracy is about the share of mirrored test pairs (~30% at a
    train fraction of 0.3). Accuracy on the novel pairs is generalization proper."""
    seen = np.zeros((p, p), dtype=bool)
    seen[x_train[:, 0], x_train[:, 1]] = True
    return ~seen[x_test[:, 1], x_test[:, 0]]


def make_task(
    task: TaskSpec, device: torch.device | str = "cpu", dtype: str = "float32"
) -> TaskData:
    """Build a task's tensors on ``device``; float inputs and targets in ``dtype``."""
    builders = {"mnist": mnist, "teacher_student": teacher_student, "modadd": modular_addition}
    x_train, y_train, x_test, y_test = builders[task.name](task)
    n_classes = {"mnist": 10, "modadd": task.p}.get(task.name)
    float_dtype = TORCH_DTYPES[dtype]

    def to_tensor(array: np.ndarray) -> torch.Tensor:
        kind = torch.int64 if array.dtype.kind in "iu" else float_dtype
        return torch.as_tensor(array).to(device=device, dtype=kind)

    groups = {}
    if task.name == "modadd":
        novel = novel_pairs(x_train, x_test, task.p)
        groups["novel"] = torch.as_tensor(novel, device=device)
    return TaskData(
        to_tensor(x_train),
        to_tensor(y_train),
        to_tensor(x_test),
        to_tensor(y_test),
        n_classes,
        groups,
    )
