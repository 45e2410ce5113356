"""Method (b), ``"norm-chain"``: first- and second-order variation propagated with norm bounds.

With ``a_l = ‖(V_l, c_l)‖_F`` (``Σ a_l² = 1``) for a direction ``v = (V_l, c_l)_l`` in parameter
space, ``‖ż_l‖ ≤ u_l·a`` and ``‖z̈_l‖ ≤ aᵀQ_l a`` where ``u_l, Q_l ≥ 0`` follow from ``‖[h;1]‖``,
``‖W diag(σ')‖``, ``‖W diag(|σ''|)‖`` over the region, ``|σ'| ≤ 1`` and ``|σ''| ≤ sup|σ''|``
(tightened per neuron by interval bounds on the pre-activations); the bound is ``λ_max(Q_L)``. It
costs milliseconds, handles L2 balls directly, and runs through unrolled closed loops, where the
policy's input ``x_t`` itself varies with ``θ``. Two propagations are run there and the smaller
bound is kept per row: (i) ``x_t = M^t x_0 + Σ_s M^{t−1−s} B φ(x_s)`` (``M = A + BK``), variations of
``x_t`` as sums of those of ``φ(x_s)`` weighted by ``‖c M^k B‖``; (ii) variations of ``x_t`` in the
metric ``‖x‖_P`` of the terminal matrix ``P`` (the LQR matrix), propagated by interval closed-loop
Jacobians ``J_t = M + B ∂φ/∂x`` over the state interval and the region
(``ẋ_{t+1} = J_t ẋ_t + B ∂_θφ v``, ``ẍ_{t+1} = J_t ẍ_t + B·(curvature of φ)``), which keeps the
backup's contraction. Both sum over time steps with the triangle inequality, so they loosen with
the horizon ``T``; ``benchmarks/bench_smoothness.py`` measures by how much. Without a terminal set
only (i) runs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import InvalidInputError, ShapeError
from ...numerics import Margin
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import MLPStructure
from ...systems import ClosedLoopProblem
from .. import intervals as iv
from ._batch import DT, as_batch, check_common, check_output, finite_or_inf, sym_outer, weights_biases
from .types import SMOOTHNESS_MARGIN

__all__ = ["mlp_hessian_bound_chain", "rollout_hessian_bound_chain"]


def _layer_norms(enc: iv.ActivationEnclosure, Ws, ends, rad, ball, o):
    """Per layer l = 2..L: ω'_l, ω''_l (norm bounds of W diag(σ'), W diag(|σ''|)) and μ_{l−1} = max σ'.

    ``o`` restricts the last layer to one output row (``None``: all outputs).
    """
    L = len(Ws)
    out = []
    for l in range(1, L):
        W = Ws[l] if (l < L - 1 or o is None) else Ws[l][:, o : o + 1, :]
        lo, hi = ends[l - 1]
        spm, spr = enc.d1(lo, hi)
        Sp = (spm + spr).clamp(max=1.0)
        sppm, sppr = enc.d2(lo, hi)
        Spp = (sppm.abs() + sppr).clamp(max=enc.d2_max * (1 + 8 * _U))
        no, ni = W.shape[-2], W.shape[-1]
        eps = rad * (math.sqrt(no * ni) if not ball else 1.0)
        w1 = iv.inflate_norm(torch.linalg.matrix_norm(W * Sp.unsqueeze(-2), ord=2), max(no, ni)) + eps * Sp.amax(-1)
        w2 = iv.inflate_norm(torch.linalg.matrix_norm(W * Spp.unsqueeze(-2), ord=2), max(no, ni)) + eps * Spp.amax(-1)
        out.append((w1 * (1 + 8 * _U), w2 * (1 + 8 * _U), Sp.amax(-1)))
    return out


def _eta(hiv) -> list[torch.Tensor]:
    """``sup ‖[h_l; 1]‖₂`` per layer input."""
    return [torch.sqrt(((m.abs() + r) ** 2).sum(-1) + 1.0) * (1 + 8 * _U) for m, r in hiv]


def _propagate(u: torch.Tensor, Q: torch.Tensor, norms, eta) -> tuple[torch.Tensor, torch.Tensor]:
    """Through the layers: ``Q ← μ (e_l uᵀ + u e_lᵀ) + ω'' u uᵀ + ω' Q``, ``u ← ω' u + η_l e_l``."""
    for l, (w1, w2, mu) in enumerate(norms, start=1):
        Q = mu[:, None, None] * sym_outer(l, u) + w2[:, None, None] * (u.unsqueeze(-1) * u.unsqueeze(-2)) + w1[:, None, None] * Q
        u = w1[:, None] * u
        u[:, l] = u[:, l] + eta[l]
    return u, Q


def mlp_hessian_bound_chain(
    structure: MLPStructure,
    thetas: np.ndarray,
    x: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "box",
    output: int = 0,
    margin: Margin = SMOOTHNESS_MARGIN,
    gradient: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Method (b): sound ``sup_{θ ∈ Θ} ‖∇²_θ f_θ(x)‖₂`` by the norm chain (see the module docstring).

    Parameters
    ----------
    structure : MLPStructure
        A network with a smooth activation.
    thetas : ndarray, shape (B, d) or (1, d)
        Region centres.
    x : ndarray, shape (B, n_0) or (1, n_0)
        Inputs (fixed).
    radius : float or ndarray, shape (B,)
        Region radii.
    kind : {"box", "ball"}
    output : int
        Output component.
    margin : Margin
        Outward margin of the results.
    gradient : bool
        Also return a sound bound on ``sup ‖∇_θ f_θ(x)‖₂``.

    Returns
    -------
    hessian : ndarray, shape (B,)
    grad : ndarray, shape (B,), only with ``gradient``
    """
    enc = check_common(structure, kind, margin)
    o = check_output(structure, output)
    th, xx, rad = as_batch(structure, thetas, x, radius, structure.in_dim)
    ball = kind == "ball"
    Ws, bs = weights_biases(structure, th)
    L = len(Ws)
    B = th.shape[0]
    _, hiv, ends = iv.forward_intervals(enc, Ws, bs, xx, torch.zeros_like(xx), rad, ball)
    eta = _eta(hiv)
    u = torch.zeros(B, L, dtype=DT)
    u[:, 0] = eta[0]
    u, Q = _propagate(u, torch.zeros(B, L, L, dtype=DT), _layer_norms(enc, Ws, ends, rad, ball, o), eta)
    hess = margin.inflate(iv.lambda_max_sym(Q) * (1 + 16 * _U)).numpy().copy()
    if gradient:
        g = margin.inflate(torch.linalg.vector_norm(u, dim=-1) * (1 + 16 * _U)).numpy().copy()
        return hess, g
    return hess


# ----------------------------------------------------------------------------- rollouts
def _loop_constants(problem: ClosedLoopProblem, T: int) -> dict:
    """Norms of ``M^k B`` and of the constraint rows along it (numpy, inflated by ``grow``)."""
    A, Bm, K = (np.array(v, dtype=float) for v in (problem.A, problem.B, problem.K))
    n_x = A.shape[0]
    Mcl = A + Bm @ K
    grow = 1.0 + 64.0 * (T + n_x + 4) * _U
    MkB = [Bm]
    for _ in range(T):
        MkB.append(Mcl @ MkB[-1])
    Mk = [np.eye(n_x)]
    for _ in range(T):
        Mk.append(Mcl @ Mk[-1])
    Hx, Hu = np.array(problem.Hx, dtype=float), np.array(problem.Hu, dtype=float)
    c = {
        "A": A, "B": Bm, "K": K, "Mcl": Mcl, "grow": grow, "MkB": MkB, "Mk": Mk, "Hx": Hx, "Hu": Hu,
        "nb": np.array([np.linalg.norm(Y, 2) for Y in MkB]) * grow,
        "cs": np.array([[np.linalg.norm(Hx[i] @ Y) for i in range(Hx.shape[0])] for Y in MkB]).reshape(len(MkB), Hx.shape[0]) * grow,
        "cu": np.array([[np.linalg.norm(Hu[i] @ K @ Y) for i in range(Hu.shape[0])] for Y in MkB]).reshape(len(MkB), Hu.shape[0]) * grow,
        "cu0": np.linalg.norm(Hu, axis=1) * grow,
        "MkB_t": [torch.as_tensor(Y, dtype=DT) for Y in MkB],
    }
    if problem.has_terminal:
        P = np.array(problem.P, dtype=float)
        c["P"] = P
        c["pb"] = np.array([math.sqrt(max(np.linalg.eigvalsh(Y.T @ P @ Y)[-1], 0.0)) for Y in MkB]) * grow
        c["PMkB"] = [torch.as_tensor(P @ Y, dtype=DT) for Y in MkB]
        ev_P, V_P = np.linalg.eigh((P + P.T) / 2)
        if not ev_P[0] > 0:
            raise InvalidInputError(f"problem.P: expected a positive definite matrix, got smallest eigenvalue {ev_P[0]:.3e}")
        Ph = V_P @ np.diag(np.sqrt(ev_P)) @ V_P.T
        Pmh = V_P @ np.diag(1.0 / np.sqrt(ev_P)) @ V_P.T
        c.update(Ph=Ph, Pmh=Pmh, Ph_t=torch.as_tensor(Ph, dtype=DT), Pmh_t=torch.as_tensor(Pmh, dtype=DT),
                 nPmh=float(np.linalg.norm(Pmh, 2)) * grow, nBP=float(np.linalg.norm(Ph @ Bm, 2)) * grow,
                 cxP=torch.as_tensor(np.linalg.norm(Hx @ Pmh, axis=1).reshape(Hx.shape[0]) * grow, dtype=DT))
    return c


class _Contractive:
    """Variant (ii): variations of ``x_t`` in the metric ``‖x‖_P``, with interval Jacobians ``J_t``."""

    def __init__(self, c: dict, W1: torch.Tensor, eps1: torch.Tensor, Bn: int, L: int) -> None:
        self.c = c
        n_x = c["A"].shape[0]
        self.om1P = (iv.inflate_norm(torch.linalg.matrix_norm(W1 @ c["Pmh_t"], ord=2), max(W1.shape[-2], n_x)) + eps1 * c["nPmh"]) * c["grow"]
        self.Mcl_t, self.B_t, self.K_t, self.Hu_t = (torch.as_tensor(v, dtype=DT) for v in (c["Mcl"], c["B"], c["K"], c["Hu"]))
        self.cu0_t = torch.as_tensor(c["cu0"], dtype=DT)
        self.uxP = torch.zeros(Bn, L, dtype=DT)
        self.QxP = torch.zeros(Bn, L, L, dtype=DT)
        self.state_H, self.state_g = [], []  # per t = 1..T: (B, px, L, L), (B, px, L)
        self.in_H, self.in_g = [], []  # per t = 0..T−1: (B, pu, L, L), (B, pu, L)

    def step(self, Ws, ends, norms, eta, enc, rad, ball) -> None:
        c = self.c
        Bn, L = self.uxP.shape
        n_x = c["A"].shape[0]
        uP = torch.zeros(Bn, L, dtype=DT)
        uP[:, 0] = eta[0]
        uth = uP.clone()
        uP = uP + self.om1P[:, None] * self.uxP
        QP = c["nPmh"] * sym_outer(0, self.uxP)  # 2 V_1 ẋ_t; the W_1 ẍ_t part is in J_t ẍ_t
        uP, QP = _propagate(uP, QP, norms, eta)
        for l, (w1, _, _) in enumerate(norms, start=1):
            uth = w1[:, None] * uth
            uth[:, l] = uth[:, l] + eta[l]
        # interval ∂φ/∂x over ([x_t], Θ), from the output side
        Xm = Ws[-1]
        Xr = torch.full_like(Xm, 0.0) + rad[:, None, None]
        for l in range(L - 2, -1, -1):
            dm, dr = enc.d1(*ends[l])
            Xm, Xr = iv.interval_mul(Xm, Xr, dm.unsqueeze(-2), dr.unsqueeze(-2))
            Xm, Xr = iv.param_rmatmul(Xm, Xr, Ws[l], rad, ball)
        Ph_t, Pmh_t, grow = c["Ph_t"], c["Pmh_t"], c["grow"]
        Jm = Ph_t @ (self.Mcl_t + self.B_t @ Xm) @ Pmh_t
        JrN = torch.linalg.matrix_norm(Xr @ Pmh_t.abs(), ord=2) * c["nBP"]
        nJ = (iv.inflate_norm(torch.linalg.matrix_norm(Jm, ord=2), n_x) + JrN) * grow
        kin_m = (self.Hu_t @ (self.K_t + Xm)) @ Pmh_t  # (B, pu, n)
        kin = (torch.linalg.vector_norm(kin_m, dim=-1) + torch.linalg.vector_norm((self.Hu_t.abs() @ Xr) @ Pmh_t.abs(), dim=-1)) * grow
        self.in_H.append(kin[:, :, None, None] * self.QxP[:, None] + self.cu0_t[None, :, None, None] * QP[:, None])
        self.in_g.append(kin[:, :, None] * self.uxP[:, None] + self.cu0_t[None, :, None] * uth[:, None])
        self.uxP = nJ[:, None] * self.uxP + c["nBP"] * uth
        self.QxP = nJ[:, None, None] * self.QxP + c["nBP"] * QP
        self.state_H.append(c["cxP"][None, :, None, None] * self.QxP[:, None])
        self.state_g.append(c["cxP"][None, :, None] * self.uxP[:, None])

    def rows(self, xTm: torch.Tensor, xTr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hessian and gradient bound coefficients of every row, (B, R, L, L) and (B, R, L)."""
        c = self.c
        xTP = (torch.linalg.vector_norm(xTm @ c["Ph_t"].T, dim=-1) + torch.linalg.vector_norm(xTr @ c["Ph_t"].abs().T, dim=-1)) * c["grow"]
        HTP = 2 * self.uxP.unsqueeze(-1) * self.uxP.unsqueeze(-2) + 2 * xTP[:, None, None] * self.QxP
        HP = torch.cat([torch.cat(self.state_H, 1), torch.cat(self.in_H, 1), HTP.unsqueeze(1)], dim=1)
        GP = torch.cat([torch.cat(self.state_g, 1), torch.cat(self.in_g, 1), (2 * xTP[:, None] * self.uxP).unsqueeze(1)], dim=1)
        return HP, GP


def _interval_state(t: int, xx, c: dict, phim, phir, n_x: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_t ∈ M^t x0 + Σ_s M^{t−1−s} B [φ_s]`` as (mid, rad)."""
    xm = xx @ torch.as_tensor(c["Mk"][t].T, dtype=DT)
    xr = torch.zeros_like(xm)
    mag = (xx.abs() @ torch.as_tensor(np.abs(c["Mk"][t]).T, dtype=DT))
    for s in range(t):
        Y = c["MkB_t"][t - 1 - s]
        xm = xm + phim[s] @ Y.T
        xr = xr + phir[s] @ Y.abs().T
        mag = mag + (phim[s].abs() + phir[s]) @ Y.abs().T
    xr = xr + iv.rounding_slack(mag + xr, t + n_x + 2)
    return xm, xr


def _direct_step(t: int, c: dict, om1, ps, Qs, norms, eta, Bn: int, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Variant (i) at time ``t``: the variation bounds of ``φ(x_t)`` from those of ``φ(x_s)``, ``s < t``."""
    coef = torch.as_tensor(c["nb"][t - 1 :: -1][:t].copy() if t else np.zeros(0), dtype=DT)  # nb[t−1−s], s = 0..t−1
    om = om1[:, :t].flip(-1) if t else om1[:, :0]  # ω1[b, t−1−s]
    ux = torch.einsum("s,bsi->bi", coef, ps[:, :t]) if t else torch.zeros(Bn, L, dtype=DT)
    w1u = torch.einsum("bs,bsi->bi", om, ps[:, :t]) if t else torch.zeros(Bn, L, dtype=DT)
    w1Q = torch.einsum("bs,bsij->bij", om, Qs[:, :t]) if t else torch.zeros(Bn, L, L, dtype=DT)
    u = w1u.clone()
    u[:, 0] = u[:, 0] + eta[0]
    return _propagate(u, sym_outer(0, ux) + w1Q, norms, eta)


def _direct_rows(c: dict, ps, Qs, xTm, xTr, T: int, Bn: int, L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Variant (i): Hessian and gradient bound coefficients of every row, (B, R, L, L) and (B, R, L)."""
    px, pu = c["Hx"].shape[0], c["Hu"].shape[0]
    R0 = T * (px + pu)
    Cmat = np.zeros((R0, T))
    for t in range(1, T + 1):
        for i in range(px):
            Cmat[(t - 1) * px + i, :t] = c["cs"][t - 1 :: -1, i][:t]
    base = T * px
    Cdir = np.zeros((R0, T))
    for t in range(T):
        for i in range(pu):
            if t:
                Cmat[base + t * pu + i, :t] = c["cu"][t - 1 :: -1, i][:t]
            Cdir[base + t * pu + i, t] = c["cu0"][i]
    Ct = torch.as_tensor(Cmat + Cdir, dtype=DT)
    Hcoef = torch.einsum("rs,bsij->brij", Ct, Qs)
    gcoef = torch.einsum("rs,bsi->bri", Ct, ps)
    if "P" not in c:
        return Hcoef, gcoef
    # terminal: 2 ẋᵀPẋ + 2 x_TᵀPẍ
    tw = torch.stack([torch.linalg.vector_norm((xTm @ Y).abs() + xTr @ Y.abs(), dim=-1) for Y in c["PMkB"]], dim=1) * c["grow"]  # (B, T+1)
    if T:
        pbt = torch.as_tensor(c["pb"][T - 1 :: -1][:T].copy(), dtype=DT)
        gvec = torch.einsum("s,bsi->bi", pbt, ps)
        twT = tw[:, :T].flip(-1)
        HT = 2 * gvec.unsqueeze(-1) * gvec.unsqueeze(-2) + 2 * torch.einsum("bs,bsij->bij", twT, Qs)
        gT = 2 * torch.einsum("bs,bsi->bi", twT, ps)
    else:
        HT = torch.zeros(Bn, L, L, dtype=DT)
        gT = torch.zeros(Bn, L, dtype=DT)
    return torch.cat([Hcoef, HT.unsqueeze(1)], dim=1), torch.cat([gcoef, gT.unsqueeze(1)], dim=1)


def rollout_hessian_bound_chain(
    structure: MLPStructure,
    problem: ClosedLoopProblem,
    thetas: np.ndarray,
    x0: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "ball",
    margin: Margin = SMOOTHNESS_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Method (b) through the unrolled closed loop: sound Hessian and gradient bounds of every rollout row.

    For the closed loop ``x_{t+1} = A x_t + B (K x_t + φ_θ(x_t))`` of ``problem``, bound
    ``sup_{θ ∈ Θ} ‖∇²_θ r_j(θ)‖₂`` and ``sup_{θ ∈ Θ} ‖∇_θ r_j(θ)‖₂`` for every row ``r_j`` of
    :func:`scpo.systems.constraint_rows` (the problem's row layout) of the rollout from ``x0``.

    Parameters
    ----------
    structure : MLPStructure
        The residual ``φ : R^n → R^m`` (smooth activation).
    problem : ClosedLoopProblem
        Dynamics, backup, constraints, terminal set and horizon ``T``.
    thetas : ndarray, shape (B, d) or (1, d)
        Region centres.
    x0 : ndarray, shape (B, n) or (1, n)
        Initial states (fixed).
    radius : float or ndarray (B,)
        Region radii.
    kind : {"box", "ball"}
    margin : Margin
        Outward margin of the results.

    Returns
    -------
    hessian : ndarray, shape (B, R)
    gradient : ndarray, shape (B, R)
        ``R = problem.layout.n_rows``.
    """
    enc = check_common(structure, kind, margin)
    n_x, m_u = problem.n, problem.m
    if structure.in_dim != n_x or structure.out_dim != m_u:
        raise ShapeError(f"structure: expected a network {n_x} -> {m_u} for this closed loop, got {structure.in_dim} -> {structure.out_dim}")
    th, xx, rad = as_batch(structure, thetas, x0, radius, n_x)
    ball = kind == "ball"
    Ws, bs = weights_biases(structure, th)
    L = len(Ws)
    Bn = th.shape[0]
    T = problem.horizon
    c = _loop_constants(problem, T)
    # first layer: ω1[b, k] = sup ‖(W_1+E_1) M^k B‖
    W1 = Ws[0]
    eps1 = rad * (math.sqrt(W1.shape[-2] * W1.shape[-1]) if not ball else 1.0)
    om1 = torch.stack([iv.inflate_norm(torch.linalg.matrix_norm(W1 @ Y, ord=2), max(W1.shape[-2], m_u)) + eps1 * float(c["nb"][k])
                       for k, Y in enumerate(c["MkB_t"])], dim=1) * c["grow"]  # (B, T+1)
    contractive = _Contractive(c, W1, eps1, Bn, L) if "P" in c else None
    phim: list[torch.Tensor] = []
    phir: list[torch.Tensor] = []
    ps = torch.zeros(Bn, T, L, dtype=DT)
    Qs = torch.zeros(Bn, T, L, L, dtype=DT)
    for t in range(T + 1):
        xm, xr = _interval_state(t, xx, c, phim, phir, n_x)
        if t == T:
            break
        zs, hiv, ends = iv.forward_intervals(enc, Ws, bs, xm, xr, rad, ball)
        phim.append(zs[-1][0])
        phir.append(zs[-1][1])
        eta = _eta(hiv)
        norms = _layer_norms(enc, Ws, ends, rad, ball, None)
        ps[:, t], Qs[:, t] = _direct_step(t, c, om1, ps, Qs, norms, eta, Bn, L)
        if contractive is not None:
            contractive.step(Ws, ends, norms, eta, enc, rad, ball)
    Hcoef, gcoef = _direct_rows(c, ps, Qs, xm, xr, T, Bn, L)
    hess = iv.lambda_max_sym(Hcoef)
    grad = torch.linalg.vector_norm(gcoef, dim=-1)
    if T and contractive is not None:
        HP, GP = contractive.rows(xm, xr)
        hess = torch.minimum(hess, iv.lambda_max_sym(HP))
        grad = torch.minimum(grad, torch.linalg.vector_norm(GP, dim=-1))
    hess = margin.inflate(hess * (1 + 16 * _U))
    grad = margin.inflate(grad * (1 + 16 * _U))
    return finite_or_inf(hess.numpy().copy()), finite_or_inf(grad.numpy().copy())
