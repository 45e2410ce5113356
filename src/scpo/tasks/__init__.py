"""Tasks (DESIGN §5): what is learnt, under which constraints, produced as a closed-loop problem.

Public names::

    Task                   the protocol every task implements (base class)
    make_task, task_class  build a task from its registry name, a config mapping and a seed
    task_names             the built-in task names
    BUILTIN_TASKS          name -> "module:Class"

The built-in tasks live in their own modules (:mod:`scpo.tasks.regression`,
:mod:`scpo.tasks.double_integrator`, …) and are imported when first asked for.
"""

from __future__ import annotations

from typing import Any

from .base import Task
from .registry import BUILTIN_TASKS, make_task, task_class, task_names

__all__ = ["BUILTIN_TASKS", "Task", "make_task", "task_class", "task_names"]

_LAZY = {
    "RegressionTask": "regression", "RegressionConfig": "regression", "regression_reference": "regression",
    "DoubleIntegratorTask": "double_integrator", "DoubleIntegratorConfig": "double_integrator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
