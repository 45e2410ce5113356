"""Polytopes around and inside the ellipsoidal terminal set ``X_f = {x : xᵀPx ≤ γ}``.

``X_f`` is not a polytope, so the exact polytopic computations use a polytopic target and say
which side of ``X_f`` it lies on:

* **outer** ``T_out ⊇ X_f``: tangent half-spaces ``(L w_j)ᵀ x ≤ √γ`` for unit directions
  ``w_j`` (``P = L Lᵀ``), intersected with ``X_cl``. Then ``R_k(X_f) ⊆ R_k(T_out)``: the
  ``k``-step sets of ``T_out`` are *outer* approximations of those of ``X_f``.
* **inner** ``T_in ⊆ X_f``: the tangent polytope scaled by ``c < 1`` so that its vertices lie in
  ``X_f`` (for ``n = 2`` and ``M`` equally spaced directions ``c = cos(π/M)``, shrunk by a
  relative 1e-9), then replaced by its maximal positively invariant subset under the backup
  (Gilbert–Tan), so that ``T_in`` is invariant and the ``k``-step sets are nested. Then
  ``R_k(T_in) ⊆ R_k(X_f)``: *inner* approximations.

The directions are equally spaced angles in 2-D and a spherical code in ``n ≥ 3``
(:func:`ellipsoid_directions`); in ``n ≥ 3`` their number is doubled until the scaled polytope
contains ``(A + BK) X_f`` (:func:`directions_for_image`), which makes ``X_f ⊆ R_1(T_in)``.

Both inclusions are proved exactly on the stored rows (:mod:`scpo.reachability.exact`): every
vertex of ``T_in`` satisfies ``vᵀPv ≤ γ``; every row ``aᵀx ≤ b`` of ``T_out`` has ``b ≥ 0`` and
``γ aᵀP⁻¹a ≤ b²``. A row whose float right-hand side misses the exact test by rounding is
raised to the next float until it passes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import as_array, check_int, check_positive
from ..errors import CertificateError, InvalidInputError, ShapeError
from ..evidence import Claim, Level
from ..systems import LinearSystem
from .exact import ellipsoid_in_polytope, exact_closed_loop, polytope_in_ellipsoid, polytope_in_polytope, solve_exact, to_fractions
from .polytope import DEFAULT_TOL, Polytope, intersect, normalize, reduce, vertices
from .sets import check_gain, check_system, closed_loop_constraints, maximal_positively_invariant

__all__ = [
    "TerminalTarget",
    "ellipsoid_directions",
    "spherical_code",
    "ellipsoid_outer_polytope",
    "ellipsoid_inner_polytope",
    "terminal_targets",
    "directions_for_image",
    "MAX_DIRECTIONS",
]

MAX_DIRECTIONS = 64
"""The most tangent directions :func:`terminal_targets` uses for ``n ≥ 3`` when it refines them. In
3-D (the chain of integrators) 64 directions make ``X_f ⊆ R_1(T_in)``; in 4-D the count needed for
that grows past 2,000 (the covering of the 3-sphere), so ``X_f ⊆ R_k(T_in)`` holds from some
``k₀ > 1`` on instead (the report states ``k₀``)."""


def _check_ellipsoid(P: Any, gamma: Any) -> tuple[np.ndarray, float]:
    P = as_array("P", P, ndim=2)
    if P.shape[0] != P.shape[1]:
        raise ShapeError(f"P: expected a square matrix, got shape {P.shape}")
    if not np.allclose(P, P.T, rtol=1e-12, atol=1e-12 * max(1.0, float(np.abs(P).max()))):
        raise InvalidInputError("P: expected a symmetric matrix")
    if np.linalg.eigvalsh(0.5 * (P + P.T)).min() <= 0:
        raise InvalidInputError("P: expected a positive definite matrix")
    return P, check_positive("gamma", gamma)


def ellipsoid_directions(n: int, count: int) -> np.ndarray:
    """Unit directions ``w_j`` for the tangent polytopes, shape (M, n).

    ``n = 1``: ``±1``. ``n = 2``: ``M = count`` angles ``2πj/M``. ``n ≥ 3``: a spherical code of
    ``M = count`` points (rounded up to even), symmetric under ``w ↦ −w``, spread over the unit
    sphere by minimising the Riesz energy ``Σ 1/‖w_i − w_j‖ⁿ`` from a seeded start (deterministic;
    :func:`spherical_code`). The covering radius ``θ`` of the directions sets the scale
    ``cos θ`` of the inner polytope: more directions, tighter polytopes.

    Parameters
    ----------
    n : int
        State dimension.
    count : int
        ``M`` for ``n ≥ 2`` (``≥ 3``; ``≥ 2n`` for ``n ≥ 3``).

    Returns
    -------
    ndarray, shape (M, n)
    """
    n = check_int("n", n, minimum=1)
    if n == 1:
        return np.array([[1.0], [-1.0]])
    if n == 2:
        count = check_int("directions", count, minimum=3)
        th = 2 * np.pi * np.arange(count) / count
        return np.stack([np.cos(th), np.sin(th)], axis=1)
    count = check_int("directions", count, minimum=2 * n)
    return spherical_code(n, count)


@functools.lru_cache(maxsize=64)
def _spherical_code(n: int, half: int) -> np.ndarray:
    rng = np.random.default_rng(20240601 + n)
    X = rng.standard_normal((half, n))
    X[: min(n, half)] = np.eye(n)[: min(n, half)]  # the coordinate axes are always among the directions
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    step = 0.5 / math.sqrt(half)
    for it in range(400):
        Y = np.vstack([X, -X])
        D = X[:, None, :] - Y[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", D, D)
        np.fill_diagonal(d2[:, :half], np.inf)
        F = np.einsum("ij,ijk->ik", d2 ** (-(n + 2) / 2), D)
        F -= np.sum(F * X, axis=1, keepdims=True) * X  # tangential part
        norm = np.linalg.norm(F, axis=1, keepdims=True)
        X = X + step * (0.995**it) * F / np.maximum(norm.max(), 1e-300)
        X[: min(n, half)] = np.eye(n)[: min(n, half)]
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    out = np.vstack([X, -X])
    out.flags.writeable = False
    return out


def spherical_code(n: int, count: int) -> np.ndarray:
    """``count`` well-spread unit vectors in ``Rⁿ`` (rounded up to even), antipodally symmetric, deterministic.

    Parameters
    ----------
    n : int
        Dimension, ``≥ 2``.
    count : int
        Number of directions, ``≥ 2n``; the first ``n`` are the coordinate axes.

    Returns
    -------
    ndarray, shape (count + count % 2, n)
    """
    n = check_int("n", n, minimum=2)
    count = check_int("count", count, minimum=2 * n)
    return _spherical_code(n, (count + 1) // 2).copy()


def _raise_until_outer(P: np.ndarray, gamma: float, H: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Raise ``h_i`` to the next floats until ``γ a_iᵀP⁻¹a_i ≤ h_i²`` holds exactly."""
    Pq = to_fractions(P)
    from fractions import Fraction

    g = Fraction(float(gamma))
    out = h.copy()
    for i, a in enumerate(H):
        aq = to_fractions(a)
        need = g * sum(x * y for x, y in zip(aq, solve_exact(Pq, aq)))
        for _ in range(64):
            b = Fraction(float(out[i]))
            if b >= 0 and b * b >= need:
                break
            out[i] = np.nextafter(out[i], np.inf)
        else:  # pragma: no cover - 64 ulps always suffice for a correctly rounded sqrt
            raise CertificateError(f"tangent row {i}: could not round its offset outward")
    return out


def ellipsoid_outer_polytope(P: np.ndarray, gamma: float, directions: int = 64) -> Polytope:
    """Tangent polytope ``{x : (L w_j)ᵀ x ≤ √γ}`` ⊇ ``{xᵀPx ≤ γ}`` (``P = L Lᵀ``), proved exactly.

    Parameters
    ----------
    P : array_like, shape (n, n), symmetric positive definite
    gamma : float, > 0
    directions : int
        Number of tangent directions for ``n = 2`` (see :func:`ellipsoid_directions`).

    Returns
    -------
    Polytope
        One row per direction.
    """
    P, gamma = _check_ellipsoid(P, gamma)
    L = np.linalg.cholesky(P)
    W = ellipsoid_directions(P.shape[0], directions)
    H = W @ L.T  # rows (L w)ᵀ
    h = _raise_until_outer(P, gamma, H, np.full(H.shape[0], math.sqrt(gamma)))
    return Polytope(H=H, h=h)


def ellipsoid_inner_polytope(P: np.ndarray, gamma: float, directions: int = 64) -> Polytope:
    """A polytope inside ``{xᵀPx ≤ γ}``: the tangent polytope scaled by ``c < 1``, proved exactly.

    ``c = (1 − 1e-9) / max_v sqrt(vᵀPv/γ)`` over the (float) vertices ``v`` of the tangent
    polytope (``= (1 − 1e-9) cos(π/M)`` for ``n = 2``). The inclusion is then checked on the
    exact vertices; if it failed, ``c`` would be shrunk further (it does not for sane inputs).

    Parameters
    ----------
    P : array_like, shape (n, n), symmetric positive definite
    gamma : float, > 0
    directions : int
        Number of tangent directions for ``n = 2``.

    Returns
    -------
    Polytope

    Raises
    ------
    CertificateError
        The exact inclusion could not be established (numerically degenerate ``P``).
    """
    P, gamma = _check_ellipsoid(P, gamma)
    outer = ellipsoid_outer_polytope(P, gamma, directions)
    V = vertices(outer) if P.shape[0] > 1 else np.array([[b / a[0]] for a, b in zip(outer.H, outer.h)])
    worst = float(np.max(np.einsum("vi,ij,vj->v", V, P, V)) / gamma)
    c = (1.0 - 1e-9) / math.sqrt(worst)
    for _ in range(8):
        inner = Polytope(H=outer.H, h=outer.h * c)
        ok, _ = polytope_in_ellipsoid(inner, P, gamma)
        if ok:
            return inner
        c *= 1.0 - 1e-6
    raise CertificateError("ellipsoid_inner_polytope: could not prove the scaled polytope inside the ellipsoid")


def directions_for_image(P: np.ndarray, gamma: float, A_cl: np.ndarray, directions: int, *, limit: int = MAX_DIRECTIONS) -> int:
    """The number of tangent directions (``n ≥ 3``) whose inner polytope contains ``A_cl X_f``.

    ``directions, 2·directions, 4·directions, …`` (at most ``limit``) are tried in turn; the first
    whose scaled tangent polytope ``{aᵀx ≤ b}`` (:func:`ellipsoid_inner_polytope`) has
    ``sqrt(γ aᵀ A_cl P⁻¹ A_clᵀ a) ≤ (1 − 1e-6) b`` on every row (the support of the ellipsoid
    ``A_cl X_f``, float) is returned, else ``limit``. Then ``A_cl X_f`` — itself invariant, since
    ``A_cl X_f ⊆ X_f`` — lies in the maximal invariant subset ``T_in``, so ``X_f ⊆ R_1(T_in)``:
    the inner targets are tight enough for the backup's one-step set to contain ``X_f``. For
    ``n ≤ 2`` the count is returned unchanged (the 2-D constructions are kept as they were).

    Parameters
    ----------
    P : array_like, shape (n, n)
    gamma : float
    A_cl : array_like, shape (n, n)
    directions : int
        The first count tried.
    limit : int
        The largest count.

    Returns
    -------
    int
    """
    P, gamma = _check_ellipsoid(P, gamma)
    n = P.shape[0]
    if n <= 2:
        return int(directions)
    A_cl = as_array("A_cl", A_cl, shape=(n, n))
    M = gamma * A_cl @ np.linalg.solve(P, A_cl.T)
    count = max(int(directions), 2 * n)
    while True:
        inner = ellipsoid_inner_polytope(P, gamma, count)
        supp = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", inner.H, M, inner.H), 0.0))
        if np.all(supp <= (1 - 1e-6) * inner.h) or count >= limit:
            return min(count, limit)
        count = min(2 * count, limit)


@dataclass(frozen=True)
class TerminalTarget:
    """A polytopic stand-in for ``X_f`` with its relation to ``X_f``.

    Attributes
    ----------
    polytope : Polytope
    relation : {"inner", "outer"}
        ``polytope ⊆ X_f`` or ``polytope ⊇ X_f`` (proved, see ``claims``).
    construction : str
    claims : tuple of Claim
        The exact inclusion (and, for the inner target, its invariance under the backup).
    """

    polytope: Polytope
    relation: str
    construction: str
    claims: tuple[Claim, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with the H-representation."""
        return {
            "relation": self.relation,
            "meaning": (
                "T ⊆ X_f: its k-step sets are inner approximations of those of X_f"
                if self.relation == "inner"
                else "T ⊇ X_f: its k-step sets are outer approximations of those of X_f"
            ),
            "construction": self.construction,
            "facets": self.polytope.n_rows,
            **self.polytope.to_dict(),
            "claims": [c.to_dict() for c in self.claims],
        }


def terminal_targets(
    system: LinearSystem,
    K: np.ndarray,
    P: np.ndarray,
    gamma: float,
    *,
    directions: int = 64,
    tol: float = DEFAULT_TOL,
) -> tuple[TerminalTarget, TerminalTarget]:
    """Inner and outer polytopic targets for ``X_f = {xᵀPx ≤ γ}`` (see the module docstring).

    Parameters
    ----------
    system : LinearSystem
    K : array_like, shape (m, n)
        The backup gain (``X_f`` is assumed positively invariant under it; the inner target is
        made invariant by Gilbert–Tan in any case).
    P : array_like, shape (n, n)
    gamma : float
    directions : int
        Tangent directions; for ``n ≥ 3`` the first count tried by :func:`directions_for_image`
        (doubled until ``X_f ⊆ R_1(T_in)``, at most :data:`MAX_DIRECTIONS` or ``directions`` if larger).
    tol : float

    Returns
    -------
    inner, outer : TerminalTarget
    """
    system = check_system(system)
    K = check_gain(system, K)
    P, gamma = _check_ellipsoid(P, gamma)
    if P.shape[0] != system.n:
        raise ShapeError(f"P: expected shape ({system.n}, {system.n}) to match the system, got {P.shape}")
    Xcl = closed_loop_constraints(system, K, tol)
    directions = directions_for_image(P, gamma, system.A + system.B @ K, directions, limit=max(MAX_DIRECTIONS, directions))
    # outer
    outer_poly = reduce(intersect(ellipsoid_outer_polytope(P, gamma, directions), Xcl), tol)
    # The row scaling of reduce() rounds the offsets: round the tangent rows outward again where
    # needed. Rows of X_cl are left as they are (if X_f does not fit in X_cl, the claim fails).
    Xn = normalize(Xcl)
    tangent = np.array([not np.any(np.all(np.abs(Xn.H - a) <= 1e-12, axis=1)) for a in outer_poly.H], dtype=bool)
    h_out = outer_poly.h.copy()
    if tangent.any():
        h_out[tangent] = _raise_until_outer(P, gamma, outer_poly.H[tangent], outer_poly.h[tangent])
    outer_poly = Polytope(H=outer_poly.H, h=h_out)
    ok_o, worst_o = ellipsoid_in_polytope(P, gamma, outer_poly)
    outer_claim = Claim(
        "outer_target_contains_Xf",
        "X_f = {xᵀPx ≤ γ} ⊆ T_out (every row aᵀx ≤ b of the stored T_out has b ≥ 0 and γ aᵀP⁻¹a ≤ b², rational arithmetic)",
        Level.EXACT,
        ok_o,
        {"worst_support_minus_offset": worst_o, "facets": outer_poly.n_rows},
    )
    outer = TerminalTarget(
        outer_poly,
        "outer",
        f"{ellipsoid_directions(system.n, directions).shape[0]} tangent half-spaces of X_f intersected with X_cl = {{x ∈ X : Kx ∈ U}}",
        (outer_claim,),
    )
    # inner: scaled tangent polytope, then its maximal invariant subset under the backup
    scaled = reduce(intersect(ellipsoid_inner_polytope(P, gamma, directions), Xcl), tol)
    inv = maximal_positively_invariant(system.A + system.B @ K, scaled, max_steps=200, tol=tol)
    inner_poly = inv.polytope
    ok_i, worst_i = polytope_in_ellipsoid(inner_poly, P, gamma)
    ok_inv, worst_inv = polytope_in_polytope(inner_poly, inner_poly, 0.0, M=exact_closed_loop(system.A, system.B, K))
    claims = (
        Claim(
            "inner_target_inside_Xf",
            "T_in ⊆ X_f = {xᵀPx ≤ γ} (every exact vertex v of the stored T_in has vᵀPv ≤ γ, rational arithmetic)",
            Level.EXACT,
            ok_i,
            {"max_vPv_over_gamma": worst_i, "facets": inner_poly.n_rows},
        ),
        Claim(
            "inner_target_invariant",
            "(A+BK) T_in ⊆ T_in: the image of every exact vertex of the stored T_in under the exact A+BK satisfies "
            "every row of T_in (rational arithmetic), so T_in is positively invariant under the backup and the "
            "backup's k-step sets of T_in are nested",
            Level.EXACT,
            bool(ok_inv and inv.converged and not _empty_rows(inner_poly)),
            {"worst_row_violation": worst_inv, "gilbert_tan_steps": inv.steps, "gilbert_tan": inv.message},
        ),
    )
    inner = TerminalTarget(
        inner_poly,
        "inner",
        f"maximal positively invariant subset, under the backup, of the tangent polytope of X_f scaled into X_f "
        f"({ellipsoid_directions(system.n, directions).shape[0]} directions) intersected with X_cl",
        claims,
    )
    return inner, outer


def _empty_rows(P: Polytope) -> bool:
    return bool(P.n_rows and np.all(np.linalg.norm(P.H, axis=1) == 0))
