"""Exact rational checks on stored polytopes (the ``exact`` claims of :mod:`scpo.reachability`).

A polytope's float rows are converted to :class:`fractions.Fraction` exactly (the binary value
of each float, no rounding), so every statement decided here is about the stored
H-representation itself, proved in rational arithmetic:

* :func:`exact_vertices` — every vertex of a bounded ``{x : Hx ≤ h}``, by recursion over faces:
  each vertex lies on some row's hyperplane ``a_iᵀx = b_i``; eliminating one coordinate on
  that hyperplane gives an ``(n−1)``-dimensional polytope (the face), whose vertices are vertices
  of the original; in one dimension the face is an interval. The enumeration is complete and
  exact; it costs ``O(pⁿ)`` rational operations for ``p`` rows and is used for ``n ≤ 2``. For
  ``n ≥ 3`` the vertices come from the exact edge-graph search of
  :func:`scpo.reachability.enumeration.exact_vertices_nd` (same result, cost growing with the
  number of vertices instead).
* :func:`polytope_in_polytope` — ``Q ⊆ R`` iff every vertex of ``Q`` satisfies every row of
  ``R`` (``Q`` is the convex hull of its vertices).
* :func:`ellipsoid_in_polytope` — ``{xᵀPx ≤ γ} ⊆ {a_iᵀx ≤ b_i}`` iff ``b_i ≥ 0`` and
  ``γ a_iᵀP⁻¹a_i ≤ b_i²`` for every row (the support function of the ellipsoid).
* :func:`polytope_in_ellipsoid` — every vertex ``v`` has ``vᵀPv ≤ γ``.
* :func:`exact_area` — the shoelace formula on the exact vertices (2-D); :func:`exact_measure`
  the exact area or ``n``-volume in any dimension
  (:func:`scpo.reachability.enumeration.exact_volume`).
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import InvalidInputError, ShapeError
from .polytope import Polytope

if TYPE_CHECKING:
    from .enumeration import ExactVertices

__all__ = [
    "to_fractions",
    "exact_vertices",
    "polytope_in_polytope",
    "ellipsoid_in_polytope",
    "polytope_in_ellipsoid",
    "exact_area",
    "exact_area_or_nan",
    "exact_measure",
    "exact_vertices_with_tight",
    "solve_exact",
    "exact_closed_loop",
]

Vec = tuple[Fraction, ...]


def to_fractions(a: np.ndarray) -> list:
    """Nested lists of exact :class:`~fractions.Fraction` values of a float array (any shape).

    Parameters
    ----------
    a : array_like
        Finite floats; each is converted to the rational it stores exactly.

    Returns
    -------
    Fraction or list
        A ``Fraction`` for a scalar, nested lists of the array's shape otherwise.
    """
    arr = np.asarray(a, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("to_fractions: expected finite values, got NaN/inf")
    if arr.ndim == 0:
        return Fraction(float(arr))
    return [to_fractions(x) for x in arr] if arr.ndim > 1 else [Fraction(float(x)) for x in arr]


def _vertices_rec(rows: list[tuple[Vec, Fraction]], n: int) -> set[Vec] | None:
    """Vertices of ``{x ∈ Qⁿ : a·x ≤ b for (a, b) in rows}``; ``None`` if unbounded (1-D check)."""
    if n == 1:
        lo: Fraction | None = None
        hi: Fraction | None = None
        for a, b in rows:
            c = a[0]
            if c > 0:
                v = b / c
                hi = v if hi is None or v < hi else hi
            elif c < 0:
                v = b / c
                lo = v if lo is None or v > lo else lo
            elif b < 0:
                return set()
        if lo is None or hi is None:
            return None
        if lo > hi:
            return set()
        return {(lo,), (hi,)}
    out: set[Vec] = set()
    for i, (a, b) in enumerate(rows):
        nz = [j for j in range(n) if a[j] != 0]
        if not nz:
            continue
        k = nz[0]
        ak = a[k]
        free = [j for j in range(n) if j != k]
        # on a·x = b: x_k = (b − Σ_{j≠k} a_j x_j) / a_k
        sub: list[tuple[Vec, Fraction]] = []
        for r, (c, d) in enumerate(rows):
            if r == i:
                continue
            f = c[k] / ak
            sub.append((tuple(c[j] - f * a[j] for j in free), d - f * b))
        face = _vertices_rec(sub, n - 1)
        if face is None:
            return None
        for y in face:
            xk = (b - sum(a[j] * y[t] for t, j in enumerate(free))) / ak
            x = [Fraction(0)] * n
            for t, j in enumerate(free):
                x[j] = y[t]
            x[k] = xk
            out.add(tuple(x))
    return out


def exact_vertices(P: Polytope) -> list[Vec]:
    """All vertices of the bounded polytope ``P`` in exact rational arithmetic.

    Parameters
    ----------
    P : Polytope
        Bounded; its stored float rows are taken exactly.

    Returns
    -------
    list of tuple of Fraction
        Each tuple has length ``n``; the list is empty for an empty ``P``. For ``n = 2`` the
        vertices are in counter-clockwise order (exact angular sort).

    Raises
    ------
    InvalidInputError
        ``P`` is unbounded (a one-dimensional face has no finite end).
    """
    if not isinstance(P, Polytope):
        raise InvalidInputError(f"P: expected a Polytope, got {type(P).__name__}")
    return list(_exact_vertices_cached(P.H.tobytes(), P.h.tobytes(), P.n_rows, P.dim))


@functools.lru_cache(maxsize=512)
def _exact_vertices_cached(Hb: bytes, hb: bytes, p: int, n: int) -> tuple[Vec, ...]:
    # keyed on the exact bytes of the (read-only) rows: the same stored polytope is enumerated once
    P = Polytope(H=np.frombuffer(Hb, dtype=float).reshape(p, n), h=np.frombuffer(hb, dtype=float))
    if n >= 3:
        from .enumeration import exact_vertices_nd

        return tuple(exact_vertices_nd(P).vertices)
    H = to_fractions(P.H)
    h = to_fractions(P.h)
    rows = [(tuple(a), b) for a, b in zip(H, h)]
    if P.dim == 1 or rows:
        verts = _vertices_rec(rows, P.dim)
    else:
        verts = None
    if verts is None:
        raise InvalidInputError("P: expected a bounded polytope for exact vertex enumeration, got an unbounded one")
    if not verts and P.dim > 1 and not _has_no_point(rows, P.dim):
        # a non-empty polytope always has a vertex when bounded; none found means unbounded
        raise InvalidInputError("P: expected a bounded polytope for exact vertex enumeration, got an unbounded one")
    out = sorted(verts)
    if P.dim == 2 and len(out) > 2:
        out = _ccw(out)
    return tuple(out)


def _has_no_point(rows: list[tuple[Vec, Fraction]], n: int) -> bool:
    """Emptiness for the rare case where no vertex was found (decided by an LP, then confirmed)."""
    from .polytope import is_empty

    H = np.array([[float(v) for v in a] for a, _ in rows]).reshape(-1, n)
    h = np.array([float(b) for _, b in rows])
    return is_empty(Polytope(H=H, h=h), tol=0.0)


def _ccw(vs: list[Vec]) -> list[Vec]:
    cx = sum(v[0] for v in vs) / len(vs)
    cy = sum(v[1] for v in vs) / len(vs)

    def half(v: Vec) -> int:
        x, y = v[0] - cx, v[1] - cy
        return 0 if (y > 0 or (y == 0 and x > 0)) else 1

    def cmp(u: Vec, v: Vec) -> int:
        hu, hv = half(u), half(v)
        if hu != hv:
            return hu - hv
        cross = (u[0] - cx) * (v[1] - cy) - (u[1] - cy) * (v[0] - cx)
        return -1 if cross > 0 else (1 if cross < 0 else 0)

    return sorted(vs, key=functools.cmp_to_key(cmp))


def exact_area(P: Polytope) -> Fraction:
    """Exact area of the stored 2-D polytope (shoelace on :func:`exact_vertices`).

    Parameters
    ----------
    P : Polytope
        Bounded, dimension 2.

    Returns
    -------
    Fraction
    """
    if P.dim != 2:
        raise ShapeError(f"P: expected a 2-D polytope for its area, got dimension {P.dim}")
    vs = exact_vertices(P)
    if len(vs) < 3:
        return Fraction(0)
    s = Fraction(0)
    for i, (x0, y0) in enumerate(vs):
        x1, y1 = vs[(i + 1) % len(vs)]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def polytope_in_polytope(
    inner: Polytope, outer: Polytope, tol: float = 0.0, *, M: np.ndarray | None = None
) -> tuple[bool, float]:
    """Exact test of ``M·inner ⊆ outer`` (``M = I`` by default) up to ``tol``.

    Decides ``a_iᵀ(M v) ≤ b_i + tol ‖a_i‖₂`` for every exact vertex ``v`` of ``inner`` and row
    ``i`` of ``outer`` in rational arithmetic, ``M`` taken exactly from its floats (``‖a_i‖₂`` is
    bounded below by a rational, which makes the test slightly stricter, never looser). With
    ``M = A + BK`` built exactly from ``A, B, K`` and ``outer = inner`` this proves positive
    invariance of the stored polytope.

    Parameters
    ----------
    inner : Polytope, dimension ``n`` (bounded)
    outer : Polytope, dimension ``q``
    tol : float
        Allowed violation (a distance on unit-normalised rows of ``outer``).
    M : array_like or list of list of Fraction, shape (q, n), optional
        A float array is taken exactly from its floats; see :func:`exact_closed_loop`.

    Returns
    -------
    holds : bool
    worst : float
        ``max_{v,i} (a_iᵀMv − b_i)/‖a_i‖`` (float, for reporting); ``−inf`` if ``inner`` is empty.
    """
    Mq = None
    if M is not None:
        Mq = M if isinstance(M, list) else to_fractions(np.asarray(M, dtype=float))
        if not Mq or any(len(r) != inner.dim for r in Mq):
            raise ShapeError(f"M: expected a matrix with {inner.dim} columns, got {len(Mq)} rows of other lengths")
    q = inner.dim if Mq is None else len(Mq)
    if q != outer.dim:
        raise ShapeError(f"inner, outer: expected matching dimensions, got {q} (image of inner) and {outer.dim}")
    vs = exact_vertices(inner)
    if Mq is not None:
        vs = [tuple(sum(Mq[r][j] * v[j] for j in range(len(v))) for r in range(q)) for v in vs]
    if not vs:
        return True, float("-inf")
    H = to_fractions(outer.H)
    h = to_fractions(outer.h)
    norms = np.linalg.norm(outer.H, axis=1)
    t = Fraction(float(tol))
    ok = True
    worst = -np.inf
    for a, b, nrm in zip(H, h, norms):
        # a rational lower bound of ‖a‖ (the float norm rounded down a little)
        nlow = Fraction(float(nrm)) * Fraction(999_999, 1_000_000)
        for v in vs:
            lhs = sum(ai * vi for ai, vi in zip(a, v)) - b
            if lhs > t * nlow:
                ok = False
            worst = max(worst, float(lhs) / max(float(nrm), 1e-300))
    return ok, float(worst)


def exact_closed_loop(A: np.ndarray, B: np.ndarray, K: np.ndarray) -> list[list[Fraction]]:
    """``A + B K`` in exact rational arithmetic from the floats of ``A``, ``B``, ``K``.

    Parameters
    ----------
    A : array_like, shape (n, n)
    B : array_like, shape (n, m)
    K : array_like, shape (m, n)

    Returns
    -------
    list of list of Fraction
        Shape (n, n).
    """
    Aq, Bq, Kq = to_fractions(np.atleast_2d(A)), to_fractions(np.atleast_2d(B)), to_fractions(np.atleast_2d(K))
    n, m = len(Aq), len(Kq)
    return [[Aq[i][j] + sum(Bq[i][r] * Kq[r][j] for r in range(m)) for j in range(n)] for i in range(n)]


def solve_exact(M: Sequence[Sequence[Fraction]], rhs: Sequence[Fraction]) -> list[Fraction]:
    """Solve ``M y = rhs`` exactly (Gauss–Jordan on Fractions); ``M`` square and invertible.

    Parameters
    ----------
    M : sequence of sequence of Fraction
        Shape (n, n).
    rhs : sequence of Fraction
        Length ``n``.

    Returns
    -------
    list of Fraction
        ``y``, length ``n``.

    Raises
    ------
    InvalidInputError
        ``M`` is singular.
    """
    n = len(M)
    A = [list(row) + [rhs[i]] for i, row in enumerate(M)]
    for col in range(n):
        piv = next((r for r in range(col, n) if A[r][col] != 0), None)
        if piv is None:
            raise InvalidInputError("M: expected an invertible matrix, got a singular one")
        A[col], A[piv] = A[piv], A[col]
        p = A[col][col]
        A[col] = [v / p for v in A[col]]
        for r in range(n):
            if r != col and A[r][col] != 0:
                f = A[r][col]
                A[r] = [vr - f * vc for vr, vc in zip(A[r], A[col])]
    return [A[i][n] for i in range(n)]


def ellipsoid_in_polytope(P: np.ndarray, gamma: float, Q: Polytope) -> tuple[bool, float]:
    """Exact test of ``{xᵀPx ≤ γ} ⊆ Q`` for ``P ≻ 0`` (support function, rational arithmetic).

    ``max { aᵀx : xᵀPx ≤ γ } = sqrt(γ aᵀP⁻¹a)``, so the inclusion holds iff every row ``aᵀx ≤ b``
    of ``Q`` has ``b ≥ 0`` and ``γ aᵀP⁻¹a ≤ b²``.

    Parameters
    ----------
    P : array_like, shape (n, n)
        Symmetric positive definite.
    gamma : float
    Q : Polytope
        Dimension ``n``.

    Returns
    -------
    holds : bool
    worst : float
        ``max_i (sqrt(γ a_iᵀP⁻¹a_i) − b_i)/‖a_i‖`` (float, for reporting; ``≤ 0`` when it holds).
    """
    P = np.asarray(P, dtype=float)
    Pq = to_fractions(P)
    g = Fraction(float(gamma))
    H = to_fractions(Q.H)
    h = to_fractions(Q.h)
    ok = True
    worst = -np.inf
    for a, b, af in zip(H, h, Q.H):
        if all(v == 0 for v in a):
            ok &= b >= 0
            continue
        y = solve_exact(Pq, a)
        q = g * sum(ai * yi for ai, yi in zip(a, y))
        holds = b >= 0 and q <= b * b
        ok &= bool(holds)
        worst = max(worst, (float(q) ** 0.5 - float(b)) / float(np.linalg.norm(af)))
    return bool(ok), float(worst)


def polytope_in_ellipsoid(Q: Polytope, P: np.ndarray, gamma: float) -> tuple[bool, float]:
    """Exact test of ``Q ⊆ {xᵀPx ≤ γ}``: every exact vertex ``v`` of ``Q`` has ``vᵀPv ≤ γ``.

    Parameters
    ----------
    Q : Polytope
        Bounded, dimension ``n``.
    P : array_like, shape (n, n)
    gamma : float

    Returns
    -------
    holds : bool
    worst : float
        ``max_v vᵀPv / γ`` (float, for reporting; ``≤ 1`` when it holds).
    """
    Pq = to_fractions(np.asarray(P, dtype=float))
    g = Fraction(float(gamma))
    vs = exact_vertices(Q)
    ok = True
    worst = -np.inf
    for v in vs:
        q = sum(v[i] * Pq[i][j] * v[j] for i in range(len(v)) for j in range(len(v)))
        ok &= q <= g
        worst = max(worst, float(q / g) if g != 0 else float("inf"))
    return bool(ok), float(worst)


def exact_area_or_nan(P: Polytope) -> float:
    """The exact area (2-D) or ``n``-volume of a stored polytope as a float (:func:`exact_measure`).

    The name is kept from when only 2-D areas existed; ``nan`` is returned only for ``n = 1``
    (where a length is no area) — every ``n ≥ 2`` gets its exact measure.

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    float
    """
    return float(exact_measure(P)) if P.dim >= 2 else float("nan")


def exact_measure(P: Polytope) -> Fraction:
    """Exact area (``n = 2``, shoelace) or ``n``-volume (facet recursion) of the stored bounded polytope.

    Parameters
    ----------
    P : Polytope
        Bounded.

    Returns
    -------
    Fraction
    """
    if P.dim == 2:
        return exact_area(P)
    return _exact_measure_cached(P.H.tobytes(), P.h.tobytes(), P.n_rows, P.dim)


@functools.lru_cache(maxsize=256)
def _exact_measure_cached(Hb: bytes, hb: bytes, p: int, n: int) -> Fraction:
    from .enumeration import exact_volume

    return exact_volume(Polytope(H=np.frombuffer(Hb, dtype=float).reshape(p, n), h=np.frombuffer(hb, dtype=float)))


def exact_vertices_with_tight(P: Polytope) -> "ExactVertices":
    """The exact vertices of ``P`` (:func:`exact_vertices`) with the rows tight at each, decided exactly.

    Parameters
    ----------
    P : Polytope
        Bounded.

    Returns
    -------
    scpo.reachability.enumeration.ExactVertices
    """
    from .enumeration import ExactVertices, integer_rows

    vs = exact_vertices(P)
    A, B = integer_rows(P)
    tight = []
    for v in vs:
        tight.append(frozenset(i for i, (a, b) in enumerate(zip(A, B)) if sum(ai * vi for ai, vi in zip(a, v)) == b))
    return ExactVertices(list(vs), tight)
