"""The ``scpo`` command line: a thin typed layer over the library, one module per command.

Only this package prints and picks exit codes (:mod:`scpo.cli.exit_codes`). Every command module
imports the library lazily inside its command, so ``scpo --help`` loads neither torch nor cvxpy.
"""

from __future__ import annotations

import logging
import sys

import typer

from . import audit, bench, certify, reach, report, train, verify_lipschitz

__all__ = ["app", "main"]

app = typer.Typer(
    name="scpo",
    help="Certified safe policy learning: SCPO training, certificates, reports and audits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(train.train)
app.command()(train.demo)
app.command()(certify.certify)
app.command("verify-lipschitz")(verify_lipschitz.verify_lipschitz)
app.command()(reach.reach)
app.command()(report.report)
app.command()(audit.audit)
app.command()(bench.bench)


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="scpo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
