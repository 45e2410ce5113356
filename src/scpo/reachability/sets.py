"""Pre-sets, backward reachable sets and invariant sets of constrained linear systems (DESIGN §7).

System ``x⁺ = A x + B u`` with state constraints ``X = {Hx x ≤ hx}`` and input constraints
``U = {Hu u ≤ hu}`` (a :class:`~scpo.systems.LinearSystem`), backup ``u = K x`` with
``A_cl = A + B K`` and the closed-loop constraint set ``X_cl = {x ∈ X : K x ∈ U}``.

* ``Pre_cl(T) = {x ∈ X_cl : A_cl x ∈ T}`` — rows stacked, exact (:func:`closed_loop_pre`).
* ``Pre(T) = {x ∈ X : ∃ u ∈ U, A x + B u ∈ T}`` — the projection onto ``x`` of a polytope in
  ``(x, u)`` (:func:`controlled_pre`).
* ``k``-step backward reachable sets ``R_0 = T``, ``R_k = Pre(R_{k−1})``: the states from which
  the constraints hold at ``t = 0 … k−1`` and ``x_k ∈ T`` — under the backup, or for some input
  sequence (the ``k``-step controllable set). If ``T`` is (control) invariant and inside the
  constraints, "at step ``k``" and "within ``k`` steps" coincide and the sets are nested.
* The maximal positively invariant set ``O_∞`` of ``A_cl`` in a constraint polytope
  (Gilbert & Tan 1991) and the maximal control-invariant set ``C_∞`` (fixed point of
  ``Ω ↦ Ω ∩ Pre(Ω)`` from ``Ω_0 = X``), each with its termination test and a step bound.

The set operations are the exact ones; they are carried out in float64 (row products, HiGHS
LPs with tolerance ``tol``, cddlib's projection), so the stored rows equal the exact rows up to
rounding. Statements about the stored sets are then proved in rational arithmetic by
:mod:`scpo.reachability.exact`.

References
----------
E. G. Gilbert, K. T. Tan, "Linear systems with state and control constraints: the theory and
application of maximal output admissible sets", IEEE TAC 36(9), 1991.
F. Blanchini, S. Miani, *Set-Theoretic Methods in Control*, Birkhäuser, 2nd ed. 2015.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import as_array, check_int, check_nonnegative
from ..errors import InvalidInputError, ShapeError
from ..numerics import CONTAINMENT_TOL
from ..systems import LinearSystem
from .polytope import (
    DEFAULT_TOL,
    Polytope,
    contains,
    intersect,
    is_bounded,
    is_empty,
    normalize,
    preimage,
    project,
    reduce,
)

__all__ = [
    "Progress",
    "ReachableSets",
    "InvariantSet",
    "state_set",
    "input_set",
    "closed_loop_constraints",
    "closed_loop_pre",
    "controlled_pre",
    "backward_reachable_sets",
    "maximal_positively_invariant",
    "backup_invariant_set",
    "maximal_control_invariant",
    "check_system",
    "check_gain",
]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
"""Called after each step with ``{"stage", "step", "total", "facets", "seconds"}``."""


# ---------------------------------------------------------------------------- validation
def check_system(system: Any) -> LinearSystem:
    """Require a :class:`LinearSystem` whose state and input constraint sets are bounded.

    (Emptiness is already refused by ``LinearSystem``.) Boundedness is decided by LP.

    Parameters
    ----------
    system : LinearSystem

    Returns
    -------
    LinearSystem
        ``system``.

    Raises
    ------
    InvalidInputError
        Not a ``LinearSystem``, or ``X`` or ``U`` unbounded.
    """
    if not isinstance(system, LinearSystem):
        raise InvalidInputError(f"system: expected a scpo.systems.LinearSystem, got {type(system).__name__}")
    if not is_bounded(state_set(system)):
        raise InvalidInputError(
            "system.Hx, system.hx: expected a bounded state constraint set {x : Hx x ≤ hx}, got an unbounded one"
        )
    if not is_bounded(input_set(system)):
        raise InvalidInputError(
            "system.Hu, system.hu: expected a bounded input constraint set {u : Hu u ≤ hu}, got an unbounded one"
        )
    return system


def check_gain(system: LinearSystem, K: Any) -> np.ndarray:
    """``K`` as a finite array of shape (m, n).

    Parameters
    ----------
    system : LinearSystem
    K : array_like

    Returns
    -------
    ndarray, shape (m, n)
    """
    return as_array("K", K, shape=(system.m, system.n))


def _check_target(system: LinearSystem, target: Any, name: str = "target") -> Polytope:
    if not isinstance(target, Polytope):
        raise InvalidInputError(f"{name}: expected a Polytope, got {type(target).__name__}")
    if target.dim != system.n:
        raise ShapeError(f"{name}: expected a polytope in R^{system.n} (the state dimension), got dimension {target.dim}")
    if is_empty(target):
        raise InvalidInputError(f"{name}: expected a non-empty polytope, got an empty one")
    return target


def state_set(system: LinearSystem) -> Polytope:
    """The state constraint set ``X = {x : Hx x ≤ hx}`` of ``system`` (a :class:`LinearSystem`).

    Parameters
    ----------
    system : LinearSystem

    Returns
    -------
    Polytope
        In ``Rⁿ``, the rows of ``Hx``.
    """
    return Polytope(H=system.Hx, h=system.hx)


def input_set(system: LinearSystem) -> Polytope:
    """The input constraint set ``U = {u : Hu u ≤ hu}``.

    Parameters
    ----------
    system : LinearSystem
        Provides ``Hu`` (q, m) and ``hu`` (q,).

    Returns
    -------
    Polytope
        In ``Rᵐ``.
    """
    return Polytope(H=system.Hu, h=system.hu)


# ---------------------------------------------------------------------------- one step
def closed_loop_constraints(system: LinearSystem, K: np.ndarray, tol: float = DEFAULT_TOL) -> Polytope:
    """``X_cl = {x : Hx x ≤ hx, Hu K x ≤ hu}`` (reduced).

    Parameters
    ----------
    system : LinearSystem
    K : array_like, shape (m, n)
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
    """
    K = check_gain(system, K)
    return reduce(intersect(state_set(system), preimage(input_set(system), K)), tol)


def closed_loop_pre(target: Polytope, system: LinearSystem, K: np.ndarray, tol: float = DEFAULT_TOL) -> Polytope:
    """``Pre_cl(T) = {x : Hx x ≤ hx, Hu K x ≤ hu, H_T (A + BK) x ≤ h_T}`` (rows stacked, reduced).

    Parameters
    ----------
    target : Polytope
        ``T`` in ``Rⁿ``.
    system : LinearSystem
    K : array_like, shape (m, n)
    tol : float
        Redundancy tolerance of :func:`~scpo.reachability.polytope.reduce`.

    Returns
    -------
    Polytope
    """
    K = check_gain(system, K)
    if not isinstance(target, Polytope) or target.dim != system.n:
        raise ShapeError(f"target: expected a Polytope of dimension {system.n}, got {target!r}")
    Acl = system.A + system.B @ K
    return reduce(intersect(state_set(system), preimage(input_set(system), K), preimage(target, Acl)), tol)


def controlled_pre(target: Polytope, system: LinearSystem, tol: float = DEFAULT_TOL) -> Polytope:
    """``Pre(T) = {x ∈ X : ∃ u ∈ U, A x + B u ∈ T}``.

    The set is the projection onto the first ``n`` coordinates of the polytope
    ``{(x, u) : Hx x ≤ hx, Hu u ≤ hu, H_T (A x + B u) ≤ h_T}`` in ``R^{n+m}`` (cddlib block
    elimination of ``u``, then LP redundancy removal).

    Parameters
    ----------
    target : Polytope
        ``T`` in ``Rⁿ``.
    system : LinearSystem
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
    """
    if not isinstance(target, Polytope) or target.dim != system.n:
        raise ShapeError(f"target: expected a Polytope of dimension {system.n}, got {target!r}")
    n, m = system.n, system.m
    T = normalize(target)
    H = np.vstack(
        [
            np.hstack([system.Hx, np.zeros((system.Hx.shape[0], m))]),
            np.hstack([np.zeros((system.Hu.shape[0], n)), system.Hu]),
            np.hstack([T.H @ system.A, T.H @ system.B]),
        ]
    )
    h = np.concatenate([system.hx, system.hu, T.h])
    return project(Polytope(H=H, h=h), n, tol)


# ---------------------------------------------------------------------------- sequences
@dataclass(frozen=True)
class ReachableSets:
    """The ``k``-step backward reachable sets ``R_0 = T, R_1, …, R_N`` of a target.

    Attributes
    ----------
    mode : {"backup", "controlled"}
        Under ``u = Kx``, or for some input sequence in ``U`` (controllable sets).
    target : Polytope
        ``T = R_0``.
    sets : tuple of Polytope
        ``sets[k] = R_k`` for ``k = 0 … N`` (reduced H-representations).
    seconds : tuple of float
        Wall time of each step (``seconds[0] = 0``).
    """

    mode: str
    target: Polytope
    sets: tuple[Polytope, ...]
    seconds: tuple[float, ...]

    @property
    def horizon(self) -> int:
        """``N``."""
        return len(self.sets) - 1

    @property
    def facets(self) -> list[int]:
        """Number of rows of each ``R_k`` (facets, the sets being reduced)."""
        return [P.n_rows for P in self.sets]


def backward_reachable_sets(
    target: Polytope,
    system: LinearSystem,
    steps: int,
    *,
    K: np.ndarray | None = None,
    tol: float = DEFAULT_TOL,
    progress: Progress | None = None,
) -> ReachableSets:
    """``N``-step backward reachable sets of ``target``, all of them.

    ``R_0 = T`` and ``R_k = Pre_cl(R_{k−1})`` with ``K`` (the backup's sets: the closed loop
    satisfies ``X_cl`` at ``t = 0 … k−1`` and ``x_k ∈ T``) or ``R_k = Pre(R_{k−1})`` without
    (the ``k``-step controllable sets: some inputs in ``U`` keep the state in ``X`` at
    ``t = 0 … k−1`` and reach ``T`` at ``t = k``).

    Parameters
    ----------
    target : Polytope
        Non-empty, dimension ``n``.
    system : LinearSystem
        With bounded ``X`` and ``U``.
    steps : int
        ``N ≥ 0``.
    K : array_like, shape (m, n), optional
        Backup gain; ``None`` for the controlled system.
    tol : float
        LP tolerance of the redundancy removal.
    progress : callable, optional
        See :data:`Progress`.

    Returns
    -------
    ReachableSets
        ``N + 1`` sets.

    Raises
    ------
    InvalidInputError, ShapeError, NonFiniteError
        Bad ``system``, ``target``, ``K`` or ``steps``.
    """
    system = check_system(system)
    target = _check_target(system, target)
    steps = check_int("steps", steps, minimum=0)
    tol = check_nonnegative("tol", tol)
    if K is not None:
        K = check_gain(system, K)
    mode = "backup" if K is not None else "controlled"
    sets = [reduce(target, tol)]
    seconds = [0.0]
    for k in range(1, steps + 1):
        t0 = time.perf_counter()
        nxt = closed_loop_pre(sets[-1], system, K, tol) if K is not None else controlled_pre(sets[-1], system, tol)
        sets.append(nxt)
        seconds.append(time.perf_counter() - t0)
        logger.debug("%s step %d/%d: %d facets, %.3f s", mode, k, steps, nxt.n_rows, seconds[-1])
        if progress is not None:
            progress({"stage": mode, "step": k, "total": steps, "facets": nxt.n_rows, "seconds": seconds[-1]})
    return ReachableSets(mode=mode, target=target, sets=tuple(sets), seconds=tuple(seconds))


@dataclass(frozen=True)
class InvariantSet:
    """Result of an invariant-set iteration.

    Attributes
    ----------
    kind : {"positively invariant", "control invariant"}
    polytope : Polytope
        ``O_t`` (or ``Ω_t``) at the last step. When ``converged`` it is the maximal invariant
        set; otherwise it is an outer approximation of it (every iterate contains it).
    converged : bool
        The finite-termination test passed within ``max_steps``.
    steps : int
        Iterations performed (for Gilbert–Tan: the ``t*`` with ``O_∞ = O_{t*}`` when converged).
    max_steps : int
    message : str
    seconds : float
    """

    kind: str
    polytope: Polytope
    converged: bool
    steps: int
    max_steps: int
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary with the H-representation."""
        return {
            "kind": self.kind,
            "converged": self.converged,
            "steps": self.steps,
            "max_steps": self.max_steps,
            "message": self.message,
            "seconds": self.seconds,
            "facets": self.polytope.n_rows,
            **self.polytope.to_dict(),
        }


def maximal_positively_invariant(
    A_cl: np.ndarray,
    constraint: Polytope,
    *,
    max_steps: int = 200,
    tol: float = DEFAULT_TOL,
    progress: Progress | None = None,
) -> InvariantSet:
    """Maximal positively invariant set of ``x⁺ = A_cl x`` inside ``C = {x : G x ≤ g}``.

    Gilbert–Tan iteration: ``O_t = {x : G A_clᵏ x ≤ g, k = 0 … t}``. If every row of
    ``G A_cl^{t+1}`` is redundant on ``O_t`` (one LP per row, up to
    :data:`~scpo.numerics.CONTAINMENT_TOL`), then ``O_{t+1} = O_t`` and
    ``O_∞ = O_t`` (finite termination). For Schur-stable ``A_cl`` and bounded ``C`` with the
    origin in its interior this happens after finitely many steps (Gilbert & Tan 1991, Thm 4.1);
    otherwise the iteration stops at ``max_steps`` and says so. Every ``O_t`` contains ``O_∞``.

    Parameters
    ----------
    A_cl : array_like, shape (n, n)
    constraint : Polytope
        ``C``, dimension ``n``, non-empty.
    max_steps : int
    tol : float
    progress : callable, optional

    Returns
    -------
    InvariantSet
    """
    A_cl = as_array("A_cl", A_cl, ndim=2)
    if A_cl.shape[0] != A_cl.shape[1]:
        raise ShapeError(f"A_cl: expected a square matrix, got shape {A_cl.shape}")
    if not isinstance(constraint, Polytope) or constraint.dim != A_cl.shape[0]:
        raise ShapeError(f"constraint: expected a Polytope of dimension {A_cl.shape[0]}, got {constraint!r}")
    if is_empty(constraint):
        raise InvalidInputError("constraint: expected a non-empty polytope, got an empty one")
    max_steps = check_int("max_steps", max_steps, minimum=1)
    tol = check_nonnegative("tol", tol)
    t_start = time.perf_counter()
    C = normalize(constraint)
    O = reduce(C, tol)
    Ak = np.eye(A_cl.shape[0])
    for t in range(1, max_steps + 1):
        t0 = time.perf_counter()
        Ak = Ak @ A_cl
        new = Polytope(H=C.H @ Ak, h=C.h)
        if contains(new, O, max(tol, CONTAINMENT_TOL)):
            msg = f"Gilbert–Tan terminated: the rows of step {t} are redundant, so O_∞ = O_{t - 1}"
            return InvariantSet("positively invariant", O, True, t - 1, max_steps, msg, time.perf_counter() - t_start)
        O = reduce(intersect(O, new), tol)
        if is_empty(O):
            msg = f"O_{t} is empty: no state satisfies the constraints for {t} steps"
            return InvariantSet("positively invariant", O, True, t, max_steps, msg, time.perf_counter() - t_start)
        if progress is not None:
            progress({"stage": "positively invariant", "step": t, "total": max_steps, "facets": O.n_rows, "seconds": time.perf_counter() - t0})
    msg = (
        f"Gilbert–Tan did not terminate within max_steps = {max_steps}: O_{max_steps} is returned, an outer "
        "approximation of the maximal positively invariant set (is A_cl Schur stable and C bounded with 0 inside?)"
    )
    logger.warning(msg)
    return InvariantSet("positively invariant", O, False, max_steps, max_steps, msg, time.perf_counter() - t_start)


def backup_invariant_set(
    system: LinearSystem, K: np.ndarray, *, max_steps: int = 200, tol: float = DEFAULT_TOL, progress: Progress | None = None
) -> InvariantSet:
    """Maximal positively invariant set of the backup ``x⁺ = (A + BK) x`` inside ``X_cl``.

    :func:`maximal_positively_invariant` of ``A + BK`` in :func:`closed_loop_constraints`.

    Parameters
    ----------
    system : LinearSystem
        With bounded ``X`` and ``U``.
    K : array_like, shape (m, n)
        The backup gain.
    max_steps, tol, progress
        As for :func:`maximal_positively_invariant`.

    Returns
    -------
    InvariantSet
        Of kind ``"positively invariant"``.
    """
    system = check_system(system)
    K = check_gain(system, K)
    return maximal_positively_invariant(
        system.A + system.B @ K, closed_loop_constraints(system, K, tol), max_steps=max_steps, tol=tol, progress=progress
    )


def maximal_control_invariant(
    system: LinearSystem, *, max_steps: int = 100, tol: float = DEFAULT_TOL, progress: Progress | None = None
) -> InvariantSet:
    """Maximal control-invariant set ``C_∞`` of ``x⁺ = Ax + Bu`` in ``X`` with ``u ∈ U``.

    Iteration ``Ω_0 = X``, ``Ω_{k+1} = Ω_k ∩ Pre(Ω_k)``; it terminates when
    ``Ω_k ⊆ Ω_{k+1}`` (LP containment up to
    :data:`~scpo.numerics.CONTAINMENT_TOL`), and then ``C_∞ = Ω_k``. Finite termination is not
    guaranteed in general (the fixed point may only be approached in the limit); the iteration
    stops at ``max_steps`` and says so, returning ``Ω_{max_steps} ⊇ C_∞``.

    Parameters
    ----------
    system : LinearSystem
        With bounded ``X`` and ``U``.
    max_steps : int
    tol : float
        Redundancy tolerance.
    progress : callable, optional

    Returns
    -------
    InvariantSet
    """
    system = check_system(system)
    max_steps = check_int("max_steps", max_steps, minimum=1)
    tol = check_nonnegative("tol", tol)
    t_start = time.perf_counter()
    omega = reduce(state_set(system), tol)
    for k in range(1, max_steps + 1):
        t0 = time.perf_counter()
        nxt = reduce(intersect(omega, controlled_pre(omega, system, tol)), tol)
        if is_empty(nxt):
            msg = f"Ω_{k} is empty: no control-invariant set exists inside X"
            return InvariantSet("control invariant", nxt, True, k, max_steps, msg, time.perf_counter() - t_start)
        if contains(nxt, omega, max(tol, CONTAINMENT_TOL)):
            msg = f"terminated: Ω_{k - 1} ⊆ Ω_{k} (LP), so C_∞ = Ω_{k - 1}"
            return InvariantSet("control invariant", omega, True, k - 1, max_steps, msg, time.perf_counter() - t_start)
        omega = nxt
        if progress is not None:
            progress({"stage": "control invariant", "step": k, "total": max_steps, "facets": omega.n_rows, "seconds": time.perf_counter() - t0})
    msg = (
        f"the control-invariant iteration did not terminate within max_steps = {max_steps}: Ω_{max_steps} is "
        "returned, an outer approximation of the maximal control-invariant set"
    )
    logger.warning(msg)
    return InvariantSet("control invariant", omega, False, max_steps, max_steps, msg, time.perf_counter() - t_start)
