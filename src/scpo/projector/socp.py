"""The projection SOCP of DESIGN §3, built once per shape and re-solved with cvxpy Parameters.

Problem (normalised coefficients, see :mod:`scpo.projector.inner`)::

    minimise_c   ‖R c − b‖²
    subject to   a ≥ c,  a ≥ −c,                      (a = |c|)
                 w ≥ nᵀa + t,   t ≥ ‖R c‖²,           (t ≥ ‖Δ‖²)
                 g_i + H_i c + (L_i/2) w ≤ 0          for the rows i in the working set W,

where ``RᵀR`` is the Gram matrix of the unit bank directions and ``Rᵀb = D̃ Δ_raw``, so that the
objective is ``‖Δ − Δ_raw‖²`` up to a constant. This is DESIGN §3's SOCP with the thin QR
``D = QR`` replaced by the eigen-factor ``R = diag(√λ) Vᵀ`` of the Gram matrix (the same ``R`` up
to an orthogonal factor, computed in O(m²d) without forming ``Q``). Its size depends on ``m`` and
``|W|``, not on ``d``.

Working set. The problem over all ``N`` rows is solved exactly by solving it over a subset ``W``
and checking every row of (★) at the answer: a relaxation whose optimum is feasible for all rows
is optimal for the full problem. Violated rows join ``W`` and the problem is re-solved (at most a
few rounds). ``|W|`` takes values on a ladder (``K, 4K, 16K, …`` capped at ``N``); each size is
one cached cvxpy problem whose Parameters are overwritten, so nothing is re-canonicalised.

Safety of the answer never rests on solver tolerances: the returned coefficients are scaled by
the largest ``α ≤ 1`` that makes every row of (★) hold in numpy (:func:`max_feasible_scale`).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from ..errors import SolverError
from .inner import bound_coefficients, max_feasible_scale
from .solvers import SolverAttempt, solver_chain

__all__ = ["ProjectionResult", "ProjectionSOCP", "gram_factor"]

logger = logging.getLogger(__name__)

_EIG_RTOL = 1e-12
_MAX_ROUNDS = 8


@dataclass(frozen=True)
class ProjectionResult:
    """Answer of one projection.

    Attributes
    ----------
    coef : ndarray, shape (m,)
        Normalised coefficients ``c*`` (already scaled to satisfy every row of (★)).
    solver : str
        Solver that produced the accepted answer, or ``"none"`` when the unconstrained optimum
        was feasible and no solve was needed.
    status : str
        ``"optimal"`` or ``"unconstrained_feasible"``.
    attempts : tuple of SolverAttempt
        Every solver call made, failed ones included.
    solve_time_s : float
        Total wall time inside solver calls.
    setup_time_s : float
        Time spent building (first use of a shape) and filling Parameters.
    rows : int
        Number of rows in the last SOCP solved (0 when none was needed).
    rounds : int
        Number of working-set rounds.
    scale : float
        Factor applied to the solver's answer to make (★) hold exactly in numpy (1 if none).
    notes : tuple of str
        Solver-chain notes (e.g. MOSEK missing).
    """

    coef: np.ndarray
    solver: str
    status: str
    attempts: tuple[SolverAttempt, ...] = ()
    solve_time_s: float = 0.0
    setup_time_s: float = 0.0
    rows: int = 0
    rounds: int = 0
    scale: float = 1.0
    notes: tuple[str, ...] = field(default_factory=tuple)


def gram_factor(gram: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factor ``gram = RᵀR`` and solve ``Rᵀ b = q`` on the range of ``gram``.

    Parameters
    ----------
    gram : ndarray, shape (m, m)
        Symmetric positive semidefinite Gram matrix of the unit bank directions.
    q : ndarray, shape (m,)
        ``D̃ Δ_raw``.

    Returns
    -------
    R : ndarray, shape (m, m)
        ``diag(√λ) Vᵀ`` from ``gram = V diag(λ) Vᵀ`` (round-off negative eigenvalues clipped to 0),
        so that ``‖R c‖ = ‖Δ‖`` for ``Δ = Σ c_k δ_k / n_k``.
    b : ndarray, shape (m,)
        ``λ^{-1/2} Vᵀ q`` on eigenvalues above ``1e-12 λ_max``, 0 elsewhere, so that
        ``‖R c − b‖² = ‖Δ − Δ_raw‖² − (‖Δ_raw‖² − ‖b‖²)``.
    c_min : ndarray, shape (m,)
        Minimum-norm minimiser of ``‖R c − b‖²`` (the unconstrained projection of ``Δ_raw``).

    Notes
    -----
    ``c`` is kept in all of ``R^m`` even when the bank is linearly dependent: restricting it to
    the range of ``gram`` would fix the representation of a step and can force it through a long
    offset whose ``n_k |c_k|`` slack is large, which is needlessly conservative.
    """
    lam, V = np.linalg.eigh(0.5 * (gram + gram.T))
    lam = np.clip(lam, 0.0, None)
    keep = lam > _EIG_RTOL * max(float(lam.max(initial=0.0)), 1e-300)
    root = np.sqrt(lam)
    proj = V.T @ q
    b = np.zeros_like(q)
    b[keep] = proj[keep] / root[keep]
    coord = np.zeros_like(q)
    coord[keep] = proj[keep] / lam[keep]
    return root[:, None] * V.T, b, V @ coord


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries (unordered), in O(N)."""
    if k >= values.size:
        return np.arange(values.size)
    return np.argpartition(-values, k - 1)[:k]


def _initial_rows(pred_u: np.ndarray, g: np.ndarray, K: int) -> np.ndarray:
    """Half the rows most violated at the unconstrained optimum, the rest closest to active."""
    first = _top(pred_u, max(K // 2, 1))
    mask = np.zeros(g.size, dtype=bool)
    mask[first] = True
    rest = np.where(mask, -np.inf, g)
    second = _top(rest, K - first.size)
    return np.concatenate([first, second[~mask[second]]])[:K]


class _Problem:
    """One cached cvxpy problem for ``m`` bank directions and ``K`` rows (with ``bounded``: and ``t ≤ t_max``)."""

    def __init__(self, m: int, K: int, bounded: bool = False) -> None:
        self.c = cp.Variable(m, name="c")
        a = cp.Variable(m, name="abs_c")
        w = cp.Variable(1, name="w")
        t = cp.Variable(name="t")
        self.R = cp.Parameter((m, m), name="R")
        self.b = cp.Parameter(m, name="b")
        self.n = cp.Parameter(m, nonneg=True, name="norms")
        self.g = cp.Parameter(K, name="g")
        # [H, L/2] as one matrix keeps the problem DPP without a parameter-times-variable
        # product that cvxpy would expand into an N×N tensor.
        self.A = cp.Parameter((K, m + 1), name="H_Lhalf")
        self.constraints = [
            a >= self.c,
            a >= -self.c,
            w >= self.n @ a + t,
            cp.sum_squares(self.R @ self.c) <= t,
            self.g + self.A @ cp.hstack([self.c, w]) <= 0,
        ]
        if bounded:  # the step stays in the ball ‖Δ‖ ≤ r of a certified L (t ≥ ‖Δ‖²)
            self.t_max = cp.Parameter(nonneg=True, name="t_max")
            self.constraints.append(t <= self.t_max)
        self.problem = cp.Problem(cp.Minimize(cp.sum_squares(self.R @ self.c - self.b)), self.constraints)
        if not self.problem.is_dcp(dpp=True):  # pragma: no cover - structural invariant
            raise SolverError("projection SOCP: the problem is not DPP (a bug in its construction)")


class ProjectionSOCP:
    """Solver of the projection SOCP with a per-shape cache and a solver fallback chain.

    Parameters
    ----------
    solver : {"auto", "clarabel", "mosek", "scs"}
        First choice; see :func:`scpo.projector.solvers.solver_chain`.
    working_set : int
        Initial number of rows ``K`` of the SOCP.
    """

    def __init__(self, solver: str = "auto", working_set: int = 64) -> None:
        self.chain, self.notes = solver_chain(solver)
        self.working_set = int(working_set)
        self._cache: dict[tuple[int, int], _Problem] = {}

    def _problem(self, m: int, K: int, bounded: bool = False) -> _Problem:
        key = (m, K, bounded)
        if key not in self._cache:
            self._cache[key] = _Problem(m, K, bounded)
        return self._cache[key]

    def _solve_once(self, prob: _Problem) -> tuple[np.ndarray | None, str, list[SolverAttempt]]:
        attempts: list[SolverAttempt] = []
        for stage in self.chain:
            name = stage.label
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # status is checked and recorded below
                    prob.problem.solve(solver=stage.solver, **stage.options)
                status = str(prob.problem.status)
            except (cp.error.SolverError, ValueError, ArithmeticError) as exc:
                status = f"error: {type(exc).__name__}: {exc}"[:300]
            attempts.append(SolverAttempt(name, status, time.perf_counter() - t0))
            value = prob.c.value
            if status == cp.OPTIMAL and value is not None and np.all(np.isfinite(value)):
                return np.array(value, dtype=float), name, attempts
            # a fallback is routine (e.g. Clarabel's optimal_inaccurate) and every attempt is recorded in the
            # step's record, so it is INFO; only a chain in which no solver succeeds is a WARNING
            logger.info("projection SOCP: solver %s returned %s; trying the next solver", name, status)
        logger.warning("projection SOCP: no solver returned an optimal solution (%s)",
                       "; ".join(f"{a.solver}: {a.status}" for a in attempts))
        return None, "", attempts

    def solve(
        self,
        gram: np.ndarray,
        q: np.ndarray,
        norms: np.ndarray,
        g: np.ndarray,
        H: np.ndarray,
        L: np.ndarray,
        max_norm: float | None = None,
    ) -> ProjectionResult:
        """Project the raw step onto the inner approximation (★) (intersected with the ball ``‖Δ‖ ≤ max_norm``).

        Parameters
        ----------
        gram : ndarray, shape (m, m)
            Gram matrix of the unit bank directions.
        q : ndarray, shape (m,)
            Inner products of the unit bank directions with ``Δ_raw``.
        norms : ndarray, shape (m,)
            Bank offset lengths ``n_k``.
        g : ndarray, shape (N,)
            ``g(θ) ≤ 0``.
        H : ndarray, shape (N, m)
            Difference quotients ``(G_ki − g_i)/n_k``.
        L : ndarray, shape (N,)
            Smoothness constants.
        max_norm : float, optional
            Radius of the ball the step must stay in (the ball of a certified ``L``); ``None``: no
            ball (the problem is then exactly DESIGN §3's). A step the unconstrained projection
            finds feasible for (★) but longer than ``max_norm`` goes through the SOCP too.

        Returns
        -------
        ProjectionResult

        Raises
        ------
        SolverError
            When no solver in the chain returns an optimal solution.
        """
        t_setup = 0.0
        N, m = H.shape
        R, b, c_u = gram_factor(gram, q)
        step_sq_u = float(c_u @ gram @ c_u)
        a1, a2 = bound_coefficients(H, L, norms, c_u, step_sq_u)
        pred_u = g + a1 + a2
        bounded = max_norm is not None
        if np.all(pred_u <= 0) and not (bounded and step_sq_u > max_norm**2):
            return ProjectionResult(coef=c_u, solver="none", status="unconstrained_feasible", notes=tuple(self.notes))

        K = min(N, self.working_set)
        working = _initial_rows(pred_u, g, K)

        # Scale coefficients by the unconstrained step length σ (so ĉ = c/σ is O(1)) and each row
        # by its largest entry; both leave the feasible set and the minimiser unchanged.
        sigma = float(np.sqrt(step_sq_u)) if step_sq_u > 0 else max(float(np.linalg.norm(b)), 1e-300)
        all_attempts: list[SolverAttempt] = []
        solve_time = 0.0
        coef = None
        solver_used = ""
        rounds = 0
        while True:
            rounds += 1
            t0 = time.perf_counter()
            prob = self._problem(m, K, bounded)
            rows = len(working)
            Hs = H[working] * sigma
            Ls = 0.5 * L[working] * sigma**2
            gw = g[working]
            row_scale = np.maximum.reduce([np.abs(gw), np.max(np.abs(Hs), axis=1), Ls, np.full(rows, 1e-300)])
            g_param = np.full(K, -1.0)
            A_param = np.zeros((K, m + 1))
            g_param[:rows] = gw / row_scale
            A_param[:rows, :m] = Hs / row_scale[:, None]
            A_param[:rows, m] = Ls / row_scale
            prob.R.value = R
            prob.b.value = b / sigma
            prob.n.value = norms / sigma
            prob.g.value = g_param
            prob.A.value = A_param
            if bounded:
                prob.t_max.value = float(max_norm) ** 2 / sigma**2
            t_setup += time.perf_counter() - t0
            coef, solver_used, attempts = self._solve_once(prob)
            if coef is not None:
                coef = coef * sigma
            all_attempts.extend(attempts)
            solve_time += sum(a.time_s for a in attempts)
            if coef is None:
                summary = "; ".join(f"{a.solver}: {a.status}" for a in attempts)
                raise SolverError(f"projection SOCP: no solver returned an optimal solution ({summary})")
            step_sq = float(coef @ gram @ coef)
            a1, a2 = bound_coefficients(H, L, norms, coef, step_sq)
            pred = g + a1 + a2
            outside = np.ones(N, dtype=bool)
            outside[working] = False
            violated = np.flatnonzero(outside & (pred > 0))
            if violated.size == 0 or rounds >= _MAX_ROUNDS or rows == N:
                break
            violated = violated[np.argsort(-pred[violated], kind="stable")]
            working = np.concatenate([working, violated])
            while K < len(working) and K < N:
                K = min(N, 4 * K)
            working = working[:K]

        scale = max_feasible_scale(g, a1, a2)
        coef = coef * scale
        return ProjectionResult(
            coef=coef,
            solver=solver_used,
            status="optimal",
            attempts=tuple(all_attempts),
            solve_time_s=solve_time,
            setup_time_s=t_setup,
            rows=len(working),
            rounds=rounds,
            scale=scale,
            notes=tuple(self.notes),
        )
