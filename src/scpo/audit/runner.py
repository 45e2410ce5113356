"""The audit of one run directory: reading, then the checks in order (see :mod:`scpo.audit`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._validate import check_int
from .._version import __version__
from ..distributed import Execution
from ..errors import InvalidInputError, RunDirectoryError
from .backup import check_backup
from .base_case import check_base_case
from .certificate_files import check_certificate_files
from .chain import check_chain
from .hashes import check_hashes
from .head import chain_heads, check_expected_head, parse_expected_head
from .iterations import parse_iterations
from .reader import RunFiles, read_checkpoints, read_records, read_run_files, run_status
from .reevaluate import check_recorded_constraints, plan_blocks
from .region import plan_region_checks
from .result import AuditResult, AuditTolerances, Findings
from .specification import constraint_specification
from .steps import check_checkpoint_coverage, check_step_norms
from .units import run_units

__all__ = ["audit_run"]


def _rebuild_task(files: RunFiles) -> Any:
    """The task rebuilt from ``config.json``, whose architecture must be the one recorded."""
    from ..runs import task_from_config

    try:
        task = task_from_config(files.config)
    except InvalidInputError as exc:
        raise RunDirectoryError(f"config.json: task_config does not build the task {files.task_name!r} ({exc})") from None
    # The architecture rebuilt from task_config must be the one config.json describes, so that
    # θ's layout (names, shapes, order) is the one the constraints are evaluated with.
    built = [(n, tuple(s)) for n, s in task.structure.parameter_shapes.items()]
    described = [(n, files.shapes[n]) for n in files.names]
    if built != described:
        raise RunDirectoryError(f"config.json: policy layout {described} differs from the architecture rebuilt from task_config {built}")
    return task


def audit_run(
    run: str | Path,
    *,
    iterations: str | Sequence[int] | None = None,
    tolerances: AuditTolerances | None = None,
    chunk: int = 64,
    expect_head: str | None = None,
    execution: Execution | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    allow_task_code: bool = False,
) -> AuditResult:
    """Re-verify the certificate chain of the run directory ``run`` from its files alone.

    Parameters
    ----------
    run : str or Path
        A run directory written by ``scpo train`` (or by anyone: nothing in it is trusted).
    iterations : str or sequence of int, optional
        Checkpoints at which ``g`` (and, with a terminal set, reach-avoid) are re-evaluated;
        see :func:`~scpo.audit.parse_iterations`. Default: every saved checkpoint.
    tolerances : AuditTolerances, optional
        Default :class:`AuditTolerances()`.
    chunk : int
        Checkpoints evaluated per batch of ``task.constraints``.
    expect_head : str, optional
        A head digest pinned earlier (16 to 64 hex digits, :mod:`scpo.audit.head`): it must be
        the chain's head or that of an earlier iteration (check ``pinned_head``).
    execution : Execution, optional
        Where the expensive checks run (:mod:`scpo.audit.units`: blocks of ``chunk`` checkpoints
        re-evaluated, region certificates re-verified): in this process by default, or as Ray
        tasks (:class:`scpo.distributed.Execution` with workers or a cluster address). The
        result is the same either way (the units depend on ``chunk``, not on the engine); only
        ``wall_time_s`` differs.
    progress : callable, optional
        Called after every finished unit (see :func:`scpo.audit.units.run_units`).
    allow_task_code : bool, default False
        A run whose task is ``module:factory`` (user code outside scpo) is rebuilt by importing
        that module, i.e. by running code the run directory names. Without this flag such a run
        is bad input and nothing is imported; set it only for code you trust.

    Returns
    -------
    AuditResult
        ``verdict`` ``"verified"`` when every check passed, ``"failed"`` when any failed,
        ``"bad input"`` on bad input; the checks are listed with their level, iteration and message.

    Raises
    ------
    InvalidInputError
        Only for a malformed ``iterations``, ``tolerances``, ``chunk``, ``expect_head`` or ``execution`` argument (or
        Ray asked for but not installed); problems of the run directory are reported in the result
        (``input_errors``), never raised.
    ExecutionError
        The cluster failed, or a unit's worker died more often than ``execution.retries``.
    """
    t0 = time.perf_counter()
    tol = tolerances if tolerances is not None else AuditTolerances()
    if not isinstance(tol, AuditTolerances):
        raise InvalidInputError(f"tolerances: expected AuditTolerances, got {type(tol).__name__}")
    chunk = check_int("chunk", chunk, minimum=1)
    expected = parse_expected_head(expect_head)
    execution = execution if execution is not None else Execution()
    if not isinstance(execution, Execution):
        raise InvalidInputError(f"execution: expected a scpo.distributed.Execution, got {type(execution).__name__}")
    findings = Findings()
    task_name: str | None = None
    ckpts = None
    audited: list[int] = []
    heads: list[str] = []
    spec: tuple[str, ...] = ()
    try:
        files = read_run_files(Path(run))
        task_name = files.task_name
        if ":" in task_name and not allow_task_code:
            raise RunDirectoryError(
                f"config.json: the task {task_name!r} is Python code outside scpo (module {task_name.partition(':')[0]!r}); "
                "rebuilding it imports and runs that code, so the audit does not do so unless asked: "
                f"scpo audit {run} --allow-task-code (only for code you trust)")
        task = _rebuild_task(files)
        spec, _digest = constraint_specification(task)
        files.records = read_records(files.paths.records, findings, crashed=run_status(files.paths) != "finished")
        heads = chain_heads(files)
        if expected is not None:
            check_expected_head(heads, expected, findings)
        ckpts = read_checkpoints(files, findings)
        selected = parse_iterations(iterations, sorted(ckpts.files))
        check_chain(files, ckpts, findings)
        check_hashes(files, ckpts, findings)
        check_checkpoint_coverage(files, ckpts, findings)
        check_step_norms(files, ckpts, tol, findings)
        check_base_case(files, ckpts, findings)
        check_backup(files, task, tol, findings)
        check_recorded_constraints(files, findings)
        region_plan = plan_region_checks(files, ckpts, task, selected, findings)
        blocks = plan_blocks(files, ckpts, task, selected, tol, chunk)
        region_units = [u for _, u in region_plan if u is not None]
        results = run_units(files.config, task, [*region_units, *blocks], execution, progress)
        by_unit = iter(results)
        for own, unit in region_plan:  # the cheap checks of an iteration, then its unit's, in iteration order
            findings.extend(own)
            if unit is not None:
                findings.extend(next(by_unit))
        for _ in blocks:
            findings.extend(next(by_unit))
        audited = [it for b in blocks for it in b.iterations]
        check_certificate_files(files, findings)
    except RunDirectoryError as exc:
        findings.error(str(exc))
    unread = ckpts.unread() if ckpts is not None else []
    if unread:
        findings.note(f"checkpoint(s) {unread[:10]} could not be read and were not audited")
    return AuditResult(
        run=str(run),
        task=task_name,
        checks=tuple(findings.checks),
        input_errors=tuple(dict.fromkeys(findings.errors)),
        audited_iterations=tuple(audited),
        tolerances=tol,
        notes=tuple(findings.notes),
        head=heads[-1] if heads else None,
        head_iteration=len(heads) - 1 if heads else None,
        specification=spec,
        scpo_version=__version__,
        wall_time_s=time.perf_counter() - t0,
    )
