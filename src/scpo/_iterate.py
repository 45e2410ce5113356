"""State shared by the iterative optimisers: the SCPO projector and the baselines."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .errors import ShapeError

__all__ = ["IterateState"]


class IterateState:
    """The current iterate ``θ`` with ``g(θ)`` and ``f(θ)``, and the counted, shape-checked
    evaluation of the constraints.

    Subclasses set ``_theta`` (d,), ``_g`` (N,), ``_f``, ``_constraints`` (a callable
    ``(k, d) -> (k, N)``), ``evaluations`` and, once ``g(θ₀)`` is known, ``n_constraints``.
    """

    _theta: np.ndarray
    _g: np.ndarray
    _f: float
    _constraints: Callable[[np.ndarray], np.ndarray]
    evaluations: int
    n_constraints: int

    @property
    def theta(self) -> np.ndarray:
        """Current iterate, shape (d,) (a copy)."""
        return self._theta.copy()

    @property
    def g(self) -> np.ndarray:
        """``g(θ)`` at the current iterate, shape (N,) (a copy)."""
        return self._g.copy()

    @property
    def objective_value(self) -> float:
        """``f(θ)`` at the current iterate."""
        return self._f

    def _evaluate(self, thetas: np.ndarray, *, check_n: bool = True) -> tuple[np.ndarray, float]:
        """``g`` at the rows of ``thetas`` (k, d): values (k, N) and the seconds it took.

        Counts ``k`` evaluations. ``check_n=False`` only before ``n_constraints`` is known.
        """
        t0 = time.perf_counter()
        out = np.asarray(self._constraints(thetas), dtype=float)
        elapsed = time.perf_counter() - t0
        self.evaluations += thetas.shape[0]
        if out.ndim != 2 or out.shape[0] != thetas.shape[0] or (check_n and out.shape[1] != self.n_constraints):
            want = f"({thetas.shape[0]}, {self.n_constraints if check_n else 'N'})"
            raise ShapeError(f"constraints: expected an array of shape {want} for {thetas.shape[0]} parameter vector(s), got {out.shape}")
        return out, elapsed
