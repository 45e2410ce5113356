"""The cover of the safety region used by the region certificate (to be replaced by issue 12).

The safety region ``S`` is known at grid states. The cover is

    R = ⋃_{x_j ∈ S} (x_j + [−h_1/2, h_1/2] × ⋯ × [−h_n/2, h_n/2]) ∩ X,

one grid cell (the grid spacing ``h`` per axis) centred on every grid state of ``S``, clipped to
the state box ``X`` (cells of grid states on the boundary of ``X`` are half or quarter cells).
The cells of all grid states tile ``X``, so ``R`` is the part of ``X`` nearest to the states of
``S``; its area is ``|S| × h_1 h_2`` minus the clipped parts. ``R`` can reach past the true
safety region; a cover clipped to the region itself is issue 12's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import as_array
from ..errors import InvalidInputError, UnsupportedError
from ..systems import ClosedLoopProblem, box_bounds

__all__ = ["state_box", "safety_region_cover"]


def state_box(problem: ClosedLoopProblem) -> tuple[np.ndarray, np.ndarray]:
    """The state constraints ``X = {Hx x ≤ hx}`` as a box, when every row of ``Hx`` is ``±c e_i``.

    Parameters
    ----------
    problem : ClosedLoopProblem

    Returns
    -------
    lower, upper : ndarray, shape (n,)

    Raises
    ------
    UnsupportedError
        A row with several non-zero entries, or an unbounded coordinate.
    """
    try:
        lo, hi, _ = box_bounds(problem.Hx, problem.hx, require_box=True)
    except InvalidInputError as exc:
        raise UnsupportedError(f"problem.Hx: the cover of S needs a bounded box of state constraints ({exc})") from None
    return lo, hi


def safety_region_cover(problem: ClosedLoopProblem, grid_states: np.ndarray,
                        safety_states: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Boxes covering ``R``: one grid cell around each grid state of ``S``, clipped to ``X`` (module docstring).

    Parameters
    ----------
    problem : ClosedLoopProblem
        Its state constraints must be a box (:func:`state_box`).
    grid_states : ndarray, shape (G, n)
        The full grid (at least two values per axis); its spacing ``h`` is the median gap.
    safety_states : ndarray, shape (S, n)
        The grid states of the safety region ``S``.

    Returns
    -------
    lower, upper : ndarray, shape (S', n)
        Cells of positive width (``S' ≤ S``).
    info : dict
        ``definition`` of ``R``, ``spacing`` (per axis), ``state_box``, ``cells`` and ``area``.
    """
    grid = as_array("grid_states", grid_states, shape=(None, problem.n))
    S = as_array("safety_states", safety_states, shape=(None, problem.n))
    spacing = []
    for i in range(grid.shape[1]):
        vals = np.unique(grid[:, i])
        if vals.size < 2:
            raise UnsupportedError(f"grid_states: expected at least two grid values on axis {i}")
        spacing.append(float(np.median(np.diff(vals))))
    h = np.array(spacing)
    xlo, xhi = state_box(problem)
    lower = np.maximum(S - h / 2, xlo)
    upper = np.minimum(S + h / 2, xhi)
    keep = np.all(upper > lower, axis=1)
    lower, upper = lower[keep], upper[keep]
    info = {
        "definition": "R = union over grid states x_j of S of (x_j + [-h/2, h/2]^n) ∩ X (grid spacing h per axis, X the state box)",
        "spacing": h.tolist(),
        "state_box": [xlo.tolist(), xhi.tolist()],
        "cells": int(lower.shape[0]),
        "area": float(np.prod(upper - lower, axis=1).sum()),
    }
    return lower, upper, info
