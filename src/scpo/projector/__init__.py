"""The SCPO projector: safe parameter steps from evaluated (not differentiated) constraints.

Public names::

    Projector          the training loop (bank, SOCP, line search, adaptive L)
    ProjectorConfig    its frozen configuration
    StepRecord         what one iteration did
    raw_direction      the raw step rule (Adam or SGD), shared with the penalty baseline
    ProjectionSOCP     the SOCP with its per-shape cache and solver fallback chain
    ProjectionResult   one SOCP answer
    Bank               the rolling bank of evaluated perturbations
    inner_bound        the right-hand side of (★)
    batched            wrap g(θ) -> (N,) into the batched form (B, d) -> (B, N)
"""

from .bank import Bank
from .config import ProjectorConfig
from .inner import inner_bound, max_feasible_scale
from .directions import raw_direction
from .projector import ConstraintFn, GateVerdict, Projector, RowExtension, SubspaceProvider, batched
from .record import StepRecord
from .socp import ProjectionResult, ProjectionSOCP
from .solvers import mosek_status, solver_chain

__all__ = [
    "Bank",
    "ConstraintFn",
    "GateVerdict",
    "RowExtension",
    "ProjectionResult",
    "ProjectionSOCP",
    "Projector",
    "ProjectorConfig",
    "StepRecord",
    "SubspaceProvider",
    "batched",
    "inner_bound",
    "max_feasible_scale",
    "raw_direction",
    "mosek_status",
    "solver_chain",
]
