"""``omnigrok results list`` and ``omnigrok results export`` on small stores trained here."""

import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from omnigrok.cli import main as cli_main
from omnigrok.report import export
from omnigrok.store import ResultStore
from omnigrok.sweep import run_sweep
from omnigrok.tasks import teacher_student_run


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A root store with two runs and an archive with a third (a fixed-norm run)."""
    base = tmp_path_factory.mktemp("export")
    root, archive = base / "root", base / "archive"
    in_root = [
        teacher_student_run(steps=20, n_log=5, seed=0, init_scale=2.0),
        teacher_student_run(steps=20, n_log=5, seed=1, init_scale=2.0, weight_decay=0.1),
    ]
    in_archive = teacher_student_run(steps=20, n_log=5, seed=2, constraint="fixed", target_norm=3)
    kw = {"device": "cpu", "progress": False}
    results = run_sweep(in_root, store=ResultStore(root, archives=()), **kw)
    results += run_sweep([in_archive], store=ResultStore(archive, archives=()), **kw)
    return {"root": root, "archive": archive, "results": results}


def _copy(stores: dict, tmp_path: Path) -> tuple[Path, Path]:
    """Writable copies, for tests that damage a store."""
    root, archive = tmp_path / "root", tmp_path / "archive"
    shutil.copytree(stores["root"], root)
    shutil.copytree(stores["archive"], archive)
    return root, archive


def _export(stores: dict, *args: str, root: Path | None = None) -> int:
    root = root or stores["root"]
    return cli_main(["results", "export", "--results", str(root), *args])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_list_shows_each_run_and_where_it_is_read_from(stores, capsys):
    args = ["results", "list", "--results", str(stores["root"])]
    assert cli_main([*args, "--archive", str(stores["archive"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "task", "seed", "α", "wd", "constraint", "steps", "where"]
    assert lines[-1] == "3 runs"
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    by_seed = {r.config.seed: r for r in stores["results"]}
    keys = {seed: ResultStore(stores["root"]).path(r.config).name for seed, r in by_seed.items()}
    assert rows[keys[0]][1:] == ["teacher_student", "0", "2", "0", "none", "20", "root"]
    assert rows[keys[1]][1:] == ["teacher_student", "1", "2", "0.1", "none", "20", "root"]
    assert rows[keys[2]][1:] == [
        "teacher_student",
        "2",
        "1",
        "0",
        "fixed",
        "3",
        "20",
        str(stores["archive"]),
    ]


def test_list_reads_the_default_archives_and_skips_checkpoints(stores, capsys, monkeypatch):
    monkeypatch.setenv("OMNIGROK_ARCHIVE", str(stores["archive"]))
    assert cli_main(["results", "list", "--results", str(stores["root"])]) == 0
    out = capsys.readouterr().out
    assert str(stores["archive"]) in out and out.splitlines()[-1] == "3 runs"
    # The sweep's stack locks sit in checkpoints/; the store keeps no run there.
    assert (stores["root"] / "checkpoints").is_dir()
    assert "checkpoints" not in out


def test_list_of_an_empty_store_says_so(tmp_path, capsys):
    assert cli_main(["results", "list", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"no stored runs in {tmp_path} or its archives"


def test_list_skips_an_unreadable_manifest_with_a_warning(stores, tmp_path, capsys):
    root, _ = _copy(stores, tmp_path)
    folder = ResultStore(root).path(stores["results"][0].config)
    (folder / "meta.json").write_text("{not json")
    with pytest.warns(UserWarning, match=folder.name):
        assert cli_main(["results", "list", "--results", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 runs"


def test_csv_export_holds_every_logged_step_of_every_run(stores, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    assert _export(stores, "--archive", str(stores["archive"]), "--out", str(out)) == 0
    rows = _read_csv(out)
    assert capsys.readouterr().out.strip() == f"{len(rows)} rows (3 runs) written to {out}"
    assert list(rows[0]) == [
        *export.CONFIG_COLUMNS,
        "step",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "norm",
    ]  # per-tensor norms (norm/layer0.weight, ...) are left out
    assert len(rows) == sum(len(r.steps) for r in stores["results"])
    for result in stores["results"]:
        c = result.config
        mine = [row for row in rows if row["seed"] == str(c.seed)]
        assert [int(row["step"]) for row in mine] == result.steps.tolist()
        for name in ("train_loss", "test_loss", "norm"):
            np.testing.assert_array_equal([float(row[name]) for row in mine], result[name])
        # A regression task has no accuracy: NaN in the store, nan in the table.
        assert all(math.isnan(float(row["train_acc"])) for row in mine)
        first = mine[0]
        assert first["key"] == ResultStore(tmp_path).path(c).name
        assert first["task"] == "teacher_student" and first["n_train"] == str(c.task.n_train)
        assert first["model"] == "MLP 5-100-100-5, tanh"
        assert float(first["init_scale"]) == c.init_scale
        assert float(first["weight_decay"]) == c.weight_decay
        assert first["constraint"] == c.constraint
        assert first["target_norm"] == ("" if c.target_norm is None else str(c.target_norm))
        assert float(first["lr"]) == c.lr and first["steps"] == "20"
        assert first["batch_size"] == ("" if c.batch_size is None else str(c.batch_size))
        assert first["dtype"] == c.dtype


def test_export_task_filter(stores, tmp_path, capsys):
    out = tmp_path / "ts.csv"
    assert _export(stores, "--task", "teacher_student", "--out", str(out)) == 0
    assert {row["seed"] for row in _read_csv(out)} == {"0", "1"}
    with pytest.raises(SystemExit) as exit_:
        _export(stores, "--task", "mnist", "--out", str(tmp_path / "m.csv"))
    assert exit_.value.code == 2
    assert "no stored runs of --task mnist in" in capsys.readouterr().err
    assert not (tmp_path / "m.csv").exists()


def test_export_refuses_curves_that_fail_their_checksum(stores, tmp_path, capsys):
    root, _ = _copy(stores, tmp_path)
    folder = ResultStore(root).path(stores["results"][1].config)
    blob = bytearray((folder / "curves.npz").read_bytes())
    blob[200] ^= 0xFF
    (folder / "curves.npz").write_bytes(bytes(blob))
    out = tmp_path / "runs.csv"
    assert _export(stores, "--out", str(out), root=root) == 1
    err = capsys.readouterr().err
    assert str(folder) in err and "checksum" in err
    assert not out.exists()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(stores, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    out.write_text("the previous export\n")

    def half_then_fail(columns, rows, path):
        Path(path).write_text("key,task\n")
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_csv", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _export(stores, "--out", str(out))
    assert out.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_parquet_without_pyarrow_names_the_fix(stores, tmp_path, capsys, monkeypatch):
    # None in sys.modules makes `import pyarrow` raise ImportError, installed or not.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    out = tmp_path / "runs.parquet"  # the suffix picks the format
    with pytest.raises(SystemExit) as exit_:
        _export(stores, "--out", str(out))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        "omnigrok: error: --format parquet needs pyarrow: `pip install pyarrow`, "
        "or use --format csv"
    )
    assert not out.exists()


def test_parquet_export_matches_the_csv(stores, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    assert _export(stores, "--out", str(tmp_path / "a.csv")) == 0
    assert _export(stores, "--format", "parquet", "--out", str(tmp_path / "a.pq")) == 0
    table = pq.read_table(tmp_path / "a.pq").to_pylist()
    rows = _read_csv(tmp_path / "a.csv")
    assert len(table) == len(rows)
    for got, want in zip(table, rows, strict=True):
        assert got["key"] == want["key"] and got["step"] == int(want["step"])
        assert got["test_loss"] == float(want["test_loss"])
        assert got["target_norm"] is None and got["batch_size"] is None


def test_metric_columns_keep_whole_model_curves_only():
    curves = [
        {"steps": np.arange(2), "test_loss": np.zeros(2), "norm": np.zeros(2)},
        {"norm/layer0.weight": np.zeros(2), "test_acc_novel": np.zeros(2), "train_acc": 0},
    ]
    assert export.metric_columns(curves) == ["train_acc", "test_loss", "norm", "test_acc_novel"]


def test_format_is_checked_and_guessed_from_the_suffix():
    assert export.format_for(Path("a.parquet"), None) == "parquet"
    assert export.format_for(Path("a.tsv"), None) == "csv"
    with pytest.raises(ValueError, match="^format must be one of csv, parquet, got 'xlsx'$"):
        export.format_for(Path("a.csv"), "xlsx")
