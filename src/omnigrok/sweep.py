"""From a grid of runs to results: split by shape, load what is stored, train the rest.

A notebook asks for runs (``grid`` makes the seeds x α x weight decay x constraint product);
``run_sweep`` groups them into stacks that share a shape, trains each stack's missing runs as
one ensemble (checkpointing as it goes), files every result in the store and returns them in
the order asked. A second call with the same configs trains nothing. With the ``ray``
executor (``omnigrok.executors``) the stacks train as Ray tasks at once and are filed here as
each finishes.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from omnigrok.checks import resolve_device
from omnigrok.config import RunConfig
from omnigrok.executors import Executor, resolve_executor, train_on_ray
from omnigrok.store import ResultStore, RunResult
from omnigrok.train import BudgetExhausted, progress_bar, train_ensemble

TRAIN_ENV = "OMNIGROK_TRAIN"  # "0": never train, read stored runs only (the book from the archive)


class MissingRuns(Exception):
    """Runs asked for in read-only mode that no store or archive holds."""

    def __init__(self, configs: Sequence[RunConfig]) -> None:
        self.configs = list(configs)
        tasks = sorted({c.task.name for c in self.configs})
        super().__init__(
            f"{len(self.configs)} run(s) of {', '.join(tasks)} are not stored and "
            f"{TRAIN_ENV}=0 forbids training them; produce them with "
            "`python -m omnigrok archive --profile paper` (or unset "
            f"{TRAIN_ENV} to train here)"
        )


def training_allowed() -> bool:
    return os.environ.get(TRAIN_ENV, "1") != "0"


def grid(base: RunConfig, **axes: Iterable[Any]) -> list[RunConfig]:
    """Every combination of ``axes`` (field name -> values) applied to ``base``.

    ``grid(cfg, seed=range(5), init_scale=[1, 8])`` gives 10 runs, seeds varying fastest
    within each α.
    """
    names = list(axes)
    values = [list(v) for v in axes.values()]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"{name} must hold at least one value, got an empty list")
    return [
        base.replace(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*values)
    ]


class HeldElsewhere(Exception):
    """Runs whose stacks another process holds, left to it by ``run_sweep(wait=False)``: a
    producer moves on to its next part rather than sleep until the other one finishes."""

    def __init__(self, configs: Sequence[RunConfig]) -> None:
        self.configs = list(configs)
        super().__init__(f"{len(self.configs)} run(s) are being trained by another process")


# Runs per stack on a CPU by model family, where stacking does not pay. Measured on this
# project's 2-core CPU on a quiet machine (benchmarks/transformer_stack.py, stored under
# "transformer_stack" in omnigrok/_data/benchmarks.json), seconds per run-step of Nanda's
# transformer at P = 113: on one thread 0.107 alone, 0.120 stacked by 5, 0.156 by 15; on two
# 0.060, 0.069, 0.084. The cause is glibc: it maps each activation above 32 MiB afresh every
# step (6,700-24,000 page faults per run-step at K = 5-15, none alone), and one run on a K-fold
# batch pays the same. With freed memory kept (MALLOC_MMAP_MAX_=0) the faults go and the
# penalty nearly with them (one thread: 0.107 by 5, 0.108 by 15 against 0.100 alone; two
# threads by 15: 0.056 against 0.062), yet a stack still gains nothing on the one thread per
# process the producers use, so a process-wide allocator change is not worth it: on a CPU the
# transformer trains one run at a time. The MLPs gain from stacking (MNIST K = 20: 3.3x per
# run), and on a GPU stacking is what makes every family fast: no limit there. Curves do not
# depend on it beyond float rounding (a stacked run equals its solo run in float64,
# tests/test_train.py), and keys not at all.
CPU_STACK = {"transformer": 1}


def stack_size(config: RunConfig, device: str | torch.device, max_stack: int) -> int:
    """How many runs of ``config``'s shape train as one stack on ``device``."""
    if torch.device(device).type == "cpu":
        return min(max_stack, CPU_STACK.get(config.model.kind, max_stack))
    return max_stack


def group_by_shape(configs: Sequence[RunConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by ``RunConfig.shape``, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(c.shape(), []).append(i)
    return list(groups.values())


def stack_lock(checkpoint: Path) -> FileLock:
    """The lock guarding the stack that checkpoints at ``checkpoint``: a second process asking
    for the same stack waits on it, then finds the results stored instead of training them
    again. ``filelock`` rather than a bare ``fcntl.flock`` so that Windows is guarded too."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    # No timeout: the holder is training the very runs the waiter wants, however long it takes.
    return FileLock(checkpoint.with_suffix(".lock"))


def training_plan(
    n_asked: int,
    missing: Sequence[RunConfig],
    groups: Sequence[Sequence[int]],
    sizes: Sequence[int],
    on_ray: bool = False,
) -> str:
    """One line saying what is about to train, so a notebook rerun that trains for minutes says
    so up front instead of sitting silent until the first bar appears.

    Run-steps (the sum of the missing runs' steps) measure the work, whatever the stacking."""
    # ceil: each group in chunks of its stack size
    stacks = sum(-(-len(group) // size) for group, size in zip(groups, sizes, strict=True))
    run_steps = sum(c.steps for c in missing)
    stored = n_asked - len(missing)
    bars = (
        "one bar counts runs as Ray tasks end" if on_ray else "a bar per stack shows its time left"
    )
    return (
        f"training {len(missing)} of {n_asked} runs ({stored} stored): "
        f"{stacks} stack{'s' if stacks != 1 else ''}, {run_steps:,} run-steps; {bars}"
    )


def run_sweep(
    configs: Sequence[RunConfig],
    store: ResultStore | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
    max_stack: int = 64,
    keep_weights: bool = False,
    checkpoint_seconds: float = 60.0,
    deadline: float | None = None,
    executor: str | Executor | None = None,
    wait: bool = True,
) -> list[RunResult]:
    """Results of ``configs`` in order: loaded from ``store`` where present, else trained.

    Runs are stacked at most ``max_stack`` at a time (memory); duplicates train once. With
    ``$OMNIGROK_TRAIN=0`` nothing trains: missing runs raise ``MissingRuns``. Past
    ``deadline`` (``time.monotonic()``) the stack in training checkpoints and
    ``BudgetExhausted`` is raised; what finished before is stored. With ``progress``, a line
    says what will train (``training_plan``) before the first stack starts.

    ``executor``: ``local`` (here, stack after stack), ``ray`` or ``ray:<address>`` (every
    stack a Ray task, see ``omnigrok.executors``), or an ``Executor``; None:
    ``$OMNIGROK_EXECUTOR``, else ``local``. The results are the same either way.

    A stack another process holds (its lock) is left for last; with ``wait`` it is waited for
    and loaded, else ``HeldElsewhere`` names its runs once the free stacks are trained (local
    only: on Ray the driver holds every lock).
    """
    store = store or ResultStore()
    ex = resolve_executor(executor)
    # On Ray, "auto" is resolved by each worker: the driver's machine may have no GPU.
    dev = resolve_device(device) if ex.kind == "local" else device
    results: dict[RunConfig, RunResult] = {}
    for config in dict.fromkeys(configs):
        found = store.load(config, need_weights=keep_weights)
        if found is not None:
            results[config] = found
    missing = [c for c in dict.fromkeys(configs) if c not in results]
    if missing and not training_allowed():
        raise MissingRuns(missing)
    groups = group_by_shape(missing)
    on_ray = ex.kind == "ray"
    # On Ray each worker picks its device: stacks keep max_stack there.
    sizes = [max_stack if on_ray else stack_size(missing[g[0]], dev, max_stack) for g in groups]
    if missing and progress:
        plan = training_plan(len(results) + len(missing), missing, groups, sizes, on_ray)
        print(plan, flush=True)
    if on_ray:
        stacks = [
            chunk for group in groups for chunk in _chunks([missing[i] for i in group], max_stack)
        ]
        _train_on_ray(
            stacks,
            store,
            ex,
            str(dev),
            progress,
            keep_weights,
            results,
            checkpoint_seconds,
            deadline,
        )
        return [results[c] for c in configs]
    chunks = [
        chunk
        for group, size in zip(groups, sizes, strict=True)
        for chunk in _chunks([missing[i] for i in group], size)
    ]
    # A stack another process holds is left for last: this one trains the free stacks first,
    # so two producers on one archive share the work instead of one waiting on the other.
    train = functools.partial(
        _train_stack,
        store=store,
        dev=dev,
        progress=progress,
        keep_weights=keep_weights,
        checkpoint_seconds=checkpoint_seconds,
        deadline=deadline,
        results=results,
    )
    deferred = [chunk for chunk in chunks if not train(chunk)]
    if deferred and not wait:
        raise HeldElsewhere([c for chunk in deferred for c in chunk])
    for chunk in deferred:  # now wait: the holder stores them, or dies and leaves them to us
        train(chunk, wait=True)
    return [results[c] for c in configs]


def _train_stack(
    chunk: list[RunConfig],
    store: ResultStore,
    dev: torch.device,
    progress: bool,
    keep_weights: bool,
    checkpoint_seconds: float,
    deadline: float | None,
    results: dict[RunConfig, RunResult],
    wait: bool = False,
) -> bool:
    """Train ``chunk``'s runs no store holds, under its lock, filing them in ``results`` and
    ``store``; False (nothing done) if another process holds the lock and not ``wait``."""
    lock = stack_lock(store.checkpoint_path(chunk))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return False
    try:
        for config in chunk:
            found = store.load(config, need_weights=keep_weights)
            if found is not None:
                results[config] = found
        todo = [c for c in chunk if c not in results]
        if todo:
            trained = train_ensemble(
                todo,
                device=dev,
                progress=progress,
                checkpoint=store.checkpoint_path(todo),
                checkpoint_seconds=checkpoint_seconds,
                keep_weights=keep_weights,
                deadline=deadline,
            )
            for result in trained:
                store.save(result)
                results[result.config] = result
    finally:
        lock.release()
    return True


def _chunks(configs: Sequence[RunConfig], size: int) -> list[list[RunConfig]]:
    return [list(configs[start : start + size]) for start in range(0, len(configs), size)]


def _train_on_ray(
    stacks: Sequence[Sequence[RunConfig]],
    store: ResultStore,
    executor: Executor,
    device: str,
    progress: bool,
    keep_weights: bool,
    results: dict[RunConfig, RunResult],
    checkpoint_seconds: float,
    deadline: float | None,
) -> None:
    """``run_sweep``'s stacks as Ray tasks, filed into ``results`` and ``store`` as each ends.

    The driver holds every stack's lock until its sweep ends, as the local loop holds one per
    stack: taken in sorted order, so two drivers asking for overlapping stacks never deadlock
    (the second waits, then loads what the first stored)."""
    held = []
    paused: BudgetExhausted | None = None
    try:
        for path in sorted({store.checkpoint_path(list(s)) for s in stacks}):
            held.append(stack_lock(path))
            held[-1].acquire()
        for config in (c for s in stacks for c in s):
            found = store.load(config, need_weights=keep_weights)
            if found is not None:  # another process trained it while we waited
                results[config] = found
        todo = [[c for c in s if c not in results] for s in stacks]
        todo = [t for t in todo if t]
        if not todo:  # all stored: no cluster to join
            return
        folder = executor.checkpoint_folder(store.root)
        checkpoints = [folder / store.checkpoint_path(t).name for t in todo]
        bar = progress_bar(sum(len(t) for t in todo), 0, progress, unit="run")
        for _, out in train_on_ray(
            todo, checkpoints, executor, device, checkpoint_seconds, keep_weights, deadline
        ):
            if isinstance(out, tuple):  # stopped at the deadline, checkpointed
                paused = paused or BudgetExhausted(*out)
                continue
            for result in out:
                store.save(result)
                results[result.config] = result
            bar.update(len(out))
        bar.close()
    finally:
        for lock in held:
            lock.release()
    if paused is not None:
        raise paused
