"""The optimiser protocol shared by the SCPO projector and the baselines, and its common core.

Every iterative method of scpo (:class:`scpo.projector.Projector`, :class:`scpo.baselines.Penalty`,
:class:`scpo.baselines.LBSGD`) minimises ``f(θ)`` over ``θ ∈ R^d`` while the constraints
``g(θ) ∈ R^N`` (``g ≤ 0`` required) are only *evaluated*, in batches ``(B, d) -> (B, N)``.
They implement one protocol and share one core, both :class:`IterateState`:

* the current iterate ``θ`` with ``g(θ)`` and ``f(θ)``;
* the counted, shape-checked evaluation of ``g`` (every parameter vector passed to the
  constraint function counts as one evaluation);
* the shape-checked gradient call;
* the clock of one iteration (:class:`StepClock`: wall, evaluation and gradient time and the
  evaluations it spent), from which every record's common fields are filled;
* the arrays of :meth:`IterateState.state_dict` that every method has (``theta``, ``g``,
  ``objective``), and the state of a :class:`numpy.random.Generator` as an array.

The contract every implementation keeps (``tests/test_iterate.py`` runs one suite over all of
them): an iterate whose ``g`` is not finite is never accepted; every evaluation is counted, in
the record of the iteration that spent it and in ``evaluations``; and
``load_state_dict(state_dict())`` on a fresh optimiser continues exactly as the original.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import as_array
from .errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError

__all__ = ["IterateState", "StepClock", "check_config", "rng_state", "restore_rng"]


def check_config(config: Any, expected: type) -> Any:
    """``config`` if it is an instance of ``expected``.

    Parameters
    ----------
    config : object
        The configuration passed to an optimiser.
    expected : type
        Its configuration class.

    Returns
    -------
    object
        ``config``.

    Raises
    ------
    UnsupportedError
        When ``config`` is of another type (a ``TypeError``).
    """
    if not isinstance(config, expected):
        raise UnsupportedError(f"config: expected a {expected.__name__}, got {type(config).__name__}")
    return config


class StepClock:
    """The bookkeeping every iteration's record shares: timers and the evaluations spent.

    Created at the start of an iteration; :meth:`core` fills the record fields that the
    projector's :class:`~scpo.projector.StepRecord` and the baselines'
    :class:`~scpo.baselines.BaselineRecord` have in common.

    Parameters
    ----------
    optimiser : IterateState
        The optimiser whose iteration this clock times (its ``evaluations`` now are the baseline).

    Attributes
    ----------
    eval_time : float
        Seconds spent evaluating ``g`` in this iteration (add to it).
    grad_time : float
        Seconds spent computing gradients in this iteration (add to it).
    """

    def __init__(self, optimiser: IterateState) -> None:
        self._opt = optimiser
        self._t_start = time.perf_counter()
        self._evals_before = optimiser.evaluations
        self.eval_time = 0.0
        self.grad_time = 0.0

    def core(self) -> dict[str, Any]:
        """The common record fields as they stand now.

        Returns
        -------
        dict
            ``iteration, objective, max_constraint, evaluations`` (spent in this iteration),
            ``evaluation_time_s, gradient_time_s, wall_time_s``.
        """
        opt = self._opt
        return {
            "iteration": opt.iteration,
            "objective": opt._f,
            "max_constraint": float(np.max(opt._g)),
            "evaluations": opt.evaluations - self._evals_before,
            "evaluation_time_s": self.eval_time,
            "gradient_time_s": self.grad_time,
            "wall_time_s": time.perf_counter() - self._t_start,
        }


class IterateState(abc.ABC):
    """The optimiser protocol of scpo and its core: the current iterate ``θ`` with ``g(θ)`` and
    ``f(θ)``, and the counted, shape-checked evaluation of the constraints.

    An optimiser implements :meth:`step`, :meth:`state_dict` and :meth:`load_state_dict`; the
    core gives it ``theta``, ``g``, ``objective_value`` and the counters ``evaluations``
    (parameter vectors at which ``g`` was evaluated, ``g(θ₀)`` included) and ``iteration``
    (iterations run, rejected ones included). Subclasses call :meth:`_start` in ``__init__``; it
    sets ``dim``, ``evaluations``, ``n_constraints``, ``iteration`` and the private ``_theta``
    (d,), ``_g`` (N,), ``_f`` and the callables.
    """

    _theta: np.ndarray
    _g: np.ndarray
    _f: float
    _objective: Callable[[np.ndarray], float]
    _objective_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]]
    _constraints: Callable[[np.ndarray], np.ndarray]
    dim: int
    evaluations: int
    n_constraints: int
    iteration: int

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

    # ------------------------------------------------------------------ the protocol
    @abc.abstractmethod
    def step(self) -> Any:
        """Run one iteration and return its record (``accepted``, ``reason``, ``evaluations``, …)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that let a fresh optimiser (same arguments) continue exactly where this one stands."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict`.

        Parameters
        ----------
        state : dict of str to ndarray
            From :meth:`state_dict` of an optimiser built with the same arguments.
        """

    # ------------------------------------------------------------------ set-up
    def _start(self, theta0: np.ndarray, g0: np.ndarray | None, oracles: tuple[Callable[..., Any], ...], *,
               finite_g: bool = True, check_start: Callable[[np.ndarray], None] | None = None) -> None:
        """Validate ``θ₀``, evaluate ``g(θ₀)`` unless given, check it, then evaluate ``f(θ₀)``.

        ``oracles`` is ``(objective, objective_and_grad, constraints)``. ``check_start(g0)`` (e.g.
        a feasibility test) runs before the objective is evaluated. ``finite_g=False`` lets a start
        with non-finite ``g`` through (a penalty method).
        """
        self._theta = as_array("theta0", theta0, ndim=1).copy()
        self.dim = self._theta.size
        if self.dim == 0:
            raise ShapeError("theta0: expected at least one parameter, got an empty vector")
        self._objective, self._objective_and_grad, self._constraints = oracles
        self.evaluations = 0
        self.iteration = 0
        if g0 is None:
            g0 = self._evaluate(self._theta[None, :], check_n=False)[0][0]
        g0 = as_array("g(theta0)", g0, ndim=1, finite=finite_g)
        self.n_constraints = g0.size
        if self.n_constraints == 0:
            raise ShapeError("g(theta0): expected at least one constraint row, got none")
        if check_start is not None:
            check_start(g0)
        self._g = g0.copy()
        self._f = float(self._objective(self._theta))
        if not np.isfinite(self._f):
            raise NonFiniteError(f"objective(theta0): expected a finite value, got {self._f}")

    # ------------------------------------------------------------------ oracles
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

    def _gradient(self, clock: StepClock) -> tuple[float, np.ndarray]:
        """``(f(θ), ∇f(θ))`` at the current iterate, shape-checked; the time goes to ``clock``."""
        t0 = time.perf_counter()
        f, grad = self._objective_and_grad(self._theta)
        grad = np.asarray(grad, dtype=float)
        clock.grad_time += time.perf_counter() - t0
        if grad.shape != (self.dim,):
            raise ShapeError(f"objective_and_grad: expected a gradient of shape ({self.dim},), got {grad.shape}")
        return float(f), grad

    # ------------------------------------------------------------------ persistence
    def _iterate_arrays(self) -> dict[str, np.ndarray]:
        """``theta``, ``g`` and ``objective`` (shape (1,)) of the current iterate, copied."""
        return {"theta": self._theta.copy(), "g": self._g.copy(), "objective": np.array([self._f])}

    def _load_iterate_arrays(self, state: dict[str, np.ndarray], *, finite_g: bool = True) -> None:
        """Restore ``theta``, ``g`` and ``objective`` from :meth:`_iterate_arrays` (shapes checked)."""
        for key in ("theta", "g", "objective"):
            if key not in state:
                raise InvalidInputError(f"state: expected an entry {key!r}, got keys {sorted(state)}")
        self._theta = as_array("theta", state["theta"], shape=(self.dim,)).copy()
        self._g = as_array("g", state["g"], shape=(self.n_constraints,), finite=finite_g).copy()
        self._f = float(np.asarray(state["objective"])[0])


def rng_state(rng: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 generator as six unsigned 64-bit integers.

    Parameters
    ----------
    rng : numpy.random.Generator
        A generator over :class:`numpy.random.PCG64` (``numpy.random.default_rng``).

    Returns
    -------
    ndarray, shape (6,), dtype uint64
        ``state`` and ``inc`` (128 bits each, high word first), ``has_uint32``, ``uinteger``.

    Raises
    ------
    UnsupportedError
        For another bit generator.
    """
    st = rng.bit_generator.state
    if st.get("bit_generator") != "PCG64":
        raise UnsupportedError(f"rng: expected a PCG64 generator, got {st.get('bit_generator')!r}")
    mask = (1 << 64) - 1
    s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
    return np.array([s >> 64, s & mask, inc >> 64, inc & mask, int(st["has_uint32"]), int(st["uinteger"])], dtype=np.uint64)


def restore_rng(rng: np.random.Generator, state: np.ndarray) -> None:
    """Set a PCG64 generator to a state from :func:`rng_state`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Changed in place.
    state : ndarray, shape (6,)
        From :func:`rng_state`.
    """
    arr = np.asarray(state)
    if arr.shape != (6,):
        raise ShapeError(f"rng: expected a state of shape (6,), got {arr.shape}")
    w = [int(v) for v in arr.astype(np.uint64)]
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }
