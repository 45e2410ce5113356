"""The task registry: task names -> the class that builds them, resolved on first use.

A built-in task is one entry of :data:`BUILTIN_TASKS` (``name -> "module:Class"``); nothing is
imported until a task is asked for by name, so listing the names costs nothing. A name that
contains a colon, ``package.module:factory``, names a task class (or a factory with the same
``config_class`` attribute and call signature) outside scpo.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import from_mapping
from ..errors import ConfigError

__all__ = ["BUILTIN_TASKS", "task_names", "task_class", "make_task"]

BUILTIN_TASKS: dict[str, str] = {
    "regression": "scpo.tasks.regression:RegressionTask",
    "double-integrator": "scpo.tasks.double_integrator:DoubleIntegratorTask",
    "chain-integrator": "scpo.tasks.chain_integrator:ChainIntegratorTask",
    "cart-pole": "scpo.tasks.cart_pole:CartPoleTask",
    "linear": "scpo.tasks.spec:LinearSpecTask",
}


def task_names() -> list[str]:
    """The names of the built-in tasks, sorted."""
    return sorted(BUILTIN_TASKS)


def _resolve(target: str, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"task: expected a built-in task ({', '.join(task_names())}) or 'module:factory', got {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"task {name!r}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"task {name!r}: module {module_name!r} has no attribute {attr!r}") from None


def task_class(name: str) -> Any:
    """The class (or factory) of the task ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`BUILTIN_TASKS` or ``"package.module:factory"``.

    Returns
    -------
    type
        Has ``config_class``; called as ``cls(config, seed=seed)``.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the built-in ones) or a factory that cannot be imported.
    """
    if not isinstance(name, str):
        raise ConfigError(f"task: expected a task name (a string), got {type(name).__name__}")
    if name in BUILTIN_TASKS:
        return _resolve(BUILTIN_TASKS[name], name)
    if ":" in name:
        cls = _resolve(name, name)
        if not hasattr(cls, "config_class"):
            raise ConfigError(f"task {name!r}: expected a task class with a config_class attribute, got {type(cls).__name__}")
        return cls
    raise ConfigError(f"task: expected one of {', '.join(task_names())} (or 'module:factory'), got {name!r}")


def make_task(name: str, config: dict[str, Any] | None = None, *, seed: int = 0) -> Any:
    """Build the task ``name`` with task settings ``config`` (unknown keys are errors).

    Parameters
    ----------
    name : str
        See :func:`task_class`.
    config : dict, optional
        Task settings; missing keys take the task's defaults.
    seed : int

    Returns
    -------
    Task
        For a ``module:factory`` name, ``task.name`` is that string (so that the run's records and its
        checkpoints name the task the same way the run's ``config.json`` does).
    """
    cls = task_class(name)
    task = cls(from_mapping(cls.config_class, config, where=f"task {name!r} config"), seed=seed)
    if name not in BUILTIN_TASKS:
        # a module:factory task is named by that string, the name its run records (config.json, checkpoints)
        task.name = name
    return task
