"""The paper archive: stored runs at the paper's settings, read by the book, checked by verify.

The archive is a results store (``omnigrok.store``) committed to the repository under
``archive/paper``: one folder per run with its curves (npz, no pickle) and its manifest
(``meta.json``: full config, key, device, dtype, torch, commit, wall time, checksum).
Checkpoints are never archived. ``$OMNIGROK_ARCHIVE`` names other archive folders
(``os.pathsep``-separated; empty for none).
"""

from __future__ import annotations

import os
from pathlib import Path

ARCHIVE_ENV = "OMNIGROK_ARCHIVE"
REPO = Path(__file__).resolve().parents[2]
PAPER_ARCHIVE = REPO / "archive" / "paper"


def default_archives() -> list[Path]:
    """``$OMNIGROK_ARCHIVE`` if set, else the checkout's ``archive/paper`` if there is one."""
    if ARCHIVE_ENV in os.environ:
        return [Path(p) for p in os.environ[ARCHIVE_ENV].split(os.pathsep) if p]
    return [PAPER_ARCHIVE] if PAPER_ARCHIVE.is_dir() else []
