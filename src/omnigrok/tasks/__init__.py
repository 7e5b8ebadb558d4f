"""The paper's tasks, one module each, found by discovery: adding a task is one new module
here that registers a ``omnigrok.task.Task`` (see ``mnist.py`` for the shape of one).

The registry itself (``TASKS``, ``get``, ``make_task``) lives in ``omnigrok.task``, below the
run records, so that records can check a run against its task.
"""

from __future__ import annotations

import importlib
import pkgutil

from omnigrok.registry import TASKS, register
from omnigrok.task import Task, TaskData, get, make_task
from omnigrok.tasks.mnist import mnist_run
from omnigrok.tasks.modadd import modadd_run
from omnigrok.tasks.teacher_student import teacher_student_run

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")


def preset(name: str, **overrides):
    """The paper's run of task ``name``; keyword arguments override fields."""
    return get(name).preset(**overrides)


__all__ = [
    "TASKS",
    "Task",
    "TaskData",
    "get",
    "make_task",
    "mnist_run",
    "modadd_run",
    "preset",
    "register",
    "teacher_student_run",
]
