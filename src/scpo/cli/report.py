"""``scpo report``: the certificate report of a run.

Exit codes: 0 every required certificate holds and the included audit verifies, 1 one fails
(the report is written and says which), 2 bad input (nothing is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import err
from .audit import EXIT_OF_AUDIT_VERDICT
from .exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

__all__ = ["report", "report_lines"]


def report_lines(run: Path, result: Any) -> list[str]:
    """What ``scpo report`` prints about the report it wrote.

    Parameters
    ----------
    run : Path
        The run directory as given.
    result : ReportResult

    Returns
    -------
    list of str
    """
    s = result.summary
    lines = [
        f"scpo report {run}",
        f"  report               {result.index_html}",
        f"                       {result.markdown}, {result.summary_json.name}, {result.iterations_csv.name}, "
        f"{', '.join(p.name for p in result.figures)}",
        f"  iterations           {s['iterations']} ({s['accepted']} accepted, {s['rejected']} rejected, {s['violations']} violations)",
        f"  induction            {s['induction']['statement']}: "
        f"{'holds' if s['induction']['holds'] else 'FAILS'} [{s['induction']['level']}]",
    ]
    if "audit" in s:
        verdict = s["audit"]["verdict"]
        lines.append(f"  audit                {verdict} (exit {EXIT_OF_AUDIT_VERDICT[verdict]})")
    for c in s["certificates"]:
        if c["required"] and not c["holds"]:
            lines.append(f"  FAILS [{c['level']}] {c['name']} ({c['source']})")
    return lines


def report(run: Annotated[Path, typer.Argument(help="Run directory written by scpo train.")]) -> None:
    """Render RUN/report/: index.html, report.md, summary.json, iterations.csv and the PNG figures."""
    from ..errors import InvalidInputError, UnsupportedError
    from ..reports import build_report

    try:
        result = build_report(run)
    except (InvalidInputError, UnsupportedError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo("\n".join(report_lines(run, result)))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)
