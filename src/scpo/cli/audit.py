"""``scpo audit``: independent re-verification of a run directory.

Exit codes: 0 verified, 1 a check failed, 2 bad input (:mod:`scpo.cli.exit_codes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ._common import err
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
) -> None:
    """Re-verify a run's certificate chain from its files alone: exit 0 verified, 1 a check failed, 2 bad input."""
    from ..audit import audit_run
    from ..errors import InvalidInputError, UnsupportedError

    try:
        result = audit_run(run, iterations=iterations, expect_head=expect_head)
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
