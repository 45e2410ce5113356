"""Certificates and their checks (DESIGN §6).

Public names::

    zero_final_layer_claim   base case of the induction: zero final layer ⇒ π_θ0 ≡ π_safe (exact)
    backup_certificate       LQR backup: P ≻ 0, Lyapunov decrease, X_f inside the constraints (exact)
    is_positive_definite     exact LDLᵀ test on a rational matrix
    bound_rollout            IBP / CROWN bounds of closed-loop rollouts over state boxes (sound)
    certify_region           region certificate: boxes covering S, adaptive splitting (sound)
    read_region_certificates region certificates saved in a run
    smoothness_bounds        sound bounds on each row's Hessian norm over a parameter region
    smoothness_lower_bounds  estimated lower bounds (power iteration, ascent, second differences)
    certified_L              per-row L for the projector's certified mode
    naive_lipschitz, lipsdp, local_lipschitz, state_lipschitz   state-Lipschitz constants
    verify_lipschitz         verdict per row for the L a run used
"""

from .backup import backup_certificate
from .base_case import BASE_CASE_STATEMENT, zero_final_layer_claim
from .bounds import (
    ClosedLoop,
    IntervalBounds,
    LinearBounds,
    Margin,
    Network,
    RolloutBounds,
    as_boxes,
    bound_rollout,
    closed_loop_from_policy,
    closed_loop_from_task,
    ibp_network,
    parameter_box,
)
from .certify_command import read_region_certificates
from .exact import is_positive_definite, to_rational_matrix
from .lipschitz import LipschitzBound, lipsdp, local_lipschitz, naive_lipschitz, state_lipschitz
from .lipschitz_command import verify_lipschitz
from .region import RegionConfig, RegionResult, certify_boxes, certify_region
from .smoothness import Region, SmoothnessCertificate, certified_L, smoothness_bounds, smoothness_lower_bounds

__all__ = [
    "BASE_CASE_STATEMENT",
    "LipschitzBound",
    "Region",
    "SmoothnessCertificate",
    "certified_L",
    "lipsdp",
    "local_lipschitz",
    "naive_lipschitz",
    "smoothness_bounds",
    "smoothness_lower_bounds",
    "state_lipschitz",
    "verify_lipschitz",
    "ClosedLoop",
    "IntervalBounds",
    "LinearBounds",
    "Margin",
    "Network",
    "RegionConfig",
    "RegionResult",
    "RolloutBounds",
    "as_boxes",
    "backup_certificate",
    "bound_rollout",
    "certify_boxes",
    "certify_region",
    "closed_loop_from_policy",
    "closed_loop_from_task",
    "ibp_network",
    "is_positive_definite",
    "parameter_box",
    "read_region_certificates",
    "to_rational_matrix",
    "zero_final_layer_claim",
]
