"""What every command module shares: printing to stderr, mapping exceptions to exit codes."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import CertificateError, ExecutionError, InvalidInputError, ScpoError, SolverError, UnsupportedError
from .exit_codes import EXIT_BAD_INPUT, EXIT_FAILED

__all__ = ["err", "fail", "exit_code_of"]


def err(msg: str) -> None:
    """Print ``msg`` on stderr.

    Parameters
    ----------
    msg : str
    """
    typer.echo(msg, err=True)


def exit_code_of(exc: ScpoError) -> int:
    """The exit code of an scpo exception: 2 bad input, 1 a failed certificate or solver.

    Parameters
    ----------
    exc : ScpoError

    Returns
    -------
    int
    """
    if isinstance(exc, (InvalidInputError, UnsupportedError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def fail(exc: BaseException) -> typer.Exit:
    """Print a one-line message for ``exc`` and return the matching :class:`typer.Exit`.

    Parameters
    ----------
    exc : BaseException
        An :class:`~scpo.errors.ScpoError`; anything else is re-raised (a bug, with its traceback).

    Returns
    -------
    typer.Exit
    """
    if isinstance(exc, CertificateError):
        err(f"certificate failed: {exc}")
    elif isinstance(exc, (InvalidInputError, UnsupportedError)):
        err(f"error: {exc}")
    elif isinstance(exc, SolverError):
        err(f"solver failure: {exc}")
    elif isinstance(exc, ExecutionError):
        err(f"execution failed: {exc}")
    else:
        raise exc
    return typer.Exit(exit_code_of(exc))


def format_progress(info: dict[str, Any]) -> str:
    """One progress line of a training run.

    Parameters
    ----------
    info : dict
        From the training loop's progress callback.

    Returns
    -------
    str
    """
    return (
        f"it {info['iteration']:>5}/{info['total']}  f {info['objective']:.5g}  max g {info['max_constraint']:+.3e}  "
        f"accepted {info['accepted']}  rejected {info['rejected']}  violations {info['violations']}  "
        f"L_max {info['L_max']:.3g}  {info['seconds_per_iteration'] * 1e3:.0f} ms/it"
    )
