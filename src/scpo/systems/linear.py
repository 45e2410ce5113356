"""Discrete-time linear systems with polytopic constraints.

``x_{t+1} = A x_t + B u_t`` with state constraints ``Hx x ≤ hx`` and input constraints
``Hu u ≤ hu``. The maths is in pure functions; :class:`LinearSystem` is a validated value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from .._validate import as_array
from ..errors import InvalidInputError, ShapeError

__all__ = [
    "LinearSystem",
    "box_constraints",
    "is_stabilisable",
    "polytope_is_nonempty",
    "box_bounds",
]


def box_constraints(upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|z_i| ≤ upper_i`` as ``H z ≤ h`` with rows ``+e_i`` then ``−e_i`` for each i.

    Parameters
    ----------
    upper : ndarray, shape (n,)
        Positive bounds.

    Returns
    -------
    H : ndarray, shape (2n, n)
    h : ndarray, shape (2n,)
    """
    upper = as_array("upper", upper, ndim=1)
    if not np.all(upper > 0):
        raise InvalidInputError(f"upper: expected positive bounds, got {upper.tolist()}")
    n = upper.size
    H = np.zeros((2 * n, n))
    for i in range(n):
        H[2 * i, i] = 1.0
        H[2 * i + 1, i] = -1.0
    return H, np.repeat(upper, 2)


def polytope_is_nonempty(H: np.ndarray, h: np.ndarray) -> bool:
    """Whether ``{z : H z ≤ h}`` is non-empty, by an LP (HiGHS); an LP that fails counts as empty.

    Parameters
    ----------
    H : ndarray, shape (p, n)
    h : ndarray, shape (p,)

    Returns
    -------
    bool
        True for ``p = 0`` (no rows: the whole space).
    """
    n = H.shape[1]
    if H.shape[0] == 0:
        return True
    res = scipy.optimize.linprog(np.zeros(n), A_ub=H, b_ub=h, bounds=[(None, None)] * n, method="highs")
    return bool(res.status == 0)


def box_bounds(H: np.ndarray, h: np.ndarray, *, require_box: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """The bounding box ``[lo, hi]`` of ``{z : H z ≤ h}``.

    When every row is a signed multiple of a unit vector (``a e_i``) the box is the set itself and
    is read off the rows exactly; otherwise ``lo_i = min z_i`` and ``hi_i = max z_i`` come from
    ``2n`` LPs (HiGHS), widened outward by ``1e-9 (1 + |·|)`` for the LP tolerance.

    Parameters
    ----------
    H : ndarray, shape (p, n)
    h : ndarray, shape (p,)
    require_box : bool
        Raise unless the rows describe a box.

    Returns
    -------
    lo, hi : ndarray, shape (n,)
    is_box : bool
        Whether the set is the box itself.

    Raises
    ------
    InvalidInputError
        An unbounded set, or (``require_box``) rows that are not signed unit vectors.
    """
    n = H.shape[1]
    unit = all(np.count_nonzero(a) == 1 for a in H)
    if unit:
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        for a, b in zip(H, h):
            i = int(np.flatnonzero(a)[0])
            if a[i] > 0:
                hi[i] = min(hi[i], b / a[i])
            else:
                lo[i] = max(lo[i], b / a[i])
    elif require_box:
        raise InvalidInputError("Hx: expected box constraints (every row a signed multiple of a unit vector ±e_i)")
    else:
        lo, hi = np.empty(n), np.empty(n)
        for i in range(n):
            for sign, out in ((1.0, lo), (-1.0, hi)):
                c = np.zeros(n)
                c[i] = sign
                res = scipy.optimize.linprog(c, A_ub=H, b_ub=h, bounds=[(None, None)] * n, method="highs")
                if res.status != 0:
                    raise InvalidInputError(f"Hx, hx: the set {{x : Hx x ≤ hx}} is unbounded or empty along x{i} (LP status {res.status})")
                v = float(res.x[i])
                out[i] = v - sign * 1e-9 * (1.0 + abs(v))
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InvalidInputError("Hx, hx: expected a bounded state constraint set, got an unbounded one")
    return lo, hi, unit


def is_stabilisable(A: np.ndarray, B: np.ndarray, *, rtol: float = 1e-9) -> bool:
    """PBH test: ``rank [A − λI, B] = n`` for every eigenvalue ``λ`` of ``A`` with ``|λ| ≥ 1``.

    Parameters
    ----------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, m)
    rtol : float
        The rank is decided on singular values relative to the largest one.

    Returns
    -------
    bool
    """
    n = A.shape[0]
    for lam in np.linalg.eigvals(A):
        if abs(lam) >= 1.0 - 1e-12:
            M = np.hstack([A - lam * np.eye(n), B.astype(complex)])
            s = np.linalg.svd(M, compute_uv=False)  # n singular values
            if s[n - 1] <= rtol * max(float(s[0]), 1.0):
                return False
    return True


@dataclass(frozen=True)
class LinearSystem:
    """``x⁺ = A x + B u`` with polytopic constraints, validated on construction.

    Attributes
    ----------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, m)
    Hx : ndarray, shape (px, n)
    hx : ndarray, shape (px,)
    Hu : ndarray, shape (pu, m)
    hu : ndarray, shape (pu,)
    name : str

    Raises
    ------
    ShapeError
        Non-square ``A``, ``B`` with the wrong number of rows, mismatched constraint blocks.
    NonFiniteError
        NaN or infinity anywhere.
    InvalidInputError
        An empty state or input constraint set (checked by LP).
    """

    A: np.ndarray
    B: np.ndarray
    Hx: np.ndarray
    hx: np.ndarray
    Hu: np.ndarray
    hu: np.ndarray
    name: str = "linear system"

    def __post_init__(self) -> None:
        A = as_array("A", self.A, ndim=2)
        if A.shape[0] != A.shape[1]:
            raise ShapeError(f"A: expected a square matrix, got shape {A.shape}")
        n = A.shape[0]
        B = as_array("B", self.B, ndim=2)
        if B.shape[0] != n:
            raise ShapeError(f"B: expected {n} rows to match A of shape {A.shape}, got shape {B.shape}")
        m = B.shape[1]
        Hx = as_array("Hx", self.Hx, shape=(None, n))
        hx = as_array("hx", self.hx, shape=(Hx.shape[0],))
        Hu = as_array("Hu", self.Hu, shape=(None, m))
        hu = as_array("hu", self.hu, shape=(Hu.shape[0],))
        if not polytope_is_nonempty(Hx, hx):
            raise InvalidInputError("Hx, hx: the state constraint set {x : Hx x ≤ hx} is empty")
        if not polytope_is_nonempty(Hu, hu):
            raise InvalidInputError("Hu, hu: the input constraint set {u : Hu u ≤ hu} is empty")
        for name, val in (("A", A), ("B", B), ("Hx", Hx), ("hx", hx), ("Hu", Hu), ("hu", hu)):
            val.flags.writeable = False
            object.__setattr__(self, name, val)

    @classmethod
    def with_box_constraints(cls, A, B, x_max, u_max, *, name: str = "linear system") -> "LinearSystem":
        """Constraints ``|x_i| ≤ x_max_i`` and ``|u_j| ≤ u_max_j``.

        Parameters
        ----------
        A : array_like, shape (n, n)
        B : array_like, shape (n, m)
        x_max : array_like, shape (n,)
            Positive state bounds.
        u_max : array_like, shape (m,)
            Positive input bounds.
        name : str

        Returns
        -------
        LinearSystem
        """
        Hx, hx = box_constraints(np.atleast_1d(np.asarray(x_max, dtype=float)))
        Hu, hu = box_constraints(np.atleast_1d(np.asarray(u_max, dtype=float)))
        return cls(A=A, B=B, Hx=Hx, hx=hx, Hu=Hu, hu=hu, name=name)

    @property
    def n(self) -> int:
        """State dimension."""
        return self.A.shape[0]

    @property
    def m(self) -> int:
        """Input dimension."""
        return self.B.shape[1]

    def state_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounding box of ``X = {Hx x ≤ hx}`` (``X`` itself for box constraints; see :func:`box_bounds`).

        Returns
        -------
        lo, hi : ndarray, shape (n,)
        """
        lo, hi, _ = box_bounds(self.Hx, self.hx)
        return lo, hi

    def check_stabilisable(self) -> None:
        """Raise :class:`InvalidInputError` if ``(A, B)`` is not stabilisable (LQR needs it)."""
        if not is_stabilisable(self.A, self.B):
            raise InvalidInputError(
                f"A, B: the pair is not stabilisable (an eigenvalue of A with |λ| ≥ 1 is uncontrollable: "
                f"eigenvalues {np.round(np.linalg.eigvals(self.A), 6).tolist()}), so no stabilising LQR gain exists"
            )

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {k: getattr(self, k).tolist() for k in ("A", "B", "Hx", "hx", "Hu", "hu")} | {"name": self.name}
