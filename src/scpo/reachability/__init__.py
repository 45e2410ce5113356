"""Exact reachability for discrete-time linear systems with polytopic constraints (DESIGN §7).

Public names::

    Polytope                      H-polytope value type {x : Hx ≤ h}
    box, intersect, preimage, reduce, contains, equals, project, vertices, area,
    chebyshev_center, is_empty, is_bounded, bounding_box, support
    closed_loop_pre, controlled_pre          one-step sets
    backward_reachable_sets, ReachableSets   N-step sets (backup or controllable)
    maximal_positively_invariant, backup_invariant_set, maximal_control_invariant, InvariantSet
    terminal_targets, TerminalTarget         polytopes inside / around X_f = {xᵀPx ≤ γ}
    steering_margin, simulation_margin(s), membership_agreement   independent checks
    learned_grid_set, grid_set, policy_rows, residual_policy_map, state_box, GridSet
                                             the learned closed loop's grid estimate
    linear_reach, ReachReport, report_data   the full report used by ``scpo reach``
    resolve_sets, SET_CHOICES                which families ``sets="auto"`` computes
    report_figure, reach_figure              its 2-D figure

Inputs are a :class:`scpo.systems.ClosedLoopProblem` and plain arrays; nothing here knows which
task it serves (``scpo reach`` in :mod:`scpo.cli.reach` builds the inputs from a task or a run).
"""

from .checks import membership_agreement, simulation_margin, simulation_margins, steering_margin
from .learned import GridSet, grid_set, learned_grid_set, policy_rows, residual_policy_map, state_box
from .plot import reach_figure, report_figure
from .polytope import (
    Polytope,
    area,
    bounding_box,
    box,
    chebyshev_center,
    contains,
    equals,
    intersect,
    is_bounded,
    is_empty,
    preimage,
    project,
    reduce,
    support,
    vertices,
)
from .report import SET_CHOICES, ReachReport, linear_reach, report_data, resolve_sets
from .sets import (
    InvariantSet,
    ReachableSets,
    backup_invariant_set,
    backward_reachable_sets,
    closed_loop_pre,
    controlled_pre,
    maximal_control_invariant,
    maximal_positively_invariant,
)
from .targets import TerminalTarget, terminal_targets

__all__ = [
    "GridSet",
    "InvariantSet",
    "Polytope",
    "ReachReport",
    "ReachableSets",
    "TerminalTarget",
    "area",
    "backup_invariant_set",
    "backward_reachable_sets",
    "bounding_box",
    "box",
    "chebyshev_center",
    "closed_loop_pre",
    "contains",
    "controlled_pre",
    "equals",
    "intersect",
    "is_bounded",
    "is_empty",
    "grid_set",
    "learned_grid_set",
    "linear_reach",
    "resolve_sets",
    "SET_CHOICES",
    "maximal_control_invariant",
    "maximal_positively_invariant",
    "membership_agreement",
    "policy_rows",
    "preimage",
    "project",
    "reach_figure",
    "reduce",
    "report_data",
    "report_figure",
    "residual_policy_map",
    "simulation_margin",
    "simulation_margins",
    "state_box",
    "steering_margin",
    "support",
    "terminal_targets",
    "vertices",
]
