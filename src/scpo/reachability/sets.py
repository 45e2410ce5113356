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
    empty as empty_polytope,
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
    "disturbance_support",
    "backward_reachable_sets",
    "maximal_positively_invariant",
    "backup_invariant_set",
    "robust_backup_invariant_set",
    "maximal_control_invariant",
    "same_set_rows",
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


def disturbance_support(H: np.ndarray, disturbance: Polytope | None) -> np.ndarray:
    """``σ_W(H_i) = max {H_i w : w ∈ W}`` for every row of ``H`` (zeros without a disturbance).

    The maximum over the (cdd) vertices of ``W``, confirmed by one LP per row and the larger value
    kept, so that the tightening ``h_i − σ_W(H_i)`` errs on the safe side.

    Parameters
    ----------
    H : ndarray, shape (p, n)
    disturbance : Polytope or None
        ``W``, bounded and non-empty.

    Returns
    -------
    ndarray, shape (p,)
    """
    if disturbance is None:
        return np.zeros(H.shape[0])
    from .operations import support_values

    return support_values(disturbance, H)


def _check_disturbance(system: LinearSystem, disturbance: Any) -> Polytope | None:
    if disturbance is None:
        return None
    if not isinstance(disturbance, Polytope) or disturbance.dim != system.n:
        raise ShapeError(f"disturbance: expected a Polytope W in R^{system.n} (additive on the state), got {disturbance!r}")
    if not is_bounded(disturbance) or is_empty(disturbance):
        raise InvalidInputError("disturbance: expected a bounded, non-empty polytope W")
    return disturbance


def closed_loop_pre(
    target: Polytope, system: LinearSystem, K: np.ndarray, tol: float = DEFAULT_TOL, *, disturbance: Polytope | None = None
) -> Polytope:
    """``Pre_cl(T) = {x : Hx x ≤ hx, Hu K x ≤ hu, H_T (A + BK) x ≤ h_T − σ_W(H_T)}`` (rows stacked, reduced).

    Without a disturbance ``σ_W = 0``. With ``x⁺ = (A + BK) x + w``, ``w ∈ W``, the last block is
    ``(A + BK) x ∈ T ⊖ W``: the robust pre-set (every disturbance lands in ``T``).

    Parameters
    ----------
    target : Polytope
        ``T`` in ``Rⁿ``.
    system : LinearSystem
    K : array_like, shape (m, n)
    tol : float
        Redundancy tolerance of :func:`~scpo.reachability.polytope.reduce`.
    disturbance : Polytope, optional
        ``W``: bounded, in ``Rⁿ``.

    Returns
    -------
    Polytope
    """
    K = check_gain(system, K)
    if not isinstance(target, Polytope) or target.dim != system.n:
        raise ShapeError(f"target: expected a Polytope of dimension {system.n}, got {target!r}")
    Acl = system.A + system.B @ K
    T = normalize(target) if disturbance is not None else target
    if disturbance is not None:
        T = Polytope(H=T.H, h=T.h - disturbance_support(T.H, disturbance))
    return reduce(intersect(state_set(system), preimage(input_set(system), K), preimage(T, Acl)), tol)


def controlled_pre(target: Polytope, system: LinearSystem, tol: float = DEFAULT_TOL, *, disturbance: Polytope | None = None) -> Polytope:
    """``Pre(T) = {x ∈ X : ∃ u ∈ U, A x + B u ∈ T ⊖ W}`` (``W = {0}`` without a disturbance).

    The set is the projection onto the first ``n`` coordinates of the polytope
    ``{(x, u) : Hx x ≤ hx, Hu u ≤ hu, H_T (A x + B u) ≤ h_T − σ_W(H_T)}`` in ``R^{n+m}``
    (:func:`~scpo.reachability.polytope.project`: cddlib block elimination of ``u`` then LP
    redundancy removal when ``n + m ≤ 3``, the hull of the projected vertices above).

    Parameters
    ----------
    target : Polytope
        ``T`` in ``Rⁿ``.
    system : LinearSystem
    tol : float
        Redundancy tolerance.
    disturbance : Polytope, optional
        ``W``: bounded, in ``Rⁿ``.

    Returns
    -------
    Polytope
    """
    if not isinstance(target, Polytope) or target.dim != system.n:
        raise ShapeError(f"target: expected a Polytope of dimension {system.n}, got {target!r}")
    n, m = system.n, system.m
    T = normalize(target)
    hT = T.h - disturbance_support(T.H, disturbance) if disturbance is not None else T.h
    H = np.vstack(
        [
            np.hstack([system.Hx, np.zeros((system.Hx.shape[0], m))]),
            np.hstack([np.zeros((system.Hu.shape[0], n)), system.Hu]),
            np.hstack([T.H @ system.A, T.H @ system.B]),
        ]
    )
    h = np.concatenate([system.hx, system.hu, hT])
    return project(Polytope(H=H, h=h), n, tol)


def same_set_rows(P: Polytope, Q: Polytope, tol: float = 1e-9) -> bool:
    """Whether two reduced polytopes have the same facets: every unit row of each matches a unit row of
    the other within ``tol`` (max-norm over normal and offset).

    A reduced H-representation is unique up to row scaling and order, so this decides set equality
    up to ``tol`` without an LP; it is the fixed-point test of the backward iteration.

    Parameters
    ----------
    P, Q : Polytope
        Reduced, of the same dimension.
    tol : float

    Returns
    -------
    bool
    """
    if P.dim != Q.dim or P.n_rows != Q.n_rows:
        return False
    if P.n_rows == 0:
        return True
    a, b = normalize(P), normalize(Q)
    if a.n_rows != b.n_rows:
        return False
    A = np.hstack([a.H, a.h[:, None]])
    B = np.hstack([b.H, b.h[:, None]])
    D = np.abs(A[:, None, :] - B[None, :, :]).max(axis=2)
    return bool(np.all(D.min(axis=1) <= tol) and np.all(D.min(axis=0) <= tol))


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
        Wall time of each step (``seconds[0] = 0``; ``0`` for the steps after a fixed point).
    fixed_point : int or None
        The first ``k ≥ 1`` with ``R_k = R_{k−1}`` (same facets up to 1e-9, :func:`same_set_rows`),
        when it was reached within the horizon. Then ``R_{k+1} = Pre(R_k) = Pre(R_{k−1}) = R_k``:
        every later set is ``R_k`` and is not recomputed (``sets[j] is sets[k]`` for ``j ≥ k``).
    disturbance : Polytope or None
        ``W`` of the robust sets (``x⁺ = … + w``, ``w ∈ W``), or ``None``.
    """

    mode: str
    target: Polytope
    sets: tuple[Polytope, ...]
    seconds: tuple[float, ...]
    fixed_point: int | None = None
    disturbance: Polytope | None = None

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
    disturbance: Polytope | None = None,
    stop_at_fixed_point: bool = True,
) -> ReachableSets:
    """``N``-step backward reachable sets of ``target``, all of them.

    ``R_0 = T`` and ``R_k = Pre_cl(R_{k−1})`` with ``K`` (the backup's sets: the closed loop
    satisfies ``X_cl`` at ``t = 0 … k−1`` and ``x_k ∈ T``) or ``R_k = Pre(R_{k−1})`` without
    (the ``k``-step controllable sets: some inputs in ``U`` keep the state in ``X`` at
    ``t = 0 … k−1`` and reach ``T`` at ``t = k``). With a disturbance ``W`` the pre-sets are the
    robust ones (every ``w_t ∈ W`` added to the state; for the controlled system the input may
    depend on the current state only).

    When ``R_k = R_{k−1}`` (:func:`same_set_rows`) the iteration has reached its fixed point:
    ``R_j = R_k`` for every ``j ≥ k``, so the remaining sets are filled in without recomputing them
    and ``fixed_point = k`` says where.

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
    disturbance : Polytope, optional
        ``W`` (bounded, in ``Rⁿ``): robust sets.
    stop_at_fixed_point : bool
        Detect the fixed point (default); ``False`` recomputes every step.

    Returns
    -------
    ReachableSets
        ``N + 1`` sets.

    Raises
    ------
    InvalidInputError, ShapeError, NonFiniteError
        Bad ``system``, ``target``, ``K``, ``disturbance`` or ``steps``.
    """
    system = check_system(system)
    target = _check_target(system, target)
    steps = check_int("steps", steps, minimum=0)
    tol = check_nonnegative("tol", tol)
    W = _check_disturbance(system, disturbance)
    if K is not None:
        K = check_gain(system, K)
    mode = "backup" if K is not None else "controlled"
    sets = [reduce(target, tol)]
    seconds = [0.0]
    fixed: int | None = None
    for k in range(1, steps + 1):
        if fixed is not None:
            sets.append(sets[-1])
            seconds.append(0.0)
            continue
        t0 = time.perf_counter()
        if K is not None:
            nxt = closed_loop_pre(sets[-1], system, K, tol, disturbance=W)
        else:
            nxt = controlled_pre(sets[-1], system, tol, disturbance=W)
        if stop_at_fixed_point and same_set_rows(nxt, sets[-1]):
            fixed = k
            nxt = sets[-1]
            logger.info("%s sets: fixed point R_%d = R_%d reached; the sets up to %d are not recomputed", mode, k, k - 1, steps)
        sets.append(nxt)
        seconds.append(time.perf_counter() - t0)
        logger.debug("%s step %d/%d: %d facets, %.3f s", mode, k, steps, nxt.n_rows, seconds[-1])
        if progress is not None:
            info = {"stage": mode, "step": k, "total": steps, "facets": nxt.n_rows, "seconds": seconds[-1]}
            progress(info | ({"fixed_point": k} if fixed == k else {}))
    return ReachableSets(mode=mode, target=target, sets=tuple(sets), seconds=tuple(seconds), fixed_point=fixed, disturbance=W)


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
    disturbance: Polytope | None = None,
) -> InvariantSet:
    """Maximal (robust) positively invariant set of ``x⁺ = A_cl x (+ w)`` inside ``C = {x : G x ≤ g}``.

    Gilbert–Tan iteration: ``O_t = {x : G A_clᵏ x ≤ g − s_k, k = 0 … t}`` with ``s_0 = 0`` and,
    under an additive disturbance ``w ∈ W``, ``s_k = Σ_{j<k} σ_W((G A_clʲ)ᵀ)`` row by row (the
    worst effect of ``w_0 … w_{k−1}`` on ``G x_k``; Kolmanovsky & Gilbert 1998), ``s_k = 0``
    without one. If every row of step ``t + 1`` is redundant on ``O_t`` (one LP per row, up to
    :data:`~scpo.numerics.CONTAINMENT_TOL`), then ``O_{t+1} = O_t`` and ``O_∞ = O_t`` (finite
    termination). For Schur-stable ``A_cl`` and bounded ``C`` with the origin in its interior
    (and, robustly, ``W`` small enough) this happens after finitely many steps (Gilbert & Tan
    1991, Thm 4.1); otherwise the iteration stops at ``max_steps`` and says so. Every ``O_t``
    contains ``O_∞``.

    Parameters
    ----------
    A_cl : array_like, shape (n, n)
    constraint : Polytope
        ``C``, dimension ``n``, non-empty.
    max_steps : int
    tol : float
    progress : callable, optional
    disturbance : Polytope, optional
        ``W`` (bounded, in ``Rⁿ``): the maximal robust positively invariant set.

    Returns
    -------
    InvariantSet
        Of kind ``"positively invariant"`` (``"robust positively invariant"`` with ``W``).
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
    if disturbance is not None and (not isinstance(disturbance, Polytope) or disturbance.dim != A_cl.shape[0]):
        raise ShapeError(f"disturbance: expected a Polytope of dimension {A_cl.shape[0]}, got {disturbance!r}")
    kind = "positively invariant" if disturbance is None else "robust positively invariant"
    t_start = time.perf_counter()
    C = normalize(constraint)
    O = reduce(C, tol)
    Ak = np.eye(A_cl.shape[0])
    shift = np.zeros(C.n_rows)
    for t in range(1, max_steps + 1):
        t0 = time.perf_counter()
        if disturbance is not None:
            shift = shift + disturbance_support(C.H @ Ak, disturbance)
        Ak = Ak @ A_cl
        new = Polytope(H=C.H @ Ak, h=C.h - shift)
        if disturbance is not None and np.any(new.h < 0) and is_empty(intersect(O, new)):
            msg = f"O_{t} is empty: the disturbance W leaves no state that satisfies the constraints for {t} steps"
            return InvariantSet(kind, empty_polytope(C.dim), True, t, max_steps, msg, time.perf_counter() - t_start)
        if contains(new, O, max(tol, CONTAINMENT_TOL)):
            msg = f"Gilbert–Tan terminated: the rows of step {t} are redundant, so O_∞ = O_{t - 1}"
            return InvariantSet(kind, O, True, t - 1, max_steps, msg, time.perf_counter() - t_start)
        O = reduce(intersect(O, new), tol)
        if is_empty(O):
            msg = f"O_{t} is empty: no state satisfies the constraints for {t} steps"
            return InvariantSet(kind, O, True, t, max_steps, msg, time.perf_counter() - t_start)
        if progress is not None:
            progress({"stage": kind, "step": t, "total": max_steps, "facets": O.n_rows, "seconds": time.perf_counter() - t0})
    msg = (
        f"Gilbert–Tan did not terminate within max_steps = {max_steps}: O_{max_steps} is returned, an outer "
        "approximation of the maximal positively invariant set (is A_cl Schur stable and C bounded with 0 inside?)"
    )
    logger.warning(msg)
    return InvariantSet(kind, O, False, max_steps, max_steps, msg, time.perf_counter() - t_start)


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


def robust_backup_invariant_set(
    system: LinearSystem,
    K: np.ndarray,
    disturbance: Polytope,
    *,
    max_steps: int = 200,
    tol: float = DEFAULT_TOL,
    progress: Progress | None = None,
) -> InvariantSet:
    """Maximal robust positively invariant set of ``x⁺ = (A + BK) x + w``, ``w ∈ W``, inside ``X_cl``.

    :func:`maximal_positively_invariant` of ``A + BK`` in :func:`closed_loop_constraints` with the
    disturbance ``W``: the largest set of states from which every disturbance sequence keeps the
    backup's closed loop inside ``X_cl`` forever (and the set itself is robustly invariant).

    Parameters
    ----------
    system : LinearSystem
        With bounded ``X`` and ``U``.
    K : array_like, shape (m, n)
    disturbance : Polytope
        ``W``: bounded and non-empty, in ``Rⁿ``.
    max_steps, tol, progress
        As for :func:`maximal_positively_invariant`.

    Returns
    -------
    InvariantSet
        Of kind ``"robust positively invariant"``.
    """
    system = check_system(system)
    K = check_gain(system, K)
    W = _check_disturbance(system, disturbance)
    if W is None:
        raise InvalidInputError("disturbance: expected a polytope W, got None (use backup_invariant_set without a disturbance)")
    return maximal_positively_invariant(
        system.A + system.B @ K, closed_loop_constraints(system, K, tol), max_steps=max_steps, tol=tol, progress=progress,
        disturbance=W,
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
