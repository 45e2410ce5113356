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
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="Tiny budgets, one seed: a smoke test, not results.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for the CSV and PNG files.")] = Path("bench-out"),
    seed: Annotated[Optional[list[int]], typer.Option("--seed", help="Seed (repeatable); default: each script's own.")] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Run the methods benchmark's seeds as Ray tasks on a local instance with N CPUs.")
    ] = None,
    ray_address: Annotated[
        Optional[str], typer.Option("--ray-address", help="... or on the Ray cluster at this address (needs the ray extra).")
    ] = None,
) -> None:
    """Run the repository's benchmark scripts (each writes CSV + PNG and prints a table)."""
    from ..bench import PARALLEL_BENCHMARKS, run_benchmarks

    def started(name: str, command: list[str]) -> None:
        typer.echo(f"== scpo bench {name}: {' '.join(command)}")
        if (workers is not None or ray_address is not None) and name not in PARALLEL_BENCHMARKS:
            typer.echo(f"   ({name} times its own configurations and runs in-process; Ray runs only {', '.join(PARALLEL_BENCHMARKS)})")

    try:
        result = run_benchmarks(which, quick, out, seed or None, on_start=started, on_line=typer.echo, workers=workers,
                                ray_address=ray_address)
    except ScpoError as exc:
        raise fail(exc) from None
    if not result.ok:
        err(f"scpo bench: failed: {', '.join(result.failed)}")
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_OK)
