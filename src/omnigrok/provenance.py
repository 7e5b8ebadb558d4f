"""Where a run was computed: device, card or CPU, torch, and the commit of the code.

Every stored run carries these in its manifest (``meta.json``), so the archive can say what
produced each curve.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", str(here))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


# Read when the package is imported, i.e. when its code was loaded: later edits to the
# checkout do not change what a running process computes.
COMMIT = _git_commit()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device) -> dict[str, str]:
    """The device kind, the card or CPU, torch's version and the code's commit (``+dirty``
    with uncommitted changes to the package; ``unknown`` for an installed copy)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device": device.type,
        "device_name": name,
        "torch": torch.__version__,
        "commit": COMMIT,
    }
