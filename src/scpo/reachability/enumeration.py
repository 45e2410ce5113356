"""Exact vertex enumeration and exact volume of n-dimensional polytopes (integer arithmetic).

The stored float rows of ``P = {x : Hx ≤ h}`` are taken exactly: row ``i`` times the power of two
that clears the denominators of its floats is an integer row ``A_i x ≤ B_i`` describing the same
half-space. Vertices are exact rationals ``num / den`` (integer vector, positive integer).

* :func:`exact_vertices_nd` — every vertex, by a search over the edge graph of ``P``. A first vertex
  comes from an LP (HiGHS) and is made exact: ``n`` linearly independent rows that are tight at the
  LP optimum are solved in rational arithmetic and the solution is checked against every row
  exactly. From a vertex ``v`` with tight rows ``T`` the edges leave along the extreme rays of the
  tangent cone ``{d : A_T d ≤ 0}``: a direction ``d ≠ 0`` with ``n − 1`` linearly independent
  tight rows of ``T`` (the cofactor vector of those rows) and ``A_T d ≤ 0``; the exact ratio test
  ``t* = min { (B_r − A_r v) / (A_r d) : A_r d > 0 }`` gives the neighbour ``v + t* d``, and no
  positive ``A_r d`` means ``P`` is unbounded. The graph of a polytope is connected (Balinski), so
  the search finds every vertex; every decision is made in exact arithmetic, so the result is the
  exact vertex set of the stored rows (degenerate vertices included). Its cost grows with the
  number of vertices and edges, not as ``pⁿ`` like the face recursion of
  :func:`scpo.reachability.exact.exact_vertices` for ``n ≤ 2``.
* :func:`exact_volume` — the facet recursion ``vol_d(P) = (1/d) Σ_F dist(p, F) vol_{d−1}(F)``
  with ``p`` a vertex, all in rationals: facet ``F`` on ``aᵀx = b`` is projected along a coordinate
  ``k`` with ``a_k ≠ 0`` (``vol(proj F) = vol(F) |a_k| / ‖a‖``), so that
  ``dist(p, F) vol(F) = (b − aᵀp) vol(proj F) / |a_k|`` is rational; the projected facet is the
  polytope of the rows touching it with ``x_k`` eliminated. No float triangulation is involved.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np
import scipy.optimize

from ..errors import InvalidInputError, SolverError
from .polytope import Polytope, normalize

__all__ = ["ExactVertices", "exact_vertices_nd", "exact_volume", "integer_rows"]

_MAX_CONE_SUBSETS = 200_000  # C(|T|, n−1) subsets tried at one degenerate vertex before giving up


def integer_rows(P: Polytope) -> tuple[list[tuple[int, ...]], list[int]]:
    """The stored rows of ``P`` as integer rows describing the same half-spaces exactly.

    Row ``i`` (floats ``a_i``, ``b_i``) is multiplied by the least power of two ``2^s`` that makes
    every entry an integer, then divided by the gcd of its entries (positive scalings only).

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    A : list of tuple of int
        ``p`` rows of length ``n``.
    B : list of int
        ``p`` right-hand sides.
    """
    A: list[tuple[int, ...]] = []
    B: list[int] = []
    for a, b in zip(P.H, P.h):
        row, rhs = _integer_row(tuple(float(x) for x in a) + (float(b),))
        A.append(row)
        B.append(rhs)
    return A, B


@functools.lru_cache(maxsize=8192)
def _integer_row(floats: tuple[float, ...]) -> tuple[tuple[int, ...], int]:
    """One row ``(a, b)`` as the integer row of :func:`integer_rows` (cached: clipped boxes share ``C``'s rows)."""
    fr = [Fraction(x) for x in floats]
    den = max(f.denominator for f in fr)  # powers of two: the largest is their lcm
    ints = [int(f * den) for f in fr]
    g = functools.reduce(math.gcd, ints, 0) or 1
    ints = [v // g for v in ints]
    return tuple(ints[:-1]), ints[-1]


def _solve_int(M: list[tuple[int, ...]], rhs: list[int]) -> tuple[tuple[int, ...], int] | None:
    """Solve the square integer system ``M x = rhs`` exactly: ``x = num / den``; ``None`` if singular."""
    n = len(M)
    T = [[Fraction(v) for v in row] + [Fraction(r)] for row, r in zip(M, rhs)]
    for c in range(n):
        piv = next((r for r in range(c, n) if T[r][c] != 0), None)
        if piv is None:
            return None
        T[c], T[piv] = T[piv], T[c]
        p = T[c][c]
        T[c] = [v / p for v in T[c]]
        for r in range(n):
            if r != c and T[r][c] != 0:
                f = T[r][c]
                T[r] = [a - f * b for a, b in zip(T[r], T[c])]
    x = [T[i][n] for i in range(n)]
    den = functools.reduce(lambda a, b: a * b // math.gcd(a, b), (v.denominator for v in x), 1)
    return tuple(int(v * den) for v in x), den


def _reduce(num: tuple[int, ...], den: int) -> tuple[tuple[int, ...], int]:
    g = functools.reduce(math.gcd, num, den)
    if den < 0:
        g = -g
    return tuple(v // g for v in num), den // g


def _rank(rows: list[tuple[int, ...]], n: int) -> int:
    """Exact rank of integer rows (fraction-free elimination)."""
    M = [list(r) for r in rows]
    rank, col = 0, 0
    while rank < len(M) and col < n:
        piv = next((r for r in range(rank, len(M)) if M[r][col] != 0), None)
        if piv is None:
            col += 1
            continue
        M[rank], M[piv] = M[piv], M[rank]
        p = M[rank]
        for r in range(rank + 1, len(M)):
            if M[r][col] != 0:
                f = M[r][col]
                M[r] = [p[col] * x - f * y for x, y in zip(M[r], p)]
                g = functools.reduce(math.gcd, M[r], 0) or 1
                M[r] = [x // g for x in M[r]]
        rank += 1
        col += 1
    return rank


def _cross4(r: tuple[int, ...], s: tuple[int, ...], t: tuple[int, ...]) -> list[int]:
    """``d_j = (−1)^j det(rows r, s, t without column j)`` for ``n = 4`` (2×2 minors of ``s, t`` shared)."""
    m01 = s[0] * t[1] - s[1] * t[0]
    m02 = s[0] * t[2] - s[2] * t[0]
    m03 = s[0] * t[3] - s[3] * t[0]
    m12 = s[1] * t[2] - s[2] * t[1]
    m13 = s[1] * t[3] - s[3] * t[1]
    m23 = s[2] * t[3] - s[3] * t[2]
    return [r[1] * m23 - r[2] * m13 + r[3] * m12,
            -(r[0] * m23 - r[2] * m03 + r[3] * m02),
            r[0] * m13 - r[1] * m03 + r[3] * m01,
            -(r[0] * m12 - r[1] * m02 + r[2] * m01)]


def _cofactor_direction(rows: list[tuple[int, ...]], n: int) -> tuple[int, ...] | None:
    """A non-zero integer ``d`` with ``rows · d = 0`` for ``n − 1`` rows of rank ``n − 1`` (else ``None``).

    The generalised cross product: ``d_j = (−1)^j det(rows without column j)``.
    """
    if n == 4:
        d = _cross4(*rows)
    elif n == 3:
        (a1, a2, a3), (b1, b2, b3) = rows
        d = [a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1]
    else:
        d = []
        for j in range(n):
            minor = [tuple(r[c] for c in range(n) if c != j) for r in rows]
            d.append((-1) ** j * _det_int(minor))
    if not any(d):
        return None
    g = functools.reduce(math.gcd, d, 0)
    return tuple(v // g for v in d)


def _det_int(M: list[tuple[int, ...]]) -> int:
    """Exact determinant of a square integer matrix (Bareiss)."""
    n = len(M)
    if n == 0:
        return 1
    A = [list(r) for r in M]
    sign, prev = 1, 1
    for k in range(n - 1):
        if A[k][k] == 0:
            piv = next((r for r in range(k + 1, n) if A[r][k] != 0), None)
            if piv is None:
                return 0
            A[k], A[piv] = A[piv], A[k]
            sign = -sign
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                A[i][j] = (A[i][j] * A[k][k] - A[i][k] * A[k][j]) // prev
        prev = A[k][k]
    return sign * A[n - 1][n - 1]


class ExactVertices:
    """The exact vertices of a stored polytope with their tight rows (result of :func:`exact_vertices_nd`).

    Parameters
    ----------
    vertices : list of tuple of Fraction
        Each of length ``n``, sorted.
    tight : list of frozenset of int
        ``tight[i]``: the rows of ``P`` (indices into ``P.H``) with ``a_rᵀ v_i = b_r`` exactly.
    """

    def __init__(self, vertices: list[tuple[Fraction, ...]], tight: list[frozenset[int]]) -> None:
        self.vertices = vertices
        self.tight = tight

    def __len__(self) -> int:
        return len(self.vertices)


def _first_vertex(P: Polytope, A: list[tuple[int, ...]], B: list[int], Aobj: np.ndarray, Bobj: np.ndarray) -> tuple[tuple[int, ...], int] | None:
    """An exact vertex of ``P`` from LP optima (generic objectives, then float cdd vertices); ``None`` if empty."""
    n = P.dim
    Pn = normalize(P)
    rng = np.random.default_rng(12345)
    def candidates():  # LP optima, solved one at a time: the first usually gives the vertex
        found = False
        for _ in range(4):
            c = rng.standard_normal(n)
            res = scipy.optimize.linprog(-c, A_ub=Pn.H, b_ub=Pn.h, bounds=[(None, None)] * n, method="highs")
            if res.status == 2:
                yield None
                return
            if res.status == 3:
                raise InvalidInputError("P: expected a bounded polytope for exact vertex enumeration, got an unbounded one")
            if res.status == 0:
                found = True
                yield np.asarray(res.x)
        if not found:
            raise SolverError("exact vertex enumeration: HiGHS found no optimal vertex of P")

    norms = np.linalg.norm(P.H, axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    for x in candidates():
        if x is None:
            return None
        slack = (P.h - P.H @ x) / norms
        order = np.argsort(slack)
        near = [int(i) for i in order if slack[i] <= 1e-6 * (1 + np.abs(x).max())]
        # the n most nearly tight rows that are linearly independent (float test, exact check below)
        chosen: list[int] = []
        for i in near:
            trial = chosen + [i]
            if np.linalg.matrix_rank(P.H[trial], tol=1e-10) == len(trial):
                chosen = trial
            if len(chosen) == n:
                break
        if len(chosen) < n:
            continue
        sol = _solve_int([A[i] for i in chosen], [B[i] for i in chosen])
        if sol is None:
            continue
        num, den = _reduce(*sol)
        if np.all(Aobj.dot(np.array(num, dtype=object)) - Bobj * den <= 0):
            return num, den
        # float tightness misled us: try subsets of the near-tight rows
        for subset in itertools.islice(itertools.combinations(near[: n + 6], n), 2000):
            sol = _solve_int([A[i] for i in subset], [B[i] for i in subset])
            if sol is None:
                continue
            num, den = _reduce(*sol)
            if np.all(Aobj.dot(np.array(num, dtype=object)) - Bobj * den <= 0):
                return num, den
    raise SolverError("exact vertex enumeration: could not turn an LP optimum into an exact vertex of P")


def _as_vertex(point: tuple[Fraction, ...], A: list[tuple[int, ...]], B: list[int], n: int) -> tuple[tuple[int, ...], int]:
    """``point`` as ``(numerators, denominator)`` after checking exactly that it is a vertex of ``{A x ≤ B}``."""
    q = [Fraction(v) for v in point]
    if len(q) != n:
        raise InvalidInputError(f"start: expected a point of dimension {n}, got {len(q)} coordinates")
    den = functools.reduce(lambda a, b: a * b // math.gcd(a, b), (v.denominator for v in q), 1)
    num = tuple(int(v * den) for v in q)
    tight = []
    for a, b in zip(A, B):
        s = sum(ai * xi for ai, xi in zip(a, num)) - b * den
        if s > 0:
            raise InvalidInputError("start: expected a vertex of P, got a point outside P")
        if s == 0 and any(a):
            tight.append(a)
    if _rank(tight, n) < n:
        raise InvalidInputError("start: expected a vertex of P, got a point with fewer than n independent tight rows")
    return _reduce(num, den)


def exact_vertices_nd(P: Polytope, start: tuple[Fraction, ...] | None = None) -> ExactVertices:
    """Every vertex of the bounded polytope ``P`` (stored rows taken exactly) by edge-graph search.

    Parameters
    ----------
    P : Polytope
        Bounded, any dimension ``n ≥ 1``.
    start : tuple of Fraction, optional
        A known vertex of ``P`` to start the search from (e.g. a corner of a clipped box that lies
        in ``P``), which saves the LPs of finding one. It is checked exactly (feasible, ``n``
        linearly independent tight rows); a point that is not a vertex is an error.

    Returns
    -------
    ExactVertices
        Empty for an empty ``P``.

    Raises
    ------
    InvalidInputError
        ``P`` is unbounded, or a degenerate vertex has too many tight rows to enumerate its edges.
    SolverError
        No exact first vertex could be found from the LP optima.
    """
    n = P.dim
    A, B = integer_rows(P)
    keep = [i for i, a in enumerate(A) if any(a)]
    if any(B[i] < 0 for i, a in enumerate(A) if not any(a)):
        return ExactVertices([], [])
    if not keep:
        raise InvalidInputError("P: expected a bounded polytope for exact vertex enumeration, got the whole space")
    Aobj = np.array([A[i] for i in keep], dtype=object).reshape(len(keep), n)
    Bobj = np.array([B[i] for i in keep], dtype=object)
    if start is not None:
        start = _as_vertex(start, A, B, n)
    else:
        start = _first_vertex(P, A, B, np.array(A, dtype=object).reshape(len(A), n), np.array(B, dtype=object))
    if start is None:
        return ExactVertices([], [])
    seen: dict[tuple[tuple[int, ...], int], frozenset[int]] = {}
    stack = [start]
    while stack:
        num, den = stack.pop()
        if (num, den) in seen:
            continue
        slack = Bobj * den - Aobj.dot(np.array(num, dtype=object))  # ≥ 0, exact
        T = [j for j in range(len(keep)) if slack[j] == 0]
        seen[(num, den)] = frozenset(keep[j] for j in T)
        rowsT = [tuple(int(v) for v in Aobj[j]) for j in T]
        subsets = math.comb(len(T), n - 1)
        if subsets > _MAX_CONE_SUBSETS:
            raise InvalidInputError(f"P: a vertex has {len(T)} tight rows in dimension {n}; too degenerate for exact edge enumeration")
        rays: set[tuple[int, ...]] = set()
        for S in itertools.combinations(range(len(T)), n - 1) if n > 1 else [()]:
            if n == 1:
                d = (1,)
            else:
                d = _cofactor_direction([rowsT[s] for s in S], n)
                if d is None:
                    continue
            # rows of S are orthogonal to ±d by construction; the other tight rows decide which of ±d is a ray
            inS = set(S)
            vals = [sum(a * x for a, x in zip(rowsT[k], d)) for k in range(len(T)) if k not in inS]
            if all(v <= 0 for v in vals):
                rays.add(d)
            if all(v >= 0 for v in vals):
                rays.add(tuple(-v for v in d))
        for d in rays:
            Ad = Aobj.dot(np.array(d, dtype=object))
            # exact ratio test t* = min slack_j / (Ad_j · den) over Ad_j > 0, by integer cross-multiplication
            bn, bd = None, None
            for j in range(len(keep)):
                adj = int(Ad[j])
                if adj > 0:
                    sj, dj = int(slack[j]), adj * den
                    if bn is None or sj * bd < bn * dj:
                        bn, bd = sj, dj
            if bn is None:
                raise InvalidInputError("P: expected a bounded polytope for exact vertex enumeration, got an unbounded one")
            if bn == 0:
                continue  # cannot happen for an extreme ray of the tangent cone; stay safe
            g = math.gcd(bn, bd)
            p_, q = bn // g, bd // g
            nxt = _reduce(tuple(x * q + p_ * den * di for x, di in zip(num, d)), den * q)
            if nxt not in seen:
                stack.append(nxt)
    items = sorted((tuple(Fraction(x, den) for x in num), tight) for (num, den), tight in seen.items())
    return ExactVertices([v for v, _ in items], [t for _, t in items])


def _affine_rank(points: list[tuple[Fraction, ...]]) -> int:
    if len(points) <= 1:
        return 0
    p0 = points[0]
    rows = []
    for p in points[1:]:
        diff = [a - b for a, b in zip(p, p0)]
        den = functools.reduce(lambda a, b: a * b // math.gcd(a, b), (v.denominator for v in diff), 1)
        rows.append(tuple(int(v * den) for v in diff))
    return _rank(rows, len(p0))


def _volume_rec(points: list[tuple[Fraction, ...]], incid: list[frozenset[int]], rows: dict[int, tuple[tuple[Fraction, ...], Fraction]]) -> Fraction:
    """``d``-volume of ``conv(points)``; ``incid[i]`` are the rows (ids into ``rows``) tight at ``points[i]``."""
    d = len(points[0])
    if len(points) <= d:
        return Fraction(0)
    if d == 1:
        xs = [p[0] for p in points]
        return max(xs) - min(xs)
    if _affine_rank(points) < d:
        return Fraction(0)
    p0 = points[0]
    faces: dict[frozenset[int], int] = {}
    for r in sorted(set().union(*incid)):
        F = frozenset(i for i, t in enumerate(incid) if r in t)
        if len(F) >= d and 0 not in F and F not in faces:
            faces[F] = r
    total = Fraction(0)
    for F, r in faces.items():
        a, b = rows[r]
        k = max(range(d), key=lambda j: abs(a[j]))
        ak = a[k]
        if ak == 0:
            continue
        idx = sorted(F)
        sub_points = [tuple(points[i][j] for j in range(d) if j != k) for i in idx]
        touching = set().union(*(incid[i] for i in idx)) - {r}
        sub_rows = {}
        for s in touching:
            c, e = rows[s]
            f = c[k] / ak
            sub_rows[s] = (tuple(c[j] - f * a[j] for j in range(d) if j != k), e - f * b)
        sub_incid = [incid[i] - {r} for i in idx]
        vol = _volume_rec(sub_points, sub_incid, sub_rows)
        if vol:
            height = b - sum(ai * pi for ai, pi in zip(a, p0))
            total += height * vol / abs(ak)
    return total / d


def exact_volume(P: Polytope) -> Fraction:
    """The exact ``n``-volume of the stored polytope ``P`` (facet recursion in rationals, module docstring).

    Parameters
    ----------
    P : Polytope
        Bounded, dimension ``n ≥ 1``.

    Returns
    -------
    Fraction
        ``0`` for an empty or lower-dimensional ``P``.
    """
    from .exact import exact_vertices_with_tight

    ev = exact_vertices_with_tight(P)
    if len(ev.vertices) <= P.dim:
        return Fraction(0)
    A, B = integer_rows(P)
    rows = {i: (tuple(Fraction(v) for v in a), Fraction(b)) for i, (a, b) in enumerate(zip(A, B))}
    return _volume_rec(list(ev.vertices), list(ev.tight), rows)
