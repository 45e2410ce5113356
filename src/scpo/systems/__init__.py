"""Linear systems, the closed-loop problem type, the one rollout and its rows, and LQR.

Public names::

    LinearSystem         x⁺ = Ax + Bu with polytopic constraints (validated value)
    ClosedLoopProblem    system, backup K, terminal set (P, γ), horizon T, names
    RowLayout, RowRef    the order of the constraint rows of one rollout
    rollout, Rollout     the closed-loop rollout (batched over policies and states)
    constraint_rows      every row of a rollout in the layout's order (≤ 0 safe)
    aggregate_rows       per-row, max or log-sum-exp rows per initial state
    linear_policy        π(x) = Kx as a rollout policy
    dlqr, LQRResult      discrete LQR from the DARE, with its checks
    terminal_level       the closed-form γ of DESIGN §5
"""

from .linear import LinearSystem, box_bounds, box_constraints, is_stabilisable, polytope_is_nonempty
from .lqr import LQRResult, dare_residual, dlqr, ellipsoid_support, terminal_level
from .problem import ROW_KINDS, ClosedLoopProblem, RowLayout, RowRef
from .rollout import ROW_AGGREGATIONS, Rollout, aggregate_rows, constraint_rows, linear_policy, rollout

__all__ = [
    "ClosedLoopProblem",
    "LQRResult",
    "LinearSystem",
    "ROW_AGGREGATIONS",
    "ROW_KINDS",
    "Rollout",
    "RowLayout",
    "RowRef",
    "aggregate_rows",
    "box_bounds",
    "box_constraints",
    "constraint_rows",
    "dare_residual",
    "dlqr",
    "ellipsoid_support",
    "is_stabilisable",
    "linear_policy",
    "polytope_is_nonempty",
    "rollout",
    "terminal_level",
]
