"""The results store: a run's curves filed under the hash of its whole config.

``<root>/<key[:2]>/<key>/curves.npz`` holds the curves (and final weights when kept),
``meta.json`` the config, the package version and the SHA-256 of the npz. The same two
functions (``ResultStore.path`` via ``run_key``) serve the writer and every reader, so a path
can never drift between them. Writes are atomic (temporary file, then ``os.replace``); a
result whose checksum or metadata does not match is reported, deleted and trained again.
The root is ``$OMNIGROK_RESULTS``, else ``~/.cache/omnigrok/results``.

A store may also read from *archives*: read-only stores searched before its root (the paper
and quick archives committed in ``archive/``, see ``omnigrok.archive``), so a rerun from a
clone trains only what no archive holds. Every result carries its
provenance in ``meta.json``: device, torch, the commit of the code, wall time, checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnigrok import __version__
from omnigrok.config import COMPUTE_VERSION, RunConfig, run_key

RESULTS_ENV = "OMNIGROK_RESULTS"
ARCHIVE_ENV = "OMNIGROK_ARCHIVE"
REPO = Path(__file__).resolve().parents[2]
PAPER_ARCHIVE = REPO / "archive" / "paper"
# The quick profile's runs, committed likewise: the book shows a chapter from them until the
# paper archive holds that chapter's runs (``omnigrok.archive.book_profiles``).
QUICK_ARCHIVE = REPO / "archive" / "quick"
COMMITTED_ARCHIVES = {"paper": PAPER_ARCHIVE, "quick": QUICK_ARCHIVE}
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc", "norm")


@dataclass
class RunResult:
    """One run's curves on its logging schedule, and what became of it.

    ``metrics`` maps ``train_loss, train_acc, test_loss, test_acc, norm`` and ``norm/<tensor>``
    to arrays aligned with ``steps`` (step s: after s optimizer updates; step 0 is the init).
    Values after a divergence are NaN; ``diverged_at`` is the step it happened, or None.
    """

    config: RunConfig
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    diverged_at: int | None = None
    weights: dict[str, np.ndarray] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.metrics[name]


def log_schedule(steps: int, n_log: int = 250) -> np.ndarray:
    """Steps at which to evaluate: every step for the first 30 (as the paper's code; fewer when
    ``n_log`` is small), then half the points evenly spaced on a log axis and half on a linear
    axis, so that curves look right on both (claim 4). Always includes 0 and ``steps``. Part of
    what a stored run is: its curves are logged at these steps."""
    dense = np.arange(0, min(steps, 30, n_log // 5) + 1)
    n_rest = max(n_log - len(dense), 2)
    geometric = np.geomspace(max(min(steps, 30), 1), steps, n_rest // 2)
    linear = np.linspace(0, steps, n_rest - n_rest // 2)
    points = np.concatenate([dense, np.rint(geometric), np.rint(linear), [steps]])
    return np.unique(points.astype(np.int64))


def default_root() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or Path.home() / ".cache" / "omnigrok" / "results")


def default_archives() -> list[Path]:
    """``$OMNIGROK_ARCHIVE`` if set, else the checkout's committed archives that exist
    (``archive/paper``, ``archive/quick``). Their keys never collide: a key hashes the whole
    config, profile settings included, so the order only decides which copy is read first."""
    if ARCHIVE_ENV in os.environ:
        return [Path(p) for p in os.environ[ARCHIVE_ENV].split(os.pathsep) if p]
    return [a for a in COMMITTED_ARCHIVES.values() if a.is_dir()]


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_partial_writes(path: Path) -> None:
    """Remove the temporary files that writers of ``path`` killed mid-write left beside it
    (``atomic_write_bytes`` names them after it); call it only when no writer is alive."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


class CorruptResult(Exception):
    """A stored result that fails its checksum or cannot be read."""


class ResultStore:
    """Runs' results keyed by ``run_key(config)``."""

    def __init__(
        self, root: str | Path | None = None, archives: Sequence[str | Path] | None = None
    ) -> None:
        """``archives``: read-only stores searched before ``root`` (None: the committed
        archives where there are some, see ``default_archives``; ``()``: none)."""
        self.root = Path(root) if root is not None else default_root()
        if archives is None:
            archives = default_archives()
        self.archives = [Path(a) for a in archives if Path(a).resolve() != self.root.resolve()]

    def folder(self, key: str, root: Path | None = None) -> Path:
        """Where the run named ``key`` lives under ``root`` (default: this store's root)."""
        return (root or self.root) / key[:2] / key

    def path(self, config: RunConfig) -> Path:
        return self.folder(run_key(config))

    def where(self, config: RunConfig) -> Path | None:
        """The folder holding ``config``'s result: an archive's first, else the root's."""
        key = run_key(config)
        for root in (*self.archives, self.root):
            if (self.folder(key, root) / "meta.json").is_file():
                return self.folder(key, root)
        return None

    def checkpoint_path(self, configs: list[RunConfig]) -> Path:
        """Where a stack of runs checkpoints: keyed by the runs it holds, in order."""
        key = hashlib.sha256("".join(run_key(c) for c in configs).encode()).hexdigest()[:24]
        return self.root / "checkpoints" / f"{key}.pt"

    def save(self, result: RunResult) -> Path:
        """File ``result`` under its config's key (curves first, then the metadata naming
        their checksum, so a reader never accepts curves without matching metadata)."""
        folder = self.path(result.config)
        arrays = {"steps": result.steps, **{f"m:{n}": v for n, v in result.metrics.items()}}
        if result.weights is not None:
            arrays.update({f"w:{n}": v for n, v in result.weights.items()})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        blob = buffer.getvalue()
        meta = {
            "config": result.config.to_dict(),
            "version": __version__,
            "compute_version": COMPUTE_VERSION,
            "key": run_key(result.config),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "diverged_at": result.diverged_at,
            "timing": result.timing,
            **result.provenance,
            "dtype": result.config.dtype,
        }
        atomic_write_bytes(blob, folder / "curves.npz")
        atomic_write_bytes(json.dumps(meta, indent=1).encode(), folder / "meta.json")
        return folder

    def load(self, config: RunConfig, need_weights: bool = False) -> RunResult | None:
        """The stored result of ``config``, or None. A corrupt one in the root is removed with
        a warning (it will be trained again); a corrupt archived one is an error, since an
        archive is read-only and checked (``omnigrok verify``)."""
        for archive in self.archives:
            folder = self.folder(run_key(config), archive)
            if folder.exists():
                result = self._read(config, folder)
                if not need_weights or result.weights is not None:
                    return result
        folder = self.path(config)
        if not folder.exists():
            return None
        try:
            result = self._read(config, folder)
        except CorruptResult as err:
            warnings.warn(
                f"stored result {folder} is corrupt ({err}); removing it, it will be recomputed",
                stacklevel=2,
            )
            shutil.rmtree(folder, ignore_errors=True)
            return None
        if need_weights and result.weights is None:
            return None
        return result

    def _read(self, config: RunConfig, folder: Path) -> RunResult:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            blob = (folder / "curves.npz").read_bytes()
        except (OSError, ValueError) as err:
            raise CorruptResult(f"unreadable: {err}") from err
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise CorruptResult("checksum mismatch")
        # Through JSON, as it was written: tuples come back as lists.
        if meta.get("config") != json.loads(json.dumps(config.to_dict())):
            raise CorruptResult("metadata names another config")
        with np.load(io.BytesIO(blob)) as npz:
            arrays = {n: npz[n] for n in npz.files}
        metrics = {n[2:]: v for n, v in arrays.items() if n.startswith("m:")}
        weights = {n[2:]: v for n, v in arrays.items() if n.startswith("w:")} or None
        keys = ("device", "device_name", "torch", "dtype", "commit", "stack")
        provenance = {k: meta[k] for k in keys if k in meta}
        timing = meta.get("timing", {})
        return RunResult(
            config, arrays["steps"], metrics, meta["diverged_at"], weights, timing, provenance
        )
