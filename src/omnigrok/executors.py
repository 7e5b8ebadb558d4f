"""Where a sweep's stacks train: in this process (``local``), or as Ray tasks (``ray``).

The paper profile with five seeds everywhere is thousands of runs; a few GPU nodes train them
in an afternoon. With ``ray``, each stack of same-shape runs (one
``train_ensemble`` call, exactly as ``local`` makes it) becomes one Ray task asking for a GPU,
or for ``cpus_per_task`` CPUs. The task returns its runs' results (arrays, through Ray's object
store) and the driver files them in its store as tasks finish, with the store's atomic writer:
workers need no shared filesystem to deliver results.

A worker killed mid-stack is retried by Ray (``max_retries``); the retry resumes from the
stack's last checkpoint, written every ``checkpoint_seconds`` to ``checkpoints`` (default:
``$OMNIGROK_CHECKPOINTS``, else the store's own ``checkpoints/`` folder). On a cluster that
folder should be one every node sees (NFS, a mounted bucket): a retry on another node that
cannot see it, or a node that cannot write there, trains the stack from step 0 in the node's
temporary folder instead, to the same curves, only later.

Ray is an optional extra (``pip install -e '.[ray]'``): without it, ``local`` is unchanged and
asking for ``ray`` says how to install it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from omnigrok.checks import DEVICES, check_int, fail
from omnigrok.config import RunConfig
from omnigrok.store import RunResult, remove_partial_writes
from omnigrok.train import BudgetExhausted, train_ensemble

EXECUTOR_ENV = "OMNIGROK_EXECUTOR"  # the default executor (book kernels inherit it)
CHECKPOINTS_ENV = "OMNIGROK_CHECKPOINTS"  # the Ray tasks' checkpoint folder, shared by the nodes
KINDS = ("local", "ray")
RAY_EXTRA = "pip install -e '.[ray]'"
EXECUTOR_HELP = (
    "local (here, stack after stack), ray ($RAY_ADDRESS, else a Ray cluster started on this "
    "machine, else a new Ray instance here) or ray:<address> (a Ray cluster, e.g. ray:auto); "
    "default $OMNIGROK_EXECUTOR, else local"
)


@dataclass(frozen=True)
class Executor:
    """How a sweep trains its stacks.

    ``kind``: ``local`` (one after the other, here) or ``ray``. ``address``: the Ray cluster
    to join (``auto``, ``host:6379``, ``ray://host:10001``); None: Ray's own choice,
    ``$RAY_ADDRESS``, else a cluster ``ray start`` began on this machine, else a new instance.
    ``cpus_per_task``: CPUs each task asks for (a GPU task asks for one GPU too).
    ``checkpoints``: where the tasks checkpoint (see ``checkpoint_folder``).
    """

    kind: str = "local"
    address: str | None = None
    cpus_per_task: int = 1
    max_retries: int = 3
    checkpoints: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == "local" and self.address):
            spec = f"{self.kind}:{self.address}" if self.address else self.kind
            fail("executor", spec, "'local', 'ray' or 'ray:<address>'")
        check_int("cpus_per_task", self.cpus_per_task, minimum=1)
        check_int("max_retries", self.max_retries, minimum=0)

    @classmethod
    def parse(cls, spec: str) -> Executor:
        """``local``, ``ray`` or ``ray:<address>`` (``ray:auto``, ``ray:10.0.0.5:6379``)."""
        kind, _, address = str(spec).partition(":")
        if kind == "ray" and ":" in str(spec) and not address:
            fail("executor", spec, "'local', 'ray' or 'ray:<address>'")
        return cls(kind, address or None)

    def checkpoint_folder(self, store_root: Path) -> Path:
        """Where the Ray tasks checkpoint: ``checkpoints``, else ``$OMNIGROK_CHECKPOINTS``,
        else the store's ``checkpoints/`` (where the local executor checkpoints too)."""
        return Path(
            self.checkpoints or os.environ.get(CHECKPOINTS_ENV) or store_root / "checkpoints"
        )


def resolve_executor(executor: str | Executor | None) -> Executor:
    """``executor`` as an ``Executor``; None: ``$OMNIGROK_EXECUTOR``, else ``local``."""
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = os.environ.get(EXECUTOR_ENV) or "local"
    return Executor.parse(executor)


def _ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"executor 'ray' needs Ray: {RAY_EXTRA}") from err
    return ray


def connect(executor: Executor):
    """Join (or start) the executor's Ray cluster once per process; return ``ray``."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=executor.address, log_to_driver=False)
    return ray


def _wants_gpu(ray, device: str) -> bool:
    """Whether a stack's task asks for a GPU: ``cuda`` always, ``auto`` when the cluster has
    one (the driver's own machine may have none)."""
    if device.startswith("cuda"):
        return True
    return device == "auto" and ray.cluster_resources().get("GPU", 0) > 0


def _writable_folder(folder: Path, name: str) -> Path:
    """``folder / name`` where this node can write there, else the node's temporary folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder / name
    except OSError:
        pass
    local = Path(tempfile.gettempdir()) / "omnigrok-checkpoints"
    local.mkdir(parents=True, exist_ok=True)
    return local / name


def train_stack(
    configs: Sequence[RunConfig],
    device: str,
    checkpoint: str,
    checkpoint_seconds: float,
    keep_weights: bool,
    cpus: int,
    deadline_wall: float | None,
) -> list[RunResult] | tuple[int, int]:
    """One Ray task: ``train_ensemble`` on one stack, resuming from ``checkpoint`` if a killed
    attempt left one. Returns the results, or ``(step, steps)`` when it stopped at its
    deadline (a wall-clock time: each node converts it to its own monotonic clock)."""
    torch.set_num_threads(cpus)  # what the task asked Ray for: never oversubscribe the node
    path = Path(checkpoint)
    path = _writable_folder(path.parent, path.name)
    deadline = None
    if deadline_wall is not None:
        deadline = time.monotonic() + (deadline_wall - time.time())
    try:
        results = train_ensemble(
            configs,
            device=device,
            progress=False,
            checkpoint=path,
            checkpoint_seconds=checkpoint_seconds,
            keep_weights=keep_weights,
            deadline=deadline,
        )
    except BudgetExhausted as stop:
        # Returned rather than raised: Ray would wrap the exception in its own class.
        return stop.step, stop.steps
    # A killed attempt may have died inside a checkpoint write; the driver holds the stack's
    # lock, so no other writer of this checkpoint is alive.
    remove_partial_writes(path)
    return results


def train_on_ray(
    stacks: Sequence[Sequence[RunConfig]],
    checkpoints: Sequence[Path],
    executor: Executor,
    device: str,
    checkpoint_seconds: float,
    keep_weights: bool,
    deadline: float | None,
) -> Iterator[tuple[int, list[RunResult] | tuple[int, int]]]:
    """Train every stack as one Ray task; yield ``(index, results)`` as each task finishes,
    or ``(index, (step, steps))`` for one that stopped at ``deadline`` (``time.monotonic()``).

    If a task fails for good (its retries spent, or an error in the training itself), the
    others are cancelled and the error is raised; the stacks already yielded are the caller's.
    """
    if device.split(":")[0] not in DEVICES:
        fail("device", device, "one of 'auto', 'cpu', 'cuda'")
    ray = connect(executor)
    gpus = 1 if _wants_gpu(ray, device) else 0
    task = ray.remote(train_stack).options(
        num_cpus=executor.cpus_per_task,
        num_gpus=gpus,
        max_retries=executor.max_retries,
        name="omnigrok_stack",
    )
    worker_device = device if device != "auto" else ("cuda" if gpus else "cpu")
    deadline_wall = None if deadline is None else time.time() + (deadline - time.monotonic())
    pending = {
        task.remote(
            list(stack),
            worker_device,
            str(checkpoint),
            checkpoint_seconds,
            keep_weights,
            executor.cpus_per_task,
            deadline_wall,
        ): i
        for i, (stack, checkpoint) in enumerate(zip(stacks, checkpoints, strict=True))
    }
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                yield i, ray.get(ref)
    finally:
        for ref in pending:  # an error, or the caller stopped early: free the cluster
            ray.cancel(ref, force=True)
