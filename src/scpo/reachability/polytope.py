"""H-polytopes ``{x : Hx ≤ h}`` as a small value type, with pure functions over them.

Every decision here (emptiness, boundedness, redundancy, containment, support) is an LP solved
with scipy's HiGHS; a status other than *optimal* never counts as a proof: a row whose
redundancy LP fails is kept (keeping a row never changes the set), a containment whose LP fails
is reported as not shown. Vertex enumeration and projection use pycddlib (``cdd``, the
double-description method of cddlib, floating-point version); the projections are cleaned by the
LP redundancy removal afterwards. Exact rational counterparts of the decisions needed for
``exact`` claims live in :mod:`scpo.reachability.exact`.

Tolerances are absolute, on rows scaled to unit Euclidean norm (``‖H_i‖₂ = 1``), so that
``tol`` is a distance in the state space.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cdd
import numpy as np
import scipy.optimize

from .._validate import as_array, check_int, check_nonnegative
from ..errors import InvalidInputError, ShapeError, SolverError
from ..numerics import CONTAINMENT_TOL, SET_TOL

__all__ = [
    "Polytope",
    "DEFAULT_TOL",
    "box",
    "whole_space",
    "empty",
    "normalize",
    "intersect",
    "preimage",
    "reduce",
    "chebyshev_center",
    "is_empty",
    "is_bounded",
    "bounding_box",
    "support",
    "contains",
    "equals",
    "vertices",
    "project",
    "area",
    "uniform_points",
    "slice_at",
]

logger = logging.getLogger(__name__)

DEFAULT_TOL = SET_TOL
"""Absolute tolerance (a distance, rows having unit norm) of redundancy removal and emptiness: an
alias of :data:`scpo.numerics.SET_TOL`. LP containment decisions (and the termination tests built
on them) use :data:`scpo.numerics.CONTAINMENT_TOL`, above the accuracy HiGHS delivers (its
feasibility tolerances are set to 1e-9 here, and it drops matrix entries below 1e-9), so that
``contains(P, P)`` holds for every ``P``."""

_HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-9, "dual_feasibility_tolerance": 1e-9}

_ZERO_ROW = 1e-150  # rows with ‖H_i‖ below this are treated as 0·x ≤ h_i (only to avoid overflow)


@dataclass(frozen=True, eq=False)
class Polytope:
    """``{x ∈ Rⁿ : H x ≤ h}`` (a polyhedron; "polytope" when bounded).

    Attributes
    ----------
    H : ndarray, shape (p, n)
        Row ``i`` is the normal of the half-space ``H_i x ≤ h_i``; ``p = 0`` is the whole space.
    h : ndarray, shape (p,)

    Raises
    ------
    ShapeError
        ``H`` not 2-D, ``n = 0``, or ``h`` not of length ``p``.
    NonFiniteError
        NaN or infinity in ``H`` or ``h``.
    """

    H: np.ndarray
    h: np.ndarray

    def __post_init__(self) -> None:
        H = as_array("H", self.H, ndim=2)
        if H.shape[1] == 0:
            raise ShapeError(f"H: expected at least one column (the state dimension), got shape {H.shape}")
        h = as_array("h", self.h, shape=(H.shape[0],))
        for name, val in (("H", H), ("h", h)):
            val = val.copy()
            val.flags.writeable = False
            object.__setattr__(self, name, val)

    @property
    def dim(self) -> int:
        """Dimension ``n`` of the ambient space."""
        return int(self.H.shape[1])

    @property
    def n_rows(self) -> int:
        """Number of inequalities ``p`` (facets, once :func:`reduce` has been applied)."""
        return int(self.H.shape[0])

    def residual(self, points: np.ndarray) -> np.ndarray:
        """``max_i (H_i x − h_i)/‖H_i‖`` per point (≤ 0 inside), shape (S,); ``−inf`` with no rows.

        Parameters
        ----------
        points : array_like, shape (S, n) or (n,)
        """
        X = as_array("points", np.atleast_2d(points), shape=(None, self.dim))
        if self.n_rows == 0:
            return np.full(X.shape[0], -np.inf)
        norms = np.linalg.norm(self.H, axis=1)
        norms = np.where(norms > _ZERO_ROW, norms, 1.0)
        return np.max((X @ self.H.T - self.h) / norms, axis=1)

    def contains_points(self, points: np.ndarray, tol: float = 0.0) -> np.ndarray:
        """Whether each point satisfies every row up to ``tol`` (distance).

        Parameters
        ----------
        points : array_like, shape (S, n) or (n,)
        tol : float
            Accepted unit-row residual.

        Returns
        -------
        ndarray of bool, shape (S,)
        """
        return self.residual(points) <= tol

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"H": [[…]], "h": […], "dim": n, "rows": p}``."""
        return {"dim": self.dim, "rows": self.n_rows, "H": self.H.tolist(), "h": self.h.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Polytope":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        data : dict
            With keys ``dim``, ``H``, ``h``.

        Returns
        -------
        Polytope
        """
        H = np.asarray(data["H"], dtype=float).reshape(-1, int(data["dim"]))
        return cls(H=H, h=np.asarray(data["h"], dtype=float))

    def __repr__(self) -> str:
        return f"Polytope(dim={self.dim}, rows={self.n_rows})"


# ---------------------------------------------------------------------------- constructors
def box(lower: Sequence[float] | np.ndarray, upper: Sequence[float] | np.ndarray) -> Polytope:
    """The box ``{x : lower ≤ x ≤ upper}`` with rows ``+e_i`` then ``−e_i``.

    Parameters
    ----------
    lower, upper : array_like, shape (n,)

    Returns
    -------
    Polytope
        ``2n`` rows.

    Raises
    ------
    InvalidInputError
        ``lower_i > upper_i`` for some ``i`` (an empty box is refused as bad input).
    """
    lo = as_array("lower", lower, ndim=1)
    hi = as_array("upper", upper, shape=(lo.size,))
    if lo.size == 0:
        raise ShapeError("lower: expected at least one coordinate, got none")
    if np.any(lo > hi):
        raise InvalidInputError(f"lower, upper: expected lower ≤ upper, got lower = {lo.tolist()}, upper = {hi.tolist()}")
    n = lo.size
    H = np.zeros((2 * n, n))
    h = np.zeros(2 * n)
    for i in range(n):
        H[2 * i, i], h[2 * i] = 1.0, hi[i]
        H[2 * i + 1, i], h[2 * i + 1] = -1.0, -lo[i]
    return Polytope(H=H, h=h)


def whole_space(n: int) -> Polytope:
    """``Rⁿ``: the polytope with no rows.

    Parameters
    ----------
    n : int
        Dimension of the space.

    Returns
    -------
    Polytope
        Zero rows.
    """
    return Polytope(H=np.zeros((0, int(n))), h=np.zeros(0))


def empty(n: int) -> Polytope:
    """The canonical empty set ``{x : 0·x ≤ −1}`` in ``Rⁿ`` (``n`` its dimension).

    Parameters
    ----------
    n : int

    Returns
    -------
    Polytope
        One row, ``0·x ≤ −1``.
    """
    return Polytope(H=np.zeros((1, int(n))), h=np.array([-1.0]))


def _same_dim(name_a: str, a: Polytope, name_b: str, b: Polytope) -> None:
    if a.dim != b.dim:
        raise ShapeError(f"{name_a}, {name_b}: expected polytopes of the same dimension, got {a.dim} and {b.dim}")


def _check_polytope(name: str, P: Any) -> Polytope:
    if not isinstance(P, Polytope):
        raise InvalidInputError(f"{name}: expected a Polytope, got {type(P).__name__}")
    return P


# ---------------------------------------------------------------------------- pure set maps
def normalize(P: Polytope) -> Polytope:
    """Scale rows to unit norm, drop rows ``0·x ≤ h_i`` with ``h_i ≥ 0`` and exact duplicates.

    Rows ``0·x ≤ h_i`` with ``h_i < 0`` make the set empty: then :func:`empty` is returned. The
    set is unchanged (only positive row scalings, trivially true and duplicated rows removed).

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    Polytope
    """
    P = _check_polytope("P", P)
    if P.n_rows == 0:
        return P
    norms = np.linalg.norm(P.H, axis=1)
    zero = norms <= _ZERO_ROW
    if np.any(zero & (P.h < 0)):
        return empty(P.dim)
    H = P.H[~zero] / norms[~zero, None]
    h = P.h[~zero] / norms[~zero]
    if H.shape[0] == 0:
        return whole_space(P.dim)
    # exact duplicates of the normal: keep the tightest right-hand side
    order = np.lexsort(np.vstack([h, H.T[::-1]]))
    H, h = H[order], h[order]
    keep = np.ones(H.shape[0], dtype=bool)
    keep[1:] = np.any(H[1:] != H[:-1], axis=1)
    return Polytope(H=H[keep], h=h[keep])


def intersect(*polytopes: Polytope) -> Polytope:
    """``P₁ ∩ P₂ ∩ …`` by stacking rows (not reduced).

    Parameters
    ----------
    *polytopes : Polytope
        At least one, all of the same dimension.

    Returns
    -------
    Polytope

    Raises
    ------
    ShapeError
        Polytopes of different dimensions.
    """
    if not polytopes:
        raise InvalidInputError("polytopes: expected at least one polytope, got none")
    first = _check_polytope("polytopes[0]", polytopes[0])
    for i, P in enumerate(polytopes[1:], start=1):
        _same_dim("polytopes[0]", first, f"polytopes[{i}]", _check_polytope(f"polytopes[{i}]", P))
    return Polytope(H=np.vstack([P.H for P in polytopes]), h=np.concatenate([P.h for P in polytopes]))


def preimage(P: Polytope, M: np.ndarray, c: np.ndarray | None = None) -> Polytope:
    """Affine pre-image ``{x : M x + c ∈ P} = {x : (H M) x ≤ h − H c}`` (exact: rows are stacked).

    Parameters
    ----------
    P : Polytope, dimension ``q``
    M : array_like, shape (q, n)
    c : array_like, shape (q,), optional (default 0)

    Returns
    -------
    Polytope
        Dimension ``n``, the same number of rows as ``P``.
    """
    P = _check_polytope("P", P)
    M = as_array("M", M, ndim=2)
    if M.shape[0] != P.dim:
        raise ShapeError(f"M: expected {P.dim} rows to match P of dimension {P.dim}, got shape {M.shape}")
    h = P.h.copy()
    if c is not None:
        c = as_array("c", c, shape=(P.dim,))
        h = h - P.H @ c
    return Polytope(H=P.H @ M, h=h)


# ---------------------------------------------------------------------------- LPs
@dataclass(frozen=True)
class _LP:
    status: int  # 0 optimal, 2 infeasible, 3 unbounded, other: failure
    value: float
    x: np.ndarray | None


def _lp_max(c: np.ndarray, A: np.ndarray, b: np.ndarray, bounds: Any = None) -> _LP:
    """``max cᵀz s.t. A z ≤ b`` with HiGHS (free variables unless ``bounds``)."""
    n = c.size
    if bounds is None:
        bounds = [(None, None)] * n
    if A.shape[0] == 0:
        A = np.zeros((1, n))
        b = np.zeros(1)
    res = scipy.optimize.linprog(-c, A_ub=A, b_ub=b, bounds=bounds, method="highs", options=_HIGHS_OPTIONS)
    if res.status == 0:
        return _LP(0, float(-res.fun), np.asarray(res.x))
    return _LP(int(res.status), math.nan, None)


def chebyshev_center(P: Polytope) -> tuple[np.ndarray, float]:
    """Centre and radius of the largest ball inside ``P``.

    Solves ``max r  s.t.  H_i x + r ‖H_i‖ ≤ h_i`` (``r`` free): ``r < 0`` means ``P`` is empty
    (the LP then measures how far the rows are from having a common point), ``r = 0`` a set with
    empty interior.

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    center : ndarray, shape (n,)
    radius : float
        ``inf`` when balls of any radius fit (e.g. a half-space), with ``center`` NaN.

    Raises
    ------
    SolverError
        HiGHS did not return an optimal solution.
    """
    P = normalize(P)
    n = P.dim
    if P.n_rows == 0:
        return np.full(n, np.nan), math.inf
    A = np.hstack([P.H, np.ones((P.n_rows, 1))])
    c = np.zeros(n + 1)
    c[-1] = 1.0
    lp = _lp_max(c, A, P.h)
    if lp.status == 3:
        return np.full(n, np.nan), math.inf
    if lp.status != 0:
        raise SolverError(f"chebyshev_center: HiGHS returned status {lp.status} (not optimal)")
    return lp.x[:n], float(lp.x[n])


def is_empty(P: Polytope, tol: float = DEFAULT_TOL) -> bool:
    """Whether ``P`` is empty: the Chebyshev radius is ``< −tol`` (see :func:`chebyshev_center`).

    A set with empty interior (a point, a segment in the plane) is not empty.

    Parameters
    ----------
    P : Polytope
    tol : float
        Distance by which the rows may miss a common point and still count as non-empty.
    """
    tol = check_nonnegative("tol", tol)
    return chebyshev_center(P)[1] < -tol


def bounding_box(P: Polytope) -> tuple[np.ndarray, np.ndarray]:
    """``min / max x_i`` over ``P`` for every coordinate (2n LPs).

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    lower, upper : ndarray, shape (n,)
        ``±inf`` where ``P`` is unbounded in that direction.

    Raises
    ------
    InvalidInputError
        ``P`` is empty.
    SolverError
        An LP failed.
    """
    P = normalize(P)
    n = P.dim
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for i in range(n):
        for sign in (1.0, -1.0):
            c = np.zeros(n)
            c[i] = sign
            lp = _lp_max(c, P.H, P.h)
            if lp.status == 2:
                raise InvalidInputError("P: expected a non-empty polytope, got an empty one (its rows are infeasible)")
            if lp.status == 3:
                continue
            if lp.status != 0:
                raise SolverError(f"bounding_box: HiGHS returned status {lp.status} (not optimal)")
            if sign > 0:
                hi[i] = lp.value
            else:
                lo[i] = -lp.value
    return lo, hi


def is_bounded(P: Polytope) -> bool:
    """Whether ``P`` is bounded: its recession cone ``{d : H d ≤ 0}`` is ``{0}``.

    Decided by ``2n`` LPs ``max ±d_i s.t. H d ≤ 0, −1 ≤ d ≤ 1`` (any optimum above
    :data:`scpo.numerics.SET_TOL` is a direction of unboundedness). The empty set counts as bounded.

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    bool
    """
    P = normalize(P)
    if is_empty(P):
        return True
    n = P.dim
    for i in range(n):
        for sign in (1.0, -1.0):
            c = np.zeros(n)
            c[i] = sign
            lp = _lp_max(c, P.H, np.zeros(P.n_rows), bounds=[(-1.0, 1.0)] * n)
            if lp.status != 0:
                raise SolverError(f"is_bounded: HiGHS returned status {lp.status} (not optimal)")
            if lp.value > SET_TOL:
                return False
    return True


def support(P: Polytope, direction: np.ndarray) -> float:
    """``max { dᵀx : x ∈ P }``; ``+inf`` if unbounded, ``−inf`` if ``P`` is empty.

    Parameters
    ----------
    P : Polytope
    direction : array_like, shape (n,)

    Raises
    ------
    SolverError
        HiGHS failed for another reason.
    """
    P = _check_polytope("P", P)
    d = as_array("direction", direction, shape=(P.dim,))
    lp = _lp_max(d, P.H, P.h)
    if lp.status == 2:
        return -math.inf
    if lp.status == 3:
        return math.inf
    if lp.status != 0:
        raise SolverError(f"support: HiGHS returned status {lp.status} (not optimal)")
    return lp.value


def reduce(P: Polytope, tol: float = DEFAULT_TOL) -> Polytope:
    """Remove redundant rows: the minimal H-representation of ``P`` (up to ``tol``).

    After :func:`normalize`, row ``i`` is dropped when
    ``max { H_i x : H_j x ≤ h_j, j ≠ i kept } ≤ h_i + tol`` (one LP per row, rows tested in
    turn against the rows still kept, so removing one never invalidates another's test). A row
    whose LP is not solved to optimality is kept. The set changes by at most ``tol`` (a distance)
    along the normals of removed rows; with ``tol = 0`` only rows implied exactly (as far as
    HiGHS can tell) are removed. With more than ``4n`` rows, rows that hold on the bounding box of
    ``P`` (``2n`` LPs, the box padded by a relative 1e-7) are dropped first without their own LP;
    rows that a ray from the Chebyshev centre shows to be facets by more than ``tol + 1e-7`` are
    kept without their own LP (the LP would keep them too, so the result is the same).

    Parameters
    ----------
    P : Polytope
    tol : float
        Redundancy tolerance (a distance), default :data:`scpo.numerics.SET_TOL`.

    Returns
    -------
    Polytope
        :func:`empty` if the rows are infeasible (Chebyshev radius ``< −tol``).
    """
    tol = check_nonnegative("tol", tol)
    P = normalize(P)
    if P.n_rows == 0:
        return P
    if np.all(np.linalg.norm(P.H, axis=1) <= _ZERO_ROW):  # the canonical empty set
        return P
    centre, radius = chebyshev_center(P)
    if radius < -tol:  # is_empty(P, tol)
        return empty(P.dim)
    keep = np.ones(P.n_rows, dtype=bool)
    facet = _facets_by_ray(P, centre, radius, tol)
    if P.n_rows > 4 * P.dim:
        # Cheap pre-filter: rows that hold on a bounding box of P (inflated by 1e-7 against LP
        # tolerances) are redundant; 2n LPs instead of one per such row.
        lo, hi = bounding_box(P)
        if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
            pad = 1e-7 * (1.0 + np.maximum(np.abs(lo), np.abs(hi)))
            lo, hi = lo - pad, hi + pad
            box_max = np.maximum(P.H * lo, P.H * hi).sum(axis=1)
            keep &= ~(box_max <= P.h)
            if not keep.any():  # cannot happen for a bounded set with rows; stay safe
                keep[:] = True
    for i in range(P.n_rows):
        if not keep[i] or facet[i]:
            continue
        keep[i] = False
        others = keep.copy()
        if not others.any():
            keep[i] = True
            continue
        A = np.vstack([P.H[others], P.H[i : i + 1]])
        b = np.concatenate([P.h[others], [P.h[i] + 1.0]])
        lp = _lp_max(P.H[i], A, b)
        if not (lp.status == 0 and lp.value <= P.h[i] + tol):
            keep[i] = True
    return Polytope(H=P.H[keep], h=P.h[keep])


def _facets_by_ray(P: Polytope, centre: np.ndarray, radius: float, tol: float) -> np.ndarray:
    """Rows shown non-redundant without an LP: the ray from the Chebyshev centre along the row's
    normal crosses that row's hyperplane, then travels more than ``tol + 1e-7`` beyond it before it
    meets any other row, so a point violating only that row by more than ``tol`` exists and the LP
    of :func:`reduce` would keep the row as well (unit rows; the 1e-7 covers HiGHS's accuracy)."""
    p = P.n_rows
    out = np.zeros(p, dtype=bool)
    if not (np.isfinite(radius) and radius > 0 and np.all(np.isfinite(centre))) or p > 4000:
        return out
    slack = P.h - P.H @ centre  # ≥ radius > 0
    G = P.H @ P.H.T  # G[j, i] = H_j · d_i with d_i = H_i (unit rows)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = np.where(G > 1e-12, slack[:, None] / G, np.inf)
    t_own = np.diag(t).copy()
    np.fill_diagonal(t, np.inf)
    t_other = t.min(axis=0)
    out = t_other - t_own > tol + 1e-7
    return out


def contains(outer: Polytope, inner: Polytope, tol: float = CONTAINMENT_TOL) -> bool:
    """Whether ``inner ⊆ outer``, by one LP per row of ``outer`` (never by sampling).

    ``inner ⊆ outer`` iff ``max { a_iᵀx : x ∈ inner } ≤ b_i`` for every row ``a_iᵀx ≤ b_i`` of
    ``outer`` (rows of unit norm, accepted up to ``tol``). An empty ``inner`` is contained in
    everything; an LP that is unbounded or not optimal gives ``False``.

    Parameters
    ----------
    outer, inner : Polytope
        Of the same dimension.
    tol : float
        Accepted excess (a distance); the default is above HiGHS's accuracy, see
        :data:`scpo.numerics.CONTAINMENT_TOL`.

    Returns
    -------
    bool
    """
    outer = normalize(_check_polytope("outer", outer))
    inner = _check_polytope("inner", inner)
    _same_dim("outer", outer, "inner", inner)
    tol = check_nonnegative("tol", tol)
    if is_empty(inner, tol=0.0):
        return True
    for a, b in zip(outer.H, outer.h):
        lp = _lp_max(a, inner.H, inner.h)
        if lp.status != 0 or not lp.value <= b + tol:
            return False
    return True


def equals(P: Polytope, Q: Polytope, tol: float = CONTAINMENT_TOL) -> bool:
    """``P ⊆ Q`` and ``Q ⊆ P`` (both by LP, see :func:`contains`).

    Parameters
    ----------
    P, Q : Polytope
        Of the same dimension.
    tol : float
        Accepted excess of each containment (a distance).

    Returns
    -------
    bool
    """
    return contains(P, Q, tol) and contains(Q, P, tol)


# ---------------------------------------------------------------------------- cdd
def _cdd_matrix(P: Polytope) -> Any:
    # cddlib's H-representation: rows [b, −A] meaning b − A x ≥ 0.
    return cdd.matrix_from_array(np.hstack([P.h[:, None], -P.H]), rep_type=cdd.RepType.INEQUALITY)


def _exact_vertices_float(P: Polytope) -> np.ndarray:
    """The exact vertices of the stored rows, rounded to float (the fallback of :func:`vertices`)."""
    if P.dim == 2:
        from .exact import exact_vertices

        vs = exact_vertices(P)
    else:
        from .enumeration import exact_vertices_nd

        vs = exact_vertices_nd(P).vertices
    return np.array([[float(x) for x in v] for v in vs], dtype=float).reshape(-1, P.dim)


def vertices(P: Polytope) -> np.ndarray:
    """Vertices of a bounded polytope (cddlib double description, floating point).

    Where cddlib's floating point gives up (a "numerical inconsistency" between nearly parallel
    rows) or returns too few vertices for a set with an interior, the exact enumeration
    (:func:`scpo.reachability.exact.exact_vertices`, rounded to float) answers instead.

    Parameters
    ----------
    P : Polytope

    Returns
    -------
    ndarray, shape (k, n)
        ``k = 0`` for the empty set. For ``n = 2`` the vertices are ordered counter-clockwise
        around their mean (ready for plotting and the shoelace formula).

    Raises
    ------
    InvalidInputError
        ``P`` is unbounded (the V-representation has rays or lines).
    """
    P = _check_polytope("P", P)
    Pn = normalize(P)
    if Pn.n_rows == 0:
        raise InvalidInputError("P: expected a bounded polytope, got the whole space (no rows)")
    if np.all(np.linalg.norm(Pn.H, axis=1) <= _ZERO_ROW) or is_empty(Pn):
        return np.zeros((0, P.dim))
    try:
        gen = cdd.copy_generators(cdd.polyhedron_from_matrix(_cdd_matrix(Pn)))
    except RuntimeError:  # cddlib's floating point gave up ("numerical inconsistency"): exact enumeration instead
        V = _exact_vertices_float(P)
    else:
        arr = np.asarray(gen.array, dtype=float).reshape(-1, P.dim + 1)
        if gen.lin_set or np.any(arr[:, 0] == 0.0):
            raise InvalidInputError("P: expected a bounded polytope, got an unbounded one (its V-representation has rays)")
        V = arr[:, 1:] / arr[:, :1]
        if V.shape[0] <= P.dim and chebyshev_center(Pn)[1] > 1e-9:  # too few vertices for a full-dimensional set
            V = _exact_vertices_float(P)
    if P.dim == 2 and V.shape[0] > 2:
        c = V.mean(axis=0)
        V = V[np.argsort(np.arctan2(V[:, 1] - c[1], V[:, 0] - c[0]), kind="stable")]
    return V


PROJECTION_METHODS = ("auto", "elimination", "hull")


def project(P: Polytope, keep: int | Sequence[int], tol: float = DEFAULT_TOL, *, method: str = "auto") -> Polytope:
    """Orthogonal projection ``{x_S : ∃ x_{¬S}, (x_S, x_{¬S}) ∈ P}`` onto the coordinates ``keep``.

    ``"elimination"``: block elimination of the other coordinates by cddlib (the dual generators
    of the double-description method, floating point), then :func:`reduce` with HiGHS. Its rows
    grow like a product of row counts per eliminated coordinate, and the LP redundancy removal of
    them dominates the cost in three and more dimensions.

    ``"hull"`` (bounded ``P`` only): the vertices of ``P`` (Qhull's half-space intersection around
    the Chebyshev centre), projected, and the facets of their convex hull (Qhull); facets on the
    same hyperplane (a triangulation's pieces) are merged, and a facet of a hull is never
    redundant, so no LP redundancy removal is needed. Where Qhull refuses a nearly degenerate
    vertex configuration it is asked again with option ``Q12``, then cddlib enumerates the
    vertices; on those two paths every offset is then the support of ``P`` in that direction (one
    HiGHS LP per facet), so the result contains the projection whatever the merges did.
    Elimination is the fallback when all fail or ``P`` has (almost) no interior.

    ``"auto"``: elimination when ``P`` has at most three dimensions (the double integrator's
    ``(x, u)`` sets keep their float rows), the hull otherwise.

    Parameters
    ----------
    P : Polytope, dimension ``n``
    keep : int or sequence of int
        An int ``k`` keeps the first ``k`` coordinates; a sequence lists them (in order).
    tol : float
        Redundancy tolerance of the final :func:`reduce`.
    method : {"auto", "elimination", "hull"}

    Returns
    -------
    Polytope
        Dimension ``len(keep)``.
    """
    P = normalize(_check_polytope("P", P))
    if method not in PROJECTION_METHODS:
        raise InvalidInputError(f"method: expected one of {', '.join(PROJECTION_METHODS)}, got {method!r}")
    idx = list(range(keep)) if isinstance(keep, (int, np.integer)) else [int(i) for i in keep]
    if not idx or len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= P.dim:
        raise InvalidInputError(f"keep: expected distinct coordinates in 0..{P.dim - 1}, got {keep!r}")
    drop = [j for j in range(P.dim) if j not in idx]
    if not drop:
        return reduce(Polytope(H=P.H[:, idx], h=P.h), tol)
    if np.all(np.linalg.norm(P.H, axis=1) <= _ZERO_ROW) or is_empty(P):
        return empty(len(idx))
    if method == "hull" or (method == "auto" and P.dim > 3):
        out = _project_by_hull(P, idx)
        if out is not None:
            return out
    mat = cdd.block_elimination(_cdd_matrix(P), {j + 1 for j in drop})
    kept_sorted = sorted(idx)
    arr = np.asarray(mat.array, dtype=float)
    if arr.size == 0:
        return whole_space(len(idx))
    if arr.ndim != 2 or arr.shape[1] != len(kept_sorted) + 1:
        raise SolverError(f"project: cddlib returned a matrix of shape {arr.shape}, expected (*, {len(kept_sorted) + 1})")
    lin = sorted(mat.lin_set)
    A = np.vstack([arr, -arr[lin]]) if lin else arr  # equalities: both signs
    cols = [1 + kept_sorted.index(j) for j in idx]
    H = -A[:, cols]
    return reduce(Polytope(H=H, h=A[:, 0]), tol)


def _merge_facets(H: np.ndarray, h: np.ndarray, tol: float = 1e-9) -> Polytope:
    """Unit rows with the same hyperplane (within ``tol`` in normal and offset) merged, keeping the loosest offset."""
    norms = np.linalg.norm(H, axis=1)
    H, h = H / norms[:, None], h / norms
    order = np.lexsort(np.vstack([h, H.T[::-1]]))
    H, h = H[order], h[order]
    keep_H: list[np.ndarray] = []
    keep_h: list[float] = []
    for a, b in zip(H, h):
        if keep_H:
            diff = np.abs(np.asarray(keep_H[-8:]) - a).max(axis=1)
            match = np.flatnonzero((diff <= tol) & (np.abs(np.asarray(keep_h[-8:]) - b) <= tol))
            if match.size:
                j = len(keep_H) - min(8, len(keep_H)) + int(match[0])
                keep_h[j] = max(keep_h[j], float(b))
                continue
        keep_H.append(a)
        keep_h.append(float(b))
    return Polytope(H=np.array(keep_H), h=np.array(keep_h))


def _project_by_hull(P: Polytope, idx: list[int]) -> Polytope | None:
    """Projection of a bounded ``P`` as the hull of its projected vertices (Qhull); ``None`` to fall back."""
    from scipy.spatial import ConvexHull, HalfspaceIntersection, QhullError

    centre, radius = chebyshev_center(P)
    scale = 1.0 + float(np.max(np.abs(centre))) if np.all(np.isfinite(centre)) else 1.0
    if not (np.isfinite(radius) and radius > 1e-7 * scale):
        return None
    halfspaces = np.hstack([P.H, -P.h[:, None]])
    V = None
    # Qhull's default merging refuses "wide" merges around duplicated ridges, which nearly
    # degenerate vertices (two facets of P almost parallel near a vertex) produce in 4-D and
    # above; option Q12 accepts them (scipy's ConvexHull sets it by default, its
    # HalfspaceIntersection does not). A wide merge may move a vertex by more than rounding, so
    # on that path (and on cddlib's) every offset is then set to the support of P itself (an LP).
    fallback = False
    for options in (None, "Qx Q12" if P.dim > 4 else "Q12"):
        try:
            V = HalfspaceIntersection(halfspaces, centre, qhull_options=options).intersections[:, idx]
            break
        except (QhullError, ValueError) as err:
            fallback = True
            logger.debug("project: Qhull's half-space intersection failed with options %s: %s", options, str(err).split("\n")[0])
    if V is None:  # cddlib's vertex enumeration: slower, but no merging to refuse
        try:
            V = vertices(P)[:, idx]
        except (SolverError, RuntimeError, ValueError):
            return None
    V = V[np.all(np.isfinite(V), axis=1)]
    if V.shape[0] <= len(idx):
        return None
    if len(idx) == 1:
        return Polytope(H=np.array([[1.0], [-1.0]]), h=np.array([V.max(), -V.min()]))
    try:
        hull = ConvexHull(V)
    except (QhullError, ValueError):
        return None
    eq = hull.equations  # rows (a, c) with a·y + c ≤ 0 inside, ‖a‖ = 1
    out = _merge_facets(eq[:, :-1], -eq[:, -1])
    # Qhull's facets are accurate to about its own rounding: widen each offset to the largest
    # value over the projected vertices so that every computed vertex lies inside
    slack = np.max(V @ out.H.T - out.h, axis=0)
    if not fallback:
        return Polytope(H=out.H, h=out.h + np.maximum(slack, 0.0))
    # each offset the support of P in the lifted direction, max{aᵀz_S : z ∈ P}: then the result
    # contains the projection (to HiGHS's tolerance) whatever the merges did to the vertices
    lifted = np.zeros((out.n_rows, P.dim))
    lifted[:, idx] = out.H
    return Polytope(H=out.H, h=np.array([support(P, d) for d in lifted]))


def slice_at(P: Polytope, keep: Sequence[int], at: Sequence[float] | np.ndarray, tol: float = DEFAULT_TOL) -> Polytope:
    """The section ``{y : (y, x_rest) ∈ P}`` through ``x_rest = at`` (the coordinates not in ``keep``).

    The pre-image of ``P`` under ``y ↦ E y + at_rest`` (:func:`preimage`; rows
    ``H_keep y ≤ h − H_rest · at``), redundant ones removed (:func:`reduce`).

    Parameters
    ----------
    P : Polytope, dimension ``n``
    keep : sequence of int
        The coordinates of the section, in order.
    at : array_like, shape (n,)
        A point; its entries at ``keep`` are ignored.
    tol : float
        Redundancy tolerance.

    Returns
    -------
    Polytope
        Dimension ``len(keep)``; empty when the section misses ``P``.
    """
    P = normalize(_check_polytope("P", P))
    idx = [int(i) for i in keep]
    if not idx or len(set(idx)) != len(idx) or min(idx) < 0 or max(idx) >= P.dim:
        raise InvalidInputError(f"keep: expected distinct coordinates in 0..{P.dim - 1}, got {keep!r}")
    at = as_array("at", at, shape=(P.dim,))
    embed = np.zeros((P.dim, len(idx)))
    embed[idx, range(len(idx))] = 1.0
    offset = at.copy()
    offset[idx] = 0.0
    Q = preimage(P, embed, offset)  # {y : E y + at_rest ∈ P}
    return empty(len(idx)) if is_empty(Q) else reduce(Q, tol)


def uniform_points(P: Polytope, count: int, rng: np.random.Generator, *, max_draws: int = 10_000_000) -> np.ndarray:
    """``count`` independent points uniformly distributed on a bounded, full-dimensional ``P``.

    Rejection sampling: uniform points of the bounding box (:func:`bounding_box`), kept where every
    row holds (``H x ≤ h``), in batches until ``count`` are kept.

    Parameters
    ----------
    P : Polytope
        Bounded, with an interior.
    count : int
        ``≥ 1``.
    rng : numpy.random.Generator
    max_draws : int
        Box points drawn at most (the cost when ``P`` fills a tiny share of its box).

    Returns
    -------
    ndarray, shape (count, n)

    Raises
    ------
    InvalidInputError
        ``P`` is empty, unbounded, or fills so little of its box that ``max_draws`` points give
        fewer than ``count``.
    """
    P = _check_polytope("P", P)
    count = check_int("count", count, minimum=1)
    if is_empty(P):
        raise InvalidInputError("P: expected a non-empty polytope to sample, got an empty one")
    lo, hi = bounding_box(P)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InvalidInputError("P: expected a bounded polytope to sample, got an unbounded one")
    kept: list[np.ndarray] = []
    have = drawn = 0
    batch = max(1024, 4 * count)
    while have < count and drawn < max_draws:
        x = rng.uniform(lo, hi, size=(batch, P.dim))
        drawn += batch
        x = x[np.all(x @ P.H.T <= P.h, axis=1)]
        kept.append(x)
        have += x.shape[0]
        if have:  # the next batch sized by the acceptance rate seen so far
            batch = int(min(max_draws - drawn, max(1024, 1.2 * (count - have) * drawn / have)))
        else:
            batch = min(max_draws - drawn, 4 * batch)
    if have < count:
        raise InvalidInputError(
            f"P: {max_draws} uniform points of its bounding box gave {have} of the {count} points asked for "
            "(the polytope fills too little of its box)"
        )
    return np.concatenate(kept)[:count]


def area(P: Polytope) -> float:
    """Area of a bounded 2-D polytope: the shoelace formula on its (cdd) vertices (float; for the
    exact area of the stored rows see :func:`scpo.reachability.exact.exact_area`).

    Parameters
    ----------
    P : Polytope, dimension 2

    Raises
    ------
    ShapeError
        ``P`` is not 2-D.
    """
    if _check_polytope("P", P).dim != 2:
        raise ShapeError(f"P: expected a 2-D polytope for its area, got dimension {P.dim}")
    V = vertices(P)
    if V.shape[0] < 3:
        return 0.0
    x, y = V[:, 0], V[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
