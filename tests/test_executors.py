"""The executor option of ``run_sweep`` without Ray: parsing, checking, and a clear error
where Ray is asked for but not installed (Ray's own runs: tests/test_ray.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from omnigrok.cli import main as cli_main
from omnigrok.executors import CHECKPOINTS_ENV, EXECUTOR_ENV, Executor, resolve_executor
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.tasks import teacher_student_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("spec", "kind", "address"),
    [
        ("local", "local", None),
        ("ray", "ray", None),
        ("ray:auto", "ray", "auto"),
        ("ray:10.0.0.5:6379", "ray", "10.0.0.5:6379"),
        ("ray:ray://head:10001", "ray", "ray://head:10001"),
    ],
)
def test_executor_specs(spec, kind, address):
    ex = Executor.parse(spec)
    assert (ex.kind, ex.address) == (kind, address)


@pytest.mark.parametrize("spec", ["gpu", "ray:", "local:auto", "", "dask"])
def test_bad_executor_is_a_one_line_error(spec):
    with pytest.raises(ValueError, match="executor must be 'local', 'ray' or 'ray:<address>'") as e:
        Executor.parse(spec)
    assert str(e.value).endswith(f"got {spec!r}")


def test_bad_executor_resources_are_errors():
    with pytest.raises(ValueError, match="cpus_per_task must be"):
        Executor("ray", cpus_per_task=0)
    with pytest.raises(ValueError, match="max_retries must be"):
        Executor("ray", max_retries=-1)


def test_default_executor_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert resolve_executor(None) == Executor()
    monkeypatch.setenv(EXECUTOR_ENV, "ray:auto")
    assert resolve_executor(None) == Executor("ray", "auto")
    assert resolve_executor("local").kind == "local"  # an explicit choice wins


def test_checkpoint_folder_is_the_executors_else_the_environments_else_the_stores(
    monkeypatch, tmp_path
):
    monkeypatch.delenv(CHECKPOINTS_ENV, raising=False)
    assert Executor("ray").checkpoint_folder(tmp_path) == tmp_path / "checkpoints"
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "shared"))
    assert Executor("ray").checkpoint_folder(tmp_path) == tmp_path / "shared"
    mine = Executor("ray", checkpoints=tmp_path / "mine")
    assert mine.checkpoint_folder(tmp_path) == tmp_path / "mine"


def test_ray_asked_without_ray_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: import raises
    cfg = teacher_student_run(steps=5, n_log=5)
    store = ResultStore(tmp_path, archives=())
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        run_sweep([cfg], store, "cpu", progress=False, executor="ray")
    # Nothing stored needs no Ray: a stored run is read whatever the executor.
    run_sweep([cfg], store, "cpu", progress=False)
    assert run_sweep([cfg], store, "cpu", progress=False, executor="ray")[0].config == cfg


def test_cli_rejects_a_bad_executor(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli_main(["archive", "--executor", "gpu", "--archive", str(Path(tmp_path))])
    assert "executor must be 'local', 'ray' or 'ray:<address>'" in capsys.readouterr().err


def test_book_build_rejects_a_bad_executor(capsys):
    spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
    book_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book_build)
    with pytest.raises(SystemExit):
        book_build.main(["--profile", "smoke", "--executor", "ray:"])
    assert "executor must be 'local', 'ray' or 'ray:<address>'" in capsys.readouterr().err
