"""Upper bounds of convex quadratics over boxes and zonotopes, and of the one-step value change.

Terminal quadratic. ``x_T`` lies in the zonotope ``Z_T = {c + G ε : ε ∈ [−1,1]^N}``; the maximum
of the convex ``xᵀPx`` over ``Z_T`` is attained at a vertex. For two states the vertices are
enumerated exactly (sort the generators by angle; the ``2N`` vertices are partial sums), so the
bound is the exact maximum over ``Z_T``. For ``n > 2`` the bound is the maximum over the corners
of the interval hull of ``Z_T`` (``2^n ≤ 4096`` corners) or, beyond that, interval arithmetic.

Value change. ``ΔV = V(x_1) − V(x_0)`` over a box is a quadratic in the symbols of ``(x_0, x_1)``;
it is bounded by its value at the centre, plus the ``ℓ₁`` norm of its gradient there, plus
``Σ_i max(Q_ii, 0) + Σ_{i≠j} |Q_ij|`` for its Hessian part ``Q``.
"""

from __future__ import annotations

import numpy as np
import torch

from ...numerics import DEFAULT_MARGIN, Margin
from ...numerics import UNIT_ROUNDOFF as _U

__all__ = ["box_max_quadratic", "zonotope_max_quadratic", "value_change_upper"]


def box_max_quadratic(lower: torch.Tensor, upper: torch.Tensor, P: torch.Tensor, *, margin: Margin = DEFAULT_MARGIN) -> torch.Tensor:
    """Upper bound of ``max_{x ∈ [l, u]} xᵀ P x`` for a symmetric positive semidefinite ``P``.

    A convex function attains its maximum over a box at a corner; for ``n ≤ 12`` all ``2^n``
    corners are evaluated (exact up to the margin), beyond that interval arithmetic on
    ``Σ_ij P_ij x_i x_j`` is used.

    Parameters
    ----------
    lower, upper : Tensor, shape (B, n)
        The boxes.
    P : Tensor, shape (n, n)
    margin : Margin
        Outward widening of the result.

    Returns
    -------
    Tensor, shape (B,)
    """
    n = lower.shape[-1]
    mag = torch.maximum(lower.abs(), upper.abs())
    scale = (mag @ P.abs() * mag).sum(-1)
    if n <= 12:
        bits = torch.as_tensor(((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool))
        corners = torch.where(bits[None], upper[:, None, :], lower[:, None, :])  # (B, 2^n, n)
        vals = torch.einsum("bki,ij,bkj->bk", corners, P, corners).max(dim=1).values
    else:
        prods = torch.stack([lower[:, :, None] * lower[:, None, :], lower[:, :, None] * upper[:, None, :],
                             upper[:, :, None] * lower[:, None, :], upper[:, :, None] * upper[:, None, :]])
        hi = prods.max(dim=0).values
        lo = prods.min(dim=0).values
        sq_lo = torch.where((lower <= 0) & (upper >= 0), torch.zeros_like(lower), torch.minimum(lower**2, upper**2))
        lo = lo.clone()
        lo[:, torch.arange(n), torch.arange(n)] = sq_lo
        vals = torch.where(P > 0, P * hi, P * lo).sum(dim=(-1, -2))
    return margin.widen_upper(vals, scale + (4 * n + 8) * _U * scale)


def zonotope_max_quadratic(center: torch.Tensor, generators: torch.Tensor, P: torch.Tensor, *, margin: Margin = DEFAULT_MARGIN) -> torch.Tensor:
    """Upper bound of ``max_{ε ∈ [−1,1]^N} (c + Gε)ᵀ P (c + Gε)`` for positive semidefinite ``P``.

    For ``n = 2`` the bound is the exact maximum over the zonotope's vertices: with every
    generator turned into the upper half-plane and sorted by angle, the vertices are
    ``c − Σg + 2 Σ_{j≤k} g_(j)`` (``k = 0..N``) and their reflections through ``c``; a convex
    function attains its maximum over a polytope at a vertex. Round-off in the partial sums is
    bounded by ``e = 2(N+2) u (|c| + Σ|g|)`` per coordinate and added as
    ``2 eᵀ|P|(|c| + Σ|g|) + eᵀ|P|e``. For ``n > 2`` the maximum over the interval hull's corners is
    used (:func:`box_max_quadratic`).

    Parameters
    ----------
    center : Tensor, shape (B, n)
    generators : Tensor, shape (B, n, N)
    P : Tensor, shape (n, n)
    margin : Margin
        Outward widening of the result.

    Returns
    -------
    Tensor, shape (B,)
    """
    n = center.shape[-1]
    rad = generators.abs().sum(-1)
    if n != 2 or generators.shape[-1] == 0:
        return box_max_quadratic(center - rad, center + rad, P, margin=margin)
    g = generators.transpose(1, 2)  # (B, N, 2)
    flip = (g[..., 1] < 0) | ((g[..., 1] == 0) & (g[..., 0] < 0))
    g = torch.where(flip[..., None], -g, g)
    ang = torch.atan2(g[..., 1], g[..., 0])
    order = torch.argsort(ang, dim=1)
    gs = torch.gather(g, 1, order[..., None].expand(-1, -1, 2))
    v0 = center - gs.sum(1)
    path = torch.cat([v0[:, None, :], v0[:, None, :] + 2 * torch.cumsum(gs, dim=1)], dim=1)  # (B, N+1, 2)
    verts = torch.cat([path, 2 * center[:, None, :] - path], dim=1)
    vals = torch.einsum("bki,ij,bkj->bk", verts, P, verts).max(dim=1).values
    N = generators.shape[-1]
    s = center.abs() + rad
    e = 2 * (N + 2) * _U * s
    Pa = P.abs()
    slack = 2 * (e @ Pa * s).sum(-1) + (e @ Pa * e).sum(-1)
    scale = (s @ Pa * s).sum(-1)
    return margin.widen_upper(vals + slack, scale)


def value_change_upper(c0: torch.Tensor, r0: torch.Tensor, c1: torch.Tensor, G1: torch.Tensor, P: torch.Tensor, margin: Margin) -> torch.Tensor:
    """Upper bound of ``V(x_1) − V(x_0)`` with ``x_0 = c0 + [diag(r0), 0] z``, ``x_1 = c1 + G1 z``, ``z ∈ [−1,1]^N``.

    ``ΔV(z) = ΔV(0) + 2 (G1ᵀPc1 − G0ᵀPc0)ᵀ z + zᵀ Q z`` with ``Q = G1ᵀPG1 − G0ᵀPG0``; over the unit
    box ``zᵀQz ≤ Σ_i max(Q_ii, 0) + Σ_{i≠j} |Q_ij|`` (``z_i² ∈ [0, 1]``, ``|z_i z_j| ≤ 1``).

    Parameters
    ----------
    c0, r0 : Tensor, shape (B, n)
        Centre and radius of the box of ``x_0``.
    c1 : Tensor, shape (B, n)
        Centre of the zonotope of ``x_1``.
    G1 : Tensor, shape (B, n, N)
        Its generators (the first ``n`` are those of ``x_0``).
    P : Tensor, shape (n, n)
    margin : Margin

    Returns
    -------
    Tensor, shape (B,)
    """
    b, n, N = G1.shape
    G0 = torch.zeros_like(G1)
    G0[:, torch.arange(n), torch.arange(n)] = r0
    V0 = torch.einsum("bi,ij,bj->b", c0, P, c0)
    V1 = torch.einsum("bi,ij,bj->b", c1, P, c1)
    lin = 2 * (torch.einsum("bin,ij,bj->bn", G1, P, c1) - torch.einsum("bin,ij,bj->bn", G0, P, c0))
    Q = torch.einsum("bin,ij,bjk->bnk", G1, P, G1) - torch.einsum("bin,ij,bjk->bnk", G0, P, G0)
    diag = torch.diagonal(Q, dim1=1, dim2=2)
    quad = diag.clamp(min=0).sum(-1) + Q.abs().sum((-1, -2)) - diag.abs().sum(-1)
    upper = V1 - V0 + lin.abs().sum(-1) + quad
    mag = V0.abs() + V1.abs() + lin.abs().sum(-1) + Q.abs().sum((-1, -2))
    return margin.widen_upper(upper, mag)
