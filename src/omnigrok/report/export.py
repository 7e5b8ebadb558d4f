"""Stored runs as a table: list what a results store (and its archives) holds, export the curves.

``stored_runs`` walks ``<root>/<key[:2]>/<key>/meta.json`` in the store's root and archives
(never ``checkpoints/``), reading each run where ``ResultStore.load`` would: an archive's copy
first. ``export`` writes one row per (run, logged step): the run's config flattened to columns
(``CONFIG_COLUMNS``), then ``step`` and the curves (``train_loss`` ... ``test_acc_novel``;
per-tensor norms are left out). Curves are checked against their manifest's SHA-256 before a
row is written, and the file appears whole or not at all (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnigrok.config import RunConfig
from omnigrok.models import describe
from omnigrok.store import CURVES, CorruptResult, ResultStore

FORMATS = ("csv", "parquet")
# One column per config field a reader filters or groups by; ``model`` is a description.
CONFIG_COLUMNS = (
    "key",
    "task",
    "n_train",
    "model",
    "init_scale",
    "weight_decay",
    "constraint",
    "target_norm",
    "seed",
    "lr",
    "steps",
    "batch_size",
    "dtype",
)


@dataclass(frozen=True)
class StoredRun:
    """One run on disk: its key, config, folder and which store it is read from."""

    key: str
    config: RunConfig
    folder: Path
    where: str  # "root", or the archive folder it is read from
    meta: dict[str, Any]


def _read_meta(folder: Path) -> tuple[dict[str, Any], RunConfig]:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        config = RunConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptResult(f"{folder}: unreadable manifest ({err})") from err
    # The folder is named by the key; a manifest that names another run was moved or edited.
    if meta.get("key") != folder.name:
        raise CorruptResult(f"{folder}: manifest names key {meta.get('key')!r}")
    return meta, config


def stored_runs(store: ResultStore, task: str | None = None) -> list[StoredRun]:
    """Every run ``store`` can read (archives first, as ``ResultStore.load``), each key once,
    sorted by task, α, weight decay, constraint, seed. Unreadable manifests are skipped with a
    warning (the store would treat those runs as missing too)."""
    runs: dict[str, StoredRun] = {}
    for root, where in [*((a, str(a)) for a in store.archives), (store.root, "root")]:
        # ``??/`` matches the two-character key prefixes only, so ``checkpoints/`` is skipped.
        for meta_path in sorted(Path(root).glob("??/*/meta.json")):
            folder = meta_path.parent
            if folder.name in runs:
                continue
            try:
                meta, config = _read_meta(folder)
            except CorruptResult as err:
                warnings.warn(f"skipping {err}", stacklevel=2)
                continue
            if task is None or config.task.name == task:
                runs[folder.name] = StoredRun(folder.name, config, folder, where, meta)
    return sorted(runs.values(), key=_order)


def _order(run: StoredRun) -> tuple:
    c = run.config
    return (c.task.name, c.init_scale, c.weight_decay, c.constraint, c.seed, run.key)


def read_curves(run: StoredRun) -> dict[str, np.ndarray]:
    """``steps`` and every curve (``m:`` arrays, prefix dropped) of ``run``, checked against
    its manifest's SHA-256 (raises ``CorruptResult`` naming the folder on a mismatch)."""
    try:
        blob = (run.folder / "curves.npz").read_bytes()
    except OSError as err:
        raise CorruptResult(f"{run.folder}: unreadable curves ({err})") from err
    if hashlib.sha256(blob).hexdigest() != run.meta.get("sha256"):
        raise CorruptResult(f"{run.folder}: curves.npz fails its checksum")
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {n: npz[n] for n in npz.files}
    curves = {n[2:]: v for n, v in arrays.items() if n.startswith("m:")}
    return {"steps": arrays["steps"], **curves}


def list_lines(runs: Sequence[StoredRun]) -> list[str]:
    """``results list``: a header, then one aligned line per run."""
    rows = [("key", "task", "seed", "α", "wd", "constraint", "steps", "where")]
    for r in runs:
        c = r.config
        held = c.constraint if c.target_norm is None else f"{c.constraint} {c.target_norm:g}"
        row = (r.key, c.task.name, str(c.seed), f"{c.init_scale:g}", f"{c.weight_decay:g}")
        rows.append((*row, held, str(c.steps), r.where))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [" ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def metric_columns(curves: Sequence[dict[str, np.ndarray]]) -> list[str]:
    """The curve columns of a table: the standard ones in ``CURVES`` order, then any other
    whole-model curve (``test_acc_novel``) by name; per-tensor ``norm/...`` are left out."""
    names = {n for c in curves for n in c if n != "steps" and "/" not in n}
    return [n for n in CURVES if n in names] + sorted(names - set(CURVES))


def config_row(run: StoredRun) -> dict[str, Any]:
    c = run.config
    return {
        "key": run.key,
        "task": c.task.name,
        "n_train": c.task.n_train,
        "model": describe(c.model),
        "init_scale": c.init_scale,
        "weight_decay": c.weight_decay,
        "constraint": c.constraint,
        "target_norm": c.target_norm,
        "seed": c.seed,
        "lr": c.lr,
        "steps": c.steps,
        "batch_size": c.batch_size,
        "dtype": c.dtype,
    }


def table(runs: Sequence[StoredRun]) -> tuple[list[str], list[list[Any]]]:
    """Long format: the column names and one row per (run, logged step). A curve a run does
    not log is None in its rows."""
    curves = [read_curves(r) for r in runs]
    metrics = metric_columns(curves)
    rows = []
    for run, c in zip(runs, curves, strict=True):
        fixed = list(config_row(run).values())
        for i, step in enumerate(c["steps"]):
            # NumPy scalars as stored: str() gives the shortest text that reads back to the
            # same value in the stored dtype, so the CSV round-trips the curves exactly.
            values = [c[m][i] if m in c else None for m in metrics]
            rows.append([*fixed, int(step), *values])
    return [*CONFIG_COLUMNS, "step", *metrics], rows


@contextlib.contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """A temporary path next to ``out``, moved onto it only if the block succeeds, so a reader
    (or a failed export) never leaves half a table under the real name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_csv(columns: list[str], rows: list[list[Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        # None (a curve the run does not log, no target norm) becomes an empty cell.
        writer.writerows(rows)


def _write_parquet(columns: list[str], rows: list[list[Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def plain(v: Any) -> Any:
        return v.item() if isinstance(v, np.generic) else v

    data = {name: [plain(row[i]) for row in rows] for i, name in enumerate(columns)}
    pq.write_table(pa.table(data), path)


def format_for(out: Path, fmt: str | None) -> str:
    """``fmt`` checked, or (None) guessed from ``out``'s suffix: ``.parquet`` else csv."""
    if fmt is None:
        return "parquet" if out.suffix.lower() == ".parquet" else "csv"
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def export(runs: Sequence[StoredRun], out: str | Path, fmt: str | None = None) -> int:
    """Write ``runs``' curves to ``out`` as a long table (see the module doc); the row count.

    Raises ValueError for a bad ``fmt`` or an empty ``runs``, ImportError naming the fix when
    Parquet is asked for without pyarrow, ``CorruptResult`` for curves failing their checksum.
    """
    out = Path(out)
    fmt = format_for(out, fmt)
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "format parquet needs pyarrow: `pip install pyarrow`, or use format csv"
            ) from err
    if not runs:
        raise ValueError("no stored runs to export")
    columns, rows = table(runs)
    writer = _write_parquet if fmt == "parquet" else _write_csv
    with _atomic(out) as tmp:
        writer(columns, rows, tmp)
    return len(rows)
