"""Built-in tasks (DESIGN §5).

Public names::

    TASKS               task name -> task class
    make_task           build a task from its name, a config mapping and a seed
    Task                base class
    DoubleIntegratorTask, DoubleIntegratorConfig
    RegressionTask, RegressionConfig
"""

from __future__ import annotations

from typing import Any

from ..config import from_mapping
from ..errors import ConfigError
from .base import Task
from .double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask
from .regression import RegressionConfig, RegressionTask, regression_reference

__all__ = ["TASKS", "Task", "DoubleIntegratorConfig", "DoubleIntegratorTask", "RegressionConfig", "RegressionTask", "make_task", "regression_reference"]

TASKS: dict[str, type[Task]] = {RegressionTask.name: RegressionTask, DoubleIntegratorTask.name: DoubleIntegratorTask}


def make_task(name: str, config: dict[str, Any] | None = None, *, seed: int = 0) -> Task:
    """Build the task ``name`` with task settings ``config`` (unknown keys are errors)."""
    if name not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(sorted(TASKS))}, got {name!r}")
    cls = TASKS[name]
    return cls(from_mapping(cls.config_class, config, where=f"task {name!r} config"), seed=seed)
