"""Certified smoothness constants ``L`` of constraint rows in the parameters ``θ`` (DESIGN §3, §6).

Problem
-------
For a row ``g_i(θ)`` of ``g`` and a region ``Θ`` around a checkpoint ``θ_c`` — an L∞ box
``{θ : ‖θ − θ_c‖_∞ ≤ r}`` or an L2 ball ``{θ : ‖θ − θ_c‖₂ ≤ ρ}`` — bound

    L_i(Θ) = sup_{θ ∈ Θ} ‖∇²g_i(θ)‖₂

from above (``sound``) and from below (``estimated``). By Taylor's theorem with integral remainder,
``|g_i(θ+Δ) − g_i(θ) − ∇g_i(θ)ᵀΔ| ≤ (L_i/2)‖Δ‖²`` whenever the segment ``[θ, θ+Δ]`` lies in ``Θ``:
this is the smoothness assumption behind the inner approximation (★) of the projector. (★) at an
iteration uses the segments from ``θ`` to every bank point ``θ+δ_k`` and to the candidate
``θ+Dc``; a ball around ``θ`` containing them all is a region on which ``L_i(Θ)`` justifies (★).

The rows are those of one :class:`~scpo.systems.ClosedLoopProblem`, an
:class:`~scpo.policies.MLPStructure` residual at ``θ`` and initial states ``(S, n)``:
``g = aggregate_rows(constraint_rows(rollout(…)), aggregation)``. A *static* problem
(``problem.is_static``) constrains the policy's output at given inputs (e.g. ``|f_θ(x_j)| ≤ 1``).

Modules::

    types             Region, SmoothnessCertificate, LowerBounds, the statements, the default margin
    interval_hessian  method (a): interval arithmetic on ∇²f = UᵀMU (MLP outputs)
    norm_chain        method (b): norm chains through the MLP and through unrolled closed loops
    lower             estimated lower bounds (power iteration, ascent, second differences)
    certificate       smoothness_bounds (every row of g), certified_L (the projector's certified mode)
    subspace          the curvature (★) needs: sound bounds restricted to the bank's span (subspace_smoothness_bounds)
    verify            per-row verdicts for the L a run used, the record-only radius, the figure

Floating point. Everything is float64 with round-to-nearest. Interval operations carry
midpoint-radius slack (:mod:`scpo.certify.intervals`); norms from eigen/singular value routines are
inflated by ``64 n u`` relative; every returned sound bound is then inflated by the recorded
``margin`` (default :data:`SMOOTHNESS_MARGIN`, relative ``1e-9``).

ReLU policies are refused (:class:`~scpo.errors.UnsupportedError`): the gradient in ``θ`` jumps,
so no finite ``L`` exists. The region certificate does not need ``L`` and still applies.
"""

from .certificate import METHODS, certified_L, smoothness_bounds
from .interval_hessian import mlp_hessian_bound_interval, mlp_hessian_factors
from .lower import curvature_search, exact_curvature_search, row_function, second_difference_lower_bounds, smoothness_lower_bounds, static_row_outputs
from .norm_chain import mlp_hessian_bound_chain, rollout_hessian_bound_chain
from .types import REGION_KINDS, ROWS_STATEMENT, SMOOTHNESS_MARGIN, LowerBounds, Region, SmoothnessCertificate
from .subspace import (
    SUBSPACE_STATEMENT,
    SubspaceCertificate,
    subspace_basis,
    subspace_certified_L,
    subspace_row_hessians,
    subspace_smoothness_bounds,
)
from .verify import (
    BOUNDS,
    ROW_VERDICTS,
    SAMPLE_ROWS,
    WORST_ROWS,
    SmoothnessVerification,
    clopper_pearson,
    record_region_radius,
    select_lower_rows,
    verification_figure,
    verify_smoothness,
)

__all__ = [
    "BOUNDS",
    "METHODS",
    "REGION_KINDS",
    "ROWS_STATEMENT",
    "ROW_VERDICTS",
    "SAMPLE_ROWS",
    "SMOOTHNESS_MARGIN",
    "SUBSPACE_STATEMENT",
    "WORST_ROWS",
    "LowerBounds",
    "Region",
    "SmoothnessCertificate",
    "SmoothnessVerification",
    "SubspaceCertificate",
    "certified_L",
    "clopper_pearson",
    "curvature_search",
    "exact_curvature_search",
    "mlp_hessian_bound_chain",
    "mlp_hessian_bound_interval",
    "mlp_hessian_factors",
    "record_region_radius",
    "rollout_hessian_bound_chain",
    "row_function",
    "second_difference_lower_bounds",
    "select_lower_rows",
    "smoothness_bounds",
    "smoothness_lower_bounds",
    "static_row_outputs",
    "subspace_basis",
    "subspace_certified_L",
    "subspace_row_hessians",
    "subspace_smoothness_bounds",
    "verification_figure",
    "verify_smoothness",
]
