"""Sound bound propagation through MLPs and unrolled linear closed loops (DESIGN §2, §6).

The graphs the toolkit builds are small and fixed: a residual MLP ``φ`` (``Linear`` layers with
``tanh`` or ``ReLU`` between them, :class:`~scpo.policies.MLPStructure`) inside the closed loop

    x_{t+1} = A x_t + B u_t,   u_t = K x_t + φ(x_t),   t = 0 … T−1,

with a box of initial states (or, for interval bound propagation, also a box of parameters around
``θ``). The package bounds every state ``x_t``, every input ``u_t``, linear functionals ``H x_t`` and
``H_u u_t`` of them, the terminal quadratic ``x_Tᵀ P x_T`` and the one-step value change
``x_1ᵀPx_1 − x_0ᵀPx_0`` over each box, for thousands of boxes at once (no Python loop over boxes).

Modules::

    types        IntervalBounds, LinearBounds, RolloutBounds, as_boxes, parameter_box
    network      Network (MLPStructure + θ), ClosedLoop (its policy runs scpo.systems.rollout),
                 closed_loop, closed_loop_from_policy, closed_loop_module
    interval     interval_affine, ibp_network, IBP through the loop
    relaxation   parallel-chord relaxations of the activations
    crown        CROWN in forward (zonotope) form
    quadratic    max of xᵀPx over boxes and zonotopes, the value change
    rollout      bound_rollout (the entry point)
    auto_lirpa   the optional upstream auto_LiRPA backend

Two methods: ``"ibp"`` (:mod:`.interval`) and ``"crown"`` (:mod:`.crown`).

Floating point. Everything is computed in float64 with round-to-nearest (torch has no directed
rounding). Every bound returned, and every intermediate pre-activation bound used to build a
relaxation, is widened outward by ``margin.rel · max(|lower|, |upper|) + margin.abs``
(:class:`scpo.numerics.Margin`, defaults ``1e-9`` and ``1e-10``). The standard error bound of a
float64 dot product of length ``N`` is ``N u Σ|a_i b_i|`` with ``u = 2⁻⁵³``; the longest sums here
(a few thousand terms, of the magnitude of the bound itself because the closed loop is stable) stay
below ``1e-12`` relative, so the margin leaves more than two orders of magnitude of headroom. The
margin is recorded in every result; a claim built from these bounds carries level ``sound``.
"""

from .auto_lirpa import auto_lirpa_rollout_bounds
from .interval import ibp_network, interval_affine
from .network import (
    ClosedLoop,
    Network,
    closed_loop,
    closed_loop_from_policy,
    closed_loop_module,
    feedback_policy,
    network_from_module,
    require_unswitched,
)
from .quadratic import box_max_quadratic, value_change_upper, zonotope_max_quadratic
from .relaxation import RELAXATIONS, activation_relaxation
from .rollout import METHODS, bound_rollout
from .types import IntervalBounds, LinearBounds, RolloutBounds, as_boxes, parameter_box

__all__ = [
    "METHODS",
    "RELAXATIONS",
    "ClosedLoop",
    "IntervalBounds",
    "LinearBounds",
    "Network",
    "RolloutBounds",
    "activation_relaxation",
    "as_boxes",
    "auto_lirpa_rollout_bounds",
    "bound_rollout",
    "box_max_quadratic",
    "closed_loop",
    "closed_loop_from_policy",
    "closed_loop_module",
    "feedback_policy",
    "ibp_network",
    "interval_affine",
    "network_from_module",
    "parameter_box",
    "require_unswitched",
    "value_change_upper",
    "zonotope_max_quadratic",
]
