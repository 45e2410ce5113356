"""``scpo audit``: independent re-verification of a run directory.

Exit codes: 0 verified, 1 a check failed, 2 bad input (:mod:`scpo.cli.exit_codes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import err, fail
from .exit_codes import EXIT_BAD_INPUT, VERDICTS

__all__ = ["audit", "audit_exit_code", "EXIT_OF_AUDIT_VERDICT"]

EXIT_OF_AUDIT_VERDICT = {word: code for code, word in VERDICTS.items()}
"""The exit code of each verdict word (:attr:`scpo.audit.AuditResult.verdict`: verified 0, failed 1, bad input 2)."""


def audit_exit_code(result: Any) -> int:
    """The exit code of an audit: 0 verified, 1 a check failed, 2 bad input.

    Parameters
    ----------
    result : AuditResult
    """
    return EXIT_OF_AUDIT_VERDICT[result.verdict]


def _json_of(result: Any) -> dict[str, Any]:
    """``result.to_dict()`` with the exit code beside the verdict."""
    out: dict[str, Any] = {}
    for k, v in result.to_dict().items():
        out[k] = v
        if k == "ok":
            out["exit_code"] = audit_exit_code(result)
    return out


class _Progress:
    """Progress lines on standard error: at most one a second, and the last unit's."""

    def __init__(self) -> None:
        self.last = -1.0

    def __call__(self, info: dict[str, Any]) -> None:
        if info["done"] < info["total"] and info["elapsed_s"] - self.last < 1.0:
            return
        self.last = info["elapsed_s"]
        where = "" if info["engine"] == "in-process" else (f" on {info['workers']} Ray workers" if info.get("workers") else " on Ray")
        err(f"audit: {info['done']}/{info['total']} units re-verified (region certificates, blocks of checkpoints){where}, "
            f"{info['elapsed_s']:.1f} s")


def audit(
    run: Annotated[Path, typer.Argument(help="Run directory to audit (trusted or not).")],
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Print the full result as JSON.")] = False,
    iterations: Annotated[
        Optional[str],
        typer.Option("--iterations", help="Checkpoints to re-evaluate: all (default) or a list such as 0,10-20,100-1000:50,last."),
    ] = None,
    expect_head: Annotated[
        Optional[str],
        typer.Option("--expect-head", help="Head digest printed by an earlier audit (16-64 hex digits): the chain must be that "
                                           "chain or continue it (a removed, rewritten or reordered record fails)."),
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Re-evaluate the checkpoints on a local Ray instance with N CPUs (extra: ray).")] = None,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Re-evaluate the checkpoints on a running Ray cluster ('auto', 'host:6379').")] = None,
    chunk: Annotated[int, typer.Option("--chunk", help="Checkpoints per re-evaluation unit (the units, not the engine, fix the numbers).")] = 64,
    quiet: Annotated[bool, typer.Option("--quiet", metavar="", help="No progress lines.")] = False,
    allow_task_code: Annotated[bool, typer.Option("--allow-task-code", metavar="",
                                                  help="Rebuild a module:factory task by importing its module (runs that code; "
                                                       "only for code you trust).")] = False,
) -> None:
    """Re-verify a run's certificate chain from its files alone: exit 0 verified, 1 a check failed, 2 bad input."""
    from ..audit import audit_run
    from ..distributed import Execution
    from ..errors import ExecutionError, InvalidInputError, UnsupportedError

    try:
        execution = Execution(workers=workers, ray_address=ray_address)
        if execution.engine == "ray":
            from ..distributed import require_ray

            require_ray("--workers / --ray-address", load=False)
        result = audit_run(run, iterations=iterations, expect_head=expect_head, chunk=chunk, execution=execution,
                           progress=None if quiet or json_out else _Progress(), allow_task_code=allow_task_code)
    except ExecutionError as exc:
        raise fail(exc) from None
    except (InvalidInputError, UnsupportedError) as exc:
        if json_out:
            typer.echo(json.dumps({"kind": "scpo.audit", "run": str(run), "verdict": "bad input", "exit_code": EXIT_BAD_INPUT,
                                   "input_errors": [str(exc)]}, indent=2))
        else:
            err(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    code = audit_exit_code(result)
    if json_out:
        typer.echo(json.dumps(_json_of(result), indent=2, allow_nan=False))
    else:
        typer.echo(result.render_text(exit_code=code))
    raise typer.Exit(code)
