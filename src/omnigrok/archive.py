"""The archives: stored runs read by the book, checked by verify.

An archive is a results store (``omnigrok.store``) committed to the repository: ``archive/paper``
at the paper's settings, ``archive/quick`` at the ``quick`` profile's (the CPU miniature); one
folder per run with its curves (npz, no pickle) and its manifest (``meta.json``: full config,
key, device, dtype, torch, commit, wall time, checksum). Checkpoints are never archived.
``$OMNIGROK_ARCHIVE`` names other archive folders (``os.pathsep``-separated; empty for none).
The book shows each chapter from the paper archive when that holds every part the chapter
reads, else from the quick archive (``book_profiles``).

``produce`` trains what the archive lacks within a time budget, in priority order (claim 4, 3,
2, 1, then the width study), checkpointing so that a budget can end at any step without losing
work. ``verify`` (``omnigrok.verify``, re-exported here) recomputes archived runs and compares
them with their curves.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnigrok.chapters import CHAPTERS, Chapter
from omnigrok.chapters import chapter as chapter_named
from omnigrok.checks import resolve_device
from omnigrok.config import RunConfig
from omnigrok.executors import Executor, resolve_executor
from omnigrok.registry import TASKS
from omnigrok.store import (
    ARCHIVE_ENV,
    COMMITTED_ARCHIVES,
    PAPER_ARCHIVE,
    ResultStore,
    default_archives,
)
from omnigrok.sweep import TRAIN_ENV, HeldElsewhere, MissingRuns, run_sweep
from omnigrok.train import BudgetExhausted

# The archive's checks live in their own module; ``archive.verify`` and ``archive.Check`` stay
# the names DESIGN.md, the README and callers use for them.
from omnigrok.verify import VERIFY_STEPS as VERIFY_STEPS
from omnigrok.verify import Check as Check
from omnigrok.verify import archived_keys as archived_keys
from omnigrok.verify import verify as verify

# The archive's parts in the order the producer fills them: the P = 113 runs of claims 4 and
# 3 first (they need a GPU most), then the paper's other task, then the skeptics' questions
# (the width study, the largest, claim 1 on modular addition, the delay over γ, the rivals, the
# (α, N) phase diagram, the representation).
PARTS = (
    "claim4",
    "claim3",
    "claim2",
    "claim1",
    "imdb",
    "qm9",
    "width",
    "landscape_modadd",
    "delay_gamma",
    "rivals",
    "phases",
    "representation",
)
# Which parts each book page reads (claims 2 and 3 read claim 1's MNIST landscape).
CHAPTER_PARTS = {
    **{c.name: c.parts for c in CHAPTERS},
    "dashboard": ("claim1", "claim2", "claim3", "claim4"),
    "discussion": ("claim1", "claim2", "claim3", "claim4", "width"),
    "performance": (),
}


@contextlib.contextmanager
def temporary_environ(**values: str) -> Iterator[None]:
    """``os.environ`` with ``values`` set inside the block, as it was after it."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass(frozen=True)
class Part:
    """The runs of one part of the archive: those that can be listed now, and the reason
    others cannot yet (claim 3's MNIST target is claim 1's w_c, known once claim 1 is in)."""

    name: str
    configs: tuple[RunConfig, ...]
    waiting: str = ""


Archives = Path | Sequence[Path]


def _layers(archive: Archives | None) -> list[Path]:
    """``archive`` as the list of folders searched in order (None: the default archives)."""
    if archive is None:
        return default_archives()
    return [Path(archive)] if isinstance(archive, str | Path) else [Path(a) for a in archive]


def part(name: str, profile: str, archive: Archives) -> Part:
    """The runs of part ``name`` for ``profile``: its chapter's runs at its defaults, less
    those of the other parts it reads (claim 2's and 3's copy of claim 1's landscape)."""
    if name not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {name!r}")
    ch = chapter_named(name)
    s, waiting = _prepared(ch, profile, archive)
    # The other parts' runs as they list them once prepared (claim 3's MNIST runs held at w_c
    # are claim 3's, not the rivals', once claim 1's w_c is known).
    others = {
        c
        for p in ch.parts
        if p != name
        for c in _prepared(chapter_named(p), profile, archive)[0].configs()
    }
    return Part(name, tuple(c for c in s.configs() if c not in others), waiting)


def _prepared(ch: Chapter, profile: str, archive: Archives) -> tuple[Any, str]:
    """``ch``'s setup at its defaults for ``profile``, with what its runs wait on read from
    ``archive`` where it holds it (else the chapter's wait message)."""
    s = ch.setup(profile, device="cpu")
    if ch.prepare is None:
        return s, ""
    try:
        layers = os.pathsep.join(str(a) for a in _layers(archive))
        with temporary_environ(**{TRAIN_ENV: "0", ARCHIVE_ENV: layers}):
            return ch.prepare(s, progress=False), ""
    except MissingRuns:
        return s, ch.waits


def _manifests(archive: Archives, configs: Sequence[RunConfig]) -> list[dict]:
    layers = _layers(archive) or [PAPER_ARCHIVE / "none"]  # none: a folder holding nothing
    store = ResultStore(layers[0], archives=layers[1:])
    found = [store.where(c) for c in configs]
    return [json.loads((f / "meta.json").read_text()) for f in found if f is not None]


def device_seconds(manifests: Sequence[dict]) -> dict[str, float]:
    """Training + evaluation seconds per device of the stacks these runs were trained in.

    Runs trained in one stack share its timing, so a stack is counted once (by its timing)."""
    stacks = {
        (m.get("device_name", m.get("device", "?")), *sorted(m["timing"].items()))
        for m in manifests
        if m.get("timing")
    }
    out: dict[str, float] = {}
    for name, *timing in stacks:
        out[name] = out.get(name, 0.0) + sum(v for _, v in timing)
    return out


@dataclass(frozen=True)
class PartStatus:
    name: str
    total: int
    stored: int
    waiting: str
    seconds: dict[str, float]

    @property
    def complete(self) -> bool:
        return self.stored == self.total and not self.waiting

    def line(self) -> str:
        secs = ", ".join(f"{s:.0f} s on {d}" for d, s in self.seconds.items()) or "none yet"
        left = self.total - self.stored
        state = "complete" if self.complete else f"{left} run(s) left"
        wait = f"; {self.waiting}" if self.waiting else ""
        name = self.name.rjust(max(len(p) for p in PARTS))  # the names line up
        return f"{name}: {self.stored}/{self.total} runs, {state}{wait}; device time {secs}"


def status(profile: str = "paper", archive: Archives | None = None) -> list[PartStatus]:
    """What ``archive`` (a folder or folders searched in order; None: the default archives,
    those the chapters read) holds of each part at ``profile``, in priority order."""
    out = []
    for name in PARTS:
        p = part(name, profile, _layers(archive))
        manifests = _manifests(archive, p.configs)
        out.append(
            PartStatus(name, len(p.configs), len(manifests), p.waiting, device_seconds(manifests))
        )
    return out


def status_table(profile: str = "paper", archive: Archives | None = None) -> str:
    """``status`` as a markdown table: part, runs stored, device time per machine."""
    lines = ["| part | runs stored | device time | left |", "|---|---|---|---|"]
    for s in status(profile, archive):
        secs = "; ".join(f"{v / 60:.1f} min on {d}" for d, v in s.seconds.items()) or "—"
        left = (
            "complete"
            if s.complete
            else f"{s.total - s.stored} runs" + (f" ({s.waiting})" if s.waiting else "")
        )
        lines.append(f"| {s.name} | {s.stored} of {s.total} | {secs} | {left} |")
    return "\n".join(lines)


def missing_chapters(
    chapters: Sequence[str], profile: str, archive: Archives | None = None
) -> dict[str, list[str]]:
    """Chapter -> the incomplete parts it reads (only chapters with some)."""
    incomplete = {s.name for s in status(profile, archive) if not s.complete}
    out = {}
    for chapter in chapters:
        lacking = [p for p in CHAPTER_PARTS.get(chapter, PARTS) if p in incomplete]
        if lacking:
            out[chapter] = lacking
    return out


def committed_archive(profile: str) -> Path:
    """The repository's archive for ``profile`` (``archive/paper`` or ``archive/quick``)."""
    if profile not in COMMITTED_ARCHIVES:
        raise ValueError(
            f"profile {profile!r} has no committed archive (only {', '.join(COMMITTED_ARCHIVES)});"
            " name a folder with archive="
        )
    return COMMITTED_ARCHIVES[profile]


def producer_command(profile: str, parts: Sequence[str]) -> str:
    """The command that stores ``parts`` at ``profile`` in its committed archive."""
    return f"python -m omnigrok archive --profile {profile} --parts {','.join(parts)}"


class ArchiveIncomplete(Exception):
    """A chapter whose runs neither committed archive holds completely."""


def book_profiles(
    chapters: Sequence[str], archive: Archives | None = None
) -> dict[str, tuple[str, list[str]]]:
    """Chapter -> (the profile the book shows it at, the paper parts it still lacks): ``paper``
    when the archives hold every paper part the chapter reads, else ``quick`` when they hold
    every quick one. Nothing is trained to decide, so a completed and committed paper part
    switches its chapters to paper settings at the next build with no other change. Raises
    ``ArchiveIncomplete`` naming the producer command for a chapter held at neither."""
    lacking = {p: missing_chapters(chapters, p, archive) for p in ("paper", "quick")}
    out, absent = {}, []
    for chapter in chapters:
        if chapter not in lacking["paper"]:
            out[chapter] = ("paper", [])
        elif chapter not in lacking["quick"]:
            out[chapter] = ("quick", lacking["paper"][chapter])
        else:
            absent.append(f"{chapter} ({producer_command('quick', lacking['quick'][chapter])})")
    if absent:
        raise ArchiveIncomplete(
            "neither the paper nor the quick archive holds every run of: " + "; ".join(absent)
        )
    return out


def produce(
    profile: str = "paper",
    budget_s: float = 540.0,
    device: str = "auto",
    parts: Sequence[str] = PARTS,
    archive: Path | None = None,
    tasks: Sequence[str] | None = None,
    max_stack: int = 64,
    progress: bool = True,
    say: Callable[[str], None] = print,
    executor: str | Executor | None = None,
) -> bool:
    """Train what ``archive`` lacks of ``parts`` (in that order) until ``budget_s`` seconds
    have passed; return True when every asked part is complete. ``tasks`` limits the runs
    to those tasks (a GPU takes ``modadd``, a CPU in the background ``mnist`` and
    ``teacher_student``).

    Each stack checkpoints inside the archive's ``checkpoints/`` (never committed) at most a
    minute apart and at the deadline, so the next call resumes it where this one stopped.
    ``executor``: where the stacks train (``run_sweep``'s; ``ray:<address>``: a Ray cluster,
    whose tasks stop at the same deadline).
    """
    for name in parts:
        if name not in PARTS:
            raise ValueError(f"parts must be among {', '.join(PARTS)}, got {name!r}")
    for task in tasks or ():
        if task not in TASKS:
            raise ValueError(f"tasks must be among {', '.join(TASKS)}, got {task!r}")
    archive = Path(archive or committed_archive(profile))
    store = ResultStore(archive, archives=())
    ex = resolve_executor(executor)
    # On Ray, "auto" is resolved by each worker: this machine may have no GPU.
    dev = resolve_device(device) if ex.kind == "local" else device
    deadline = time.monotonic() + budget_s
    where = "" if ex.kind == "local" else f", on {ex.kind} {ex.address or ''}".rstrip()
    say(f"archive {archive}, profile {profile}, device {dev}{where}, budget {budget_s:.0f} s")
    finished = True
    for name in parts:
        p = part(name, profile, archive)
        todo = [c for c in dict.fromkeys(p.configs) if store.where(c) is None]
        say(f"{name}: {len(p.configs) - len(todo)}/{len(p.configs)} stored" + _wait(p))
        finished &= not p.waiting
        if tasks is not None:
            finished &= all(c.task.name in tasks for c in todo)
            todo = [c for c in todo if c.task.name in tasks]
        if not todo:
            continue
        if time.monotonic() >= deadline:
            say("budget spent; run the same command again to go on")
            return False
        t0 = time.monotonic()
        try:
            run_sweep(
                todo, store, dev, progress, max_stack, deadline=deadline, executor=ex, wait=False
            )
        except HeldElsewhere as held:
            # Another producer trains them and will store them: go on to the next part.
            say(f"{name}: {len(held.configs)} run(s) left to the producer training them")
            finished = False
            continue
        except BudgetExhausted as stop:
            say(f"{name}: a stack paused at step {stop.step}/{stop.steps}")
            say("budget spent; run the same command again to go on")
            return False
        say(f"{name}: stored {len(todo)} run(s) in {time.monotonic() - t0:.0f} s")
    for s in status(profile, archive):
        say(s.line())
    return finished


def _wait(p: Part) -> str:
    return f" ({p.waiting})" if p.waiting else ""
