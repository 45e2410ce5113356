"""``scpo bench``: run the repository's benchmark scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ScpoError
from ._common import err, fail
from .exit_codes import EXIT_FAILED, EXIT_OK

__all__ = ["bench"]


def bench(
    which: Annotated[str, typer.Argument(help="methods | ablations | scaling | all.")] = "all",
    quick: Annotated[bool, typer.Option("--quick", help="Tiny budgets, one seed: a smoke test, not results.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV and PNG files.")] = Path("bench-out"),
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Seed (repeatable); default: each script's own.")] = None,
) -> None:
    """Run the repository's benchmark scripts (each writes CSV + PNG and prints a table)."""
    from ..bench import run_benchmarks

    def started(name: str, command: list[str]) -> None:
        typer.echo(f"== scpo bench {name}: {' '.join(command)}")

    try:
        result = run_benchmarks(which, quick, out, seed or None, on_start=started, on_line=typer.echo)
    except ScpoError as exc:
        raise fail(exc) from None
    if not result.ok:
        err(f"scpo bench: failed: {', '.join(result.failed)}")
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_OK)
