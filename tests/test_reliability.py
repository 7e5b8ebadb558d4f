"""Bad parameters, killed runs, corrupt or contended stores, diverging runs (nothing lost)."""

import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from omnigrok.chapters import claim1, claim2, claim3, claim4, width
from omnigrok.cli import main as cli_main
from omnigrok.config import MLPSpec, RunConfig, TaskSpec
from omnigrok.report.page import BOOK_ENV, show_progress
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep, stack_lock
from omnigrok.tasks import mnist_run, modadd_run, teacher_student_run
from omnigrok.train import train_ensemble

# Notebook parameters reach the chapter's Setup as papermill passes them; the Setup is the one
# place they are checked.
BAD_NOTEBOOK_PARAMS = [
    (claim2.Setup, {"init_scale": -1}, "init_scale must be a positive finite number, got -1"),
    (claim2.Setup, {"init_scale": 0}, "init_scale must be a positive finite number, got 0"),
    (
        claim2.Setup,
        {"init_scale": float("nan")},
        "init_scale must be a positive finite number, got nan",
    ),
    (
        claim3.Setup,
        {"init_scale": float("inf")},
        "init_scale must be a positive finite number, got inf",
    ),
    (claim3.Setup, {"init_scale": "ten"}, "init_scale must be a positive finite number"),
    (claim2.Setup, {"init_scale": True}, "init_scale must be a positive finite number"),
    (
        claim3.Setup,
        {"modadd_init_scale": 0},
        "modadd_init_scale must be a positive finite number, got 0",
    ),
    (claim3.Setup, {"mnist_w_c": -1}, "mnist_w_c must be a positive finite number, got -1"),
    (claim2.Setup, {"weight_decay": -0.1}, "weight_decay must be a positive finite number"),
    # Claim 2 needs decay: γ = 0 leaves the norm where it starts.
    (claim2.Setup, {"weight_decay": 0}, "weight_decay must be a positive finite number"),
    (claim1.Setup, {"profile": "fast"}, "profile must be one of 'smoke', 'quick', 'paper'"),
    (claim4.Setup, {"device": "gpu"}, "device must be one of 'auto', 'cpu', 'cuda', got 'gpu'"),
    (claim1.Setup, {"seeds": ""}, "seeds must be a non-empty list of distinct non-negative"),
    (width.Setup, {"seeds": []}, "seeds must be a non-empty list of distinct non-negative"),
    (claim1.Setup, {"seeds": "0-"}, "seeds must be a non-empty list"),
    (claim4.Setup, {"seeds": "4-1"}, "seeds must be a non-empty list"),
    (claim1.Setup, {"seeds": [0, -1]}, "seeds must be a non-empty list"),
    (claim1.Setup, {"seeds": [1, 1]}, "repeated seed"),
    (claim1.Setup, {"seeds": -5}, "seeds must be a non-empty list"),
    (claim1.Setup, {"seeds": True}, "seeds must be a non-empty list"),
    (claim1.Setup, {"seeds": 2.5}, "seeds must be a non-empty list"),
]


@pytest.mark.parametrize("setup, params, message", BAD_NOTEBOOK_PARAMS, ids=lambda v: str(v)[:40])
def test_bad_notebook_parameter_gives_a_clear_one_line_error(setup, params, message):
    with pytest.raises(ValueError) as err:
        setup(**params)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="device='cuda' but no CUDA GPU is available"):
        claim1.Setup(device="cuda")


BAD_RECORDS = [
    (lambda: TaskSpec("cifar"), "task must be one of 'mnist', 'modadd', 'teacher_student'"),
    (lambda: TaskSpec("modadd", train_frac=1.0), "train_frac must be a number strictly between"),
    (lambda: mnist_run(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (lambda: mnist_run(constraint="always"), "constraint must be one of 'none', 'init', 'fixed'"),
    (lambda: mnist_run(constraint="fixed"), "target_norm must be a positive finite number"),
    (lambda: mnist_run(dtype="float16"), "dtype must be one of 'float32', 'float64'"),
    (lambda: mnist_run(model=MLPSpec((5, 10))), "widths must be starting at 784 and ending at 10"),
    (lambda: mnist_run(n_train=0), "n_train must be an integer >= 1 and <= 60000, got 0"),
    (lambda: mnist_run(steps=0), "steps must be an integer >= 1, got 0"),
    (lambda: mnist_run(steps=2.5), "steps must be an integer >= 1, got 2.5"),
    (lambda: mnist_run(steps="100"), "steps must be an integer >= 1, got '100'"),
    (lambda: mnist_run(lr="1e-3x"), "lr must be a positive finite number, got '1e-3x'"),
    (lambda: TaskSpec("modadd", train_frac=0), "train_frac must be a number strictly between"),
    (lambda: mnist_run(batch_size=2000), "batch_size must be at most the 1000 training examples"),
    (lambda: modadd_run(p=5, batch_size=8), "batch_size must be at most the 7 training examples"),
    (lambda: modadd_run(loss="mse", model=MLPSpec((3, 5))), "model must be one of 'transformer'"),
]


@pytest.mark.parametrize("make, message", BAD_RECORDS, ids=lambda v: str(v)[:40])
def test_bad_record_fails_in_its_constructor(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_integer_init_scale_from_papermill_is_accepted():
    assert claim2.Setup("smoke", init_scale=10).base.init_scale == 10.0
    assert mnist_run(init_scale=10).init_scale == 10.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--init-scale", "-1"], "--init-scale must be a positive finite number"),
        (["--init-scale", "ten"], "invalid float value: 'ten'"),
        (["--steps", "0"], "steps must be an integer >= 1"),
        (["--seeds", "a-b"], "--seeds must be a non-empty list"),
        (["--device", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_command_line_rejects_bad_flags_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--task", "mnist", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# -- divergence --------------------------------------------------------------------------------


def test_run_with_huge_init_scale_is_marked_diverged_and_others_match_solo():
    task = TaskSpec("mnist", n_test=300)
    good = [mnist_run(task=task, steps=40, n_log=10, seed=s, init_scale=8) for s in (0, 1)]
    bad = mnist_run(task=task, steps=40, n_log=10, seed=2, init_scale=1e6)
    results = train_ensemble([good[0], bad, good[1]], device="cpu", progress=False)
    assert results[1].diverged_at == 1
    assert np.isnan(results[1]["train_loss"][1:]).all()
    for cfg, result in zip(good, (results[0], results[2]), strict=True):
        solo = train_ensemble([cfg], device="cpu", progress=False)[0]
        assert result.diverged_at is None
        for name in solo.metrics:
            np.testing.assert_allclose(result[name], solo[name], rtol=1e-5, err_msg=name)


def test_diverged_run_survives_the_store(tmp_path):
    cfg = teacher_student_run(steps=20, n_log=5, init_scale=1e30)
    stored = run_sweep([cfg], store=ResultStore(tmp_path), device="cpu", progress=False)[0]
    loaded = ResultStore(tmp_path).load(cfg)
    assert stored.diverged_at == loaded.diverged_at == 1


# -- store corruption and concurrency -----------------------------------------------------------


def _small_run(**overrides) -> RunConfig:
    return teacher_student_run(steps=150, n_log=30, dtype="float64", **overrides)


def _corrupt(folder: Path, how: str) -> None:
    curves = folder / "curves.npz"
    if how == "truncate":
        curves.write_bytes(curves.read_bytes()[:100])
    elif how == "flip":
        blob = bytearray(curves.read_bytes())
        for i in range(200, 260):
            blob[i] ^= 0xFF
        curves.write_bytes(bytes(blob))
    elif how == "delete-meta":
        (folder / "meta.json").unlink()
    elif how == "garble-meta":
        (folder / "meta.json").write_text("{not json")


@pytest.mark.parametrize("how", ["truncate", "flip", "delete-meta", "garble-meta"])
def test_corrupt_result_is_detected_and_recomputed(tmp_path, how):
    store = ResultStore(tmp_path)
    cfg = _small_run(seed=3)
    original = run_sweep([cfg], store=store, device="cpu", progress=False)[0]
    _corrupt(store.path(cfg), how)
    with pytest.warns(UserWarning, match=str(store.path(cfg).name)):
        again = run_sweep([cfg], store=store, device="cpu", progress=False)[0]
    for name in original.metrics:
        np.testing.assert_array_equal(again[name], original[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.load(cfg) is not None


def test_second_request_trains_nothing(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    configs = [_small_run(seed=s) for s in range(3)]
    first = run_sweep(configs, store=store, device="cpu", progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("trained although every result was stored")

    monkeypatch.setattr("omnigrok.sweep.train_ensemble", no_training)
    second = run_sweep(configs, store=store, device="cpu", progress=False)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a["test_loss"], b["test_loss"])


# A teacher-student bar once averaged its NaN accuracies: numpy's warning reached notebooks.
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_progress_says_what_will_train_and_nothing_when_quiet_or_stored(tmp_path, capsys):
    store = ResultStore(tmp_path, archives=())
    stored, *rest = [teacher_student_run(steps=20, n_log=5, seed=s) for s in range(3)]
    longer = teacher_student_run(steps=30, n_log=5, seed=0)  # another shape: another stack
    run_sweep([stored], store=store, device="cpu", progress=False)
    assert capsys.readouterr().out == ""
    # A duplicate is one run; max_stack=1 splits the two 20-step runs into two stacks.
    asked = [stored, *rest, rest[0], longer]
    run_sweep(asked, store=store, device="cpu", progress=True, max_stack=1)
    assert capsys.readouterr().out == (
        "training 3 of 4 runs (1 stored): 3 stacks, 70 run-steps; "
        "a bar per stack shows its time left\n"
    )
    run_sweep(asked, store=store, device="cpu", progress=True)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("book", "expected"), [("1", False), ("0", True), (None, True)])
def test_notebooks_show_progress_except_in_a_book_build(monkeypatch, book, expected):
    if book is None:
        monkeypatch.delenv(BOOK_ENV, raising=False)
    else:
        monkeypatch.setenv(BOOK_ENV, book)
    assert show_progress() is expected


WORKER = """
import sys
from omnigrok.tasks import teacher_student_run
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep, stack_lock
cfg = teacher_student_run(steps=int(sys.argv[2]), n_log=40, dtype="float64", seed=int(sys.argv[3]))
run_sweep([cfg], store=ResultStore(sys.argv[1]), device="cpu", progress=False,
          checkpoint_seconds=float(sys.argv[4]))
print("done")
"""


def _worker(root: Path, steps: int, seed: int, checkpoint_seconds: float) -> subprocess.Popen:
    args = [sys.executable, "-c", WORKER, str(root), str(steps), str(seed), str(checkpoint_seconds)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_two_processes_asking_for_the_same_config_agree(tmp_path):
    procs = [_worker(tmp_path, 400, 7, 60.0) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    cfg = teacher_student_run(steps=400, n_log=40, dtype="float64", seed=7)
    stored = ResultStore(tmp_path).load(cfg)
    fresh = train_ensemble([cfg], device="cpu", progress=False)[0]
    for name in fresh.metrics:
        np.testing.assert_allclose(stored[name], fresh[name], rtol=1e-12)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


WAITER = """
import sys
import omnigrok.sweep
from omnigrok.tasks import teacher_student_run
from omnigrok.store import ResultStore

def no_training(*args, **kwargs):
    raise AssertionError("trained although another process was producing the stack")

omnigrok.sweep.train_ensemble = no_training
cfg = teacher_student_run(steps=150, n_log=30, dtype="float64", seed=5)
print("asking", flush=True)
omnigrok.sweep.run_sweep([cfg], store=ResultStore(sys.argv[1]), device="cpu", progress=False)
print("found it stored", flush=True)
"""


def test_second_process_waits_for_the_stack_then_finds_it_stored(tmp_path):
    """While one process holds a stack's lock, another asking for it blocks; once the holder
    has stored the results and let go, the waiter loads them (it is forbidden to train)."""
    store = ResultStore(tmp_path)
    cfg = _small_run(seed=5)
    with stack_lock(store.checkpoint_path([cfg])):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-c", WAITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdout.readline().strip() == "asking", proc.stderr.read()
        time.sleep(1.0)
        assert proc.poll() is None, f"the waiter did not wait: {proc.stderr.read()}"
        store.save(train_ensemble([cfg], device="cpu", progress=False)[0])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == "found it stored"


def test_killed_run_resumes_to_the_same_curves(tmp_path):
    """SIGKILL a real training process after a checkpoint, rerun, compare with no kill."""
    steps, seed = 4000, 11
    cfg = teacher_student_run(steps=steps, n_log=40, dtype="float64", seed=seed)
    store = ResultStore(tmp_path / "killed")
    checkpoint = store.checkpoint_path([cfg])
    proc = _worker(store.root, steps, seed, 0.05)
    deadline = time.time() + 120
    while not checkpoint.exists():
        assert proc.poll() is None, "worker ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(random.Random(0).uniform(0.1, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert store.load(cfg) is None, "the run finished before the kill; make it longer"
    resumed_from = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < resumed_from < steps

    resumed = run_sweep([cfg], store=store, device="cpu", progress=False)[0]
    clean = train_ensemble([cfg], device="cpu", progress=False)[0]
    assert not checkpoint.exists()
    for name in clean.metrics:
        np.testing.assert_allclose(resumed[name], clean[name], rtol=1e-10, atol=0, err_msg=name)
    assert math.isfinite(resumed["test_loss"][-1])


def test_a_killed_producers_stack_is_taken_over_by_the_other_and_resumed(tmp_path):
    """Two producers ask for one stack; the one training it is SIGKILLed after a checkpoint.
    Its lock dies with it (an OS file lock), so the other takes the stack over (from the
    checkpoint the killed one left, as ``test_killed_run_resumes_to_the_same_curves`` shows for
    one process) and stores the same curves as a run never interrupted, and nothing is left
    half-written."""
    steps, seed = 4000, 12
    cfg = teacher_student_run(steps=steps, n_log=40, dtype="float64", seed=seed)
    store = ResultStore(tmp_path)
    checkpoint = store.checkpoint_path([cfg])
    first = _worker(tmp_path, steps, seed, 0.05)
    deadline = time.time() + 120
    while not checkpoint.exists():
        assert first.poll() is None, "the first producer ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.01)
    second = _worker(tmp_path, steps, seed, 60.0)  # blocks on the stack's lock
    time.sleep(0.5)
    assert second.poll() is None, "the second producer did not wait for the stack"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert store.load(cfg) is None, "the run finished before the kill; make it longer"
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < killed_at < steps
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()
    assert out.decode().strip() == "done"
    stored = store.load(cfg)
    clean = train_ensemble([cfg], device="cpu", progress=False)[0]
    for name in clean.metrics:
        np.testing.assert_allclose(stored[name], clean[name], rtol=1e-10, atol=0, err_msg=name)
    assert not checkpoint.exists()
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_papermill_values_of_seeds_are_accepted():
    """`-p seeds 3` (an int), `-p seeds "0-4"`, `-p seeds "[0, 2]"` as YAML gives a list."""
    assert claim1.Setup("smoke", seeds=3).seeds == (3,)
    assert claim1.Setup("smoke", seeds="0-4").seeds == (0, 1, 2, 3, 4)
    assert claim1.Setup("smoke", seeds=[0, 2]).seeds == (0, 2)


def test_a_stack_another_process_holds_is_left_for_last(tmp_path, monkeypatch):
    """Two producers on one store share the work: a locked stack is skipped, the free ones
    train first, and the locked one is waited for at the end (then loaded, not retrained)."""
    from omnigrok import sweep

    store = ResultStore(tmp_path)
    held, free = _small_run(seed=7), _small_run(seed=8, init_scale=2.0)
    order = []
    real = sweep.train_ensemble

    def spy(configs, **kw):
        order.append([c.seed for c in configs])
        return real(configs, **kw)

    monkeypatch.setattr(sweep, "train_ensemble", spy)
    monkeypatch.setattr(sweep, "stack_size", lambda config, device, max_stack: 1)
    acquired = threading.Event()

    def holder() -> None:  # the other producer: holds the stack, stores its run, lets go
        with stack_lock(store.checkpoint_path([held])):
            acquired.set()
            while not order:
                time.sleep(0.05)
            store.save(real([held], device="cpu", progress=False)[0])

    thread = threading.Thread(target=holder)
    thread.start()
    acquired.wait(timeout=60)
    results = run_sweep([held, free], store=store, device="cpu", progress=False)
    thread.join()
    assert order == [[8]], "the free stack trains first and the held one is never retrained"
    assert [r.config for r in results] == [held, free]


def test_a_producer_leaves_a_held_stack_to_its_holder_and_goes_on_to_its_next_part(
    tmp_path, monkeypatch
):
    """Two producers with the same parts: while one trains claim 4's last stack, the other
    does not sleep on its lock (30 idle minutes at P = 113) but trains claim 3's runs, says
    what it left, and reports the archive unfinished."""
    from omnigrok import archive

    store = ResultStore(tmp_path)
    held, free = _small_run(seed=7), _small_run(seed=8, init_scale=2.0)
    parts = {"claim4": (held,), "claim3": (free,)}
    monkeypatch.setattr(archive, "part", lambda name, *a: archive.Part(name, parts[name], ""))
    monkeypatch.setattr(archive, "status", lambda *a: [])
    said: list[str] = []
    with stack_lock(store.checkpoint_path([held])):
        thread = threading.Thread(
            target=lambda: said.append(
                archive.produce(
                    budget_s=600,
                    device="cpu",
                    parts=["claim4", "claim3"],
                    archive=tmp_path,
                    progress=False,
                    say=said.append,
                )
            )
        )
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the producer waited for the held stack"
    assert said[-1] is False and "claim4: 1 run(s) left to the producer training them" in said
    assert store.load(free) is not None and store.load(held) is None
