"""The smoothness certificate of every row of ``g``: ``smoothness_bounds`` and ``certified_L``.

Static problems (``problem.is_static``: the rows constrain the policy's output at given inputs)
use the MLP-output methods (a) and (b) at each input; closed loops use the norm chain (b) through
the unrolled rollout. Aggregated rows:

``"max"`` (``m = max_j r_j``): a maximum of ``L``-smooth functions is *not* ``L``-smooth
(``|θ| = max(θ, −θ)``), and (★) for ``m`` built from evaluated values of ``m`` can fail for steps
with negative bank coefficients. What holds: if every underlying row satisfies ``‖∇²r_j‖ ≤ L`` on
the region, then for every step ``Δ = Σ_k c_k δ_k`` with ``c_k ≥ 0`` and ``Σ_k c_k ≤ 1``,
``m(θ+Δ) ≤ m(θ) + Σ_k c_k (m(θ+δ_k) − m(θ)) + (L/2)(Σ_k c_k‖δ_k‖² + ‖Δ‖²)`` (apply (★) to each
``r_j``, use ``r_j ≤ m`` at the bank points and ``1 − Σc_k ≥ 0``, take the max). So the
certificate of a max row is the largest bound of its underlying rows, and it covers (★) on that
cone of steps only; steps outside it rest on evaluation alone.

``"lse"`` (``τ log Σ exp(r_j/τ)``) is smooth: ``‖∇²‖ ≤ max_j ‖∇²r_j‖ + max_j ‖∇r_j‖² / τ`` (the
gradient part is a covariance under the softmax weights), with gradient bounds from the same chain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..._validate import as_array, check_in, check_int, check_positive
from ...errors import InvalidInputError
from ...numerics import Margin
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import MLPStructure
from ...systems import ROW_AGGREGATIONS, ClosedLoopProblem
from .interval_hessian import mlp_hessian_bound_interval
from .lower import static_row_outputs
from .norm_chain import mlp_hessian_bound_chain, rollout_hessian_bound_chain
from .types import ROWS_STATEMENT, SMOOTHNESS_MARGIN, Region, SmoothnessCertificate

__all__ = ["METHODS", "smoothness_bounds", "certified_L"]

METHODS = ("interval", "norm-chain")
"""Sound methods: ``"interval"`` (MLP outputs of static problems) and ``"norm-chain"``."""


def _static_rows(problem, structure, theta, x, region, methods, margin, chunk, timings):
    """Per (state, row) Hessian bounds of a static problem by each method, and gradient bounds (norm chain)."""
    outputs, coef = static_row_outputs(problem)
    scale = np.abs(coef)
    n = x.shape[0]
    H: dict[str, np.ndarray] = {}
    G = None
    for m in methods:
        t0 = time.perf_counter()
        per_out, grad_out = {}, {}
        for o in np.unique(outputs):
            out, g = np.empty(n), np.empty(n)
            for i in range(0, n, chunk):
                sl = slice(i, i + chunk)
                if m == "interval":
                    out[sl] = mlp_hessian_bound_interval(structure, theta[None], x[sl], region.radius, kind=region.kind,
                                                         output=int(o), margin=margin)
                else:
                    out[sl], g[sl] = mlp_hessian_bound_chain(structure, theta[None], x[sl], region.radius, kind=region.kind,
                                                             output=int(o), margin=margin, gradient=True)
            per_out[int(o)], grad_out[int(o)] = out, g
        H[m] = _scaled(per_out, outputs, scale)
        if m == "norm-chain":
            G = _scaled(grad_out, outputs, scale)
        timings[m] = time.perf_counter() - t0
    return H, G


def _scaled(per_output: dict[int, np.ndarray], outputs: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(S, q): the bound of output ``outputs[j]`` times ``|Hu[j, o]|`` for every row ``j`` (exact for unit rows)."""
    cols = [per_output[int(o)] if s == 1.0 else per_output[int(o)] * s for o, s in zip(outputs, scale)]
    return np.stack(cols, axis=1)


def _aggregate(H, G, aggregation, temperature, margin):
    """Rows of ``g`` from the underlying rows' bounds ``H`` (S, R) and gradient bounds ``G`` (S, R) or None."""
    argmax = None
    if aggregation == "per-row":
        return H.reshape(-1), (None if G is None else G.reshape(-1)), argmax
    if aggregation == "max":
        return H.max(axis=1), None, H.argmax(axis=1)
    if G is None:
        raise InvalidInputError("methods: log-sum-exp rows need gradient bounds, i.e. 'norm-chain' among the methods")
    tau = check_positive("temperature", temperature)
    L = margin.inflate((H.max(axis=1) + G.max(axis=1) ** 2 / tau) * (1 + 16 * _U))
    return L, G.max(axis=1), H.argmax(axis=1)


def smoothness_bounds(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    region: Region,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    methods: Sequence[str] = METHODS,
    margin: Margin = SMOOTHNESS_MARGIN,
    chunk: int = 64,
) -> SmoothnessCertificate:
    """Sound ``L_i ≥ sup_{θ' ∈ Θ} ‖∇²g_i(θ')‖₂`` for every row of ``g``.

    ``g = aggregate_rows(constraint_rows(rollout(problem, π_θ, states)), aggregation, temperature)``
    (:mod:`scpo.systems`): ``S·R`` rows, state-major, for ``per-row``; ``S`` rows otherwise.

    Parameters
    ----------
    problem : ClosedLoopProblem
        Static (rows on the policy's output) or a closed loop.
    structure : MLPStructure
        The residual ``φ`` (smooth activation).
    theta : ndarray, shape (d,)
        Centre of the region.
    states : ndarray, shape (S, n)
        The initial states (inputs of a static problem) of the rows.
    region : Region
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ > 0`` of the log-sum-exp rows.
    methods : sequence of {"interval", "norm-chain"}
        Methods to run; the reported ``L`` is their minimum. ``interval`` applies to static
        problems; closed loops use the norm chain (a note says so).
    margin : Margin
        Outward margin of every bound (recorded).
    chunk : int
        Inputs or states per batch (memory).

    Returns
    -------
    SmoothnessCertificate

    Raises
    ------
    UnsupportedError
        ReLU policies; static rows combining several outputs.
    InvalidInputError
        Bad ``theta`` or ``states``, unknown method, empty method list.
    """
    if not isinstance(region, Region):
        raise InvalidInputError(f"region: expected a Region, got {type(region).__name__}")
    structure.require_smooth()
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    methods = list(methods)
    if not methods:
        raise InvalidInputError("methods: expected at least one of " + ", ".join(METHODS))
    for m in methods:
        check_in("method", m, METHODS)
    check_in("aggregation", aggregation, ROW_AGGREGATIONS)
    if not isinstance(margin, Margin):
        raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(margin).__name__}")
    check_int("chunk", chunk, minimum=1)
    notes: list[str] = []
    timings: dict[str, float] = {}
    if problem.is_static:
        per_method, G = _static_rows(problem, structure, theta, states, region, methods, margin, chunk, timings)
        H = np.min(np.stack(list(per_method.values())), axis=0)
        rows = "mlp-output" if aggregation == "per-row" else aggregation
    else:
        H, G = _rollout_rows(problem, structure, theta, states, region, methods, margin, chunk, timings, notes)
        per_method = {"norm-chain": H}
        rows = aggregation
    L, grad, argmax = _aggregate(H, G, aggregation, temperature, margin)
    if aggregation == "per-row":
        methods_out = {k: v.reshape(-1) for k, v in per_method.items()}
    else:
        methods_out = {"norm-chain" if not problem.is_static else "+".join(per_method): L}
    return SmoothnessCertificate(L=L, methods=methods_out, gradient=grad, region=region, rows=rows,
                                 statement=ROWS_STATEMENT[rows], margin=margin, timings=timings, notes=notes,
                                 underlying_argmax=argmax)


def _rollout_rows(problem, structure, theta, states, region, methods, margin, chunk, timings, notes):
    if "interval" in methods:
        notes.append("the interval method (a) is implemented for MLP-output rows; rollout rows use the norm chain (b) through the unrolled dynamics")
    if "norm-chain" not in methods:
        raise InvalidInputError("methods: rollout rows need 'norm-chain' (the interval method covers MLP-output rows only)")
    t0 = time.perf_counter()
    Hs, Gs = [], []
    for i in range(0, states.shape[0], chunk):
        h, g = rollout_hessian_bound_chain(structure, problem, theta[None], states[i : i + chunk], region.radius, kind=region.kind, margin=margin)
        Hs.append(h)
        Gs.append(g)
    R = problem.layout.n_rows
    H = np.concatenate(Hs) if Hs else np.zeros((0, R))  # (S, R)
    G = np.concatenate(Gs) if Gs else np.zeros((0, R))
    timings["norm-chain"] = time.perf_counter() - t0
    if problem.horizon > 10:
        notes.append(f"horizon T = {problem.horizon}: the norm chain sums curvature over the unrolled steps and grows with T; "
                     "compare with the estimated lower bounds for its looseness")
    return H, G


def certified_L(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    radius: float,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    kind: str = "ball",
    methods: Sequence[str] = METHODS,
    margin: Margin = SMOOTHNESS_MARGIN,
) -> np.ndarray:
    """Sound per-row smoothness constants for the projector: ``L_i ≥ sup_{‖θ'−θ‖ ≤ radius} ‖∇²g_i(θ')‖₂``.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual (smooth activation).
    theta : ndarray, shape (d,)
    states : ndarray, shape (S, n)
        Initial states of the rows of ``g`` (a task's ``constraint_states``).
    radius : float
        Positive radius of the L2 ball (``kind="ball"``, the geometry of (★)) or of the L∞ box.
    aggregation : {"per-row", "max", "lse"}
        The task's row aggregation.
    temperature : float
        The task's log-sum-exp temperature.
    kind : {"ball", "box"}
    methods : sequence of {"interval", "norm-chain"}
        ``("norm-chain",)`` is the fast choice for use at every iteration (milliseconds per
        row); adding ``"interval"`` is tighter for small regions of MLP-output rows.
    margin : Margin
        Outward margin of every bound.

    Returns
    -------
    ndarray, shape (N,)
        Strictly positive (a zero bound is raised to the smallest positive float so that the
        projector accepts it).
    """
    radius = check_positive("radius", radius)
    cert = smoothness_bounds(problem, structure, theta, states, Region(kind=kind, radius=radius), aggregation=aggregation,
                             temperature=temperature, methods=methods, margin=margin)
    return np.maximum(cert.L, np.finfo(float).tiny)
