"""Discrete-time LQR backups from the DARE, and the terminal level set of DESIGN §5."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .._validate import as_array
from ..errors import CertificateError, InvalidInputError, ShapeError
from .linear import is_stabilisable

__all__ = ["LQRResult", "dlqr", "dare_residual", "terminal_level", "ellipsoid_support"]


@dataclass(frozen=True)
class LQRResult:
    """Discrete LQR solution with its numerical checks.

    Attributes
    ----------
    K : ndarray, shape (m, n)
        Gain of ``u = K x`` (note the sign: ``K = −(R + BᵀPB)⁻¹ BᵀPA``).
    P : ndarray, shape (n, n)
        Stabilising solution of the DARE.
    residual : float
        ``‖AᵀPA − P − AᵀPB(R + BᵀPB)⁻¹BᵀPA + Q‖_F / max(1, ‖P‖_F)``.
    spectral_radius : float
        ``ρ(A + BK)``.
    """

    K: np.ndarray
    P: np.ndarray
    residual: float
    spectral_radius: float


def dare_residual(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, P: np.ndarray) -> float:
    """Relative Frobenius residual of the DARE at ``P`` (see :class:`LQRResult`).

    Parameters
    ----------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, m)
    Q : ndarray, shape (n, n)
    R : ndarray, shape (m, m)
    P : ndarray, shape (n, n)

    Returns
    -------
    float
    """
    G = R + B.T @ P @ B
    res = A.T @ P @ A - P - A.T @ P @ B @ np.linalg.solve(G, B.T @ P @ A) + Q
    return float(np.linalg.norm(res) / max(1.0, np.linalg.norm(P)))


def dlqr(A, B, Q, R, *, residual_rtol: float = 1e-9) -> LQRResult:
    """Infinite-horizon discrete LQR: minimise ``Σ xᵀQx + uᵀRu`` subject to ``x⁺ = Ax + Bu``.

    Solves the DARE ``P = AᵀPA − AᵀPB(R + BᵀPB)⁻¹BᵀPA + Q`` with
    :func:`scipy.linalg.solve_discrete_are` and returns ``u = Kx`` with
    ``K = −(R + BᵀPB)⁻¹ BᵀPA``.

    Parameters
    ----------
    A : array_like, shape (n, n)
    B : array_like, shape (n, m)
    Q : array_like, shape (n, n)
        Symmetric positive semidefinite.
    R : array_like, shape (m, m)
        Symmetric positive definite.
    residual_rtol : float
        Largest accepted relative DARE residual.

    Returns
    -------
    LQRResult

    Raises
    ------
    ShapeError, NonFiniteError
        Malformed matrices.
    InvalidInputError
        ``(A, B)`` not stabilisable, ``Q`` not PSD or ``R`` not PD.
    CertificateError
        The DARE residual exceeds ``residual_rtol`` or ``A + BK`` is not Schur stable.
    """
    A = as_array("A", A, ndim=2)
    if A.shape[0] != A.shape[1]:
        raise ShapeError(f"A: expected a square matrix, got shape {A.shape}")
    n = A.shape[0]
    B = as_array("B", B, ndim=2)
    if B.shape[0] != n:
        raise ShapeError(f"B: expected {n} rows to match A of shape {A.shape}, got shape {B.shape}")
    m = B.shape[1]
    Q = as_array("Q", Q, shape=(n, n))
    R = as_array("R", np.atleast_2d(R), shape=(m, m))
    if not np.allclose(Q, Q.T, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(Q).max())) or np.linalg.eigvalsh(0.5 * (Q + Q.T)).min() < -1e-12 * max(1.0, np.abs(Q).max()):
        raise InvalidInputError("Q: expected a symmetric positive semidefinite matrix")
    if not np.allclose(R, R.T) or np.linalg.eigvalsh(0.5 * (R + R.T)).min() <= 0:
        raise InvalidInputError("R: expected a symmetric positive definite matrix")
    if not is_stabilisable(A, B):
        raise InvalidInputError(
            f"A, B: the pair is not stabilisable (eigenvalues of A: {np.round(np.linalg.eigvals(A), 6).tolist()}); "
            "no stabilising LQR gain exists"
        )
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    P = 0.5 * (P + P.T)
    K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    residual = dare_residual(A, B, Q, R, P)
    rho = float(np.max(np.abs(np.linalg.eigvals(A + B @ K))))
    if not residual <= residual_rtol:
        raise CertificateError(f"DARE residual {residual:.3e} exceeds the tolerance {residual_rtol:.1e}")
    if not rho < 1.0:
        raise CertificateError(f"LQR closed loop is not Schur stable: spectral radius {rho:.6f} ≥ 1")
    return LQRResult(K=K, P=P, residual=residual, spectral_radius=rho)


def ellipsoid_support(P: np.ndarray, gamma: float, a: np.ndarray) -> float:
    """``max { aᵀx : xᵀPx ≤ γ } = sqrt(γ aᵀP⁻¹a)`` for ``P ≻ 0``.

    Parameters
    ----------
    P : ndarray, shape (n, n)
    gamma : float
    a : ndarray, shape (n,)

    Returns
    -------
    float
    """
    return float(np.sqrt(gamma * a @ np.linalg.solve(P, a)))


def terminal_level(P, K, Hx, hx, Hu, hu) -> float:
    """Largest ``γ`` with ``X_f = {xᵀPx ≤ γ}`` inside the state constraints and ``Hu K x ≤ hu`` on it.

    Closed form (DESIGN §5): ``γ = min_i b_i² / (a_iᵀ P⁻¹ a_i)`` over the rows ``a_iᵀx ≤ b_i`` of
    ``Hx x ≤ hx`` and of ``(Hu K) x ≤ hu``.

    Parameters
    ----------
    P : ndarray, shape (n, n)
    K : ndarray, shape (m, n)
    Hx, hx, Hu, hu : ndarray
        State and input constraints.

    Returns
    -------
    float

    Raises
    ------
    InvalidInputError
        If some ``b_i ≤ 0`` (the origin is not strictly inside the constraints).
    """
    P = as_array("P", P, ndim=2)
    K = as_array("K", K, ndim=2)
    rows = np.vstack([as_array("Hx", Hx, ndim=2), as_array("Hu", Hu, ndim=2) @ K])
    b = np.concatenate([as_array("hx", hx, ndim=1), as_array("hu", hu, ndim=1)])
    if not np.all(b > 0):
        raise InvalidInputError("hx, hu: expected every bound > 0 (the origin strictly inside the constraints)")
    Pinv_rows = np.linalg.solve(P, rows.T)  # (n, p)
    denom = np.einsum("pi,ip->p", rows, Pinv_rows)
    with np.errstate(divide="ignore"):
        levels = np.where(denom > 0, b**2 / denom, np.inf)
    return float(np.min(levels))
