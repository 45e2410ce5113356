"""Exact rational linear algebra for `exact` certificates (sympy rationals).

Floats are converted with ``sympy.Rational(float)``, which is the exact binary value of the
float (no rounding, no continued-fraction approximation).
"""

from __future__ import annotations

import numpy as np
import sympy

__all__ = ["to_rational_matrix", "ldl_pivots", "is_positive_definite", "rational_float"]


def to_rational_matrix(M: np.ndarray) -> sympy.Matrix:
    """The exact rational matrix with the same (binary floating-point) entries as ``M``.

    Parameters
    ----------
    M : array_like, shape (n, m) (a vector or scalar is promoted to 2-D)

    Returns
    -------
    sympy.Matrix, shape (n, m)
    """
    M = np.atleast_2d(np.asarray(M, dtype=float))
    return sympy.Matrix(M.shape[0], M.shape[1], [sympy.Rational(float(v)) for v in M.ravel()])


def rational_float(x: sympy.Rational) -> float:
    """Nearest float of a rational (for reporting only).

    Parameters
    ----------
    x : sympy.Rational

    Returns
    -------
    float
    """
    return float(sympy.Float(x, 30))


def ldl_pivots(M: sympy.Matrix) -> list[sympy.Rational]:
    """Pivots of symmetric Gaussian elimination (``M = L D Lᵀ``) in exact arithmetic.

    Elimination stops at the first non-positive pivot (the remaining pivots are not needed to
    decide definiteness).

    Parameters
    ----------
    M : sympy.Matrix, shape (n, n), symmetric with rational entries

    Returns
    -------
    list of sympy.Rational
        ``d_1, d_2, …``; all positive (and ``n`` of them) iff ``M ≻ 0`` (Sylvester / LDLᵀ).
    """
    n = M.shape[0]
    A = [[M[i, j] for j in range(n)] for i in range(n)]
    pivots = []
    for k in range(n):
        d = A[k][k]
        pivots.append(d)
        if not d > 0:
            break
        for i in range(k + 1, n):
            f = A[i][k] / d
            if f != 0:
                for j in range(k + 1, n):
                    A[i][j] -= f * A[k][j]
    return pivots


def is_positive_definite(M: sympy.Matrix) -> tuple[bool, list[sympy.Rational]]:
    """Exact test of ``M ≻ 0`` for a symmetric rational matrix; returns the verdict and the pivots.

    Parameters
    ----------
    M : sympy.Matrix, shape (n, n)
        Rational entries; a non-symmetric matrix is not positive definite.

    Returns
    -------
    holds : bool
    pivots : list of sympy.Rational
        Those of :func:`ldl_pivots` (empty for a non-symmetric ``M``).
    """
    if M != M.T:
        return False, []
    piv = ldl_pivots(M)
    return len(piv) == M.shape[0] and all(p > 0 for p in piv), piv
