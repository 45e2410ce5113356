"""A dyadic partition of a region ``C`` into boxes, exact in every coordinate.

Root grid. The bounding box of ``C = {x : H x ≤ h}`` is covered by ``g_1 × … × g_n`` root cells of
side ``s_i = 2^{e_i}`` (a power of two) whose corners are integer multiples of ``s_i``. A leaf is a
root cell subdivided by a *path*: a string of bits, each bisecting the current box along its
widest side relative to the root cell (ties: the lowest axis; so the axes are bisected in turn and
the path alone determines the box). Every coordinate of every leaf is then
``(integer) · s_i / 2^k`` and exactly representable in float64, so

* the float box *is* the box (no rounding between the partition and the bounds);
* the leaves of a root cell tile it exactly iff their paths are prefix-free and complete
  (Kraft: ``Σ 2^{−len(path)} = 1``), which :func:`check_tiling` decides in integers.

Clipping. Each leaf carries ``box ∩ C``: empty, the whole box (the box's corners satisfy every row of
``C``), or a proper part — then its exact vertices (rational arithmetic on the float rows, which are
taken exactly) for the concretisation of affine bounds, and its area/volume: exact in rationals for
``n ≤ 2`` (the shoelace formula); for ``n ≥ 3`` qhull's floating-point volume of the exact vertices
(the exact facet recursion, :func:`scpo.reachability.exact.exact_measure`, took ~60 % of a 3-D
certificate and only enters the reported fraction: the tiling is proved by the leaf paths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._validate import as_array, check_int
from ..errors import InvalidInputError
from ..reachability.exact import exact_vertices
from ..reachability.polytope import Polytope

__all__ = ["RootGrid", "Clip", "Partition", "root_grid", "clip_box", "check_tiling", "leaf_box"]


@dataclass(frozen=True)
class RootGrid:
    """The root cells: ``[lower_i + j s_i, lower_i + (j + 1) s_i]`` for ``j = 0 … counts_i − 1``.

    Attributes
    ----------
    lower : ndarray, shape (n,)
        An integer multiple of ``cell`` per axis.
    cell : ndarray, shape (n,)
        Powers of two.
    counts : ndarray of int, shape (n,)
    """

    lower: np.ndarray
    cell: np.ndarray
    counts: np.ndarray

    @property
    def n(self) -> int:
        """Dimension."""
        return int(self.lower.shape[0])

    @property
    def upper(self) -> np.ndarray:
        """Upper corner of the grid."""
        return self.lower + self.counts * self.cell

    def cells(self) -> np.ndarray:
        """Integer indices of every root cell, shape (Π counts, n), last axis fastest."""
        grids = np.meshgrid(*[np.arange(c) for c in self.counts], indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the floats are exact: powers of two and their integer multiples)."""
        return {"lower": self.lower.tolist(), "cell": self.cell.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RootGrid":
        """Inverse of :meth:`to_dict`, validated.

        Parameters
        ----------
        data : dict

        Returns
        -------
        RootGrid
        """
        lower = as_array("root.lower", data["lower"], ndim=1)
        cell = as_array("root.cell", data["cell"], shape=lower.shape)
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != lower.shape or np.any(counts < 1):
            raise InvalidInputError(f"root.counts: expected {lower.size} positive integers, got {data['counts']!r}")
        m, e = np.frexp(cell)
        if np.any(cell <= 0) or np.any(m != 0.5):
            raise InvalidInputError(f"root.cell: expected powers of two, got {cell.tolist()}")
        if np.any(np.mod(lower, cell) != 0):
            raise InvalidInputError("root.lower: expected integer multiples of root.cell")
        return cls(lower, cell, counts)


def root_grid(lower: np.ndarray, upper: np.ndarray, cells_per_axis: int) -> RootGrid:
    """The root grid over ``[lower, upper]`` with about ``cells_per_axis`` cells per axis.

    ``s_i`` is the smallest power of two with ``cells_per_axis · s_i ≥ upper_i − lower_i``; the
    grid starts at ``⌊lower_i / s_i⌋ s_i`` and has as many cells as needed to reach ``upper_i``.

    Parameters
    ----------
    lower, upper : ndarray, shape (n,)
    cells_per_axis : int

    Returns
    -------
    RootGrid
    """
    lo = as_array("lower", lower, ndim=1)
    hi = as_array("upper", upper, shape=lo.shape)
    g = check_int("cells_per_axis", cells_per_axis, minimum=1)
    if not np.all(hi > lo):
        raise InvalidInputError(f"upper: expected upper > lower in every coordinate, got {lo.tolist()} and {hi.tolist()}")
    cell = np.exp2(np.ceil(np.log2((hi - lo) / g)))
    start = np.floor(lo / cell) * cell
    counts = np.ceil((hi - start) / cell).astype(np.int64)
    return RootGrid(start, cell, np.maximum(counts, 1))


def leaf_box(grid: RootGrid, root: np.ndarray, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The box of the leaf ``(root, path)``: bisect the root cell along the widest relative side per bit.

    Parameters
    ----------
    grid : RootGrid
    root : ndarray of int, shape (n,)
    path : str
        Bits ``"0"`` (lower half) and ``"1"`` (upper half).

    Returns
    -------
    lower, upper : ndarray, shape (n,)
        Exact floats.
    """
    n = grid.n
    level = [0] * n
    pos = [0] * n
    for bit in path:
        if bit not in "01":
            raise InvalidInputError(f"path: expected a string of 0 and 1, got {path!r}")
        i = min(range(n), key=lambda j: (level[j], j))
        level[i] += 1
        pos[i] = 2 * pos[i] + (bit == "1")
    lo = np.empty(n)
    hi = np.empty(n)
    for i in range(n):
        w = grid.cell[i] / 2.0 ** level[i]
        lo[i] = grid.lower[i] + grid.cell[i] * float(root[i]) + w * pos[i]
        hi[i] = lo[i] + w
    return lo, hi


@dataclass(frozen=True)
class Clip:
    """``box ∩ C`` for one box.

    Attributes
    ----------
    status : {"inside", "partial", "outside"}
        The box lies in ``C``; meets it in a proper part of positive volume; or misses it
        (up to a set of volume zero).
    vertices : ndarray, shape (V, n)
        Vertices of ``box ∩ C`` as floats rounded from the exact rationals (the box's corners
        when inside, none when outside).
    volume : float
        ``vol(box ∩ C)`` (exact rational rounded to float for ``n ≤ 2`` and boxes inside ``C``;
        qhull's floating-point volume of the exact vertices for a partial box in ``n ≥ 3``).
    volume_exact : Fraction or None
        The exact value when known (``n ≤ 2``, or any box inside ``C``).
    """

    status: str
    vertices: np.ndarray
    volume: float
    volume_exact: Fraction | None


def _box_rows(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = lo.size
    H = np.vstack([np.eye(n), -np.eye(n)])
    return H, np.concatenate([hi, -lo])


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    n = lo.size
    bits = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)
    return np.where(bits, hi, lo)


def _exact_volume_box(lo: np.ndarray, hi: np.ndarray) -> Fraction:
    out = Fraction(1)
    for a, b in zip(lo, hi):
        out *= Fraction(float(b)) - Fraction(float(a))
    return out


def _shoelace(vs: list[tuple[Fraction, ...]]) -> Fraction:
    s = Fraction(0)
    for i, (x0, y0) in enumerate(vs):
        x1, y1 = vs[(i + 1) % len(vs)]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def clip_box(lo: np.ndarray, hi: np.ndarray, H: np.ndarray, h: np.ndarray) -> Clip:
    """``[lo, hi] ∩ {x : H x ≤ h}``, decided in exact rational arithmetic.

    A row cuts the box when some corner violates it (in rationals); a box no corner of which
    violates any row lies inside; a box that some row leaves entirely on its wrong side (every
    corner violates it) is outside. Otherwise the exact vertices of the clipped polytope are
    enumerated from the box rows and the cutting rows (:func:`scpo.reachability.exact.exact_vertices`).

    Parameters
    ----------
    lo, hi : ndarray, shape (n,)
    H : ndarray, shape (p, n)
    h : ndarray, shape (p,)

    Returns
    -------
    Clip
    """
    n = lo.size
    corners = _corners(lo, hi)
    # float screen, then the exact decision for the rows that are close
    vals = corners @ H.T - h  # (2^n, p)
    scale = np.abs(corners) @ np.abs(H).T + np.abs(h) + 1.0
    maybe_cut = np.any(vals > -1e-12 * scale, axis=0)
    if not np.any(maybe_cut):
        return Clip("inside", corners, float(np.prod(hi - lo)), _exact_volume_box(lo, hi))
    cq = [[Fraction(float(v)) for v in c] for c in corners]
    # The sign of each corner's value on each row: decided in float where |value| exceeds the
    # float screen's tolerance (1e-12·scale ≫ the rounding error (n + 1)·u·scale of the float
    # value), in rationals for the rest. The same decisions as an all-rational test, faster.
    sign = np.where(vals > 1e-12 * scale, 1, np.where(vals < -1e-12 * scale, -1, 0))
    cutting = []
    inside_corner = np.ones(len(cq), dtype=bool)
    for r in np.flatnonzero(maybe_cut):
        a = [Fraction(float(v)) for v in H[r]]
        b = Fraction(float(h[r]))
        side = sign[:, r].copy()
        for k in np.flatnonzero(side == 0):
            exact = sum(ai * ci for ai, ci in zip(a, cq[k])) - b
            side[k] = (exact > 0) - (exact < 0)
        if side.min() >= 0:  # every corner on the wrong side or on the hyperplane: box ∩ C has volume 0
            return Clip("outside", np.zeros((0, n)), 0.0, Fraction(0))
        if side.max() > 0:
            cutting.append((a, b))
            inside_corner &= side <= 0
    if not cutting:
        return Clip("inside", corners, float(np.prod(hi - lo)), _exact_volume_box(lo, hi))
    Hb, hb = _box_rows(lo, hi)
    rows_H = np.vstack([Hb, np.array([[float(x) for x in a] for a, _ in cutting])])
    rows_h = np.concatenate([hb, np.array([float(b) for _, b in cutting])])
    clipped = Polytope(H=rows_H, h=rows_h)
    if n >= 3:
        return _clip_nd(clipped, [cq[i] for i in np.flatnonzero(inside_corner)], n)
    vs = exact_vertices(clipped)
    if len(vs) <= n:
        return Clip("outside", np.zeros((0, n)), 0.0, Fraction(0))
    V = np.array([[float(x) for x in v] for v in vs])
    if n == 1:
        vol = abs(vs[1][0] - vs[0][0]) if len(vs) == 2 else Fraction(0)
    else:
        vol = _shoelace(vs)  # exact_vertices returns 2-D vertices in counter-clockwise order
    if vol == 0:
        return Clip("outside", np.zeros((0, n)), 0.0, Fraction(0))
    return Clip("partial", V, float(vol), vol)


def _clip_nd(clipped: Polytope, corners_in: list[list[Fraction]], n: int) -> Clip:
    """``box ∩ C`` for ``n ≥ 3``: exact vertices (started from a box corner inside ``C`` when one
    exists, which saves the LPs), exact dimension test, and the volume in floating point (qhull on
    the exact vertices rounded; the exact n-D volume costs more than the bounds of the leaf and
    only enters the reported fraction, never the tiling proof, which is by the leaf paths)."""
    from scipy.spatial import ConvexHull

    from ..reachability.enumeration import _affine_rank, exact_vertices_nd

    start = tuple(corners_in[0]) if corners_in else None
    vs = exact_vertices_nd(clipped, start=start).vertices
    if len(vs) <= n:
        return Clip("outside", np.zeros((0, n)), 0.0, Fraction(0))
    V = np.array([[float(x) for x in v] for v in vs])
    if not (_full_simplex(vs, V) or _affine_rank(vs) == n):  # fewer than n+1 affinely independent vertices: volume 0
        return Clip("outside", np.zeros((0, n)), 0.0, Fraction(0))
    return Clip("partial", V, float(ConvexHull(V).volume), None)


def _full_simplex(vs: list[tuple[Fraction, ...]], V: np.ndarray) -> bool:
    """Whether ``n + 1`` of the exact vertices, picked greedily in float, span ``n`` dimensions (exact determinant ≠ 0).

    True proves the affine rank is ``n``; False proves nothing (the caller then computes the rank)."""
    n = V.shape[1]
    pick = [0, int(np.argmax(np.linalg.norm(V - V[0], axis=1)))]
    while len(pick) < n + 1:  # the vertex farthest from the affine hull of those picked (float, a heuristic)
        D = V[pick[1:]] - V[pick[0]]
        Q, _ = np.linalg.qr(D.T)
        R = (V - V[pick[0]]) - (V - V[pick[0]]) @ Q @ Q.T
        pick.append(int(np.argmax(np.linalg.norm(R, axis=1))))
    p0 = vs[pick[0]]
    rows = [[a - b for a, b in zip(vs[i], p0)] for i in pick[1:]]
    den = 1
    for r in rows:
        for v in r:
            den = den * v.denominator // math.gcd(den, v.denominator)
    from ..reachability.enumeration import _det_int

    return _det_int([tuple(int(v * den) for v in r) for r in rows]) != 0


def check_tiling(paths_by_root: dict[tuple[int, ...], list[str]]) -> list[str]:
    """Whether the leaves of every root cell tile it exactly (prefix-free and complete paths).

    Parameters
    ----------
    paths_by_root : dict of root index tuple -> list of str

    Returns
    -------
    list of str
        Problems found (empty when every root cell is tiled exactly).
    """
    problems: list[str] = []
    for root, paths in paths_by_root.items():
        ps = sorted(paths)
        for p in ps:
            if any(ch not in "01" for ch in p):
                problems.append(f"root cell {list(root)}: path {p!r} is not a bit string")
        for a, b in zip(ps, ps[1:]):
            if b.startswith(a):
                problems.append(f"root cell {list(root)}: leaf {a!r} contains leaf {b!r} (overlap)")
        depth = max((len(p) for p in ps), default=0)
        total = sum(1 << (depth - len(p)) for p in ps)
        if total != 1 << depth:
            problems.append(f"root cell {list(root)}: the leaves cover {Fraction(total, 1 << depth)} of the cell, expected 1 (a gap or an overlap)")
    return problems


@dataclass
class Partition:
    """The leaves of a dyadic partition with their clipping against ``C`` (state: refined over iterates).

    Attributes
    ----------
    grid : RootGrid
    roots : ndarray of int, shape (L, n)
        Root cell of each leaf.
    paths : list of str
    lower, upper : ndarray, shape (L, n)
        Exact float corners of each leaf.
    clips : list of Clip
    """

    grid: RootGrid
    roots: np.ndarray
    paths: list[str]
    lower: np.ndarray
    upper: np.ndarray
    clips: list[Clip] = field(default_factory=list)

    @classmethod
    def over(cls, grid: RootGrid, H: np.ndarray, h: np.ndarray) -> "Partition":
        """The root cells as leaves, each clipped against ``C = {H x ≤ h}``.

        Parameters
        ----------
        grid : RootGrid
        H : ndarray, shape (p, n)
        h : ndarray, shape (p,)

        Returns
        -------
        Partition
        """
        roots = grid.cells()
        lo = grid.lower + roots * grid.cell
        hi = lo + grid.cell
        clips = [clip_box(a, b, H, h) for a, b in zip(lo, hi)]
        return cls(grid, roots, [""] * len(roots), lo, hi, clips)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def live(self) -> np.ndarray:
        """Indices of the leaves that meet ``C`` (status inside or partial)."""
        return np.array([i for i, c in enumerate(self.clips) if c.status != "outside"], dtype=np.int64)

    def split(self, index: np.ndarray, H: np.ndarray, h: np.ndarray) -> "Partition":
        """A new partition with the leaves ``index`` bisected (each into two, clipped again).

        Parameters
        ----------
        index : ndarray of int
        H, h : ndarray
            ``C``'s rows (the children of an inside leaf are inside: not clipped again).

        Returns
        -------
        Partition
        """
        return self.split_with_origin(index, H, h)[0]

    def split_with_origin(self, index: np.ndarray, H: np.ndarray, h: np.ndarray) -> tuple["Partition", np.ndarray, np.ndarray]:
        """:meth:`split`, also saying where each new leaf comes from.

        Parameters
        ----------
        index : ndarray of int
        H, h : ndarray

        Returns
        -------
        partition : Partition
        origin : ndarray of int, shape (L',)
            The old leaf each new leaf is (or was split from).
        child : ndarray of bool, shape (L',)
            Whether the new leaf is a child of a split leaf.
        """
        chosen = set(np.asarray(index, dtype=np.int64).tolist())
        roots, paths, los, his, clips, origin, child = [], [], [], [], [], [], []
        for i in range(len(self.paths)):
            if i not in chosen:
                roots.append(self.roots[i])
                paths.append(self.paths[i])
                los.append(self.lower[i])
                his.append(self.upper[i])
                clips.append(self.clips[i])
                origin.append(i)
                child.append(False)
                continue
            for bit in "01":
                p = self.paths[i] + bit
                lo, hi = leaf_box(self.grid, self.roots[i], p)
                roots.append(self.roots[i])
                paths.append(p)
                los.append(lo)
                his.append(hi)
                if self.clips[i].status == "inside":
                    clips.append(Clip("inside", _corners(lo, hi), float(np.prod(hi - lo)), _exact_volume_box(lo, hi)))
                else:
                    clips.append(clip_box(lo, hi, H, h))
                origin.append(i)
                child.append(True)
        n = self.grid.n
        part = Partition(self.grid, np.array(roots, dtype=np.int64).reshape(-1, n), paths,
                         np.array(los).reshape(-1, n), np.array(his).reshape(-1, n), clips)
        return part, np.array(origin, dtype=np.int64), np.array(child, dtype=bool)

    def merge_siblings(self, mergeable: np.ndarray, H: np.ndarray, h: np.ndarray) -> tuple["Partition", np.ndarray, np.ndarray]:
        """Merge every pair of sibling leaves that are both ``mergeable`` back into their parent.

        Parameters
        ----------
        mergeable : ndarray of bool, shape (L,)
        H, h : ndarray
            ``C``'s rows (a parent of two inside leaves is inside).

        Returns
        -------
        partition : Partition
        origin : ndarray of int, shape (L',)
            The old leaf each new leaf is (for a merged parent: its lower child).
        merged : ndarray of bool, shape (L',)
            Whether the new leaf is a merged parent.
        """
        key = {(tuple(int(v) for v in r), p): i for i, (r, p) in enumerate(zip(self.roots, self.paths))}
        partner: dict[int, int] = {}
        for (r, p), i in key.items():
            if p.endswith("0") and mergeable[i]:
                j = key.get((r, p[:-1] + "1"))
                if j is not None and mergeable[j]:
                    partner[i] = j
        gone = set(partner.values())
        roots, paths, los, his, clips, origin, merged = [], [], [], [], [], [], []
        for i in range(len(self.paths)):
            if i in gone:
                continue
            if i in partner:
                j = partner[i]
                p = self.paths[i][:-1]
                lo, hi = leaf_box(self.grid, self.roots[i], p)
                if self.clips[i].status == "inside" and self.clips[j].status == "inside":
                    clip = Clip("inside", _corners(lo, hi), float(np.prod(hi - lo)), _exact_volume_box(lo, hi))
                else:
                    clip = clip_box(lo, hi, H, h)
                roots.append(self.roots[i])
                paths.append(p)
                los.append(lo)
                his.append(hi)
                clips.append(clip)
                origin.append(i)
                merged.append(True)
            else:
                roots.append(self.roots[i])
                paths.append(self.paths[i])
                los.append(self.lower[i])
                his.append(self.upper[i])
                clips.append(self.clips[i])
                origin.append(i)
                merged.append(False)
        n = self.grid.n
        part = Partition(self.grid, np.array(roots, dtype=np.int64).reshape(-1, n), paths,
                         np.array(los).reshape(-1, n), np.array(his).reshape(-1, n), clips)
        return part, np.array(origin, dtype=np.int64), np.array(merged, dtype=bool)

    def volume(self, status: tuple[str, ...] = ("inside", "partial")) -> float:
        """``Σ vol(leaf ∩ C)`` over the leaves of the given statuses.

        Parameters
        ----------
        status : tuple of str

        Returns
        -------
        float
        """
        return float(sum(c.volume for c in self.clips if c.status in status))

    def exact_volume(self) -> Fraction | None:
        """``Σ vol(leaf ∩ C)`` in rationals, or None when some clipped volume is only known in float."""
        total = Fraction(0)
        for c in self.clips:
            if c.status == "outside":
                continue
            if c.volume_exact is None:
                return None
            total += c.volume_exact
        return total

    def paths_by_root(self) -> dict[tuple[int, ...], list[str]]:
        """Leaf paths grouped by root cell (for :func:`check_tiling`)."""
        out: dict[tuple[int, ...], list[str]] = {}
        for r, p in zip(self.roots, self.paths):
            out.setdefault(tuple(int(v) for v in r), []).append(p)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the grid, then per leaf its root cell, path and clip status and volume."""
        return {
            "grid": self.grid.to_dict(),
            "roots": self.roots.tolist(),
            "paths": list(self.paths),
            "status": [c.status for c in self.clips],
            "volume": [c.volume for c in self.clips],
        }
