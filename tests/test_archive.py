"""The paper archive: stable keys, a producer that pauses and resumes, verify, read-only reads."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import pytest

from omnigrok import archive, store, train, verify
from omnigrok.cli import main as cli_main
from omnigrok.config import RunConfig, run_key
from omnigrok.store import ResultStore
from omnigrok.sweep import MissingRuns, run_sweep
from omnigrok.tasks import mnist_run, teacher_student_run
from omnigrok.train import BudgetExhausted, train_ensemble

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "archive" / "paper"
QUICK = REPO / "archive" / "quick"
MANIFEST_FIELDS = {"config", "key", "sha256", "device", "device_name", "dtype", "torch", "commit"}


def test_keys_do_not_change_with_the_release(monkeypatch):
    """A release that changes nothing a run computes keeps every key (the archive's)."""
    import omnigrok

    cfg = mnist_run()
    before = run_key(cfg)
    monkeypatch.setattr(omnigrok, "__version__", "9.9.9")
    assert run_key(cfg) == before
    # Pinned: the key every store and the archive file the paper's MNIST run under.
    assert before == run_key(cfg, version="0.1.2") == "830a47f30d7e2b1548d161cb"
    assert run_key(cfg, version="0.1.3") != before


def _tiny(seed: int = 0, **kw) -> RunConfig:
    return teacher_student_run(steps=120, n_log=30, dtype="float64", seed=seed, **kw)


def test_deadline_pauses_a_stack_and_the_resumed_curves_equal_an_unbroken_run(
    tmp_path, monkeypatch
):
    configs = [_tiny(0), _tiny(1, init_scale=3.0)]
    unbroken = train_ensemble(configs, device="cpu", progress=False)
    clock = {"now": 0.0}
    fake_time = types.SimpleNamespace(
        perf_counter=time.perf_counter, monotonic=lambda: clock["now"]
    )
    monkeypatch.setattr(train, "time", fake_time)
    checkpoint = tmp_path / "stack.pt"

    def tick(step: int) -> None:
        clock["now"] = float(step)

    with pytest.raises(BudgetExhausted) as stop:
        train_ensemble(configs, "cpu", False, checkpoint=checkpoint, deadline=47.5, on_step=tick)
    assert stop.value.step == 48 and checkpoint.is_file()
    monkeypatch.undo()
    resumed = train_ensemble(configs, "cpu", False, checkpoint=checkpoint)
    assert not checkpoint.exists()
    for a, b in zip(unbroken, resumed, strict=True):
        np.testing.assert_array_equal(a.steps, b.steps)
        for name in store.CURVES:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-12, equal_nan=True)


def test_until_returns_the_start_of_a_run_on_its_own_schedule():
    cfg = _tiny()
    full = train_ensemble([cfg], "cpu", False)[0]
    start = train_ensemble([cfg], "cpu", False, until=40)[0]
    n = len(start.steps)
    assert start.steps[-1] <= 40 < full.steps[n]
    np.testing.assert_allclose(full["test_loss"][:n], start["test_loss"], rtol=1e-12)


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> Path:
    """Claim 4's smoke runs (modular addition, P=23, 2 seeds) produced into a fresh archive."""
    root = tmp_path_factory.mktemp("archive")
    lines: list[str] = []
    assert archive.produce("smoke", 600, "cpu", ["claim4"], root, progress=False, say=lines.append)
    assert any("claim4: stored 2 run(s)" in line for line in lines)
    return root


def test_produce_stores_manifests_and_a_second_call_trains_nothing(produced):
    keys = archive.archived_keys(produced)
    assert len(keys) == 2
    for key in keys:
        meta = json.loads((produced / key[:2] / key / "meta.json").read_text())
        assert MANIFEST_FIELDS <= set(meta) and meta["key"] == key
        assert meta["device"] == "cpu" and meta["timing"]["train_seconds"] > 0
    lines: list[str] = []
    archive.produce("smoke", 600, "cpu", ["claim4"], produced, progress=False, say=lines.append)
    assert not any("stored" in line and "run(s) in" in line for line in lines)
    assert not list(produced.glob("checkpoints/*.pt"))  # checkpoints never stay in an archive
    claim4 = next(s for s in archive.status("smoke", produced) if s.name == "claim4")
    assert claim4.complete and claim4.stored == 2 and sum(claim4.seconds.values()) > 0


def test_produce_with_no_budget_left_trains_nothing_and_says_so(tmp_path):
    lines: list[str] = []
    done = archive.produce(
        "smoke", 0, "cpu", ["claim4"], tmp_path, progress=False, say=lines.append
    )
    assert not done and archive.archived_keys(tmp_path) == []
    assert "run the same command again" in lines[-1]


def test_a_task_part_holds_its_runs_at_w_c_once_its_landscape_is_stored(tmp_path):
    """QM9's (and IMDb's) runs held at w_c need the landscape first: the first call stores it
    and says the part waits; the next stores the held runs and completes it."""
    lines: list[str] = []
    first = archive.produce(
        "smoke", 600, "cpu", ["qm9"], tmp_path, progress=False, say=lines.append
    )
    assert not first and any("held at w_c wait for its landscape" in line for line in lines)
    assert archive.produce("smoke", 600, "cpu", ["qm9"], tmp_path, progress=False, say=print)
    held = [c for c in archive.part("qm9", "smoke", tmp_path).configs if c.constraint == "fixed"]
    assert len(held) == 2 and ResultStore(tmp_path, archives=()).where(held[0]) is not None


def test_a_part_does_not_list_the_runs_of_a_part_it_reads(tmp_path):
    """The rivals read claim 3's runs: once claim 1's MNIST landscape is stored, claim 3 lists
    its MNIST runs held at w_c, and the rivals' part must not list them a second time."""
    assert "wait for claim 1's MNIST landscape" in archive.part("rivals", "smoke", tmp_path).waiting
    archive.produce(
        "smoke", 600, "cpu", ["claim1"], tmp_path, tasks=["mnist"], progress=False, say=print
    )
    claim3 = set(archive.part("claim3", "smoke", tmp_path).configs)
    rivals = set(archive.part("rivals", "smoke", tmp_path).configs)
    held = {c for c in claim3 if c.task.name == "mnist" and c.constraint == "fixed"}
    assert len(held) == 2 and not held & rivals
    assert not archive.part("rivals", "smoke", tmp_path).waiting
    assert any(c.task.name == "mnist" and c.grad_filter == "ema" for c in rivals)


def test_verify_passes_on_produced_runs(produced):
    checks = archive.verify(produced, steps=60)
    assert len(checks) == 1 and checks[0].ok, checks[0].line()  # one task: one recomputed run


def _tamper(folder: Path, fix_checksum: bool) -> None:
    """Raise one early test-loss value by 5% (and, if asked, re-sign the file)."""
    blob = (folder / "curves.npz").read_bytes()
    with np.load(io.BytesIO(blob)) as npz:
        arrays = {n: npz[n] for n in npz.files}
    arrays["m:test_loss"][3] *= 1.05
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    (folder / "curves.npz").write_bytes(buffer.getvalue())
    if fix_checksum:
        meta = json.loads((folder / "meta.json").read_text())
        meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
        (folder / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("fix_checksum", [True, False])
def test_verify_fails_on_a_tampered_copy_naming_the_run(produced, tmp_path, fix_checksum):
    copy = tmp_path / "copy"
    shutil.copytree(produced, copy)
    key = archive.archived_keys(copy)[0]
    _tamper(copy / key[:2] / key, fix_checksum)
    failed = [c for c in archive.verify(copy, keys=[key], steps=60) if c.failed]
    assert [c.key for c in failed] == [key]
    assert ("test_loss at step 3" if fix_checksum else "checksum mismatch") in failed[0].detail
    assert cli_main(["verify", "--archive", str(copy), "--keys", key, "--steps", "60"]) == 1


def test_read_only_mode_names_the_producer(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIGROK_TRAIN", "0")
    with pytest.raises(MissingRuns, match="python -m omnigrok archive --profile paper"):
        run_sweep([_tiny()], store=ResultStore(tmp_path, archives=()), progress=False)


def test_a_store_reads_its_archives_and_never_writes_there(produced, tmp_path, monkeypatch):
    from omnigrok.chapters import claim4

    monkeypatch.setenv("OMNIGROK_TRAIN", "0")
    store = ResultStore(tmp_path / "results", archives=[produced])
    results = run_sweep(claim4.setup("smoke", device="cpu").configs(), store=store, progress=False)
    assert len(results) == 2 and not (tmp_path / "results").exists()


def test_cli_rejects_bad_parts_tasks_and_keys(produced, capsys):
    for argv in (
        ["archive", "--parts", "claim9", "--status"],
        ["archive", "--tasks", "cifar10", "--status"],
        ["archive", "--budget-s", "-1"],
        ["verify", "--archive", str(produced), "--keys", "nope"],
        ["verify", "--archive", str(produced), "--steps", "0"],
    ):
        with pytest.raises(SystemExit) as exit_:
            cli_main(argv)
        assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--parts must be" in err and "--tasks must be" in err and "--budget-s must be" in err
    assert "--keys: 'nope' is not in the archive" in err and "--steps must be" in err


# -- the committed paper archive ------------------------------------------------------------


def test_the_archives_are_small_pickle_free_and_fully_manifested():
    tracked = subprocess.run(
        ["git", "ls-files", "archive"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for folder in ("archive/paper/", "archive/quick/"):
        assert any(f.startswith(folder) for f in tracked), f"{folder} is not committed"
    assert not [f for f in tracked if not f.endswith((".npz", ".json", ".md"))]
    size = sum((REPO / f).stat().st_size for f in tracked)
    assert size <= 40e6, f"the archives take {size / 1e6:.1f} MB (at most 40 MB)"
    for folder in (PAPER, QUICK):
        for key in archive.archived_keys(folder):
            meta = json.loads((folder / key[:2] / key / "meta.json").read_text())
            assert MANIFEST_FIELDS <= set(meta), key
            assert "+dirty" not in meta["commit"], f"{key} was produced by uncommitted code"


@pytest.mark.parametrize(
    ("folder", "tasks"),
    [
        (PAPER, {"mnist", "teacher_student", "modadd", "qm9"}),
        (QUICK, {"mnist", "teacher_student", "modadd", "imdb", "qm9"}),
    ],
    ids=["paper", "quick"],
)
def test_the_archives_verify_one_run_per_task(folder, tasks):
    """CI's check of the archive: every checksum and key, and one run per task recomputed, one
    trained on this machine's CPU model where the archive holds one. A run from another model
    may differ by rounding (modular addition does), and is reported as not checkable here only
    when the archive holds no run of its task trained on this model."""
    checks = archive.verify(folder)
    assert not any(c.failed for c in checks), "\n".join(c.line() for c in checks if c.failed)
    metas = {key: _meta(folder, key) for key in archive.archived_keys(folder)}
    here = verify.device_name("cpu")
    assert {metas[c.key]["config"]["task"]["name"] for c in checks} == tasks
    for c in checks:
        task = metas[c.key]["config"]["task"]["name"]
        trained_here = any(
            m["device_name"] == here and m["config"]["task"]["name"] == task for m in metas.values()
        )
        assert c.ok or not trained_here, c.line()
        assert trained_here == (metas[c.key]["device_name"] == here), c.line()


def _meta(folder: Path, key: str) -> dict:
    return json.loads((folder / key[:2] / key / "meta.json").read_text())


def test_the_quick_archive_holds_every_chapter_at_quick():
    """Every part at the quick profile is complete: the book never needs a placeholder."""
    lacking = [s.line() for s in archive.status("quick", QUICK) if not s.complete]
    assert not lacking, "\n".join(lacking)


def _copy_archives(tmp_path: Path) -> tuple[Path, Path]:
    paper, quick = tmp_path / "paper", tmp_path / "quick"
    shutil.copytree(PAPER, paper, ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(QUICK, quick, ignore=shutil.ignore_patterns("checkpoints"))
    return paper, quick


def test_the_book_shows_a_chapter_at_paper_once_its_paper_parts_are_stored(tmp_path):
    """A chapter is shown at paper settings exactly when the paper archive holds every part it
    reads, else from the quick archive, and switches by itself when a part is completed."""
    paper, quick = _copy_archives(tmp_path)
    complete = {s.name for s in archive.status("paper", [paper]) if s.complete}
    # Claim 1 on modular addition: a few of its 60 P = 113 runs are stored (the rest: ~10 CPU-h).
    pending = "landscape_modadd"
    assert {"claim1", "claim2", "claim3", "claim4"} <= complete and pending not in complete
    shown = archive.book_profiles(["claim1", "claim2", "claim4", pending], [paper, quick])
    assert shown["claim1"] == shown["claim2"] == shown["claim4"] == ("paper", [])
    assert shown[pending] == ("quick", [pending])
    # Take one run of claim 2's part out: claim 2 falls back to quick, claim 1 stays.
    (one,) = archive.part("claim2", "paper", [paper]).configs[:1]
    held = tmp_path / "held"
    shutil.move(ResultStore(paper, archives=()).path(one), held)
    shown = archive.book_profiles(["claim1", "claim2"], [paper, quick])
    assert shown == {"claim1": ("paper", []), "claim2": ("quick", ["claim2"])}
    # Complete the part again (the run committed): claim 2 is at paper with no other change.
    shutil.move(held, ResultStore(paper, archives=()).path(one))
    assert archive.book_profiles(["claim2"], [paper, quick])["claim2"] == ("paper", [])


def test_a_chapter_in_neither_archive_is_an_error_naming_the_producer(tmp_path):
    with pytest.raises(archive.ArchiveIncomplete) as err:
        archive.book_profiles(["claim1", "claim4"], [tmp_path / "none"])
    assert "claim1 (python -m omnigrok archive --profile quick --parts claim1)" in str(err.value)
    assert "claim4 (python -m omnigrok archive --profile quick --parts claim4)" in str(err.value)


def test_the_paper_archive_verifies_its_headline_run():
    checks = archive.verify(PAPER, keys=[run_key(mnist_run())])
    # The paper's headline run (claim 2: MNIST, α = 8, γ = 0.01, seed 0).
    assert all(c.ok for c in checks), "\n".join(c.line() for c in checks if not c.ok)


def test_novel_pairs_are_those_whose_mirror_is_not_trained_on():
    from omnigrok.task import make_task
    from omnigrok.tasks import modadd_run
    from omnigrok.tasks.modadd import novel_pairs

    x_train = np.array([[0, 1, 3], [2, 2, 3]])
    x_test = np.array([[1, 0, 3], [0, 2, 3], [2, 0, 3]])
    # (1, 0) mirrors the trained (0, 1); (0, 2) and (2, 0) have no trained mirror.
    np.testing.assert_array_equal(novel_pairs(x_train, x_test, 3), [False, True, True])
    task = modadd_run(p=113, train_frac=0.3).task
    mirrored = 1 - make_task(task).test_groups["novel"].double().mean().item()
    assert 0.28 < mirrored < 0.32  # about the train fraction, as the pairs are drawn at random


def test_modular_addition_logs_novel_accuracy_and_took_a_new_key():
    from omnigrok.tasks import modadd_run

    cfg = modadd_run(p=23, train_frac=0.5, steps=3, n_log=4)
    result = train_ensemble([cfg], "cpu", False)[0]
    assert result["test_acc_novel"].shape == result["test_acc"].shape
    assert "test_acc_novel" not in train_ensemble([_tiny()], "cpu", False)[0].metrics

    def key_before(c: RunConfig) -> str:  # run_key as release 0.1.2 computed it
        text = json.dumps(
            {"config": c.to_dict(), "version": "0.1.2"}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    # modadd's runs log one more curve than before, so their keys moved; MNIST's did not.
    assert run_key(cfg) != key_before(cfg)
    assert run_key(mnist_run()) == key_before(mnist_run())


def test_every_cli_flag_has_help_and_the_cli_has_a_version(capsys):
    import omnigrok
    from omnigrok.cli import _parser

    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"omnigrok {omnigrok.__version__}"
    # Walk nested subcommands too (``results list``, ``results export``).
    todo = [("omnigrok", parser)]
    checked = []
    while todo:
        name, p = todo.pop()
        checked.append(name)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {n}", sub) for n, sub in action.choices.items()]
            if action.dest != "help" and name != "omnigrok":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert {"omnigrok results list", "omnigrok results export"} <= set(checked)


def test_on_a_cpu_the_transformer_trains_one_run_per_stack(tmp_path, monkeypatch):
    """Stacking costs the transformer on a CPU (sweep.CPU_STACK); the MLPs still stack."""
    from omnigrok import sweep
    from omnigrok.tasks import modadd_run

    stacks = []
    real = sweep.train_ensemble

    def spy(configs, **kw):
        stacks.append((configs[0].model.kind, len(configs)))
        return real(configs, **kw)

    monkeypatch.setattr(sweep, "train_ensemble", spy)
    modadd = [modadd_run(p=23, train_frac=0.5, steps=3, n_log=4, seed=s) for s in range(3)]
    runs = [*modadd, _tiny(0), _tiny(1)]
    run_sweep(runs, ResultStore(tmp_path, archives=()), "cpu", progress=False)
    assert sorted(stacks) == [
        ("mlp", 2),
        ("transformer", 1),
        ("transformer", 1),
        ("transformer", 1),
    ]
    assert sweep.stack_size(modadd[0], "cuda", 64) == 64


def test_only_claim_3s_paper_modadd_runs_held_at_w_c_carry_a_stop_rule():
    """The held runs that converge within hundreds of steps stop; the free and held-high runs
    keep their budget; the MNIST and quick runs already archived keep their keys."""
    from omnigrok.chapters import claim3

    for profile in ("paper", "quick"):
        s = claim3.Setup(profile, mnist_w_c=10.0)
        for task in claim3.TASKS:
            for regime in claim3.REGIMES:
                ruled = {c.stop_acc for c in s.regime_configs(task, regime)}
                held = profile == "paper" and task == "modadd" and regime == "held at w_c"
                assert ruled == ({0.99} if held else {None}), (profile, task, regime)
    claim3 = {s.name: s for s in archive.status("paper", [PAPER])}["claim3"]
    # The MNIST half (15 runs) archived before the rule is still found, beside the P = 113 runs
    # the producer adds session by session.
    assert claim3.stored >= 15


def test_the_modadd_landscape_trains_its_own_steps_at_paper_and_keeps_the_quick_keys():
    """At paper settings the landscape's held runs train ``MODADD_LANDSCAPE``'s steps (fewer
    than claims 3 and 4), all alike and with no stop rule; smoke and quick train their profile's
    modular-addition steps, so the quick archive still holds every quick landscape run."""
    from omnigrok.chapters import base, landscape_modadd

    paper = landscape_modadd.Setup("paper").configs()
    assert {(c.steps, c.stop_acc) for c in paper} == {(6000, None)}
    assert paper[0].steps < base.modadd_base("paper").steps
    for profile in ("smoke", "quick"):
        configs = landscape_modadd.Setup(profile).configs()
        assert {c.steps for c in configs} == {base.modadd_base(profile).steps}
    store = ResultStore(QUICK, archives=())
    assert all(store.path(c).exists() for c in landscape_modadd.Setup("quick").configs())
