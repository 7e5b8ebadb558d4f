"""verify's modes: the pointwise start, the whole run by what the book reads, and a sample.

The runs are tiny MNIST runs trained here, two seeds in one stack, into a temporary archive;
the committed archives are only read (the sample's draw)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from omnigrok import milestones, verify
from omnigrok.cli import main as cli_main
from omnigrok.config import TaskSpec
from omnigrok.models.mlp import MLPSpec
from omnigrok.store import COMMITTED_ARCHIVES, ResultStore, RunResult
from omnigrok.sweep import run_sweep
from omnigrok.tasks import mnist_run

POINTWISE = 100  # steps compared pointwise; the tamper below is after them
LATE = 50  # logged points tampered, the last ones


def _tiny(seed: int):
    """600 steps of a small MLP on the embedded 1000 MNIST images: test accuracy climbs past
    0.5 and 0.8 (milestones) and ends below 0.95, so a raise of 0.05 stays an accuracy."""
    return mnist_run(
        task=TaskSpec("mnist", n_train=1000, n_test=500),
        model=MLPSpec((784, 32, 32, 10), "relu"),
        steps=600,
        n_log=120,
        init_scale=1.0,
        weight_decay=0.0,
        seed=seed,
    )


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    run_sweep([_tiny(0), _tiny(1)], ResultStore(root, archives=()), "cpu", progress=False)
    return root


def _raise_late_test_accuracy(folder: Path, by: float = 0.05, last: int = LATE) -> None:
    """Raise the last ``last`` logged test accuracies by ``by`` and re-sign the manifest's
    checksum as the store computes it: a tamper only a recomputation can see."""
    with np.load(io.BytesIO((folder / "curves.npz").read_bytes())) as npz:
        arrays = {n: npz[n] for n in npz.files}
    arrays["m:test_acc"][-last:] += by
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    (folder / "curves.npz").write_bytes(buffer.getvalue())
    meta = json.loads((folder / "meta.json").read_text())
    meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def test_the_tiny_runs_reach_milestones_and_stay_below_095(tiny_archive):
    """Else the tests below would compare nothing: the runs must cross thresholds the book
    reads, and the tamper must fall after the pointwise window."""
    store = ResultStore(tiny_archive, archives=())
    r = store.load(_tiny(0))
    numbers = {n.name: n.value for n in milestones.book_numbers(r)}
    assert math.isfinite(numbers["test_acc >= 0.5"]) and math.isfinite(numbers["test_acc >= 0.8"])
    assert r["test_acc"][-1] < 0.95 and r.steps[-LATE] > POINTWISE


def test_an_honest_run_trained_in_a_stack_passes_the_whole_run_check(tiny_archive):
    checks = verify.verify(tiny_archive, steps=POINTWISE, whole=True)
    assert len(checks) == 1 and checks[0].ok, checks[0].line()
    assert "whole run to step 600" in checks[0].detail


def _tampered_copy(archive: Path, tmp_path: Path, last: int = LATE) -> tuple[Path, str]:
    """A copy of ``archive`` whose first run has its last ``last`` test accuracies raised."""
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    key = verify.archived_keys(copy)[0]
    _raise_late_test_accuracy(copy / key[:2] / key, last=last)
    return copy, key


def test_a_late_tamper_passes_pointwise_and_fails_the_whole_run(tiny_archive, tmp_path):
    copy, key = _tampered_copy(tiny_archive, tmp_path)
    (pointwise,) = verify.verify(copy, keys=[key], steps=POINTWISE)
    assert pointwise.ok, pointwise.line()  # the checksum matches and the start is untouched
    (whole,) = verify.verify(copy, keys=[key], steps=POINTWISE, whole=True)
    assert not whole.ok
    assert "final test_acc: archived" in whole.detail, whole.detail
    argv = ["verify", "--archive", str(copy), "--keys", key, "--steps", str(POINTWISE)]
    assert cli_main(argv) == 0
    assert cli_main([*argv, "--whole"]) == 1


def test_an_early_tamper_fails_alone_and_in_a_stack(tiny_archive, tmp_path):
    copy, key = _tampered_copy(tiny_archive, tmp_path, last=10**6)  # every logged value
    (check,) = verify.verify(copy, keys=[key], steps=POINTWISE)
    assert not check.ok and "alone:" in check.detail, check.detail
    assert "in its recorded stack of 2:" in check.detail  # the tiny runs' own stack
    assert check.detail.count("test_acc at step") == 2, check.detail


def test_a_differing_run_from_another_cpu_model_is_not_checkable_here_not_passed(
    tiny_archive, tmp_path, capsys
):
    """float32 rounds differently on another CPU model (modular addition amplifies it within
    10-50 steps), so such a run that differs is reported as not checkable here, naming both
    models, and never as ok; from this machine's model the same difference is a failure."""
    copy, key = _tampered_copy(tiny_archive, tmp_path, last=10**6)
    manifest = copy / key[:2] / key / "meta.json"
    meta = json.loads(manifest.read_text())
    meta["device_name"] = "Some Other CPU"
    manifest.write_text(json.dumps(meta))
    (check,) = verify.verify(copy, keys=[key], steps=POINTWISE)
    assert not check.ok and not check.failed and check.elsewhere == "Some Other CPU"
    here = verify.device_name("cpu")
    assert f"trained on Some Other CPU, recomputed on {here}" in check.detail, check.detail
    assert check.line().startswith("n/a ")
    argv = ["verify", "--archive", str(copy), "--keys", key, "--steps", str(POINTWISE)]
    assert cli_main(argv) == 0
    assert "1 not checkable here (trained on Some Other CPU)" in capsys.readouterr().out


def test_by_default_a_task_is_checked_on_a_run_trained_on_this_cpu_model(tiny_archive, tmp_path):
    """The default recomputes one run per task: the first by key trained on this model."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_archive, copy)
    first, second = verify.archived_keys(copy)
    manifest = copy / first[:2] / first / "meta.json"
    meta = json.loads(manifest.read_text())
    meta["device_name"] = "Some Other CPU"
    manifest.write_text(json.dumps(meta))
    assert [c.key for c in verify.verify(copy, steps=10)] == [second]


def test_every_manifest_records_the_stack_its_run_was_trained_in(tiny_archive):
    """Both tiny runs trained in one stack: each manifest names both keys, in the order
    trained, and the store reads the record back."""
    store = ResultStore(tiny_archive, archives=())
    keys = [store.path(c).name for c in (_tiny(0), _tiny(1))]
    for config in (_tiny(0), _tiny(1)):
        meta = json.loads((store.path(config) / "meta.json").read_text())
        assert meta["stack"] == keys
        assert store.load(config).provenance["stack"] == keys
    # Trained again with its mates, the second run is returned and is the archive's.
    fresh = verify.recompute(_tiny(1), until=POINTWISE, mates=[_tiny(0), _tiny(1)])
    assert fresh.config == _tiny(1)
    assert verify.compare_start(store.load(_tiny(1)), fresh, POINTWISE)[0]


def _rounds_differently_alone(archive: Path, monkeypatch) -> tuple[str, list]:
    """The first run of ``archive`` made to differ when recomputed alone (a test loss 20% off)
    and be the archive's in any stack, as the quick archive's IMDb LSTMs at α = 10; returns its
    key and the list that collects each recompute's stack (copies, or the mates' seeds)."""
    store = ResultStore(archive, archives=())
    key = verify.archived_keys(archive)[0]
    archived = store.load(next(c for c in (_tiny(0), _tiny(1)) if store.path(c).name == key))
    off = RunResult(archived.config, archived.steps, dict(archived.metrics))
    off.metrics["test_loss"] = archived["test_loss"] * 1.2
    asked = []

    def fake(config, device="cpu", until=None, stack=1, mates=()):
        asked.append([m.seed for m in mates] if mates else stack)
        return off if stack == 1 and not mates else archived

    monkeypatch.setattr(verify, "recompute", fake)
    return key, asked


def test_a_run_that_rounds_differently_alone_passes_in_its_recorded_stack(
    tiny_archive, monkeypatch
):
    """Alone the start differs; trained again with its recorded stack mates (both tiny runs,
    in their order) it is the archive's; the check says both."""
    key, asked = _rounds_differently_alone(tiny_archive, monkeypatch)
    (check,) = verify.verify(tiny_archive, keys=[key], steps=POINTWISE)
    assert check.ok and asked == [1, [0, 1]], check.detail
    assert check.detail.startswith("alone: ") and "differ: test_loss" in check.detail
    assert "in its recorded stack of 2: " in check.detail and "agree" in check.detail


def test_a_run_with_no_stack_record_is_recomputed_in_a_stack_of_two(
    tiny_archive, tmp_path, monkeypatch
):
    """Runs stored before the record was kept, or whose stack mates are not all archived:
    itself twice."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_archive, copy)
    for manifest in copy.glob("??/*/meta.json"):
        meta = json.loads(manifest.read_text())
        del meta["stack"]
        manifest.write_text(json.dumps(meta))
    key, asked = _rounds_differently_alone(copy, monkeypatch)
    (check,) = verify.verify(copy, keys=[key], steps=POINTWISE)
    assert check.ok and asked == [1, 2], check.detail
    assert "in a stack of two: " in check.detail and "agree" in check.detail


def _run(curve: str, values: np.ndarray, steps: np.ndarray) -> RunResult:
    """A run of ``_tiny(0)``'s config whose ``curve`` is ``values``, every other curve flat."""
    flat = {name: np.full(len(steps), 0.5) for name in ("train_acc", "test_acc", "norm")}
    flat |= {"train_loss": np.full(len(steps), 0.1), "test_loss": np.full(len(steps), 0.2)}
    return RunResult(_tiny(0), steps, {**flat, curve: values})


def test_a_milestone_reached_on_one_side_only_fails_unless_near_the_end():
    steps = np.arange(0, 10001, 100)
    never = _run("test_acc", np.full(len(steps), 0.5), steps)
    m = milestones.Milestone("test_acc", 0.8)
    tol = milestones.tolerance("mnist")
    late = _run("test_acc", np.where(steps >= 8000, 0.9, 0.5), steps)  # 20% of the run left
    early = _run("test_acc", np.where(steps >= 4000, 0.9, 0.5), steps)
    assert milestones.step_gap(m, late, never, tol["test acc"]) == pytest.approx(0.2)
    assert milestones.step_gap(m, never, early, tol["test acc"]) == pytest.approx(0.6)
    assert 0.2 <= tol["step"] < 0.6
    assert milestones.step_gap(m, never, never, tol["test acc"]) == 0.0


def test_a_curve_lingering_at_a_level_moves_its_milestone_only_as_far_as_the_drift_allows():
    """At 0.989 against 0.991 the hold rule gives "never" and an early step: a drift far
    inside the accuracy tolerance, so no gap; a real difference of level is one."""
    steps = np.arange(0, 2001, 50)
    m = milestones.Milestone("train_acc", 0.99)
    below = _run("train_acc", np.where(steps >= 200, 0.989, 0.3), steps)
    above = _run("train_acc", np.where(steps >= 200, 0.991, 0.3), steps)
    assert m.step(below) == math.inf and m.step(above) == 200
    assert milestones.step_gap(m, below, above, shift=0.01) == 0.0
    far = _run("train_acc", np.where(steps >= 200, 0.95, 0.3), steps)
    assert milestones.step_gap(m, far, above, shift=0.01) == pytest.approx(0.9)
    assert milestones.difference("test acc", 0.9, 0.95) == pytest.approx(0.05)
    assert milestones.difference("train loss", 1e-3, 1e-1) == pytest.approx(2.0)


def test_book_numbers_read_the_milestones_by_the_hold_rule():
    """A one-point spike above a threshold is no milestone; the lasting crossing is, with
    the weight norm read at its step."""
    steps = np.arange(0, 1000, 10)
    acc = np.where(steps >= 500, 0.85, 0.3)
    acc[20] = 0.9  # step 200: one evaluation, not held
    curves = {"train_acc": np.ones(len(steps)), "test_acc": acc, "norm": 100.0 - steps / 10}
    curves |= {"train_loss": np.full(len(steps), 0.1), "test_loss": np.full(len(steps), 0.2)}
    r = RunResult(_tiny(0), steps, curves)
    numbers = {n.name: n.value for n in milestones.book_numbers(r)}
    assert numbers["test_acc >= 0.8"] == 500 and numbers["norm at test_acc >= 0.8"] == 50
    assert numbers["test_acc >= 0.9"] == math.inf and math.isnan(numbers["norm at test_acc >= 0.9"])
    assert numbers["final test_acc"] == 0.85


def test_a_sample_is_reproducible_from_its_seed():
    archives = list(COMMITTED_ARCHIVES.values())
    first = verify.sample_runs(archives, 5, seed=11)
    assert first == verify.sample_runs(archives, 5, seed=11) and len(set(first)) == 5
    assert first != verify.sample_runs(archives, 5, seed=12)
    assert {a for a, _ in first} <= set(archives)
    for n in (0, -1, 10**6, 2.0):
        with pytest.raises(ValueError, match=r"sample must be a whole number from 1 to \d+"):
            verify.sample_runs(archives, n, seed=11)


def test_the_cli_sample_prints_its_seed_and_recomputes_what_it_drew(tiny_archive, capsys):
    argv = ["verify", "--archive", str(tiny_archive), "--sample", "1", "--seed", "3"]
    assert cli_main([*argv, "--steps", "20"]) == 0
    out = capsys.readouterr().out
    (drawn,) = verify.sample_runs([tiny_archive], 1, seed=3)
    assert "sample: 1 run(s) drawn with seed 3 (again: --sample 1 --seed 3)" in out
    assert f"ok   {drawn[1]} " in out and out.count("ok   ") == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sample", "0"], "--sample must be a whole number from 1 to 2"),
        (["--sample", "3"], "--sample must be a whole number from 1 to 2"),
        (["--sample", "x"], "argument --sample: invalid int value: 'x'"),
        (["--sample", "1", "--keys", "k"], "argument --keys: not allowed with argument --sample"),
        (["--seed", "4"], "--seed applies to --sample only"),
        (["--sample", "1", "--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["--steps", "0", "--whole"], "--steps must be a positive integer, got 0"),
        (["--whole", "yes"], "unrecognized arguments: yes"),
    ],
)
def test_bad_flags_are_one_line_errors_naming_the_flag(tiny_archive, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["verify", "--archive", str(tiny_archive), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("omnigrok")


def test_every_tolerance_is_the_recorded_one_and_twice_the_drift_measured():
    """The constants and ``benchmarks/verify_drift.json`` (the measurement) agree: a change of
    either without the other fails here."""
    record = json.loads(
        (Path(__file__).parents[1] / "benchmarks" / "verify_drift.json").read_text()
    )
    assert set(record["largest"]) == set(milestones.TOLERANCES)
    for task, kinds in record["largest"].items():
        for kind, measured in kinds.items():
            tol = milestones.tolerance(task)[kind]
            assert measured["tolerance"] == tol, (task, kind)
            largest = math.inf if measured["largest"] is None else measured["largest"]
            # null: an infinite drift; 1e-6: float32 accuracies (0.62 is 0.6200000048)
            assert tol >= 2 * largest * (1 - 1e-6), (task, kind)
