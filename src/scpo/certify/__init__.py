"""Certificates and their checks (DESIGN §6).

Every routine here takes a :class:`~scpo.systems.ClosedLoopProblem` (plus an
:class:`~scpo.policies.MLPStructure`, ``θ`` and states) and never asks which task it serves.

Modules::

    base_case        zero final layer ⇒ π_θ0 ≡ π_safe (exact)
    backup, exact    the LQR backup certificate in exact rational arithmetic
    reach_avoid      reach-avoid and value decrease evaluated on grid rollouts (evaluated)
    intervals        the one interval-arithmetic toolkit (midpoint-radius, outward slack)
    bounds           IBP / CROWN bounds of closed-loop rollouts over state boxes (sound)
    region           the region certificate on boxes, with adaptive splitting (sound)
    region_cover     the cover of S by grid cells (to be replaced by issue 12)
    region_file      the region certificate's JSON record, its reader and its figure
    smoothness       sound and estimated smoothness constants L in θ; certified_L; verdicts
    lipschitz        state-Lipschitz constants (naive, LipSDP, local interval Jacobians)

Public names::

    zero_final_layer_claim   base case of the induction
    backup_certificate       LQR backup: P ≻ 0, Lyapunov decrease, X_f inside the constraints (exact)
    is_positive_definite     exact LDLᵀ test on a rational matrix
    bound_rollout            IBP / CROWN bounds of closed-loop rollouts over state boxes (sound)
    certify_region           region certificate: boxes covering S, adaptive splitting (sound)
    smoothness_bounds        sound bounds on each row's Hessian norm over a parameter region
    smoothness_lower_bounds  estimated lower bounds (power iteration, ascent, second differences)
    certified_L              per-row L for the projector's certified mode
    verify_smoothness        verdict per row for the L a run used
    naive_lipschitz, lipsdp, local_lipschitz, state_lipschitz   state-Lipschitz constants
"""

from .backup import backup_certificate
from .base_case import BASE_CASE_STATEMENT, zero_final_layer_claim
from .bounds import (
    ClosedLoop,
    IntervalBounds,
    LinearBounds,
    Network,
    RolloutBounds,
    as_boxes,
    bound_rollout,
    closed_loop,
    closed_loop_from_policy,
    ibp_network,
    parameter_box,
    require_unswitched,
)
from .exact import is_positive_definite, to_rational_matrix
from .lipschitz import LipschitzBound, lipsdp, local_lipschitz, naive_lipschitz, state_lipschitz
from .region import RegionConfig, RegionResult, certify_boxes, certify_region
from .region_cover import safety_region_cover, state_box
from .region_file import REGION_FILE_KIND, load_region_record, region_figure, region_record
from .smoothness import (
    Region,
    SmoothnessCertificate,
    SmoothnessVerification,
    certified_L,
    record_region_radius,
    smoothness_bounds,
    smoothness_lower_bounds,
    verify_smoothness,
)

__all__ = [
    "BASE_CASE_STATEMENT",
    "REGION_FILE_KIND",
    "ClosedLoop",
    "IntervalBounds",
    "LinearBounds",
    "LipschitzBound",
    "Network",
    "Region",
    "RegionConfig",
    "RegionResult",
    "RolloutBounds",
    "SmoothnessCertificate",
    "SmoothnessVerification",
    "as_boxes",
    "backup_certificate",
    "bound_rollout",
    "certified_L",
    "certify_boxes",
    "certify_region",
    "closed_loop",
    "closed_loop_from_policy",
    "ibp_network",
    "is_positive_definite",
    "lipsdp",
    "load_region_record",
    "local_lipschitz",
    "naive_lipschitz",
    "parameter_box",
    "record_region_radius",
    "region_figure",
    "region_record",
    "require_unswitched",
    "safety_region_cover",
    "smoothness_bounds",
    "smoothness_lower_bounds",
    "state_box",
    "state_lipschitz",
    "to_rational_matrix",
    "verify_smoothness",
    "zero_final_layer_claim",
]
