"""What the baselines share: the zeroth-order constraint estimator and the per-iteration record.

The constraints ``g : R^d → R^N`` are only *evaluated* (as in the SCPO projector). Their
Jacobian is estimated from ``n`` evaluations at ``x + ν U_j`` by the two-point (forward
difference) estimator on random directions of the unit sphere,

    Ĵ(x) = (d / n) Σ_j δ_j U_jᵀ,        δ_j = (g(x + ν U_j) − g(x)) / ν  ∈ R^N,        (ZO)

which is unbiased for the gradient of ``g`` smoothed over the ball of radius ``ν`` (Flaxman,
Kalai & McMahan 2005, "Online convex optimization in the bandit setting", Lemma 1; Nesterov &
Spokoiny 2017 analyse the Gaussian analogue), hence for ``∇g`` itself when ``g`` is linear, and
exact for linear ``g`` when the ``U_j`` are a full orthonormal basis (``n = d``).
The estimate is kept factored (``n × N`` differences and ``n × d`` directions): with
``N = 10⁵`` rows and ``d = 10⁶`` parameters the dense ``N × d`` matrix would not fit in memory,
and the baselines only need the products ``Ĵᵀw`` and ``Ĵu``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._iterate import IterateState, StepClock, restore_rng, rng_state
from .._validate import as_array, check_in, check_int, check_positive
from ..errors import InvalidInputError, ShapeError

__all__ = [
    "DIRECTION_SAMPLERS",
    "BaselineRecord",
    "TwoPointJacobian",
    "ZerothOrderBaseline",
    "sample_directions",
    "two_point_jacobian",
]

DIRECTION_SAMPLERS = ("sphere", "orthogonal")


def sample_directions(rng: np.random.Generator, n: int, d: int, kind: str = "sphere") -> np.ndarray:
    """Random unit directions for the estimator (ZO).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random directions (advanced in place).
    n : int
        Number of directions.
    d : int
        Dimension.
    kind : {"sphere", "orthogonal"}
        ``sphere``: independent, uniform on the unit sphere (normalised Gaussians), as in the
        LB-SGD paper. ``orthogonal``: ``n ≤ d`` orthonormal directions (QR of a Gaussian matrix
        with the sign fixed by ``R``'s diagonal); each is still uniform on the sphere, so (ZO)
        stays unbiased, with less variance.

    Returns
    -------
    ndarray, shape (n, d)
        Rows of unit norm.
    """
    n = check_int("n", n, minimum=1)
    d = check_int("d", d, minimum=1)
    check_in("kind", kind, DIRECTION_SAMPLERS)
    Z = rng.standard_normal((n, d))
    if kind == "sphere":
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)
    if n > d:
        raise ShapeError(f"n: orthogonal directions need n <= d = {d}, got {n}")
    Q, R = np.linalg.qr(Z.T)  # Q (d, n)
    return (Q * np.sign(np.diag(R))[None, :]).T.copy()


@dataclass(frozen=True)
class TwoPointJacobian:
    """The estimate (ZO) of the Jacobian of ``g`` at ``x``, kept factored.

    Attributes
    ----------
    differences : ndarray, shape (n, N)
        ``δ_j = (g(x + ν U_j) − g(x)) / ν``.
    directions : ndarray, shape (n, d)
        The unit directions ``U_j``.
    """

    differences: np.ndarray
    directions: np.ndarray

    @property
    def scale(self) -> float:
        """``d / n``."""
        return self.directions.shape[1] / self.directions.shape[0]

    def vjp(self, w: np.ndarray) -> np.ndarray:
        """``Ĵᵀ w = (d/n) Σ_j (δ_jᵀ w) U_j``, the estimated gradient of ``wᵀg``.

        Parameters
        ----------
        w : ndarray, shape (N,)
            Row weights.

        Returns
        -------
        ndarray, shape (d,)
        """
        return self.scale * (self.directions.T @ (self.differences @ w))

    def jvp(self, u: np.ndarray) -> np.ndarray:
        """``Ĵ u = (d/n) Σ_j (U_jᵀ u) δ_j``, the estimated directional derivatives.

        Parameters
        ----------
        u : ndarray, shape (d,)
            Direction.

        Returns
        -------
        ndarray, shape (N,)
        """
        return self.scale * (self.differences.T @ (self.directions @ u))

    def dense(self) -> np.ndarray:
        """The estimate as an ``(N, d)`` matrix (small problems and tests only)."""
        return self.scale * (self.differences.T @ self.directions)


def two_point_jacobian(
    constraints: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    g_x: np.ndarray,
    directions: np.ndarray,
    nu: float,
) -> tuple[TwoPointJacobian, np.ndarray]:
    """Evaluate ``g`` at ``x + ν U_j`` (one batch) and form the estimate (ZO).

    Parameters
    ----------
    constraints : callable
        ``(B, d) -> (B, N)``.
    x : ndarray, shape (d,)
        Where the Jacobian is estimated.
    g_x : ndarray, shape (N,)
        ``g(x)``, already evaluated.
    directions : ndarray, shape (n, d)
        The unit directions ``U_j`` (rows).
    nu : float
        Sampling radius ``ν > 0``.

    Returns
    -------
    jac : TwoPointJacobian
        The factored estimate.
    G : ndarray, shape (n, N)
        The evaluated ``g(x + ν U_j)`` (NaN/inf are kept: a caller decides what they mean).
    """
    nu = check_positive("nu", nu)
    x = as_array("x", x, ndim=1)
    U = as_array("directions", directions, shape=(None, x.size))
    g_x = as_array("g_x", g_x, ndim=1)
    G = np.asarray(constraints(x[None, :] + nu * U), dtype=float)
    if G.shape != (U.shape[0], g_x.size):
        raise ShapeError(f"constraints: expected an array of shape ({U.shape[0]}, {g_x.size}), got {G.shape}")
    return TwoPointJacobian(differences=(G - g_x[None, :]) / nu, directions=U), G


@dataclass(frozen=True)
class BaselineRecord:
    """What one iteration of a baseline did; the field names match :class:`scpo.projector.StepRecord`.

    ``accepted`` is True when the iterate moved (a baseline without a safety test takes every
    step at which ``g`` is finite, so a violating iterate is still accepted: that is what the
    benchmarks count; a non-finite ``g`` is never accepted).

    Attributes
    ----------
    iteration : int
        Number of this iteration (1 for the first).
    accepted : bool
        Whether the iterate moved.
    reason : str
        ``"accepted"`` or why the iteration did not move (``"nonfinite_gradient"``,
        ``"nonfinite_constraints"``, …; the method's own reasons).
    objective : float
        ``f`` at the iterate after the iteration.
    max_constraint : float
        ``max_i g_i`` at the iterate after the iteration.
    step_norm : float
        ``‖θ_{t+1} − θ_t‖``.
    evaluations : int
        Parameter vectors at which ``g`` was evaluated in this iteration.
    evaluation_time_s, gradient_time_s, wall_time_s : float
        Seconds evaluating ``g``, computing ``∇f``, and in the whole iteration.
    solve_time_s, setup_time_s : float
        Solver time (0: the baselines solve no optimisation problem per step).
    details : dict
        Method-specific values (``rho``, ``eta``, step-size terms, …).
    """

    iteration: int
    accepted: bool
    reason: str
    objective: float
    max_constraint: float
    step_norm: float
    evaluations: int
    evaluation_time_s: float
    gradient_time_s: float
    wall_time_s: float
    solve_time_s: float = 0.0
    setup_time_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, fields in declaration order."""
        return asdict(self)


class ZerothOrderBaseline(IterateState):
    """What the baselines share on top of :class:`scpo._iterate.IterateState`: the seeded
    direction sampler, the counted estimate (ZO) at the current iterate, the move to a candidate
    (refused when ``g`` there is not finite), the record, and the arrays of ``state_dict``.

    Subclasses call :meth:`_start` and set ``_rng`` (a ``numpy.random.default_rng(seed)``).
    """

    _rng: np.random.Generator

    def _estimate_jacobian(self, clock: StepClock, n: int, nu: float, kind: str) -> tuple[TwoPointJacobian, np.ndarray]:
        """(ZO) at ``θ`` from ``n`` directions of the sampler ``kind`` and radius ``ν`` (counted, timed)."""
        t0 = time.perf_counter()
        U = sample_directions(self._rng, n, self.dim, kind)
        jac, G = two_point_jacobian(lambda X: self._evaluate(X)[0], self._theta, self._g, U, nu)
        clock.eval_time += time.perf_counter() - t0
        return jac, G

    def _move(self, cand: np.ndarray, clock: StepClock) -> bool:
        """Evaluate ``g(cand)``; move there when it is finite. Returns whether it moved."""
        G, dt = self._evaluate(cand[None, :])
        clock.eval_time += dt
        if not np.all(np.isfinite(G)):
            return False
        self._theta, self._g = cand, G[0]
        self._f = float(self._objective(cand))
        return True

    def _record(self, clock: StepClock, accepted: bool, reason: str, step_norm: float = 0.0,
                details: dict[str, Any] | None = None) -> BaselineRecord:
        """The record of the iteration timed by ``clock``."""
        return BaselineRecord(accepted=accepted, reason=reason, step_norm=step_norm, details=details or {}, **clock.core())

    def _baseline_arrays(self, counters: list[int]) -> dict[str, np.ndarray]:
        """``theta, g, objective``, ``counters`` (int64) and the sampler state ``rng``."""
        return {**self._iterate_arrays(), "counters": np.array(counters, dtype=np.int64), "rng": rng_state(self._rng)}

    def _load_baseline_arrays(self, state: dict[str, np.ndarray], n_counters: int, *, finite_g: bool = True) -> list[int]:
        """Restore what :meth:`_baseline_arrays` wrote; returns the counters."""
        self._load_iterate_arrays(state, finite_g=finite_g)
        for key in ("counters", "rng"):
            if key not in state:
                raise InvalidInputError(f"state: expected an entry {key!r}, got keys {sorted(state)}")
        counters = [int(v) for v in np.asarray(state["counters"], dtype=np.int64).ravel()]
        if len(counters) != n_counters:
            raise ShapeError(f"counters: expected {n_counters} entries, got {len(counters)}")
        restore_rng(self._rng, state["rng"])
        return counters
