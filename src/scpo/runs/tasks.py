"""Rebuilding the task of a run from its ``config.json`` (the one way every reader does it)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, RunDirectoryError

__all__ = ["task_from_config"]


def task_from_config(config: dict[str, Any]) -> Any:
    """The task a run was trained on, rebuilt from its resolved configuration.

    Parameters
    ----------
    config : dict
        The content of ``config.json``: ``task`` (a registry name), ``task_config`` and
        ``train.seed``. Settings the task added after the run was written take the value that
        keeps what the run did (the task class's ``stored_run_defaults``), not today's default.

    Returns
    -------
    Task

    Raises
    ------
    RunDirectoryError
        A missing or malformed ``task``, ``task_config`` or ``train.seed``.
    ConfigError
        The task settings do not build the task (unknown key, bad value).
    """
    from ..tasks import make_task, task_class

    name = config.get("task")
    if not isinstance(name, str):
        raise RunDirectoryError(f"config.json: expected a task name, got {name!r}")
    task_config = config.get("task_config", {})
    if not isinstance(task_config, dict):
        raise RunDirectoryError(f"config.json: task_config must be a JSON object, got {type(task_config).__name__}")
    train = config.get("train")
    seed = train.get("seed") if isinstance(train, dict) else None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RunDirectoryError(f"config.json: train.seed must be an integer, got {seed!r}")
    try:
        added = getattr(task_class(name), "stored_run_defaults", {})
        return make_task(name, {**{k: v for k, v in added.items() if k not in task_config}, **task_config}, seed=seed)
    except ConfigError as exc:
        raise ConfigError(f"config.json: {exc}") from None
