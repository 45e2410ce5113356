"""Tasks whose constraint rows come from a black-box evaluator (a simulator, a Gymnasium vector env).

SCPO never differentiates ``g``: it only evaluates it at parameter vectors (DESIGN §3). So any
evaluator that maps a batch of parameter vectors to constraint values can drive the projector:

    g(θ_b) = evaluator(θ_b) ∈ R^N,   b = 1 … B,   safe iff every entry ≤ 0.

:class:`BlackBoxTask` is the protocol for such tasks. A subclass (in any importable module; train
it with ``scpo train module:Class --out RUN``) sets ``name`` and ``config_class`` (a frozen
dataclass of its settings) and provides, in ``__init__`` before ``super().__init__``:

* ``problem`` — a :class:`~scpo.systems.ClosedLoopProblem` describing the backup ``π_safe(x) = Kx``
  and the nominal model it was designed on, *without* a terminal set (``P = γ = None``): nothing
  about the black box may be read from it, and without ``X_f`` no reach-avoid or region claim is
  derived from the nominal model;
* ``constraint_states`` — the initial states of the evaluator's rollouts (S, n) (for labels);
* ``safety_states`` — the same or a superset (reports plot them);

and implements the abstract methods of :class:`~scpo.tasks.base.Task` (``build_policy``,
``objective_and_grad``, ``quality``, ``quality_summary``, ``report_paragraphs``, ``meaning_of_g``)
plus :meth:`evaluate_rows` (B, d) -> (B, N) and :meth:`row_labels`.

Evidence level: rows from a black box are ``evaluated`` at the finitely many rollouts it ran —
never ``sound``. :attr:`constraint_level` says so, :meth:`describe` writes it to the run's
``config.json`` (``"constraint_source"``), and :meth:`base_claims` states it in the base certificate.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from ..errors import UnsupportedError
from ..evidence import Claim, Level
from .base import Task

__all__ = ["BlackBoxTask"]


class BlackBoxTask(Task):
    """Base class of tasks whose ``g`` comes from an external evaluator (module docstring).

    Parameters
    ----------
    config : dataclass instance of :attr:`config_class`
    seed : int
    """

    constraint_level: ClassVar[str] = Level.EVALUATED.value
    """The level of every constraint row: ``evaluated`` (rollouts of a black box), never ``sound``."""
    evaluator_description: ClassVar[str] = "a black-box evaluator"
    """What produces the rows, in a few words (for ``config.json`` and reports)."""

    @abc.abstractmethod
    def evaluate_rows(self, thetas: np.ndarray) -> np.ndarray:
        """The constraint rows at a batch of parameter vectors, ``≤ 0`` safe.

        Parameters
        ----------
        thetas : ndarray, shape (B, d)

        Returns
        -------
        ndarray, shape (B, N)
            Finite values; NaN or infinity counts as a violation (the projector never accepts it).
        """

    @abc.abstractmethod
    def row_labels(self) -> list[str]:
        """A short description of each of the ``N`` rows, in order."""

    def constraints(self, thetas: np.ndarray) -> np.ndarray:
        """``g`` from :meth:`evaluate_rows` (non-finite values are replaced by ``+inf``).

        Parameters
        ----------
        thetas : ndarray, shape (B, d)

        Returns
        -------
        ndarray, shape (B, N)
        """
        g = np.asarray(self.evaluate_rows(np.atleast_2d(np.asarray(thetas, dtype=float))), dtype=float)
        return np.where(np.isfinite(g), g, np.inf)

    def constraint_labels(self) -> list[str]:
        """:meth:`row_labels`."""
        return self.row_labels()

    def add_constraint_states(self, states: np.ndarray) -> tuple[Any, np.ndarray]:
        """Refused: the rows of a black box cannot be extended from a region certificate (there is none).

        Parameters
        ----------
        states : ndarray, shape (k, n)

        Raises
        ------
        UnsupportedError
            Always.
        """
        raise UnsupportedError(
            f"{type(self).__name__}: its rows come from {self.evaluator_description} (evaluated only); no sound region "
            "certificate, and so no sound gate, applies to it"
        )

    def base_claims(self, theta0: np.ndarray, g0: np.ndarray) -> list[Claim]:
        """The backup's evaluated feasibility, and the statement that every row is only evaluated.

        Parameters
        ----------
        theta0 : ndarray, shape (d,)
        g0 : ndarray, shape (N,)

        Returns
        -------
        list of Claim
        """
        return super().base_claims(theta0, g0) + [
            Claim(
                name="constraint_rows_evaluated_only",
                statement=(f"The constraint rows come from {self.evaluator_description}: every safety statement about them is "
                           "evaluated at the rollouts run, never sound; no region certificate applies."),
                level=Level.EVALUATED,
                holds=True,
                details={"constraint_level": self.constraint_level, "required": False, "evaluator": self.evaluator_description},
            )
        ]

    def describe(self) -> dict[str, Any]:
        """The base description plus where the rows come from and their level."""
        n_rows = len(self.row_labels())
        return {**super().describe(), "constraints": n_rows,
                "constraint_source": {"evaluator": self.evaluator_description, "level": self.constraint_level}}
