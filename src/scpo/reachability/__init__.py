"""Exact reachability for discrete-time linear systems with polytopic constraints (DESIGN §7).

Public names::

    Polytope                      H-polytope value type {x : Hx ≤ h}
    box, intersect, preimage, reduce, contains, equals, project, vertices, area,
    chebyshev_center, is_empty, is_bounded, bounding_box, support
    closed_loop_pre, controlled_pre          one-step sets
    backward_reachable_sets, ReachableSets   N-step sets (backup or controllable)
    maximal_positively_invariant, backup_invariant_set, maximal_control_invariant, InvariantSet
    terminal_targets, TerminalTarget         polytopes inside / around X_f = {xᵀPx ≤ γ}
    steering_margin, simulation_margin, membership_agreement   independent checks
    learned_grid_set, GridSet                the learned closed loop's grid estimate
    linear_task_reach, ReachReport           the full report used by ``scpo reach``
    reach_command                            the CLI entry (plain function)
"""

from .checks import membership_agreement, simulation_margin, steering_margin
from .command import reach_command
from .learned import GridSet, learned_grid_set
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
from .report import ReachReport, linear_task_reach
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
    "learned_grid_set",
    "linear_task_reach",
    "maximal_control_invariant",
    "maximal_positively_invariant",
    "membership_agreement",
    "preimage",
    "project",
    "reach_command",
    "reduce",
    "simulation_margin",
    "steering_margin",
    "support",
    "terminal_targets",
    "vertices",
]
