"""What every command module shares: printing to stderr, mapping exceptions to exit codes."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import CertificateError, ExecutionError, InvalidInputError, ScpoError, SolverError, UnsupportedError
from .exit_codes import EXIT_BAD_INPUT, EXIT_FAILED

__all__ = ["err", "fail", "exit_code_of", "ScpoCommand", "apply_thread_policy", "THREAD_VARIABLES"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""The variables torch (intra-op threads) and numpy's BLAS read once, at import."""


def apply_thread_policy(environ: Any = None) -> int:
    """Compute threads per scpo process: 1 unless the user chose (``SCPO_NUM_THREADS``, else ``OMP_NUM_THREADS``).

    The work of one operation is small (rollouts of a few hundred states through an MLP of width
    64, an SOCP with tens of variables), so extra threads mostly wait for each other, and on a
    loaded machine they fight for cores: measured on the 2-core machine under a load of 6, the
    demo takes 0.73 s per iteration with 1 thread and 8.9 s with 2. The variables are set before
    torch or numpy is imported (the command line calls this first), so child processes (process
    pools of :mod:`scpo.distributed`) inherit them. Results depend on the thread count (parallel
    reductions add in another order): ``benchmarks/check_theta_sequence.py`` sets its own.

    Parameters
    ----------
    environ : mapping, optional
        The environment to adjust (default ``os.environ``).

    Returns
    -------
    int
        The thread count in effect.

    Raises
    ------
    InvalidInputError
        ``SCPO_NUM_THREADS`` is not a positive integer.
    """
    import os
    import sys

    env = os.environ if environ is None else environ
    chosen = env.get("SCPO_NUM_THREADS")
    if chosen is not None:
        if not chosen.strip().isdigit() or int(chosen) < 1:
            raise InvalidInputError(f"SCPO_NUM_THREADS: expected a positive integer, got {chosen!r}")
        n = int(chosen)
        for var in THREAD_VARIABLES:
            env[var] = str(n)
    else:
        omp = env.get("OMP_NUM_THREADS", "")
        n = int(omp) if omp.strip().isdigit() and int(omp) >= 1 else 1
        for var in THREAD_VARIABLES:
            env.setdefault(var, str(n))
    if environ is None and "torch" in sys.modules:  # imported already (in-process use): set it directly
        sys.modules["torch"].set_num_threads(n)
    return n


class ScpoCommand(typer.core.TyperCommand):
    """A typer command whose ``--help`` is shown as a flag, without a ``<bool>`` value."""

    def get_help_option(self, ctx: Any) -> Any:  # noqa: D102 - click's hook
        opt = super().get_help_option(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt


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
        + (f"  stalled {info['stalled']} it" if info.get("stalled") else "")
    )
