"""The ``scpo`` command line: a thin typed layer over the library, one module per command.

Only this package prints and picks exit codes (:mod:`scpo.cli.exit_codes`). Every command module
imports the library lazily inside its command, so ``scpo --help`` loads neither torch nor cvxpy.
"""

from __future__ import annotations

import logging
import sys

import typer

from . import audit, bench, certify, reach, report, train, verify_lipschitz
from ._common import ScpoCommand

__all__ = ["app", "main"]

app = typer.Typer(
    name="scpo",
    help="Certified safe policy learning: SCPO training, certificates, reports and audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(cls=ScpoCommand)(train.train)
app.command(cls=ScpoCommand)(train.demo)
app.command(cls=ScpoCommand)(certify.certify)
app.command("verify-lipschitz", cls=ScpoCommand)(verify_lipschitz.verify_lipschitz)
app.command(cls=ScpoCommand)(reach.reach)
app.command(cls=ScpoCommand)(report.report)
app.command(cls=ScpoCommand)(audit.audit)
app.command(cls=ScpoCommand)(bench.bench)


def main() -> None:
    """Console entry point (applies the thread policy, :func:`scpo.cli._common.apply_thread_policy`, first)."""
    from ..errors import InvalidInputError
    from ._common import apply_thread_policy, err
    from .exit_codes import EXIT_BAD_INPUT

    try:
        apply_thread_policy()
    except InvalidInputError as exc:
        err(f"error: {exc}")
        sys.exit(EXIT_BAD_INPUT)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="scpo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
