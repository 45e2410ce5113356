"""``scpo report`` and ``scpo audit``: thin command functions over the library.

They print and return the exit code; ``scpo.cli`` registers them as typer commands. Exit codes:
0 everything verified / every required certificate holds, 1 a certificate or check failed
(the report is still written), 2 bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import InvalidInputError, ScpoError, UnsupportedError

__all__ = ["report_command", "audit_command"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def report_command(run: Path) -> int:
    """Render ``RUN/report/`` (HTML, Markdown, summary.json, iterations.csv, figures).

    Returns
    -------
    int
        0 when every required certificate holds and the included audit verifies, 1 when one
        fails (the report is written and says which), 2 for bad input (nothing is written).
    """
    from .report import build_report

    try:
        res = build_report(run)
    except (InvalidInputError, UnsupportedError) as exc:
        typer.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    s = res.summary
    lines = [
        f"scpo report {run}",
        f"  report               {res.index_html}",
        f"                       {res.markdown}, {res.summary_json.name}, {res.iterations_csv.name}, "
        f"{', '.join(p.name for p in res.figures)}",
        f"  iterations           {s['iterations']} ({s['accepted']} accepted, {s['rejected']} rejected, {s['violations']} violations)",
        f"  induction            {s['induction']['statement']}: "
        f"{'holds' if s['induction']['holds'] else 'FAILS'} [{s['induction']['level']}]",
    ]
    if "audit" in s:
        lines.append(f"  audit                {s['audit']['verdict']} (exit {s['audit']['exit_code']})")
    failed = [c for c in s["certificates"] if c["required"] and not c["holds"]]
    for c in failed:
        lines.append(f"  FAILS [{c['level']}] {c['name']} ({c['source']})")
    typer.echo("\n".join(lines))
    return res.exit_code


def audit_command(run: Path, as_json: bool, iterations: str | None) -> int:
    """Audit ``RUN`` from its files alone; print a summary (or JSON) and return the exit code.

    Parameters
    ----------
    run : Path
    as_json : bool
        Print :meth:`scpo.audit.AuditResult.to_dict` as JSON instead of text.
    iterations : str or None
        Checkpoints to re-evaluate: ``"all"`` (default), or a list such as ``"0,10-20,100-1000:50,last"``
        (integers, inclusive ranges, ranges with a step, ``last``).

    Returns
    -------
    int
        0 verified, 1 a check failed, 2 bad input.
    """
    from ..audit import audit

    try:
        result = audit(run, iterations=iterations)
    except (InvalidInputError, UnsupportedError) as exc:
        if as_json:
            typer.echo(json.dumps({"kind": "scpo.audit", "run": str(run), "verdict": "bad input", "exit_code": EXIT_BAD_INPUT,
                                   "input_errors": [str(exc)]}, indent=2))
        else:
            typer.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except ScpoError as exc:  # pragma: no cover - the audit reports problems in its result
        typer.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        typer.echo(result.render_text())
    return result.exit_code
