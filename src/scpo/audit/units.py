"""The audit's expensive checks as independent units of work, in this process or as Ray tasks.

Re-evaluating ``g`` at the saved checkpoints (:class:`~scpo.audit.reevaluate.BlockUnit`, blocks
of checkpoints) and re-verifying the region certificates of a sound run
(:class:`~scpo.audit.region.RegionUnit`, one per iteration) dominate an audit, and every unit
depends only on the run's configuration and its own checkpoint(s). :func:`run_units` hands them
to :func:`scpo.distributed.map_tasks`: in this process by default, or as Ray tasks with an
:class:`~scpo.distributed.Execution` naming workers or a cluster. The units and their order are
fixed by the run and the ``chunk`` argument alone, never by the engine, and the findings are
merged in unit order, so an audit on Ray gives the same result as in this process.

A unit rebuilds the task from the run's ``config.json`` (:func:`scpo.runs.task_from_config`,
once per worker process and configuration) and never modifies it; what a unit reads was read
and hashed by the driver, so a worker needs no access to the run directory. Nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..distributed import Execution
from ..errors import InvalidInputError, RunDirectoryError
from .reevaluate import BlockUnit, run_block_unit
from .region import RegionUnit, run_region_unit
from .result import Findings

__all__ = ["AuditShared", "run_units", "run_unit"]

_TASKS: dict[str, Any] = {}  # per process: config digest -> the task rebuilt from it (never modified)
_CACHE_SIZE = 4


@dataclass(frozen=True)
class AuditShared:
    """What every unit of one audit needs: the run's configuration (sent to a cluster once).

    Attributes
    ----------
    config : dict
        The content of ``config.json``.
    """

    config: dict[str, Any]

    @property
    def key(self) -> str:
        """The canonical JSON of ``config`` (the task cache's key)."""
        return json.dumps(self.config, sort_keys=True, allow_nan=True)


def _task(shared: AuditShared) -> Any:
    from ..runs import task_from_config

    key = shared.key
    task = _TASKS.get(key)
    if task is None:
        try:
            task = task_from_config(shared.config)
        except InvalidInputError as exc:
            raise RunDirectoryError(f"config.json: task_config does not build the task ({exc})") from None
        while len(_TASKS) >= _CACHE_SIZE:
            _TASKS.pop(next(iter(_TASKS)))
        _TASKS[key] = task
    return task


def run_unit(shared: AuditShared, unit: BlockUnit | RegionUnit) -> Findings:
    """Run one unit of an audit (the function :func:`scpo.distributed.map_tasks` runs).

    Parameters
    ----------
    shared : AuditShared
    unit : BlockUnit or RegionUnit

    Returns
    -------
    Findings
        The unit's checks, in order.
    """
    task = _task(shared)
    if isinstance(unit, BlockUnit):
        return run_block_unit(task, unit)
    if isinstance(unit, RegionUnit):
        return run_region_unit(task, unit)
    raise InvalidInputError(f"unit: expected a BlockUnit or a RegionUnit, got {type(unit).__name__}")


def run_units(config: dict[str, Any], task: Any, units: list[BlockUnit | RegionUnit], execution: Execution,
              progress: Callable[[dict[str, Any]], None] | None = None) -> list[Findings]:
    """Run the units of one audit where ``execution`` says; results in unit order.

    Parameters
    ----------
    config : dict
        The run's ``config.json``.
    task : Task
        The driver's task rebuilt from ``config`` (used as the in-process units' task, so that the
        task is not built twice; it is not modified).
    units : list of BlockUnit or RegionUnit
    execution : Execution
    progress : callable, optional
        Called after every finished unit with :func:`scpo.distributed.map_tasks`' counts
        (``done``, ``total``, ``engine``, ``workers``, ``elapsed_s``).

    Returns
    -------
    list of Findings
        ``result[i]`` from ``units[i]``.
    """
    shared = AuditShared(config=config)
    if execution.engine == "in-process":
        _TASKS[shared.key] = task
    try:
        return execution.map(run_unit, units, shared=shared, progress=progress)
    finally:
        if execution.engine == "in-process":
            _TASKS.pop(shared.key, None)
