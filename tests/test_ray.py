"""Sweeps on a Ray cluster (``omnigrok.executors``): the same results as the local executor,
and a worker killed mid-stack costs time, never results.

One Ray instance on loopback with two worker CPUs for the module (starting one costs seconds);
skipped where Ray is not installed (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from omnigrok.cli import main as cli_main
from omnigrok.executors import Executor
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.tasks import teacher_student_run
from omnigrok.train import BudgetExhausted

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

TASK_TITLE = "ray::omnigrok_stack"  # the process title of a worker running a stack


@pytest.fixture(scope="module")
def cluster():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    # The local reference runs beside the two workers: one thread, as each worker has, since
    # two threads waiting on each other on a busy 2-core machine took minutes instead of seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    ray.shutdown()


def _two_stacks(steps: int) -> list:
    """Two stacks of two float64 runs each (the second stack has another length: a shape)."""
    return [
        teacher_student_run(steps=n, n_log=40, dtype="float64", seed=s, init_scale=a)
        for n in (steps, steps + 100)
        for s, a in ((0, 1.0), (1, 3.0))
    ]


def _assert_same(got, expected) -> None:
    for a, b in zip(got, expected, strict=True):
        assert a.config == b.config
        np.testing.assert_array_equal(a.steps, b.steps)
        assert a.diverged_at == b.diverged_at
        assert set(a.metrics) == set(b.metrics)
        for name in b.metrics:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-8, atol=0, err_msg=name)


def _assert_nothing_half_written(store: ResultStore, configs) -> None:
    leftovers = [p for p in store.root.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    assert not list((store.root / "checkpoints").glob("*.pt")), "a checkpoint was left behind"
    for config in configs:  # checksum and config verified on reading
        assert store.load(config) is not None


def test_ray_sweep_equals_the_local_one(cluster, tmp_path, capsys):
    configs = _two_stacks(300)
    local = run_sweep(configs, ResultStore(tmp_path / "local", archives=()), "cpu", False)
    store = ResultStore(tmp_path / "ray", archives=())
    on_ray = run_sweep(configs, store, "cpu", progress=True, executor="ray")
    _assert_same(on_ray, local)
    _assert_nothing_half_written(store, configs)
    # One bar counts runs, not steps, as stacks of two runs end.
    out, err = capsys.readouterr()
    assert out.startswith("training 4 of 4 runs (0 stored): 2 stacks, 1,400 run-steps; one bar")
    assert "4/4" in err
    # The driver filed them: a second sweep loads them and sends nothing to Ray.
    again = run_sweep(configs, store, "cpu", False, executor=Executor("ray", max_retries=0))
    _assert_same(again, local)


def _stack_workers() -> list[int]:
    """PIDs of the processes running a stack now (Linux: their title is in /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(
                TASK_TITLE.encode()
            ):
                pids.append(int(entry.name))
        except OSError:  # ended while we looked
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds workers in /proc")
def test_worker_killed_mid_stack_is_retried_to_the_same_results(cluster, tmp_path):
    configs = _two_stacks(2000)
    store = ResultStore(tmp_path / "ray", archives=())
    folder = store.root / "checkpoints"
    killed: dict[str, int] = {}

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = list(folder.glob("*.pt"))
            workers = _stack_workers()
            if found and workers:
                killed["step"] = torch.load(found[0], weights_only=True)["step"]
                os.kill(workers[0], signal.SIGKILL)
                killed["pid"] = workers[0]
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    on_ray = run_sweep(
        configs, store, "cpu", False, checkpoint_seconds=0.1, executor=Executor("ray")
    )
    killer.join()
    assert "pid" in killed, "no worker was running a stack after its first checkpoint"
    assert 0 < killed["step"] < 2000, "killed after the stack finished: make it longer"
    local = run_sweep(configs, ResultStore(tmp_path / "local", archives=()), "cpu", False)
    _assert_same(on_ray, local)
    _assert_nothing_half_written(store, configs)


def test_deadline_pauses_every_task_and_the_next_sweep_resumes(cluster, tmp_path):
    """The archive producer's budget on Ray: each task checkpoints at the deadline and says so;
    the driver raises ``BudgetExhausted`` after filing nothing half-done; a rerun resumes."""
    configs = _two_stacks(300)
    store = ResultStore(tmp_path / "ray", archives=())
    with pytest.raises(BudgetExhausted):
        run_sweep(configs, store, "cpu", False, deadline=time.monotonic(), executor="ray")
    assert len(list((store.root / "checkpoints").glob("*.pt"))) == 2
    assert all(store.load(c) is None for c in configs)
    resumed = run_sweep(configs, store, "cpu", False, executor="ray")
    local = run_sweep(configs, ResultStore(tmp_path / "local", archives=()), "cpu", False)
    _assert_same(resumed, local)
    _assert_nothing_half_written(store, configs)


def test_cli_trains_on_ray(cluster, tmp_path, capsys):
    args = ["train", "--task", "teacher_student", "--seeds", "0-1", "--steps", "50"]
    assert cli_main([*args, "--results", str(tmp_path), "--executor", "ray", "--quiet"]) == 0
    assert "seed 1:" in capsys.readouterr().out
    # float32: compared with the same stack trained here (a stack's make-up moves its rounding).
    configs = [teacher_student_run(steps=50, seed=s) for s in (0, 1)]
    local = run_sweep(configs, ResultStore(tmp_path / "local", archives=()), "cpu", False)
    _assert_same([ResultStore(tmp_path, archives=()).load(c) for c in configs], local)
