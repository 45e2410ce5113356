"""Set operations on n-dimensional polytopes: affine image, Minkowski sum, Pontryagin difference, hull.

The vocabulary of MPT3 / pycvxset / CORA on the H-polytope type of :mod:`scpo.reachability.polytope`
(float64 arithmetic; results are reduced by LP, :func:`~scpo.reachability.polytope.reduce`):

* :func:`affine_image` — ``M P + c = {M x + c : x ∈ P}``: for an invertible square ``M`` the rows
  ``H M⁻¹ y ≤ h + H M⁻¹ c``; otherwise the hull of the images of the vertices (bounded ``P``) or the
  projection of ``{(y, x) : y = M x + c, x ∈ P}`` (cddlib block elimination).
* :func:`minkowski_sum` — ``P ⊕ Q = {p + q}``: the hull of the pairwise sums of vertices.
* :func:`pontryagin_difference` — ``P ⊖ Q = {x : x + Q ⊆ P} = {x : H_i x ≤ h_i − σ_Q(H_i)}``
  (exact on the rows of ``P``; ``σ_Q`` the support function of the bounded ``Q``, the maximum over
  its vertices).
* :func:`convex_hull` — the H-representation of the hull of finitely many points (cddlib's
  double description, V → H).
* :func:`support_values` — ``σ_P(d) = max {dᵀx : x ∈ P}`` for many directions at once.
"""

from __future__ import annotations

import numpy as np
import cdd

from .._validate import as_array
from ..errors import InvalidInputError, ShapeError, SolverError
from .polytope import DEFAULT_TOL, Polytope, empty, is_empty, normalize, project, reduce, support, vertices

__all__ = ["affine_image", "minkowski_sum", "pontryagin_difference", "convex_hull", "support_values"]


def convex_hull(points: np.ndarray, tol: float = DEFAULT_TOL) -> Polytope:
    """``conv{p_1, …, p_k}`` as a reduced H-polytope (cddlib V → H, floating point).

    A hull of lower dimension than the space comes back with its equalities written as pairs of
    opposite rows.

    Parameters
    ----------
    points : array_like, shape (k, n)
        ``k ≥ 1`` finite points.
    tol : float
        Redundancy tolerance of the final :func:`~scpo.reachability.polytope.reduce`.

    Returns
    -------
    Polytope
        Dimension ``n``.
    """
    V = as_array("points", points, ndim=2)
    if V.shape[0] == 0 or V.shape[1] == 0:
        raise ShapeError(f"points: expected at least one point with at least one coordinate, got shape {V.shape}")
    mat = cdd.matrix_from_array(np.hstack([np.ones((V.shape[0], 1)), V]), rep_type=cdd.RepType.GENERATOR)
    ineq = cdd.copy_inequalities(cdd.polyhedron_from_matrix(mat))
    arr = np.asarray(ineq.array, dtype=float).reshape(-1, V.shape[1] + 1)
    lin = sorted(ineq.lin_set)
    A = np.vstack([arr, -arr[lin]]) if lin else arr  # rows b − a·x ≥ 0; equalities both ways
    if A.shape[0] == 0:
        raise SolverError("convex_hull: cddlib returned no inequality for a bounded point set")
    return reduce(Polytope(H=-A[:, 1:], h=A[:, 0]), tol)


def support_values(P: Polytope, directions: np.ndarray) -> np.ndarray:
    """``σ_P(d_j) = max {d_jᵀ x : x ∈ P}`` for each row ``d_j`` (the maximum over the vertices of a bounded ``P``).

    Parameters
    ----------
    P : Polytope
        Bounded and non-empty.
    directions : array_like, shape (k, n)

    Returns
    -------
    ndarray, shape (k,)
    """
    D = as_array("directions", directions, shape=(None, P.dim))
    V = vertices(P)
    if V.shape[0] == 0:
        raise InvalidInputError("P: expected a non-empty polytope for its support function, got an empty one")
    vals = np.max(D @ V.T, axis=1)
    # one LP per direction confirms the vertex maximum (cdd's vertices are floating point)
    return np.array([max(v, support(P, d)) for v, d in zip(vals, D)])


def affine_image(P: Polytope, M: np.ndarray, c: np.ndarray | None = None, tol: float = DEFAULT_TOL) -> Polytope:
    """``{M x + c : x ∈ P}`` (module docstring for the three constructions).

    Parameters
    ----------
    P : Polytope, dimension ``n``
    M : array_like, shape (q, n)
    c : array_like, shape (q,), optional
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
        Dimension ``q``.
    """
    M = as_array("M", M, ndim=2)
    if M.shape[1] != P.dim:
        raise ShapeError(f"M: expected {P.dim} columns to match P of dimension {P.dim}, got shape {M.shape}")
    q = M.shape[0]
    c = np.zeros(q) if c is None else as_array("c", c, shape=(q,))
    if is_empty(P):
        return empty(q)
    if q == P.dim and np.linalg.matrix_rank(M) == q and np.linalg.cond(M) < 1e12:
        Minv = np.linalg.inv(M)
        HM = P.H @ Minv
        return reduce(Polytope(H=HM, h=P.h + HM @ c), tol)
    try:
        V = vertices(P)
    except InvalidInputError:
        n = P.dim
        H = np.vstack([np.hstack([np.eye(q), -M]), np.hstack([-np.eye(q), M]), np.hstack([np.zeros((P.n_rows, q)), P.H])])
        h = np.concatenate([c, -c, P.h])
        return project(Polytope(H=H, h=h), q, tol) if n else empty(q)
    return convex_hull(V @ M.T + c, tol)


def minkowski_sum(P: Polytope, Q: Polytope, tol: float = DEFAULT_TOL) -> Polytope:
    """``P ⊕ Q = {p + q : p ∈ P, q ∈ Q}`` of two bounded polytopes (hull of the vertex sums).

    Parameters
    ----------
    P, Q : Polytope
        Bounded, of the same dimension.
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
    """
    if P.dim != Q.dim:
        raise ShapeError(f"P, Q: expected polytopes of the same dimension, got {P.dim} and {Q.dim}")
    VP, VQ = vertices(P), vertices(Q)
    if VP.shape[0] == 0 or VQ.shape[0] == 0:
        return empty(P.dim)
    sums = (VP[:, None, :] + VQ[None, :, :]).reshape(-1, P.dim)
    return convex_hull(sums, tol)


def pontryagin_difference(P: Polytope, Q: Polytope, tol: float = DEFAULT_TOL) -> Polytope:
    """``P ⊖ Q = {x : x + Q ⊆ P}``: each row ``H_i x ≤ h_i`` of ``P`` tightened by ``σ_Q(H_i)``.

    Exact for the stored rows of ``P`` (``x + Q ⊆ P`` iff ``H_i x + σ_Q(H_i) ≤ h_i`` for every row);
    the result may be empty.

    Parameters
    ----------
    P : Polytope
    Q : Polytope
        Bounded, non-empty, of the same dimension.
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
    """
    if P.dim != Q.dim:
        raise ShapeError(f"P, Q: expected polytopes of the same dimension, got {P.dim} and {Q.dim}")
    Pn = normalize(P)
    if Pn.n_rows == 0:
        return Pn
    return reduce(Polytope(H=Pn.H, h=Pn.h - support_values(Q, Pn.H)), tol)
