"""``bound_rollout``: sound bounds along a closed-loop rollout from thousands of boxes at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..._validate import as_array, check_int
from ...errors import InvalidInputError, NonFiniteError, ShapeError, UnsupportedError
from ...numerics import DEFAULT_MARGIN, Margin
from .crown import crown_rollout, symbols
from .interval import ibp_rollout
from .network import ClosedLoop
from .types import DT, IntervalBounds, LinearBounds, RolloutBounds

__all__ = ["METHODS", "bound_rollout"]

METHODS = ("ibp", "crown")
"""Bound-propagation methods of :func:`bound_rollout`."""
_MEMORY_BUDGET = 48 * 2**20  # bytes for the largest transient tensor of one chunk of boxes


def _rows_matrix(name: str, rows: Any, dim: int) -> torch.Tensor | None:
    if rows is None:
        return None
    return torch.as_tensor(as_array(name, rows, shape=(None, dim)).copy(), dtype=DT)


def _psd(name: str, P: Any, n: int) -> torch.Tensor | None:
    if P is None:
        return None
    P = as_array(name, P, shape=(n, n))
    if not np.allclose(P, P.T, rtol=0, atol=1e-12 * max(1.0, float(np.abs(P).max()))):
        raise InvalidInputError(f"{name}: expected a symmetric matrix")
    if np.linalg.eigvalsh((P + P.T) / 2).min() < -1e-12 * max(1.0, float(np.abs(P).max())):
        raise InvalidInputError(f"{name}: expected a positive semidefinite matrix (the quadratic bounds use convexity)")
    return torch.as_tensor((P + P.T) / 2, dtype=DT)


def _check_boxes(boxes: Any, n: int) -> None:
    if not isinstance(boxes, IntervalBounds):
        raise InvalidInputError(f"boxes: expected IntervalBounds (see as_boxes), got {type(boxes).__name__}")
    if boxes.lower.ndim != 2 or boxes.shape[-1] != n:
        raise ShapeError(f"boxes: expected shape (B, {n}), got {tuple(boxes.shape)}")
    if not (torch.all(torch.isfinite(boxes.lower)) and torch.all(torch.isfinite(boxes.upper))):
        raise NonFiniteError("boxes: expected finite bounds, got NaN/inf")
    if not torch.all(boxes.lower <= boxes.upper):
        raise InvalidInputError("boxes: expected lower <= upper in every coordinate")
    if boxes.shape[0] == 0:
        raise InvalidInputError("boxes: expected at least one box, got none")


def _cat_opt(items: list, dim: int = 0):
    if items[0] is None:
        return None
    if isinstance(items[0], IntervalBounds):
        return IntervalBounds(torch.cat([i.lower for i in items], dim), torch.cat([i.upper for i in items], dim))
    if isinstance(items[0], LinearBounds):
        return LinearBounds(
            torch.cat([i.lower_A for i in items]), torch.cat([i.lower_b for i in items]),
            torch.cat([i.upper_A for i in items]), torch.cat([i.upper_b for i in items]),
            IntervalBounds(torch.cat([i.region.lower for i in items]), torch.cat([i.region.upper for i in items])),
        )
    return torch.cat(items, dim)


def _chunk(loop: ClosedLoop, method: str, T: int, count: int, chunk_size: int | None) -> int:
    if method == "ibp":
        return count if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)
    n, m = loop.n, loop.m
    N = symbols(loop, T)
    widest = max([*loop.network.hidden, m, n, 1])
    # per box: the generators (n × N, a few copies) and the relaxation matrices (widest²)
    per_box = 8 * (8 * n * max(N, 1) + 4 * widest * widest + (widest * max(N, 1) if n != 2 else 0))
    auto = max(1, int(_MEMORY_BUDGET // per_box))
    return auto if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)


def bound_rollout(
    loop: ClosedLoop,
    boxes: IntervalBounds,
    horizon: int,
    *,
    method: str = "crown",
    state_rows: np.ndarray | None = None,
    input_rows: np.ndarray | None = None,
    terminal_P: np.ndarray | None = None,
    value_change_P: np.ndarray | None = None,
    theta_box: tuple[np.ndarray, np.ndarray] | None = None,
    margin: Margin = DEFAULT_MARGIN,
    chunk_size: int | None = None,
) -> RolloutBounds:
    """Sound bounds along ``T`` steps of the closed loop from every box of initial states.

    Bounds, for every box ``X_i = [l_i, u_i]`` and every ``x_0 ∈ X_i``, the states ``x_t``
    (``t = 0..T``), the inputs ``u_t = K x_t + φ(x_t)`` (``t = 0..T−1``), the rows ``H x_t`` and
    ``H_u u_t``, ``x_Tᵀ P x_T`` and ``x_1ᵀ P x_1 − x_0ᵀ P x_0``. Every bound, and every intermediate
    pre-activation bound a relaxation is built from, is widened outward by ``margin``.

    Parameters
    ----------
    loop : ClosedLoop
    boxes : IntervalBounds, shape (B, n)
        Initial-state boxes, e.g. from :func:`as_boxes`.
    horizon : int
        ``T ≥ 0``.
    method : {"crown", "ibp"}
    state_rows : ndarray, shape (p, n), optional
    input_rows : ndarray, shape (q, m), optional
    terminal_P : ndarray, shape (n, n), optional
        Positive semidefinite; requests ``terminal_upper``.
    value_change_P : ndarray, shape (n, n), optional
        Requests ``value_change_upper`` (``"crown"`` and ``T ≥ 1`` only).
    theta_box : (ndarray, ndarray), optional
        A box of residual parameters (``"ibp"`` only): the bounds then hold for every ``θ`` in it.
    margin : Margin
        Outward widening (recorded in the result).
    chunk_size : int, optional
        Boxes per vectorised chunk (default: from a ~48 MB budget per transient tensor).

    Returns
    -------
    RolloutBounds

    Raises
    ------
    UnsupportedError
        A parameter box with ``method="crown"``, an unknown method, a loop that is not a ClosedLoop.
    ShapeError, InvalidInputError
        Wrongly shaped rows or boxes, an indefinite ``P``.
    """
    if not isinstance(loop, ClosedLoop):
        raise UnsupportedError(f"loop: expected a ClosedLoop (see closed_loop), got {type(loop).__name__}")
    if method not in METHODS:
        raise UnsupportedError(f"method: expected one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if not isinstance(margin, Margin):
        raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(margin).__name__}")
    T = check_int("horizon", horizon, minimum=0)
    n, m = loop.n, loop.m
    _check_boxes(boxes, n)
    H = _rows_matrix("state_rows", state_rows, n)
    Hu = _rows_matrix("input_rows", input_rows, m)
    Pt = _psd("terminal_P", terminal_P, n)
    Pv = _psd("value_change_P", value_change_P, n)
    if theta_box is not None and method != "ibp":
        raise UnsupportedError("theta_box: a box of parameters is supported by method='ibp' only (CROWN here perturbs the states)")
    if Pv is not None and (method != "crown" or T < 1):
        raise UnsupportedError("value_change_P: the value-change bound needs method='crown' and horizon >= 1")
    count = boxes.shape[0]
    chunk = _chunk(loop, method, T, count, chunk_size)
    parts = []
    for s in range(0, count, chunk):
        sub = boxes[s : s + chunk]
        if method == "ibp":
            parts.append(ibp_rollout(loop, sub, T, H, Hu, Pt, theta_box, margin))
        else:
            parts.append(crown_rollout(loop, sub, T, H, Hu, Pt, Pv, margin))
    keys = ("states", "inputs", "state_rows", "input_rows", "terminal_upper", "value_change_upper", "state_linear", "input_linear")
    return RolloutBounds(method=method, margin=margin, **{k: _cat_opt([p[k] for p in parts]) for k in keys})
