"""Grid sets against the exact sets: the task's safety region ``S`` and the learned policy's set.

Both comparisons are ``evaluated`` (finitely many grid states):

* :func:`safety_region_comparison` — the grid states of ``S`` (from which the backup reaches
  ``X_f`` in ``T`` steps, decided by rollouts) lie in the exact ``R_T(T_out) ⊇ R_T(X_f)``, and
  every grid state strictly inside ``R_T(T_in) ⊆ R_T(X_f)`` is in ``S``.
* :func:`learned_comparison` — the learned policy's grid set lies in the exact controllable set
  ``R_T^controllable(T_out)`` (no policy can do better), with the areas that show how much of the
  gap between the backup's set and the controllable set it closes.

A state counts as *strictly inside* a polytope when its unit-row residual is ``≤ −BOUNDARY_TOL``
and as *outside* when it is ``> BOUNDARY_TOL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import as_array
from ..errors import ShapeError
from ..evidence import Claim, Level
from ..numerics import BOUNDARY_TOL
from .exact import exact_area_or_nan
from .learned import GridSet, grid_area, grid_containment_claim
from .polytope import Polytope
from .sets import ReachableSets

__all__ = ["Comparison", "safety_region_comparison", "learned_comparison"]


@dataclass(frozen=True)
class Comparison:
    """The claims and the JSON data of one grid comparison.

    Attributes
    ----------
    claims : list of Claim
    data : dict
        JSON-ready summary (counts, areas).
    """

    claims: list[Claim] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def safety_region_comparison(
    families: Mapping[str, ReachableSets],
    task_horizon: int,
    grid_states: np.ndarray,
    in_S: np.ndarray,
    domain: Polytope | None = None,
) -> Comparison:
    """The grid safety region ``S`` against the backup's exact ``T``-step sets.

    Parameters
    ----------
    families : mapping of name -> ReachableSets
        ``"backup_inner"`` and ``"backup_outer"`` with at least ``T + 1`` sets.
    task_horizon : int
        ``T``, the horizon of ``S``.
    grid_states : ndarray, shape (G, n)
        The grid on which ``S`` was decided.
    in_S : ndarray of bool, shape (G,)
        Which grid states are in ``S``.
    domain : Polytope, optional
        The set ``S`` was restricted to (e.g. a declared region ``C``): the coverage claim is then
        about the grid states strictly inside both ``R_T(T_in)`` and ``domain``.

    Returns
    -------
    Comparison
        Claims ``safety_region_inside_outer_set`` and ``inner_set_grid_states_in_safety_region``;
        data: the ``safety_region`` section of the report.
    """
    grid_states = as_array("grid_states", grid_states, ndim=2)
    in_S = np.asarray(in_S, dtype=bool)
    if in_S.shape != (grid_states.shape[0],):
        raise ShapeError(f"in_S: expected shape ({grid_states.shape[0]},) to match grid_states, got {in_S.shape}")
    T = task_horizon
    S = grid_states[in_S]
    brs_in, brs_out = families["backup_inner"].sets[T], families["backup_outer"].sets[T]
    inside_claim = grid_containment_claim(
        "safety_region_inside_outer_set",
        f"every grid state of the task's safety region S (backup reaches X_f in T = {T} steps, evaluated by "
        f"rollouts) lies in the exact backup set R_T(T_out) ⊇ R_T(X_f)",
        S,
        np.ones(S.shape[0], dtype=bool),
        brs_out,
    )
    strictly_in = brs_in.residual(grid_states) <= -BOUNDARY_TOL
    if domain is not None:
        strictly_in &= domain.residual(grid_states) <= -BOUNDARY_TOL
    missing = strictly_in & ~in_S
    covered_claim = Claim(
        "inner_set_grid_states_in_safety_region",
        f"every task grid state strictly inside the exact backup set R_T(T_in) ⊆ R_T(X_f) (T = {T})"
        + (" and strictly inside the polytope S was restricted to (the declared region C)" if domain is not None else "")
        + " is in S",
        Level.EVALUATED,
        not missing.any(),
        {"grid_states_strictly_inside": int(strictly_in.sum()), "not_in_S": int(missing.sum()), "examples": grid_states[missing][:10].tolist()},
    )
    box_area = float(np.prod(np.ptp(grid_states, axis=0)))
    # the box-share estimate of S's area needs a full grid over the box; states sampled elsewhere
    # (e.g. inside a polytope) say nothing about the box
    full_grid = int(np.prod([np.unique(col).size for col in grid_states.T])) == grid_states.shape[0]
    data = {
        "level": Level.EVALUATED.value,
        "grid_states": int(grid_states.shape[0]),
        "states_in_S": int(S.shape[0]),
        "S_states_outside_inner_set": int((brs_in.residual(S) > BOUNDARY_TOL).sum()),
        "S_states_outside_outer_set": int((brs_out.residual(S) > BOUNDARY_TOL).sum()),
        "note": "S states outside R_T(T_in) are expected near its boundary (T_in is strictly inside X_f); none may lie outside R_T(T_out)",
        "restricted_to_domain": domain is not None,
        "fraction_of_grid_in_S_times_box_area": box_area * S.shape[0] / grid_states.shape[0] if full_grid else None,
        "exact_area_R_T_inner": exact_area_or_nan(brs_in),
        "exact_area_R_T_outer": exact_area_or_nan(brs_out),
    }
    return Comparison([inside_claim, covered_claim], data)


def learned_comparison(families: Mapping[str, ReachableSets], task_horizon: int, learned: GridSet, grid: int) -> Comparison:
    """The learned policy's grid set against the exact backup and controllable ``T``-step sets.

    Parameters
    ----------
    families : mapping of name -> ReachableSets
        The four families, each with at least ``T + 1`` sets.
    task_horizon : int
        ``T``.
    learned : GridSet
        The learned closed loop's grid estimate of its ``T``-step set of ``X_f``.
    grid : int
        Centres per axis of ``learned`` (reported).

    Returns
    -------
    Comparison
        Claim ``learned_set_inside_controllable_set``; data: the ``learned`` section of the report
        (counts, areas, the share of the backup-to-controllable gap closed).
    """
    T = task_horizon
    brs_in, brs_out = families["backup_inner"].sets[T], families["backup_outer"].sets[T]
    c_in, c_out = families["controlled_inner"].sets[T], families["controlled_outer"].sets[T]
    claim = grid_containment_claim(
        "learned_set_inside_controllable_set",
        f"every grid state from which the learned policy reaches X_f in T = {T} steps inside the constraints "
        f"(rollouts) lies in the exact controllable set R_T^controllable(T_out) ⊇ R_T^controllable(X_f)",
        learned.states,
        learned.inside,
        c_out,
    )
    beyond = learned.inside & (brs_out.residual(learned.states) > BOUNDARY_TOL)
    backup_lost = (brs_in.residual(learned.states) <= -BOUNDARY_TOL) & ~learned.inside
    areas = {
        "learned_grid_estimate": learned.area,
        "backup_exact_inner": exact_area_or_nan(brs_in),
        "backup_exact_outer": exact_area_or_nan(brs_out),
        "controllable_exact_inner": exact_area_or_nan(c_in),
        "controllable_exact_outer": exact_area_or_nan(c_out),
        "backup_grid_estimate_of_exact_inner": grid_area(brs_in, learned.states, learned.cell_area),
        "controllable_grid_estimate_of_exact_outer": grid_area(c_out, learned.states, learned.cell_area),
    }
    gap = areas["controllable_exact_inner"] - areas["backup_exact_outer"]
    data = {
        **learned.to_dict(),
        "grid": grid,
        "statement": f"grid estimate of the learned closed loop's T = {T}-step backward reachable set of X_f (cell centres, rollouts)",
        "area_estimate_beyond_backup": float(beyond.sum() * learned.cell_area),
        "grid_states_beyond_backup": int(beyond.sum()),
        "grid_states_of_backup_set_lost": int(backup_lost.sum()),
        "areas": areas,
        "share_of_gap_closed": (areas["learned_grid_estimate"] - areas["backup_exact_outer"]) / gap if gap > 0 else None,
        "share_of_gap_note": (
            "(learned area − backup area) / (controllable area − backup area), grid estimate against exact areas; "
            "negative when the learned policy reaches X_f from less than the backup"
        ),
    }
    return Comparison([claim], data)
