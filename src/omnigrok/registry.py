"""The registry of tasks: name -> task object, filled by each module in ``omnigrok/tasks/``.

Apart from ``omnigrok.task`` so that the run records (``omnigrok.config``) can check a task's
name and hand a whole run to its task's ``check`` without importing the ``Task`` base, which is
typed with those records: the import graph stays a tree, type hints included.
"""

from __future__ import annotations

from typing import Any, Protocol

from omnigrok.checks import check_choice


class Checks(Protocol):
    """What the run records need of a task: its name, and a check of a whole run."""

    name: str

    def check(self, config: Any) -> None: ...


TASKS: dict[str, Any] = {}  # name -> omnigrok.task.Task


def register(task: Any) -> Any:
    """Add ``task`` to the registry (a task module does this for its own task)."""
    TASKS[task.name] = task
    return task


def get(name: str) -> Checks:
    """The registered task called ``name``; a one-line error listing the known ones."""
    return TASKS[check_choice("task", name, tuple(TASKS))]
