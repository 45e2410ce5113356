"""State-Lipschitz constants of the residual, the policy and the closed loop (issue 5, item 4).

Maps
----
All three are ``y = C x + O φ(x)`` with ``φ(x) = W_L σ(⋯σ(W_1 x + b_1)⋯) + b_L``:

* the residual ``φ_θ`` (``C = 0``, ``O = I``),
* the policy ``u = K x + φ_θ(x)`` (``C = K``, ``O = I``),
* the closed loop ``x⁺ = A x + B u = (A + BK) x + B φ_θ(x)`` (``C = A + BK``, ``O = B``).

Global bounds (``sound``) on ``Lip(y) = sup_{x≠x'} ‖y(x) − y(x')‖₂ / ‖x − x'‖₂``:

``naive``   ``‖C‖₂ + ‖O W_L‖₂ Π_{l<L} ‖W_l‖₂`` (``tanh`` and ``ReLU`` are 1-Lipschitz).
``lipsdp``  LipSDP-Neuron (Fazlyab et al., NeurIPS 2019) with the skip term ``C``: both
            activations are slope-restricted in ``[0, 1]``, i.e. ``Δh_j (Δz_j − Δh_j) ≥ 0`` for
            every neuron and every pair of inputs. With ``ξ = (Δx, Δh_1, …, Δh_{L−1})`` and
            ``Δy = Ĉ ξ``, ``Ĉ = [C, 0, …, 0, O W_L]``, any ``ρ ≥ 0`` and per-neuron multipliers
            ``λ ≥ 0`` with

                M(ρ, λ) = ρ E₀ᵀE₀ − ĈᵀĈ − Σ_l [ sym(E_lᵀ Λ_l W_l E_{l−1}) − E_lᵀ Λ_l E_l ] ⪰ 0

            give ``ρ‖Δx‖² − ‖Δy‖² ≥ Σ λ_j Δh_j(Δz_j − Δh_j) ≥ 0``, so ``Lip(y) ≤ √ρ``. The SDP
            ``min ρ`` is solved with cvxpy (MOSEK when licensed, Clarabel otherwise) under
            ``M ⪰ ε I`` with a small recorded ``ε`` so that the optimum is strictly feasible; the
            returned ``(ρ, λ)`` (``λ`` clipped at 0) are then re-checked independently of the
            solver: ``λ_min(M) ≥ τ`` by ``numpy.linalg.eigvalsh``, with ``τ = 16 N u ‖M‖_F > 0``
            (a margin in the safe direction for the rounding of ``M`` and of the eigenvalue
            routine). A status other than ``optimal`` or a failed re-check reports the naive
            bound instead, with the reason.

Local bounds (``sound``) per state cell ``[l, u]``: interval bound propagation gives intervals of
every pre-activation over the cell, hence of every ``σ'`` (``tanh' = 1 − tanh²``; ``ReLU'`` is
``[0, 1]`` on neurons that may switch, a valid enclosure of the Clarke Jacobian), hence an
interval matrix containing the Jacobian ``C + O W_L D_{L−1} W_{L−1} ⋯ D_1 W_1`` at every point of
the cell. By the mean value inequality on the convex cell, ``Lip ≤ min(‖|J|_max‖₂, ‖J_mid‖₂ +
‖J_rad‖₂)``.

The sampled maximum of ``‖J(x)‖₂`` (``estimated``) is a lower bound on every one of these.
Every sound value is inflated by the recorded ``margin`` (:meth:`scpo.numerics.Margin.inflate`;
default :data:`scpo.certify.smoothness.SMOOTHNESS_MARGIN`). The interval enclosures come from
:mod:`scpo.certify.intervals`.

References
----------
M. Fazlyab, A. Robey, H. Hassani, M. Morari, G. Pappas, "Efficient and Accurate Estimation of
Lipschitz Constants for Deep Neural Networks", NeurIPS 2019.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validate import as_array, check_in, check_int, check_positive
from ..errors import InvalidInputError, ShapeError
from ..evidence import Claim, Level
from ..numerics import UNIT_ROUNDOFF as _U
from ..numerics import Margin
from ..policies import ACTIVATIONS, MLPStructure
from ..systems import ClosedLoopProblem
from . import intervals as iv
from .smoothness.types import SMOOTHNESS_MARGIN

__all__ = [
    "LipschitzBound",
    "network_weights",
    "layers_of",
    "affine_map",
    "naive_lipschitz",
    "lipsdp",
    "local_lipschitz",
    "sampled_jacobian_norm",
    "StateLipschitzReport",
    "state_lipschitz",
    "SDP_SOLVERS",
]

logger = logging.getLogger(__name__)

SDP_SOLVERS = ("auto", "clarabel", "mosek", "scs")
CLARABEL_MAX_LMI = 48
"""Largest LMI size for which ``solver="auto"`` uses Clarabel when MOSEK is unavailable."""


@dataclass(frozen=True)
class LipschitzBound:
    """One Lipschitz constant of one map.

    Attributes
    ----------
    map : str
        ``"residual"``, ``"policy"`` or ``"closed-loop"`` (or a caller's label).
    method : str
        ``"naive"``, ``"lipsdp"`` or ``"sampled"``.
    value : float
    level : Level
        ``sound`` for ``naive``/``lipsdp`` (also when LipSDP fell back to the naive value),
        ``estimated`` for sampled Jacobian norms.
    details : dict
        Solver name and status, re-check eigenvalue and tolerance, margins, fallback reason.
    """

    map: str
    method: str
    value: float
    level: Level
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..evidence import _jsonable

        return {"map": self.map, "method": self.method, "value": self.value, "level": self.level.value,
                "details": _jsonable(self.details)}


def network_weights(module: nn.Module) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Weights, biases and activation of an :class:`scpo.policies.MLP` or ``nn.Sequential``.

    Parameters
    ----------
    module : nn.Module
        Read by :meth:`scpo.policies.MLPStructure.from_module`.

    Returns
    -------
    weights : list of ndarray (out, in)
    biases : list of ndarray (out,)
    activation : {"tanh", "relu"}

    Raises
    ------
    UnsupportedError
        For a layer type other than ``Linear``, ``Tanh``, ``ReLU`` (named in the message).
    """
    structure = MLPStructure.from_module(module)
    theta = torch.nn.utils.parameters_to_vector(module.parameters()).detach().cpu().to(torch.float64).numpy()
    Ws, bs = layers_of(structure, theta)
    return Ws, bs, structure.activation


def layers_of(structure: MLPStructure, theta: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weight matrices and bias vectors of ``φ_θ`` (copies), from the one flat layout.

    Parameters
    ----------
    structure : MLPStructure
    theta : ndarray, shape (d,)

    Returns
    -------
    weights : list of ndarray (out, in)
    biases : list of ndarray (out,)
    """
    theta = as_array("theta", theta, shape=(structure.dim,))
    layers = structure.unflatten_numpy(theta)
    return [W.copy() for W, _ in layers], [b.copy() for _, b in layers]


def _check_weights(weights: list[np.ndarray]) -> list[np.ndarray]:
    if not weights:
        raise InvalidInputError("weights: expected at least one layer, got none")
    out = [as_array(f"weights[{i}]", W, ndim=2) for i, W in enumerate(weights)]
    for i in range(1, len(out)):
        if out[i].shape[1] != out[i - 1].shape[0]:
            raise ShapeError(f"weights[{i}]: expected {out[i - 1].shape[0]} input columns, got shape {out[i].shape}")
    return out


def affine_map(weights: list[np.ndarray], C: np.ndarray | None, O: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``C`` (out, n₀) and ``O`` (out, n_L) of ``y = C x + O φ(x)``; defaults ``C = 0``, ``O = I``.

    Parameters
    ----------
    weights : list of ndarray (out, in)
    C : ndarray or None
    O : ndarray or None

    Returns
    -------
    C, O : ndarray
    """
    n0, nL = weights[0].shape[1], weights[-1].shape[0]
    O = np.eye(nL) if O is None else as_array("O", O, ndim=2)
    if O.shape[1] != nL:
        raise ShapeError(f"O: expected {nL} columns (the network's outputs), got shape {O.shape}")
    C = np.zeros((O.shape[0], n0)) if C is None else as_array("C", C, ndim=2)
    if C.shape != (O.shape[0], n0):
        raise ShapeError(f"C: expected shape ({O.shape[0]}, {n0}), got {C.shape}")
    return C, O


def _norm2(X: np.ndarray) -> float:
    """Spectral norm, inflated for rounding."""
    if X.size == 0:
        return 0.0
    return iv.inflate_norm(float(np.linalg.norm(X, 2)), max(X.shape))


def naive_lipschitz(weights: list[np.ndarray], C: np.ndarray | None = None, O: np.ndarray | None = None,
                    *, margin: Margin = SMOOTHNESS_MARGIN) -> float:
    """``‖C‖₂ + ‖O W_L‖₂ Π_{l<L} ‖W_l‖₂``, a sound Lipschitz bound of ``y = Cx + Oφ(x)`` for 1-Lipschitz activations.

    Parameters
    ----------
    weights : list of ndarray (out, in)
    C, O : ndarray, optional
        See :func:`affine_map`.
    margin : Margin
        Outward margin of the result.

    Returns
    -------
    float
    """
    weights = _check_weights(weights)
    C, O = affine_map(weights, C, O)
    if len(weights) == 1:
        return margin.inflate(_norm2(C + O @ weights[0]))
    prod = _norm2(O @ weights[-1])
    for W in weights[:-1]:
        prod *= _norm2(W)
    return margin.inflate((_norm2(C) + prod) * (1 + 4 * _U))


def _lipsdp_blocks(weights, C, O):
    """Sizes and constant pieces of the LipSDP matrix."""
    sizes = [weights[0].shape[1]] + [W.shape[0] for W in weights[:-1]]
    starts = np.cumsum([0] + sizes)
    N = int(starts[-1])
    Chat = np.zeros((O.shape[0], N))
    Chat[:, starts[0] : starts[1]] = C
    Chat[:, starts[-2] : starts[-1]] += O @ weights[-1]
    return sizes, starts, N, Chat


def _lipsdp_matrix(rho: float, lams: list[np.ndarray], weights, C, O) -> np.ndarray:
    """``M(ρ, λ)`` in numpy (for the independent re-check)."""
    sizes, st, N, Chat = _lipsdp_blocks(weights, C, O)
    M = -Chat.T @ Chat
    M[st[0] : st[1], st[0] : st[1]] += rho * np.eye(sizes[0])
    for l, lam in enumerate(lams, start=1):
        W = weights[l - 1]  # z_l = W_l h_{l−1}
        X = np.zeros((N, N))
        X[st[l] : st[l + 1], st[l - 1] : st[l]] = lam[:, None] * W
        M -= (X + X.T) / 2
        M[st[l] : st[l + 1], st[l] : st[l + 1]] += np.diag(lam)
    return M


def _choose_solver(solver: str, N: int):
    import cvxpy as cp

    from ..projector.solvers import mosek_status

    mosek_ok, why = mosek_status()
    if solver in ("auto", "mosek") and mosek_ok:
        return cp.MOSEK, "MOSEK (licensed)"
    if solver == "clarabel" or (solver in ("auto", "mosek") and N <= CLARABEL_MAX_LMI):
        return cp.CLARABEL, "Clarabel"
    if solver == "scs":
        return cp.SCS, "SCS (requested)"
    return cp.SCS, (f"SCS: the LMI has size {N} > {CLARABEL_MAX_LMI}, where Clarabel's dense PSD block of size "
                    f"N(N+1)/2 makes each iteration cost O(N⁶) (pass solver='clarabel' to insist); MOSEK: {why}")


def _lipsdp_solve(weights, sizes, st, N, CtC, name, eps, details):
    """``min ρ`` s.t. ``M(ρ, λ) ⪰ ε I``, ``λ ≥ 0`` with cvxpy; returns the variable (its value may be None)."""
    import cvxpy as cp

    # M(ρ, λ) = −ĈᵀĈ + Σ_k x_k A_k with x = (ρ, λ): one constant matrix per variable, stacked as
    # columns of vec(M) so that cvxpy compiles a single affine map.
    cols = [np.zeros((N, N))]
    cols[0][st[0] : st[1], st[0] : st[1]] = np.eye(sizes[0])
    for l in range(1, len(sizes)):
        W = weights[l - 1]
        for j in range(sizes[l]):
            A = np.zeros((N, N))
            row = st[l] + j
            A[row, st[l - 1] : st[l]] -= W[j] / 2
            A[st[l - 1] : st[l], row] -= W[j] / 2
            A[row, row] += 1.0
            cols.append(A)
    Amat = np.stack([c.reshape(-1) for c in cols], axis=1)
    nvar = Amat.shape[1]
    xvar = cp.Variable(nvar, nonneg=True)
    Mexpr = cp.reshape(Amat @ xvar, (N, N), order="C") - CtC
    prob = cp.Problem(cp.Minimize(xvar[0]), [(Mexpr + Mexpr.T) / 2 >> eps * np.eye(N)])
    options = {cp.SCS: {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 20_000}}.get(name, {})
    t0 = time.perf_counter()
    try:
        prob.solve(solver=name, **options)
        status = prob.status
    except Exception as exc:  # cvxpy.error.SolverError and solver crashes alike
        status = f"error: {type(exc).__name__}: {exc}"[:300]
    details.update(status=status, solve_time_s=time.perf_counter() - t0)
    return status, xvar


def _recheck(rho_v: float, lam_v: list[np.ndarray], weights, C, O, N: int):
    """Candidates: the solver's (ρ, λ), and (ρ*(λ'), λ') with λ' = sλ and ρ*(λ') the exact smallest ρ
    for those multipliers (Schur complement on the hidden block, plus a relative 1e-7). Only the
    eigenvalue re-check of the full M decides; the smallest ρ that passes it is returned."""
    cands = [(rho_v, lam_v, "solver")]
    for scale in (1.0, 1.001, 1.01, 1.1):
        lam_s = [scale * lv for lv in lam_v]
        r_fix = _schur_rho(lam_s, weights, C, O)
        if r_fix is not None:
            cands.append((r_fix, lam_s, f"schur(scale={scale})"))
    best = None
    checks = []
    for r_c, l_c, how in cands:
        M = _lipsdp_matrix(r_c, l_c, weights, C, O)
        M = (M + M.T) / 2
        min_eig = float(np.linalg.eigvalsh(M)[0])
        tol = 16 * N * _U * float(np.linalg.norm(M, "fro"))
        checks.append({"candidate": how, "rho": r_c, "min_eigenvalue": min_eig, "tolerance": tol, "passed": bool(min_eig >= tol)})
        if min_eig >= tol and (best is None or r_c < best[0]):
            best = (r_c, how, min_eig, tol)
    return best, checks


def lipsdp(
    weights: list[np.ndarray],
    C: np.ndarray | None = None,
    O: np.ndarray | None = None,
    *,
    label: str = "map",
    solver: str = "auto",
    sdp_margin: float = 1e-7,
    margin: Margin = SMOOTHNESS_MARGIN,
) -> LipschitzBound:
    """LipSDP-Neuron bound of ``y = C x + O φ(x)`` with an eigenvalue re-check of the multipliers.

    Solves ``min ρ`` s.t. ``M(ρ, λ) ⪰ ε I``, ``λ ≥ 0`` (module docstring), with
    ``ε = sdp_margin · (1 + ‖ĈᵀĈ‖₂)``.

    Parameters
    ----------
    weights : list of ndarray (out, in)
        Activations must be slope-restricted in ``[0, 1]`` (``tanh``, ``ReLU``).
    C, O : ndarray, optional
        See :func:`affine_map`.
    label : str
        Name of the map, for the record.
    solver : {"auto", "clarabel", "mosek", "scs"}
        ``auto``: MOSEK when a licence is found, else Clarabel.
    sdp_margin : float
        Relative strict-feasibility margin ``ε`` (recorded).
    margin : Margin
        Outward margin of the result.

    Returns
    -------
    LipschitzBound
        ``method="lipsdp"`` when the re-check passed; otherwise ``method="naive"`` with
        ``details["fallback"]`` saying why. Level ``sound`` either way.
    """
    import cvxpy as cp

    weights = _check_weights(weights)
    C, O = affine_map(weights, C, O)
    check_in("solver", solver, SDP_SOLVERS)
    check_positive("sdp_margin", sdp_margin)
    if not isinstance(margin, Margin):
        raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(margin).__name__}")
    naive = naive_lipschitz(weights, C, O, margin=margin)
    if len(weights) == 1:
        return LipschitzBound(label, "lipsdp", naive, Level.SOUND, {"note": "no hidden layer: the map is affine and ‖C + O W₁‖₂ is exact", "naive": naive})
    sizes, st, N, Chat = _lipsdp_blocks(weights, C, O)
    name, choice = _choose_solver(solver, N)
    CtC = Chat.T @ Chat
    # SCS is first-order (feasibility errors ~1e-6 of the scale): a wider margin keeps its multipliers
    # strictly feasible, and the Schur-complement step below gives back the ρ the margin cost.
    feasibility = max(sdp_margin, 1e-4) if name == cp.SCS else sdp_margin
    eps = feasibility * (1.0 + float(np.linalg.norm(CtC, 2)))
    details: dict[str, Any] = {"solver": name, "solver_choice": choice, "lmi_size": N, "sdp_margin": feasibility, "epsilon": eps,
                               "naive": naive, "margin": margin.to_dict()}
    status, xvar = _lipsdp_solve(weights, sizes, st, N, CtC, name, eps, details)

    def fallback(reason: str) -> LipschitzBound:
        logger.info("LipSDP for %s: %s; reporting the naive bound", label, reason)
        return LipschitzBound(label, "naive", naive, Level.SOUND, {**details, "fallback": reason})

    if status != cp.OPTIMAL:
        return fallback(f"solver status {status!r} is not optimal")
    xv = np.maximum(np.asarray(xvar.value, dtype=float).reshape(-1), 0.0)
    rho_v = float(xv[0])
    lam_v = list(np.split(xv[1:], np.cumsum(sizes[1:])[:-1]))
    if not (np.isfinite(rho_v) and all(np.all(np.isfinite(lv)) for lv in lam_v)):
        return fallback("the solver returned non-finite multipliers")
    details.update(rho_solver=rho_v, multipliers_min=float(min(lv.min() for lv in lam_v)),
                   multipliers_max=float(max(lv.max() for lv in lam_v)))
    best, checks = _recheck(rho_v, lam_v, weights, C, O, N)
    details["recheck"] = checks
    if best is None:
        first = checks[0]
        return fallback(f"re-check failed: λ_min(M(ρ, λ)) = {first['min_eigenvalue']:.3e} < tolerance {first['tolerance']:.3e} "
                        "for the solver's multipliers, and no Schur-complement repair passed")
    rho_v = best[0]
    details.update(rho=rho_v, certified_by=best[1], recheck_min_eigenvalue=best[2], recheck_tolerance=best[3])
    value = margin.inflate(float(np.sqrt(rho_v)) * (1 + 4 * _U))
    if value > naive:
        details["note"] = "LipSDP exceeded the naive bound (solver margin); the smaller one is reported"
        return LipschitzBound(label, "naive", naive, Level.SOUND, {**details, "lipsdp_value": value})
    return LipschitzBound(label, "lipsdp", value, Level.SOUND, details)


def _schur_rho(lams: list[np.ndarray], weights, C, O, rel: float = 1e-7) -> float | None:
    """Smallest ``ρ`` with ``M(ρ, λ) ⪰ 0`` for fixed ``λ`` (plus a relative ``rel``), or None.

    With ``M(0, λ) = [[P, Q], [Qᵀ, R]]`` (``x`` block first), ``M(ρ, λ) ⪰ 0`` iff ``R ≻ 0`` and
    ``ρ ≥ λ_max(Q R⁻¹ Qᵀ − P)``. Returns None when ``R`` is not safely positive definite. The
    value is only a candidate: the caller re-checks the full matrix.
    """
    M0 = _lipsdp_matrix(0.0, lams, weights, C, O)
    M0 = (M0 + M0.T) / 2
    n0 = weights[0].shape[1]
    P, Q, R = M0[:n0, :n0], M0[:n0, n0:], M0[n0:, n0:]
    if R.size == 0:
        return None
    ev = np.linalg.eigvalsh(R)
    if not ev[0] > 1e3 * R.shape[0] * _U * max(float(np.abs(ev).max()), 1e-300):
        return None
    S = Q @ np.linalg.solve(R, Q.T) - P
    rho = float(np.linalg.eigvalsh((S + S.T) / 2)[-1])
    if not np.isfinite(rho):
        return None
    return max(rho, 0.0) * (1 + rel) + rel * (1.0 + float(np.abs(P).max()))


def _check_cells(lower, upper, n0: int) -> tuple[np.ndarray, np.ndarray]:
    lo = as_array("lower", lower, ndim=2)
    hi = as_array("upper", upper, ndim=2)
    if lo.shape != hi.shape or lo.shape[1] != n0:
        raise ShapeError(f"lower, upper: expected two arrays of shape (n_cells, {n0}), got {lo.shape} and {hi.shape}")
    bad = np.flatnonzero(np.any(lo > hi, axis=1))
    if bad.size:
        raise InvalidInputError(f"lower, upper: expected lower <= upper in every cell, got lower > upper in {bad.size} cell(s), first at index {int(bad[0])}")
    return lo, hi


def local_lipschitz(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    C: np.ndarray | None = None,
    O: np.ndarray | None = None,
    *,
    activation: str = "tanh",
    margin: Margin = SMOOTHNESS_MARGIN,
) -> np.ndarray:
    """Sound Lipschitz bounds of ``y = C x + O φ(x)`` on each state cell from interval Jacobians.

    Parameters
    ----------
    weights, biases : list of ndarray
    lower, upper : ndarray, shape (n_cells, n₀)
        Cell corners, ``lower <= upper``.
    C, O : ndarray, optional
        See :func:`affine_map`.
    activation : str
        A key of :data:`scpo.policies.ACTIVATIONS` with slope enclosures
        (:data:`scpo.certify.intervals.ENCLOSURES`).
    margin : Margin
        Outward margin of the results.

    Returns
    -------
    ndarray, shape (n_cells,)
        ``sup_{x ≠ x' in cell} ‖y(x) − y(x')‖₂ / ‖x − x'‖₂ ≤`` this value.
    """
    weights = _check_weights(weights)
    if len(biases) != len(weights):
        raise ShapeError(f"biases: expected {len(weights)} bias vectors, got {len(biases)}")
    check_in("activation", activation, tuple(ACTIVATIONS))
    enc = iv.enclosure(activation)
    C, O = affine_map(weights, C, O)
    lo, hi = _check_cells(lower, upper, weights[0].shape[1])
    n = lo.shape[0]
    if n == 0:
        return np.zeros(0)
    dt = torch.float64
    xm = torch.as_tensor((lo + hi) / 2, dtype=dt)
    xr = torch.as_tensor((hi - lo) / 2, dtype=dt) + torch.as_tensor(4 * _U * (np.abs(lo) + np.abs(hi)), dtype=dt)
    Ws = [torch.as_tensor(W, dtype=dt).expand(n, -1, -1) for W in weights]
    bs = [torch.as_tensor(np.asarray(b, dtype=float), dtype=dt).expand(n, -1) for b in biases]
    slopes = enc.slopes(Ws, bs, xm, xr)
    # J = C + O W_L D_{L−1} W_{L−1} ⋯ D_1 W_1, from the left
    Jm = torch.as_tensor(O @ weights[-1], dtype=dt).expand(n, -1, -1)
    Jr = torch.zeros_like(Jm)
    for l in range(len(weights) - 2, -1, -1):
        sm, sr = slopes[l]
        am, ar = Jm * sm.unsqueeze(-2), Jm.abs() * sr.unsqueeze(-2) + Jr * (sm.abs() + sr).unsqueeze(-2)
        ar = ar + (am.abs() + ar) * (4 * _U)
        W = torch.as_tensor(weights[l], dtype=dt)
        Jm = am @ W
        Jr = ar @ W.abs() + (am.abs() @ W.abs() + ar @ W.abs()) * ((W.shape[0] + 4) * _U)
    Jm = Jm + torch.as_tensor(C, dtype=dt)
    Jr = Jr + (Jm.abs() + Jr) * (4 * _U)
    absmax = (Jm.abs() + Jr).numpy()
    infl = 1 + 64 * max(absmax.shape[1:]) * _U
    b1 = np.linalg.norm(absmax, 2, axis=(1, 2)) * infl
    b2 = (np.linalg.norm(Jm.numpy(), 2, axis=(1, 2)) + np.linalg.norm(Jr.numpy(), 2, axis=(1, 2))) * infl
    return margin.inflate(np.minimum(b1, b2)) + 1e-300


def sampled_jacobian_norm(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    states: np.ndarray,
    C: np.ndarray | None = None,
    O: np.ndarray | None = None,
    *,
    activation: str = "tanh",
) -> np.ndarray:
    """``‖J(x)‖₂`` of ``y = C x + O φ(x)`` at each state (an ``estimated`` lower bound on any Lipschitz constant).

    Parameters
    ----------
    weights, biases : list of ndarray
    states : ndarray, shape (S, n₀)
    C, O : ndarray, optional
        See :func:`affine_map`.
    activation : str
        A key of :data:`scpo.certify.intervals.ENCLOSURES`.

    Returns
    -------
    ndarray, shape (S,)
    """
    weights = _check_weights(weights)
    C, O = affine_map(weights, C, O)
    X = as_array("states", states, ndim=2)
    if X.shape[1] != weights[0].shape[1]:
        raise ShapeError(f"states: expected shape (S, {weights[0].shape[1]}), got {X.shape}")
    J = np.broadcast_to(O @ weights[-1], (X.shape[0],) + (O.shape[0], weights[-1].shape[1])).copy()
    # forward pass for the activation slopes
    point = iv.enclosure(activation).point
    h = X
    slopes = []
    for W, b in zip(weights[:-1], biases[:-1]):
        h, slope = point(h @ W.T + b)
        slopes.append(slope)
    for l in range(len(weights) - 2, -1, -1):
        J = (J * slopes[l][:, None, :]) @ weights[l]
    J = J + C
    return np.linalg.norm(J, 2, axis=(1, 2))


@dataclass(frozen=True)
class StateLipschitzReport:
    """Global and local state-Lipschitz bounds of a residual policy at ``θ``.

    Attributes
    ----------
    bounds : list of LipschitzBound
        Per map: ``naive``, ``lipsdp`` (or its fallback) and ``sampled`` (estimated).
    cells_lower, cells_upper : ndarray, shape (n_cells, n₀)
    local : dict of str -> ndarray (n_cells,)
        Per map, the sound local bound on each cell.
    notes : list of str
    """

    bounds: list[LipschitzBound]
    cells_lower: np.ndarray
    cells_upper: np.ndarray
    local: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    def best(self, map_name: str) -> LipschitzBound:
        """The smallest sound global bound of ``map_name``.

        Parameters
        ----------
        map_name : str
            ``"residual"``, ``"policy"`` or ``"closed-loop"``.

        Returns
        -------
        LipschitzBound
        """
        cands = [b for b in self.bounds if b.map == map_name and b.level == Level.SOUND]
        if not cands:
            raise InvalidInputError(f"map_name: no sound bound for {map_name!r}; maps: {sorted({b.map for b in self.bounds})}")
        return min(cands, key=lambda b: b.value)

    def claims(self) -> list[Claim]:
        """One ``sound`` claim per map: the global bound is at least the sampled Jacobian norm and finite."""
        out = []
        for m in dict.fromkeys(b.map for b in self.bounds):
            best = self.best(m)
            sampled = [b for b in self.bounds if b.map == m and b.method == "sampled"]
            s = sampled[0].value if sampled else float("nan")
            out.append(Claim(
                name=f"lipschitz_{m}",
                statement=f"The {m} map is {best.value:.6g}-Lipschitz in the state (L2 norms), by {best.method}.",
                level=Level.SOUND,
                holds=bool(np.isfinite(best.value) and (not np.isfinite(s) or best.value >= s)),
                details={"bound": best.to_dict(), "sampled_max_jacobian_norm": s,
                         "local_max": float(np.max(self.local[m])) if m in self.local and self.local[m].size else float("nan")},
            ))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every bound, the number of cells, the local maxima and medians, the notes."""
        return {
            "bounds": [b.to_dict() for b in self.bounds],
            "cells": int(self.cells_lower.shape[0]),
            "local": {k: {"max": float(v.max()) if v.size else None, "median": float(np.median(v)) if v.size else None}
                      for k, v in self.local.items()},
            "notes": self.notes,
        }


def _cells(lo_box: np.ndarray, hi_box: np.ndarray, cells_per_axis: int) -> tuple[np.ndarray, np.ndarray]:
    n0 = lo_box.size
    edges = [np.linspace(lo_box[i], hi_box[i], cells_per_axis + 1) for i in range(n0)]
    grids = np.meshgrid(*[np.arange(cells_per_axis)] * n0, indexing="ij")
    idx = np.stack([g.ravel() for g in grids], axis=1)
    cl = np.stack([edges[i][idx[:, i]] for i in range(n0)], axis=1)
    cu = np.stack([edges[i][idx[:, i] + 1] for i in range(n0)], axis=1)
    return cl, cu


def state_lipschitz(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    switches: bool = False,
    cells_per_axis: int = 10,
    solver: str = "auto",
    n_samples: int = 2000,
    seed: int = 0,
    margin: Margin = SMOOTHNESS_MARGIN,
) -> StateLipschitzReport:
    """Global (naive, LipSDP) and local (per cell) state-Lipschitz bounds on the box ``[lower, upper]``.

    The maps are ``y = C x + O φ_θ(x)``: the residual (``C = 0``, ``O = I``) and, for a closed loop,
    the policy (``C = K``) and the closed loop (``C = A + BK``, ``O = B``). A static problem
    (``problem.is_static``) has the residual only.

    Parameters
    ----------
    problem : ClosedLoopProblem
        ``A``, ``B``, ``K``.
    structure : MLPStructure
        The residual ``φ``.
    theta : ndarray, shape (d,)
    lower, upper : ndarray, shape (n,)
        The box of states (inputs) the local bounds and the samples cover.
    switches : bool
        Whether the policy switches the residual off inside ``X_s`` (then a note says that the
        policy and closed-loop bounds apply to ``π_safe + φ_θ`` without switching).
    cells_per_axis : int
        The box is cut into this many cells per axis for the local bounds.
    solver : {"auto", "clarabel", "mosek", "scs"}
        LipSDP's solver.
    n_samples : int
        Random states for the sampled Jacobian norm.
    seed : int
    margin : Margin
        Outward margin of every sound bound.

    Returns
    -------
    StateLipschitzReport
    """
    check_int("cells_per_axis", cells_per_axis, minimum=1)
    check_int("n_samples", n_samples, minimum=1)
    Ws, bs = layers_of(structure, theta)
    act = structure.activation
    lo_box = as_array("lower", lower, shape=(problem.n,))
    hi_box = as_array("upper", upper, shape=(problem.n,))
    if not np.all(lo_box < hi_box):
        raise InvalidInputError(f"lower, upper: expected lower < upper in every coordinate, got {lo_box.tolist()} and {hi_box.tolist()}")
    notes: list[str] = []
    maps: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {"residual": (None, None)}
    if not problem.is_static:
        maps["policy"] = (problem.K, None)
        maps["closed-loop"] = (problem.A + problem.B @ problem.K, problem.B)
        if switches:
            notes.append("switching policy: π is discontinuous on the switching surface; the policy and closed-loop "
                         "bounds apply to π_safe + φ_θ without switching")
    cl, cu = _cells(lo_box, hi_box, cells_per_axis)
    rng = np.random.default_rng(seed)
    samples = rng.uniform(lo_box, hi_box, size=(n_samples, lo_box.size))
    bounds: list[LipschitzBound] = []
    local: dict[str, np.ndarray] = {}
    for name, (C, O) in maps.items():
        Cn = None if C is None else np.array(C, dtype=float)
        On = None if O is None else np.array(O, dtype=float)
        nv = naive_lipschitz(Ws, Cn, On, margin=margin)
        bounds.append(LipschitzBound(name, "naive", nv, Level.SOUND, {"margin": margin.to_dict()}))
        bounds.append(lipsdp(Ws, Cn, On, label=name, solver=solver, margin=margin))
        sj = sampled_jacobian_norm(Ws, bs, samples, Cn, On, activation=act)
        bounds.append(LipschitzBound(name, "sampled", float(sj.max()), Level.ESTIMATED, {"samples": n_samples, "seed": seed}))
        local[name] = local_lipschitz(Ws, bs, cl, cu, Cn, On, activation=act, margin=margin)
    return StateLipschitzReport(bounds=bounds, cells_lower=cl, cells_upper=cu, local=local, notes=notes)
