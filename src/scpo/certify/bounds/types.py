"""Value types of bound propagation: interval bounds, affine bounds, rollout bounds, and box inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..._validate import as_array, check_positive
from ...errors import InvalidInputError, ShapeError
from ...numerics import Margin

__all__ = ["IntervalBounds", "LinearBounds", "RolloutBounds", "as_boxes", "parameter_box"]

DT = torch.float64
"""The dtype of every bound (float64, round-to-nearest)."""


@dataclass(frozen=True)
class IntervalBounds:
    """Elementwise bounds ``lower ≤ y ≤ upper``.

    Attributes
    ----------
    lower, upper : Tensor, same shape (…, k), float64
    """

    lower: torch.Tensor
    upper: torch.Tensor

    def __post_init__(self) -> None:
        if self.lower.shape != self.upper.shape:
            raise ShapeError(f"IntervalBounds: lower has shape {tuple(self.lower.shape)}, upper {tuple(self.upper.shape)}")

    @property
    def center(self) -> torch.Tensor:
        """``(lower + upper) / 2``."""
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> torch.Tensor:
        """``(upper − lower) / 2``."""
        return (self.upper - self.lower) / 2

    @property
    def width(self) -> torch.Tensor:
        """``upper − lower``."""
        return self.upper - self.lower

    @property
    def shape(self) -> torch.Size:
        """Shape of either bound."""
        return self.lower.shape

    def __getitem__(self, item: Any) -> "IntervalBounds":
        return IntervalBounds(self.lower[item], self.upper[item])

    def contains(self, y: torch.Tensor) -> torch.Tensor:
        """Elementwise ``lower ≤ y ≤ upper`` (False on NaN).

        Parameters
        ----------
        y : Tensor
            Broadcastable against the bounds.

        Returns
        -------
        Tensor of bool
        """
        return (self.lower <= y) & (y <= self.upper)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` as numpy arrays."""
        return self.lower.detach().cpu().numpy(), self.upper.detach().cpu().numpy()

    @staticmethod
    def stack(items: list["IntervalBounds"], dim: int) -> "IntervalBounds":
        """Stack bounds of equal shapes along a new dimension ``dim``.

        Parameters
        ----------
        items : list of IntervalBounds
        dim : int

        Returns
        -------
        IntervalBounds
        """
        return IntervalBounds(torch.stack([v.lower for v in items], dim), torch.stack([v.upper for v in items], dim))

    @staticmethod
    def empty(*shape: int) -> "IntervalBounds":
        """Zero-size float64 bounds of ``shape`` (e.g. the inputs of a rollout of horizon 0).

        Parameters
        ----------
        *shape : int

        Returns
        -------
        IntervalBounds
        """
        return IntervalBounds(torch.zeros(*shape, dtype=DT), torch.zeros(*shape, dtype=DT))


@dataclass(frozen=True)
class LinearBounds:
    """Affine bounds in the initial state: ``A_l x₀ + b_l ≤ y ≤ A_u x₀ + b_u`` for every ``x₀`` in ``region``.

    Attributes
    ----------
    lower_A, upper_A : Tensor, shape (B, …, k, n)
    lower_b, upper_b : Tensor, shape (B, …, k)
    region : IntervalBounds, shape (B, n)
        The input boxes.
    """

    lower_A: torch.Tensor
    lower_b: torch.Tensor
    upper_A: torch.Tensor
    upper_b: torch.Tensor
    region: IntervalBounds

    def concretize(self) -> IntervalBounds:
        """The interval bounds implied over the region: ``min/max`` of each affine bound over the box."""
        c, r = self.region.center, self.region.radius
        extra = self.lower_A.ndim - 2 - c.ndim + 1
        shape = (c.shape[0],) + (1,) * extra + (1, c.shape[-1])
        c, r = c.reshape(shape), r.reshape(shape)
        lo = (self.lower_A * c).sum(-1) - (self.lower_A.abs() * r).sum(-1) + self.lower_b
        hi = (self.upper_A * c).sum(-1) + (self.upper_A.abs() * r).sum(-1) + self.upper_b
        return IntervalBounds(lo, hi)

    def evaluate(self, x0: torch.Tensor) -> IntervalBounds:
        """The two affine bounds evaluated at states ``x0``.

        Parameters
        ----------
        x0 : Tensor, shape (B, n)
            One state per box.

        Returns
        -------
        IntervalBounds, shape (B, …, k)
        """
        extra = self.lower_A.ndim - 2 - x0.ndim + 1
        x = x0.reshape((x0.shape[0],) + (1,) * extra + (1, x0.shape[-1]))
        return IntervalBounds((self.lower_A * x).sum(-1) + self.lower_b, (self.upper_A * x).sum(-1) + self.upper_b)


@dataclass(frozen=True)
class RolloutBounds:
    """Bounds over each initial-state box along a ``T``-step closed-loop rollout.

    Attributes
    ----------
    method : str
        ``"ibp"`` or ``"crown"`` (or the external backend's name).
    states : IntervalBounds, shape (B, T+1, n)
        ``x_0 … x_T``.
    inputs : IntervalBounds, shape (B, T, m)
        ``u_0 … u_{T−1}``.
    state_rows : IntervalBounds or None, shape (B, T+1, p)
        ``H x_t`` for the requested rows ``H`` (bounded jointly, tighter than from ``states``).
    input_rows : IntervalBounds or None, shape (B, T, q)
        ``H_u u_t``.
    terminal_upper : Tensor or None, shape (B,)
        Upper bound of ``x_Tᵀ P x_T``.
    value_change_upper : Tensor or None, shape (B,)
        Upper bound of ``x_1ᵀ P x_1 − x_0ᵀ P x_0`` (``"crown"`` only).
    state_linear, input_linear : LinearBounds or None
        ``"crown"``: affine bounds of ``x_t`` and ``u_t`` in ``x_0`` (shapes (B, T+1, n, n), (B, T, m, n)).
    margin : Margin
        The outward widening applied to every bound above.
    """

    method: str
    states: IntervalBounds
    inputs: IntervalBounds
    state_rows: IntervalBounds | None
    input_rows: IntervalBounds | None
    terminal_upper: torch.Tensor | None
    value_change_upper: torch.Tensor | None
    state_linear: LinearBounds | None
    input_linear: LinearBounds | None
    margin: Margin = field(default_factory=Margin)


def parameter_box(theta: np.ndarray, radius: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[θ − r, θ + r]`` of parameters (``r > 0`` scalar or per coordinate).

    Parameters
    ----------
    theta : ndarray, shape (d,)
    radius : float or ndarray, shape (d,)
        Positive.

    Returns
    -------
    lower, upper : ndarray, shape (d,)
    """
    theta = as_array("theta", theta, ndim=1)
    if np.ndim(radius) == 0:
        r = np.full_like(theta, check_positive("radius", radius))
    else:
        r = as_array("radius", radius, shape=theta.shape)
        if not np.all(r > 0):
            raise InvalidInputError(f"radius: expected positive entries, got minimum {float(r.min())}")
    return theta - r, theta + r


def as_boxes(lower: Any, upper: Any, *, n: int | None = None, name: str = "boxes") -> IntervalBounds:
    """Validate a batch of boxes ``[lower_i, upper_i]`` and return them as float64 :class:`IntervalBounds`.

    Parameters
    ----------
    lower, upper : array_like, shape (B, n)
    n : int, optional
        Required dimension.
    name : str
        Argument name for the messages.

    Returns
    -------
    IntervalBounds, shape (B, n)

    Raises
    ------
    ShapeError, NonFiniteError, InvalidInputError
        Mismatched shapes, NaN/inf, or a box with ``lower > upper`` (the first one is named).
    """
    lo = lower.detach().cpu().to(DT).numpy() if isinstance(lower, torch.Tensor) else lower
    hi = upper.detach().cpu().to(DT).numpy() if isinstance(upper, torch.Tensor) else upper
    lo = as_array(f"{name} lower", lo, shape=(None, n))
    hi = as_array(f"{name} upper", hi, shape=lo.shape)
    bad = np.argwhere(~(lo <= hi))
    if bad.size:
        i, j = bad[0]
        raise InvalidInputError(
            f"{name}: expected lower <= upper in every coordinate, got lower {lo[i, j]!r} > upper {hi[i, j]!r} "
            f"(box {i}, coordinate {j}; {len(bad)} such entr{'y' if len(bad) == 1 else 'ies'})"
        )
    return IntervalBounds(torch.as_tensor(lo, dtype=DT), torch.as_tensor(hi, dtype=DT))
