"""Discrete-time linear systems with polytopic constraints, and batched closed-loop rollouts.

``x_{t+1} = A x_t + B u_t`` with state constraints ``Hx x ≤ hx`` and input constraints
``Hu u ≤ hu``. The maths is in pure functions; :class:`LinearSystem` is a validated value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch

from ._validate import as_array, check_int
from .errors import InvalidInputError, ShapeError

__all__ = [
    "LinearSystem",
    "box_constraints",
    "is_stabilisable",
    "polytope_is_nonempty",
    "rollout",
    "Rollout",
]


def box_constraints(upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|z_i| ≤ upper_i`` as ``H z ≤ h`` with rows ``+e_i`` then ``−e_i`` for each i.

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
    """Whether ``{z : H z ≤ h}`` is non-empty, by an LP (HiGHS); an LP that fails counts as empty."""
    n = H.shape[1]
    res = scipy.optimize.linprog(np.zeros(n), A_ub=H, b_ub=h, bounds=[(None, None)] * n, method="highs")
    return bool(res.status == 0)


def is_stabilisable(A: np.ndarray, B: np.ndarray, *, rtol: float = 1e-9) -> bool:
    """PBH test: ``rank [A − λI, B] = n`` for every eigenvalue ``λ`` of ``A`` with ``|λ| ≥ 1``.

    The rank is decided on singular values relative to the largest one (``rtol``).
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
        """Constraints ``|x_i| ≤ x_max_i`` and ``|u_j| ≤ u_max_j``."""
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


@dataclass(frozen=True)
class Rollout:
    """Batched closed-loop trajectories.

    Attributes
    ----------
    states : Tensor, shape (P, S, T+1, n)
        ``x_0 … x_T`` for ``P`` policies (parameter vectors) and ``S`` initial states.
    inputs : Tensor, shape (P, S, T, m)
        ``u_0 … u_{T−1}``.
    """

    states: torch.Tensor
    inputs: torch.Tensor


def rollout(
    A: np.ndarray | torch.Tensor,
    B: np.ndarray | torch.Tensor,
    policy: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    horizon: int,
) -> Rollout:
    """Simulate ``x_{t+1} = A x_t + B π(x_t)`` for many policies and initial states at once.

    There is no Python loop over states or policies, only over time.

    Parameters
    ----------
    A : array, shape (n, n)
    B : array, shape (n, m)
    policy : callable
        Maps states of shape (P, S, n) to inputs of shape (P, S, m).
    x0 : Tensor, shape (P, S, n) or (S, n)
        Initial states (a 2-D tensor is shared by every policy; then ``policy`` must accept
        (S, n) at t = 0 only if it broadcasts — it receives (1, S, n) expanded).
    horizon : int
        Number of steps ``T``.

    Returns
    -------
    Rollout
    """
    check_int("horizon", horizon, minimum=0)
    if x0.ndim == 2:
        x0 = x0.unsqueeze(0)
    if x0.ndim != 3:
        raise ShapeError(f"x0: expected shape (P, S, n) or (S, n), got {tuple(x0.shape)}")
    At = torch.as_tensor(np.asarray(A) if not isinstance(A, torch.Tensor) else A, dtype=x0.dtype, device=x0.device)
    Bt = torch.as_tensor(np.asarray(B) if not isinstance(B, torch.Tensor) else B, dtype=x0.dtype, device=x0.device)
    n = At.shape[0]
    if x0.shape[-1] != n:
        raise ShapeError(f"x0: expected last dimension {n} to match A, got shape {tuple(x0.shape)}")
    states = [x0]
    inputs = []
    x = x0
    for _ in range(horizon):
        u = policy(x)
        inputs.append(u)
        x = x @ At.T + u @ Bt.T
        states.append(x)
    P, S = x0.shape[:2]
    U = torch.stack(inputs, dim=2) if inputs else torch.zeros(P, S, 0, Bt.shape[1], dtype=x0.dtype, device=x0.device)
    return Rollout(states=torch.stack(states, dim=2), inputs=U)
