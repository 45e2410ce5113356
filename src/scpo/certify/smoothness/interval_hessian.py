"""Method (a), ``"interval"``: interval arithmetic on the explicit Hessian graph of an MLP output.

For an output ``f_θ(x)`` of the MLP at a fixed input, with ``z_l = W_l h_{l−1} + b_l``,
``h_l = σ(z_l)`` and a direction ``v = (V_l, c_l)_l``, the second derivative along ``v`` is

    vᵀ∇²f v = Σ_{l<L} [ ż_lᵀ diag(β_l ⊙ σ''_l) ż_l + 2 (V_{l+1}ᵀ G_{l+1})ᵀ diag(σ'_l) ż_l ],

with ``ż_l = J_l v`` (forward Jacobians), ``G_l = ∂f/∂z_l`` and ``β_l = G_{l+1} W_{l+1}``. So
``∇²f = Uᵀ M U`` exactly, where the rows of ``U`` are the maps ``v ↦ ż_l`` and
``v ↦ V_{l+1}ᵀG_{l+1}`` (``r = 2 Σ_{l<L} n_l`` rows) and ``M`` is block diagonal with per-neuron
blocks ``[[β σ'', σ'], [σ', 0]]``. Every block of ``U`` is a Kronecker product
(``∂z_l/∂W_k = P_{l,k} ⊗ h_{k−1}ᵀ`` with ``P_{l,k} = ∂z_l/∂z_k``), so the Gram matrix ``U Uᵀ`` is
formed from ``n × n`` matrices without ever building a ``d``-sized array. The bound is the exact
spectral norm at the centre, ``‖Ûᵀ M̂ Û‖₂`` (an ``r × r`` eigenproblem of ``Γ^{1/2} M̂ Γ^{1/2}``,
``Γ = Û Ûᵀ``), plus a perturbation term from interval enclosures of ``U`` and ``M`` over the
region (``|U − Û| ≤ R_U``, ``|M − M̂| ≤ R_M`` entrywise):

    ‖UᵀMU − ÛᵀM̂Û‖ ≤ ‖R_M‖‖Û‖² + 2‖R_U‖‖M̂Û‖ + 2‖R_U‖‖R_M‖‖Û‖ + ‖R_U‖²(‖M̂‖ + ‖R_M‖).

It is tight for small regions (exact at radius 0) and degrades with the radius, faster on L2 balls
(whose interval enclosure is the box of the same radius, ``√d`` times wider).
"""

from __future__ import annotations

import numpy as np
import torch

from ...numerics import Margin
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import MLPStructure
from .. import intervals as iv
from ._batch import DT, as_batch, check_common, check_output, finite_or_inf, weights_biases
from .types import SMOOTHNESS_MARGIN

__all__ = ["mlp_hessian_factors", "mlp_hessian_bound_interval"]


def _centre(structure: MLPStructure, Ws, bs, x):
    """Point values at the centre: h_0..h_{L−1}, σ'_1..σ'_{L−1}, σ''_1..σ''_{L−1}."""
    act = structure.act
    h, hs, sp, spp = x, [x], [], []
    for l in range(len(Ws) - 1):
        z = torch.einsum("boi,bi->bo", Ws[l], h) + bs[l]
        t = act.fn(z)
        hs.append(t)
        sp.append(act.d1(z))
        spp.append(act.d2(z))
        h = t
    return hs, sp, spp


def _centre_P(Ws, sp, L):
    """``P̂[l][k] = ∂z_l/∂z_k`` at the centre for 1 ≤ k ≤ l ≤ L (0-based lists, P[l][k] with l ≥ k)."""
    B = Ws[0].shape[0]
    P: list[dict[int, torch.Tensor]] = [dict() for _ in range(L)]
    for k in range(L):
        P[k][k] = torch.eye(Ws[k].shape[-2], dtype=DT).expand(B, -1, -1)
        for l in range(k + 1, L):
            P[l][k] = Ws[l] @ (sp[l - 1].unsqueeze(-1) * P[l - 1][k])
    return P


def mlp_hessian_factors(structure: MLPStructure, theta: np.ndarray, x: np.ndarray, *, output: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The exact factorisation ``∇²_θ f_θ(x) = Uᵀ M U`` used by the interval bound, as dense arrays.

    Meant for small networks (tests, explanations): ``U`` has ``d`` columns.

    Parameters
    ----------
    structure : MLPStructure
        A network with a smooth activation.
    theta : ndarray, shape (d,)
    x : ndarray, shape (n_0,)
    output : int
        Output component ``f = φ_θ(x)[output]``.

    Returns
    -------
    U : ndarray, shape (r, d)
        Rows grouped per hidden layer ``l``: the maps ``v ↦ ż_l`` then ``v ↦ V_{l+1}ᵀ G_{l+1}``.
    M : ndarray, shape (r, r)
        Block diagonal: per neuron ``[[β σ'', σ'], [σ', 0]]``.
    """
    check_common(structure, "box", SMOOTHNESS_MARGIN)
    o = check_output(structure, output)
    th, xx, _ = as_batch(structure, np.atleast_2d(theta), np.atleast_2d(x), [0.0], structure.in_dim)
    Ws, bs = weights_biases(structure, th)
    L = len(Ws)
    hs, sp, spp = _centre(structure, Ws, bs, xx)
    P = _centre_P(Ws, sp, L)
    G = [P[L - 1][k][:, o, :] for k in range(L)]  # G[k] = ∂f/∂z_{k+1} (0-based layer k)
    offs = structure.offsets()
    d = structure.dim
    blocks_U, blocks_M = [], []
    for l in range(L - 1):  # hidden layer l (0-based): rows J_l then F_{l+1}
        n_l = Ws[l].shape[1]
        J = torch.zeros(n_l, d, dtype=DT)
        for k in range(l + 1):
            wo, bo = offs[k]
            o_k, i_k = structure.shapes[k]
            Pk = P[l][k][0]  # (n_l, n_k)
            J[:, wo : wo + o_k * i_k] = torch.einsum("ai,j->aij", Pk, hs[k][0]).reshape(n_l, -1)
            J[:, bo : bo + o_k] = Pk
        F = torch.zeros(n_l, d, dtype=DT)
        wo, _ = offs[l + 1]
        o_n, i_n = structure.shapes[l + 1]
        Gn = G[l + 1][0]  # (o_n,)
        for j in range(i_n):
            F[j, wo + torch.arange(o_n) * i_n + j] = Gn
        beta = Gn @ Ws[l + 1][0]  # (n_l,)
        D = beta * spp[l][0]
        S = sp[l][0]
        blocks_U += [J, F]
        blocks_M.append(torch.cat([torch.cat([torch.diag(D), torch.diag(S)], 1), torch.cat([torch.diag(S), torch.zeros(n_l, n_l, dtype=DT)], 1)], 0))
    if not blocks_U:
        return np.zeros((0, d)), np.zeros((0, 0))
    return torch.cat(blocks_U).numpy(), torch.block_diag(*blocks_M).numpy()


def _enclosures(enc: iv.ActivationEnclosure, Ws, bs, xx, rad, ball, o: int):
    """Interval enclosures over the region of h, σ', σ'', P = ∂z_l/∂z_k, G = ∂f/∂z and D = β σ''."""
    L = len(Ws)
    B = xx.shape[0]
    _, hiv, ends = iv.forward_intervals(enc, Ws, bs, xx, torch.zeros_like(xx), rad, ball)
    spiv = [enc.d1(*e) for e in ends]
    sppiv = [enc.d2(*e) for e in ends]
    Piv: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] = [dict() for _ in range(L)]
    for k in range(L):
        eye = torch.eye(Ws[k].shape[-2], dtype=DT).expand(B, -1, -1)
        Piv[k][k] = (eye, torch.zeros_like(eye))
        for l in range(k + 1, L):
            Xm, Xr = iv.interval_mul(spiv[l - 1][0].unsqueeze(-1), spiv[l - 1][1].unsqueeze(-1), *Piv[l - 1][k])
            Piv[l][k] = iv.param_matmul(Ws[l], Xm, Xr, rad, ball)
    # backward adjoints G_k = ∂f/∂z_k and β_l = G_{l+1} W_{l+1}
    Giv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * L
    e_o = torch.zeros(B, Ws[-1].shape[-2], dtype=DT)
    e_o[:, o] = 1.0
    Giv[L - 1] = (e_o, torch.zeros_like(e_o))
    betaiv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * (L - 1)
    for l in range(L - 2, -1, -1):
        betaiv[l] = iv.param_vecmat(Ws[l + 1], *Giv[l + 1], rad, ball)
        Giv[l] = iv.interval_mul(*betaiv[l], *spiv[l])
    Div = [iv.interval_mul(*betaiv[l], *sppiv[l]) for l in range(L - 1)]
    return hiv, spiv, Piv, Giv, Div


def _gram(Ws, hs, P, G, Rh, RP, RG):
    """``Γ = ÛÛᵀ`` and ``Γ_R = R_U R_Uᵀ`` from the Kronecker structure, and the row offsets of U."""
    L = len(Ws)
    B = Ws[0].shape[0]
    n = [Ws[l].shape[-2] for l in range(L)]  # n[l] = width of z_{l+1} (0-based)
    # row groups: for hidden l: J_l (n[l] rows), F_{l+1} (n[l] rows)
    offs, pos = {}, 0
    for l in range(L - 1):
        offs[("J", l)] = pos
        pos += n[l]
        offs[("F", l + 1)] = pos
        pos += n[l]
    r = pos
    Gam = torch.zeros(B, r, r, dtype=DT)
    GamR = torch.zeros(B, r, r, dtype=DT)
    hsq = [(hs[k] * hs[k]).sum(-1) + 1.0 for k in range(L)]
    c1 = [hs[k].abs() + Rh[k] for k in range(L)]
    c2 = Rh
    c11 = [(c1[k] * c1[k]).sum(-1) + 1.0 for k in range(L)]  # + bias block
    c12 = [(c1[k] * c2[k]).sum(-1) for k in range(L)]
    c22 = [(c2[k] * c2[k]).sum(-1) for k in range(L)]

    def put(Mx, a, b, blk):
        i, j = offs[a], offs[b]
        Mx[:, i : i + blk.shape[-2], j : j + blk.shape[-1]] += blk
        if a != b:
            Mx[:, j : j + blk.shape[-1], i : i + blk.shape[-2]] += blk.transpose(-1, -2)

    sc = lambda v: v[:, None, None]  # noqa: E731
    for l in range(L - 1):
        for lp in range(l, L - 1):
            g = torch.zeros(B, n[l], n[lp], dtype=DT)
            gr = torch.zeros_like(g)
            for k in range(l + 1):
                Pa, Pb = P[l][k], P[lp][k]
                g = g + (Pa @ Pb.transpose(-1, -2)) * sc(hsq[k])
                A1, A2 = RP[l][k], P[l][k].abs()
                B1, B2 = RP[lp][k], P[lp][k].abs()
                gr = gr + (A1 @ B1.transpose(-1, -2)) * sc(c11[k]) + (A1 @ B2.transpose(-1, -2)) * sc(c12[k]) \
                    + (A2 @ B1.transpose(-1, -2)) * sc(c12[k]) + (A2 @ B2.transpose(-1, -2)) * sc(c22[k])
            if l == lp:
                Gam[:, offs[("J", l)] : offs[("J", l)] + n[l], offs[("J", l)] : offs[("J", l)] + n[l]] += g
                GamR[:, offs[("J", l)] : offs[("J", l)] + n[l], offs[("J", l)] : offs[("J", l)] + n[l]] += gr
            else:
                put(Gam, ("J", l), ("J", lp), g)
                put(GamR, ("J", l), ("J", lp), gr)
        for k in range(1, l + 1):  # F_k lives on W_k (0-based layer k), nonzero against J_l for k ≤ l
            g = (P[l][k] @ G[k].unsqueeze(-1)) * hs[k].unsqueeze(-2)  # (n_l, n_{k-1}) = outer(P G, h_{k−1})
            A1, A2 = RP[l][k], P[l][k].abs()
            gr = (A1 @ RG[k].unsqueeze(-1)) * c1[k].unsqueeze(-2) + (A2 @ RG[k].unsqueeze(-1)) * c2[k].unsqueeze(-2)
            put(Gam, ("J", l), ("F", k), g)
            put(GamR, ("J", l), ("F", k), gr)
        k = l + 1
        eye = torch.eye(n[l], dtype=DT)
        i = offs[("F", k)]
        Gam[:, i : i + n[l], i : i + n[l]] += sc((G[k] * G[k]).sum(-1)) * eye
        GamR[:, i : i + n[l], i : i + n[l]] += sc((RG[k] * RG[k]).sum(-1)) * eye
    return Gam, GamR, offs, n, r


def _block_norms(D, S, RD, RS, offs, n, r, B):
    """M̂ (as diagonal ``dJ`` plus the coupling J_l <-> F_{l+1} with weights ``sF``) and per-row block norms.

    Each 2×2 block ``[[a, b], [b, 0]]`` has norm ``(|a| + √(a² + 4b²))/2``; ``eM``, ``eR`` are those
    norms of M̂ and R_M, one per row of U.
    """
    dJ = torch.zeros(B, r, dtype=DT)
    sF = torch.zeros(B, r, dtype=DT)
    partner = torch.arange(r)
    eM = torch.zeros(B, r, dtype=DT)
    eR = torch.zeros(B, r, dtype=DT)
    for l in range(len(D)):
        i, j = offs[("J", l)], offs[("F", l + 1)]
        idx = torch.arange(n[l])
        dJ[:, i : i + n[l]] = D[l]
        sF[:, i : i + n[l]] = S[l]
        sF[:, j : j + n[l]] = S[l]
        partner[i : i + n[l]] = j + idx
        partner[j : j + n[l]] = i + idx
        bm = iv.inflate_norm((D[l].abs() + torch.sqrt(D[l] ** 2 + 4 * S[l] ** 2)) / 2, 2)
        br = iv.inflate_norm((RD[l] + torch.sqrt(RD[l] ** 2 + 4 * RS[l] ** 2)) / 2, 2)
        eM[:, i : i + n[l]] = bm
        eM[:, j : j + n[l]] = bm
        eR[:, i : i + n[l]] = br
        eR[:, j : j + n[l]] = br
    return dJ, sF, partner, eM, eR


def _norms(Gam, GamR, dJ, sF, partner, eM, eR, r):
    """Centre norm ``‖ÛᵀM̂Û‖ = max |eig(Γ^{1/2} M̂ Γ^{1/2})|`` and the perturbation bound."""
    nM = eM.amax(-1)
    Gam = (Gam + Gam.transpose(-1, -2)) / 2
    lam, Q = torch.linalg.eigh(Gam)
    half = Q @ (torch.sqrt(lam.clamp(min=0.0)).unsqueeze(-1) * Q.transpose(-1, -2))

    def right_M(X):  # X M̂ for a batch of matrices X (B, k, r), using the sparsity of M̂
        return X * dJ.unsqueeze(-2) + X[..., partner] * sF.unsqueeze(-2)

    C = right_M(half) @ half
    C = (C + C.transpose(-1, -2)) / 2
    ev = torch.linalg.eigvalsh(C)
    nU2 = iv.inflate_norm(lam[..., -1].clamp(min=0.0), r)
    centre = ev.abs().amax(-1) + 64.0 * r * _U * nU2 * nM + iv.TINY
    MG = right_M(Gam).transpose(-1, -2)  # M̂ Γ (Γ, M̂ symmetric)
    MGM = right_M(MG)
    nMU = torch.sqrt(iv.lambda_max_sym((MGM + MGM.transpose(-1, -2)) / 2).clamp(min=0.0))

    # With w = Ûv, e = ΔU v (|ΔU| ≤ R_U) and per-neuron block bounds,
    #   |wᵀΔM w| ≤ ‖E_R^{1/2} w‖²,  |eᵀM̂w| ≤ min(‖e‖‖M̂w‖, ‖E_M^{1/2}e‖‖E_M^{1/2}w‖),
    #   |eᵀΔM w| ≤ ‖E_R^{1/2}e‖‖E_R^{1/2}w‖,  |eᵀM'e| ≤ ‖e‖²‖M̂‖ + ‖E_R^{1/2}e‖²  (Cauchy–Schwarz per block).
    def weighted(Gx, wts, nonneg):
        sw = torch.sqrt(wts)
        Sx = sw.unsqueeze(-1) * Gx * sw.unsqueeze(-2)
        return iv.collatz_wielandt_bound(Sx) if nonneg else iv.lambda_max_sym((Sx + Sx.transpose(-1, -2)) / 2)

    t_RU = iv.collatz_wielandt_bound(GamR).clamp(min=0.0)  # ‖R_U‖²
    t_ERU = weighted(GamR, eR, True).clamp(min=0.0)  # ‖E_R^{1/2} R_U‖²
    t_EMRU = weighted(GamR, eM, True).clamp(min=0.0)  # ‖E_M^{1/2} R_U‖²
    t_ERw = weighted(Gam, eR, False).clamp(min=0.0)  # ‖E_R^{1/2} Û‖²
    t_EMw = weighted(Gam, eM, False).clamp(min=0.0)  # ‖E_M^{1/2} Û‖²
    nRU = torch.sqrt(t_RU)
    cross = torch.minimum(nRU * nMU, torch.sqrt(t_EMRU * t_EMw))
    pert = t_ERw + 2 * cross + 2 * torch.sqrt(t_ERU * t_ERw) + t_RU * nM + t_ERU
    return {"centre": centre, "perturbation": pert, "norm_U": torch.sqrt(nU2), "norm_MU": nMU, "norm_RU": nRU,
            "norm_M": nM, "norm_RM": eR.amax(-1)}


def mlp_hessian_bound_interval(
    structure: MLPStructure,
    thetas: np.ndarray,
    x: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "box",
    output: int = 0,
    margin: Margin = SMOOTHNESS_MARGIN,
    details: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Method (a): sound ``sup_{θ ∈ Θ} ‖∇²_θ f_θ(x)‖₂`` by interval arithmetic on ``∇²f = UᵀMU``.

    Parameters
    ----------
    structure : MLPStructure
        A network with a smooth activation (``tanh``).
    thetas : ndarray, shape (B, d) or (1, d)
        Region centres.
    x : ndarray, shape (B, n_0) or (1, n_0)
        Inputs (fixed, not perturbed).
    radius : float or ndarray, shape (B,)
        Region radii (``r`` of the box or ``ρ`` of the ball).
    kind : {"box", "ball"}
    output : int
        Output component.
    margin : Margin
        Outward margin of the result (:meth:`~scpo.numerics.Margin.inflate`).
    details : bool
        Also return the pieces of the bound.

    Returns
    -------
    bound : ndarray, shape (B,)
    parts : dict of ndarray (B,), only with ``details``
        ``centre`` (``‖Ûᵀ M̂ Û‖``), ``perturbation`` and the norms it is made of.

    Raises
    ------
    UnsupportedError
        For ReLU networks.
    """
    enc = check_common(structure, kind, margin)
    o = check_output(structure, output)
    th, xx, rad = as_batch(structure, thetas, x, radius, structure.in_dim)
    ball = kind == "ball"
    Ws, bs = weights_biases(structure, th)
    L = len(Ws)
    B = th.shape[0]
    if L == 1:  # affine in θ: the Hessian is zero
        out = np.zeros(B)
        return (out, {}) if details else out
    hs, sp, spp = _centre(structure, Ws, bs, xx)
    P = _centre_P(Ws, sp, L)
    G = [P[L - 1][k][:, o, :] for k in range(L)]
    beta = [torch.einsum("bo,boi->bi", G[l + 1], Ws[l + 1]) for l in range(L - 1)]
    D = [beta[l] * spp[l] for l in range(L - 1)]
    hiv, spiv, Piv, Giv, Div = _enclosures(enc, Ws, bs, xx, rad, ball, o)

    def R(ivl, centre):  # sup |X − X̂| over the region
        return (ivl[0] - centre).abs() + ivl[1]

    Rh = [torch.zeros_like(xx)] + [R(hiv[k], hs[k]) for k in range(1, L)]
    RP = [{k: R(Piv[l][k], P[l][k]) for k in Piv[l]} for l in range(L)]
    RG = [R(Giv[k], G[k]) for k in range(L)]
    RD = [R(Div[l], D[l]) for l in range(L - 1)]
    RS = [R(spiv[l], sp[l]) for l in range(L - 1)]
    Gam, GamR, offs, n, r = _gram(Ws, hs, P, G, Rh, RP, RG)
    dJ, sF, partner, eM, eR = _block_norms(D, sp, RD, RS, offs, n, r, B)
    parts = _norms(Gam, GamR, dJ, sF, partner, eM, eR, r)
    bound = margin.inflate((parts["centre"] + parts["perturbation"]) * (1.0 + 16 * _U))
    out = finite_or_inf(bound.numpy().copy())
    if details:
        return out, {k: v.numpy().copy() for k, v in parts.items()}
    return out
