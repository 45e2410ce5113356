"""The convex inner approximation (★) of DESIGN §3, as pure functions over arrays.

Notation. The bank holds offsets ``δ_k`` (rows of ``D ∈ R^{m×d}``) with norms ``n_k = ‖δ_k‖``
and evaluated constraint vectors ``G_k = g(θ + δ_k)``. Steps are written in *normalised*
coefficients, ``Δ = Σ_k c_k δ_k / n_k``, so that ``c`` carries units of parameter distance and
the SOCP is well scaled whatever the probe lengths. With ``H_ik = (G_ki − g_i(θ)) / n_k`` the
bound (★) reads

    g_i(θ + Δ) ≤ g_i(θ) + Σ_k H_ik c_k + (L_i/2) (Σ_k n_k |c_k| + ‖Δ‖²),

which is (★) of DESIGN §3 after substituting ``c_k ← c_k / n_k`` (then ``|c_k| s_k`` becomes
``n_k |c_k|``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["inner_bound", "bound_coefficients", "max_feasible_scale", "required_L"]


def bound_coefficients(
    H: np.ndarray, L: np.ndarray, norms: np.ndarray, coef: np.ndarray, step_sq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Split (★) along the ray ``α c`` into ``g + α a₁ + α² a₂``.

    Parameters
    ----------
    H : ndarray, shape (N, m)
    L : ndarray, shape (N,)
    norms : ndarray, shape (m,)
    coef : ndarray, shape (m,)
        Normalised coefficients ``c``.
    step_sq : float
        ``‖Δ‖²`` for ``Δ = Σ c_k δ_k / n_k``.

    Returns
    -------
    a1 : ndarray, shape (N,)
        ``H c + (L/2) Σ_k n_k |c_k|``.
    a2 : ndarray, shape (N,)
        ``(L/2) ‖Δ‖²``.
    """
    half_L = 0.5 * L
    a1 = H @ coef + half_L * float(norms @ np.abs(coef))
    a2 = half_L * float(step_sq)
    return a1, a2


def inner_bound(
    g: np.ndarray, H: np.ndarray, L: np.ndarray, norms: np.ndarray, coef: np.ndarray, step_sq: float
) -> np.ndarray:
    """Right-hand side of (★): an upper bound on ``g(θ + Δ)`` valid when each ``g_i`` is ``L_i``-smooth.

    Parameters
    ----------
    g : ndarray, shape (N,)
        ``g(θ)``.
    H, L, norms, coef, step_sq
        As in :func:`bound_coefficients`.

    Returns
    -------
    ndarray, shape (N,)
        ``g_i + Σ_k H_ik c_k + (L_i/2)(Σ_k n_k|c_k| + ‖Δ‖²)``.
    """
    a1, a2 = bound_coefficients(H, L, norms, coef, step_sq)
    return g + a1 + a2


def max_feasible_scale(g: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> float:
    """Largest ``α ∈ [0, 1]`` with ``g + α a₁ + α² a₂ ≤ 0`` in every row.

    Each row is a convex quadratic in ``α`` with ``g ≤ 0`` at ``α = 0``, so its feasible set is an
    interval ``[0, α_i]``; the answer is ``min(1, min_i α_i)``. Roots are computed in the
    cancellation-free form, then reduced until every row holds when evaluated in floating point.
    Rows with ``g_i > 0`` or non-finite data give 0.

    Parameters
    ----------
    g, a1, a2 : ndarray, shape (N,)

    Returns
    -------
    float
    """
    g = np.asarray(g, dtype=float)
    a1 = np.asarray(a1, dtype=float)
    a2 = np.broadcast_to(np.asarray(a2, dtype=float), g.shape)
    if g.size == 0:
        return 1.0
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(a1)) and np.all(np.isfinite(a2))):
        return 0.0
    if np.any(g > 0):
        return 0.0
    # Only rows that are positive at α = 1 restrict the scale.
    binding = g + a1 + a2 > 0
    if not np.any(binding):
        return 1.0
    gb, b1, b2 = -g[binding], a1[binding], a2[binding]  # gb ≥ 0: solve b2 α² + b1 α − gb = 0
    disc = np.sqrt(b1 * b1 + 4.0 * b2 * gb)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(b1 > 0, 2.0 * gb / (b1 + disc), (-b1 + disc) / (2.0 * b2))
    root = np.where(np.isfinite(root), root, 0.0)
    alpha = float(min(1.0, max(0.0, np.min(root))))
    # The root is exact only in real arithmetic: back off until the rows hold in floating point.
    for _ in range(64):
        if alpha == 0.0 or np.all(g + alpha * a1 + alpha * alpha * a2 <= 0):
            return alpha
        alpha *= 1.0 - 1e-9 if _ < 8 else 0.5
    return 0.0


def required_L(
    G_new: np.ndarray, g: np.ndarray, H: np.ndarray, norms: np.ndarray, coef: np.ndarray, step_sq: float
) -> np.ndarray:
    """Smallest ``L_i`` for which (★) would have covered an evaluated ``g_i(θ+Δ)``.

    Solves ``G_new_i = g_i + H_i c + (L_i/2)(Σ n_k|c_k| + ‖Δ‖²)`` for ``L_i``.

    Parameters
    ----------
    G_new : ndarray, shape (N,)
        Evaluated ``g(θ + Δ)``.
    g : ndarray, shape (N,)
        ``g(θ)``.
    H : ndarray, shape (N, m)
        Difference quotients (:meth:`Bank.difference_quotients`).
    norms : ndarray, shape (m,)
        ``n_k = ‖δ_k‖``.
    coef : ndarray, shape (m,)
        Normalised coefficients of ``Δ``.
    step_sq : float
        ``‖Δ‖²``.

    Returns
    -------
    ndarray, shape (N,)
        Non-negative; ``inf`` where the slack term is zero, NaN propagates from ``G_new``.
    """
    slack = float(norms @ np.abs(coef)) + float(step_sq)
    excess = G_new - g - H @ coef
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(slack > 0, 2.0 * excess / slack, np.inf)
    return np.maximum(out, 0.0)
