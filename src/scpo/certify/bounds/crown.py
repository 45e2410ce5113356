"""CROWN bounds of closed-loop rollouts, computed in forward (zonotope) form.

Linear relaxation based bound propagation (CROWN, Zhang et al. 2018) with the *parallel-chord*
relaxation of every activation (:func:`~.relaxation.activation_relaxation`):
``k z + β_l ≤ σ(z) ≤ k z + β_u`` on ``[l, u]`` with one slope ``k`` for both sides. Because the two
sides share the slope, the back-substitution of any output row ``cᵀ y`` through the relaxed graph
uses the same coefficients for the lower and the upper bound; it gives
``cᵀy ∈ λᵀx₀ + Σ_j a_j (β_l,j+β_u,j)/2 ± Σ_j |a_j| (β_u,j−β_l,j)/2`` where ``a_j`` is the
coefficient that reaches neuron ``j``. That is exactly what a forward propagation of the affine
form ``y = c + G_0 ε_0 + Σ_j g_j η_j`` (``ε_0`` the normalised initial state, one new symbol
``η_j ∈ [−1, 1]`` per relaxed neuron with ``g_j = (β_u,j−β_l,j)/2``) returns, so this module
computes the CROWN bounds in that forward form (a zonotope): every intermediate pre-activation
bound is the concretisation of its affine form (the CROWN intermediate bound by back-substitution
to the input box), intersected with the interval bound from the previous layer's bound. The
symbols of step ``t`` reach every later quantity only through ``φ``'s output
``Σ_j e_j η_j ∈ R^m``; with one input (``m = 1``) that is a scalar with range exactly
``[−Σ|e_j|, Σ|e_j|]``, so they are merged into one generator without changing any bound
(``n + T`` symbols instead of ``n + T·Σ hidden``). For ``m > 1`` they are kept; for two states and
many symbols the sums ``Σ_k |aᵀg_k|`` are then taken over generators sorted by angle
(:class:`_Support`).

References
----------
H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh, L. Daniel, "Efficient Neural Network Robustness
Certification with General Activation Functions", NeurIPS 2018 (CROWN).
G. Singh, T. Gehr, M. Mirman, M. Püschel, M. Vechev, "Fast and Effective Robustness Certification",
NeurIPS 2018 (zonotope propagation; the same parallel relaxations for ReLU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...numerics import Margin
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import ACTIVATIONS
from .interval import interval_affine
from .network import ClosedLoop
from .quadratic import value_change_upper, zonotope_max_quadratic
from .relaxation import activation_relaxation
from .types import DT, IntervalBounds, LinearBounds

__all__ = ["RowAffineBounds", "crown_row_affine"]

_SORT_MIN_GENERATORS = 256  # 2-D zonotopes with more generators use the sorted support function


class _Support:
    """``h(a) = Σ_k |aᵀ g_k|`` for the generators ``g_k`` of one zonotope per box, many rows ``a`` at once.

    For ``n = 2`` the generators are turned into the upper half-plane and sorted by angle once;
    the sign of ``aᵀg`` is constant on either side of the angle ``β`` of ``a`` turned by 90°, so
    ``h(a) = |aᵀ(2 S(β) − S_total)|`` with the prefix sum ``S(β)`` of the generators of angle below
    ``β`` (one binary search per row instead of ``N`` products). Round-off: generators whose angle
    is within a few ulp of ``β`` may land on the wrong side, each changing the sum by at most
    ``2|a||g| sin(δ) ≤ 50u |a||g|``, and the prefix sums carry at most ``N u Σ|g|`` per coordinate;
    ``2(N + 64) u ‖a‖₁ Σ_k ‖g_k‖₁`` is added to cover both. Otherwise ``|A G|`` is summed directly.
    """

    def __init__(self, G: torch.Tensor) -> None:
        self.G = G
        b, n, N = G.shape
        self.sorted = n == 2 and N > _SORT_MIN_GENERATORS
        if self.sorted:
            g = G.transpose(1, 2)
            flip = (g[..., 1] < 0) | ((g[..., 1] == 0) & (g[..., 0] < 0))
            g = torch.where(flip[..., None], -g, g)
            th, order = torch.sort(torch.atan2(g[..., 1], g[..., 0]), dim=1)
            gs = torch.gather(g, 1, order[..., None].expand(-1, -1, 2))
            self.theta = th.contiguous()
            self.prefix = torch.cat([g.new_zeros(b, 1, 2), torch.cumsum(gs, dim=1)], dim=1)
            self.total = self.prefix[:, -1, :]
            self.size = G.abs().sum((1, 2))
            self.N = N

    def __call__(self, A: torch.Tensor) -> torch.Tensor:
        """``Σ_k |A g_k|`` for rows ``A`` of shape (b, q, n) (or (q, n), shared): shape (b, q)."""
        if A.ndim == 2:
            A = A.expand(self.G.shape[0], -1, -1)
        if not self.sorted:
            return torch.bmm(A, self.G).abs().sum(-1)
        beta = torch.atan2(A[..., 0], -A[..., 1])
        beta = torch.where(beta < 0, beta + math.pi, beta)
        idx = torch.searchsorted(self.theta, beta.contiguous())
        S = torch.gather(self.prefix, 1, idx[..., None].expand(-1, -1, 2))
        h = (A * (2 * S - self.total[:, None, :])).sum(-1).abs()
        return h + 2 * (self.N + 64) * _U * A.abs().sum(-1) * self.size[:, None]


class _Zonotope:
    """The affine form of ``x_t``: centre ``c``, generators ``G[..., :k]`` and the map ``Λ = ∂x_t/∂x_0``."""

    def __init__(self, boxes: IntervalBounds, N: int) -> None:
        b, n = boxes.shape
        self.n = n
        self.c0 = boxes.center
        # The rounded centre may miss the true midpoint by an ulp: widen the radius to cover the box.
        self.r0 = torch.maximum(boxes.upper - self.c0, self.c0 - boxes.lower) * (1 + 4 * _U)
        self.c = self.c0.clone()
        self.G = torch.zeros(b, n, N, dtype=DT)
        self.G[:, torch.arange(n), torch.arange(n)] = self.r0
        self.k = n
        self.Lam = torch.eye(n, dtype=DT).expand(b, n, n).clone()

    @property
    def gens(self) -> torch.Tensor:
        return self.G[..., : self.k]


class _Records:
    def __init__(self) -> None:
        self.st_lo, self.st_hi, self.row_lo, self.row_hi, self.lin_x = [], [], [], [], []
        self.in_lo, self.in_hi, self.urow_lo, self.urow_hi, self.lin_u = [], [], [], [], []


def _record_state(z: _Zonotope, sup: _Support, H, margin: Margin, rec: _Records) -> None:
    c, G, k, n, Lam, c0 = z.c, z.G, z.k, z.n, z.Lam, z.c0
    rad = G[..., :k].abs().sum(-1)
    lo, hi = margin.widen(c - rad, c + rad)
    rec.st_lo.append(lo)
    rec.st_hi.append(hi)
    noise = G[..., n:k].abs().sum(-1)
    off = c - torch.einsum("bij,bj->bi", Lam, c0)
    s = margin.rel * (c.abs() + rad + torch.einsum("bij,bj->bi", Lam.abs(), c0.abs())) + margin.abs
    rec.lin_x.append((Lam.clone(), off - noise - s, off + noise + s))
    if H is not None:
        rc = c @ H.T
        a, b = margin.widen(rc - sup(H), rc + sup(H))
        rec.row_lo.append(a)
        rec.row_hi.append(b)


def _relax_residual(Ws, bs, act: str, c, sup: _Support, margin: Margin):
    """The affine form ``φ(x_t) = M x_t + d + Σ_i E_i η_i`` of the relaxed residual (M: (b, m, n))."""
    b = c.shape[0]
    M = Ws[0].expand(b, -1, -1)
    d = bs[0].expand(b, -1)
    E: list[torch.Tensor] = []
    prev_act: IntervalBounds | None = None
    for j in range(len(Ws) - 1):
        zc = torch.einsum("bhi,bi->bh", M, c) + d
        zr = sup(M)
        for Ei in E:
            zr = zr + Ei.abs().sum(-1)
        lo, hi = margin.widen(zc - zr, zc + zr)
        if prev_act is not None:  # interval bound from the previous layer's bounds
            ivb = interval_affine(Ws[j], bs[j], prev_act)
            il, ih = margin.widen(ivb.lower, ivb.upper)
            lo, hi = torch.maximum(lo, il), torch.minimum(hi, ih)
            hi = torch.maximum(hi, lo)  # both are sound; guard against crossing by round-off
        slope, bl, bu = activation_relaxation(act, lo, hi)
        fn = ACTIVATIONS[act].fn
        prev_act = IntervalBounds(*margin.widen(fn(lo), fn(hi)))
        mu, rho = (bl + bu) / 2, (bu - bl) / 2
        W = Ws[j + 1]
        WS = W[None] * slope[:, None, :]  # (b, h_next, h_j)
        M = torch.bmm(WS, M)
        d = torch.einsum("bhj,bj->bh", WS, d) + mu @ W.T + bs[j + 1]
        E = [torch.bmm(WS, Ei) for Ei in E] + [W[None] * rho[:, None, :]]
    return M, d, E


def _record_input(z: _Zonotope, sup: _Support, M, d, E, Kt, Hu, margin: Margin, rec: _Records) -> torch.Tensor:
    """Bounds of ``u_t = (K + M) x_t + d + Σ E_i η_i``; returns the noise ``Σ_i |E_i|`` (b, m)."""
    c, n, k, c0 = z.c, z.n, z.k, z.c0
    Mu = Kt[None] + M
    uc = torch.einsum("bmi,bi->bm", Mu, c) + d
    enoise = sum((Ei.abs().sum(-1) for Ei in E), torch.zeros_like(uc))
    ur = sup(Mu) + enoise
    a_, z_ = margin.widen(uc - ur, uc + ur)
    rec.in_lo.append(a_)
    rec.in_hi.append(z_)
    ulam = torch.bmm(Mu, z.Lam)
    unoise = torch.bmm(Mu, z.G[..., n:k]).abs().sum(-1) + enoise  # m rows: the direct sum is cheap
    uoff = uc - torch.einsum("bmi,bi->bm", ulam, c0)
    s_u = margin.rel * (uc.abs() + ur + torch.einsum("bmi,bi->bm", ulam.abs(), c0.abs())) + margin.abs
    rec.lin_u.append((ulam, uoff - unoise - s_u, uoff + unoise + s_u))
    if Hu is not None:
        HM = torch.einsum("qm,bmi->bqi", Hu, Mu)
        rc = uc @ Hu.T
        rr = sup(HM)
        for Ei in E:
            rr = rr + torch.einsum("qm,bmh->bqh", Hu, Ei).abs().sum(-1)
        a2, z2 = margin.widen(rc - rr, rc + rr)
        rec.urow_lo.append(a2)
        rec.urow_hi.append(z2)
    return enoise


def _advance(z: _Zonotope, M, d, E, enoise, Acl, Bt, m: int) -> None:
    """``x_{t+1} = (A_cl + B M) x_t + B d + Σ B E_i η_i``."""
    b, n = z.c.shape
    k = z.k
    Mx = Acl[None] + torch.einsum("ij,bjk->bik", Bt, M)
    z.c = torch.einsum("bij,bj->bi", Mx, z.c) + d @ Bt.T
    z.G[..., :k] = torch.bmm(Mx, z.G[..., :k])
    if m == 1:
        # Every symbol of this step reaches later quantities only through the scalar s = Σ_i E_i η_i,
        # whose range is exactly [−Σ|E|, Σ|E|]: one generator B·Σ|E| represents them without loss.
        newcols = (Bt[None] * enoise[:, None, :]) if E else z.G.new_zeros(b, n, 0)
    else:
        newcols = torch.cat([torch.einsum("ij,bjh->bih", Bt, Ei) for Ei in E], dim=-1) if E else z.G.new_zeros(b, n, 0)
    z.G[..., k : k + newcols.shape[-1]] = newcols
    z.k = k + newcols.shape[-1]
    z.Lam = torch.bmm(Mx, z.Lam)


def _linear(items, region: IntervalBounds) -> LinearBounds:
    L = torch.stack([A for A, _, _ in items], 1)
    return LinearBounds(L, torch.stack([lo for _, lo, _ in items], 1), L, torch.stack([hi for _, _, hi in items], 1), region)


def _assemble(rec: _Records, z: _Zonotope, boxes: IntervalBounds, m: int, H, Hu, Pt, vc_upper, margin: Margin) -> dict:
    b = boxes.shape[0]
    states = IntervalBounds(torch.stack(rec.st_lo, 1), torch.stack(rec.st_hi, 1))
    inputs = IntervalBounds(torch.stack(rec.in_lo, 1), torch.stack(rec.in_hi, 1)) if rec.in_lo else IntervalBounds.empty(b, 0, m)
    state_rows = IntervalBounds(torch.stack(rec.row_lo, 1), torch.stack(rec.row_hi, 1)) if H is not None else None
    if Hu is not None:
        input_rows = (IntervalBounds(torch.stack(rec.urow_lo, 1), torch.stack(rec.urow_hi, 1)) if rec.urow_lo else
                      IntervalBounds.empty(b, 0, Hu.shape[0]))
    else:
        input_rows = None
    term = zonotope_max_quadratic(z.c, z.gens, Pt, margin=margin) if Pt is not None else None
    region = IntervalBounds(boxes.lower, boxes.upper)
    return {"states": states, "inputs": inputs, "state_rows": state_rows, "input_rows": input_rows,
            "terminal_upper": term, "value_change_upper": vc_upper, "state_linear": _linear(rec.lin_x, region),
            "input_linear": _linear(rec.lin_u, region) if rec.lin_u else None}


def symbols(loop: ClosedLoop, T: int) -> int:
    """Number of symbols ``N`` of the zonotope of ``x_T`` (the initial box's ``n`` plus the relaxations')."""
    H_tot = sum(loop.network.hidden)
    return loop.n + T * (min(1, H_tot) if loop.m == 1 else H_tot)


def crown_rollout(loop: ClosedLoop, boxes: IntervalBounds, T: int, H, Hu, Pt, Pv, margin: Margin) -> dict:
    """CROWN (parallel chords, zonotope form) along ``T`` steps: the fields of :class:`RolloutBounds` but
    ``method`` and ``margin``. The arguments are those of :func:`scpo.certify.bounds.bound_rollout`,
    validated there (``H``, ``Hu``, ``Pt``, ``Pv`` as float64 tensors or None).
    """
    net = loop.network
    Ws = [torch.tensor(W, dtype=DT) for W in net.weights]
    bs = [torch.tensor(v, dtype=DT) for v in net.biases]
    act = net.structure.activation
    Acl = torch.tensor(loop.A_cl, dtype=DT)
    Bt = torch.tensor(loop.B, dtype=DT)
    Kt = torch.tensor(loop.K, dtype=DT)
    z = _Zonotope(boxes, symbols(loop, T))
    rec = _Records()
    vc_upper = None
    for t in range(T):
        sup = _Support(z.gens)
        _record_state(z, sup, H, margin, rec)
        M, d, E = _relax_residual(Ws, bs, act, z.c, sup, margin)
        enoise = _record_input(z, sup, M, d, E, Kt, Hu, margin, rec)
        _advance(z, M, d, E, enoise, Acl, Bt, loop.m)
        if t == 0 and Pv is not None:
            vc_upper = value_change_upper(z.c0, z.r0, z.c, z.gens, Pv, margin)
    _record_state(z, _Support(z.gens), H, margin, rec)
    return _assemble(rec, z, boxes, loop.m, H, Hu, Pt, vc_upper, margin)


@dataclass(frozen=True)
class RowAffineBounds:
    """Affine upper bounds of the constraint rows in the initial state, valid on each box.

    For every box ``X_i`` and every ``x_0 ∈ X_i``: ``row_r(x_0) ≤ coef[i, r] · x_0 + offset[i, r]``.

    Attributes
    ----------
    coef : Tensor, shape (B, R, n)
    offset : Tensor, shape (B, R)
        Margin already applied (see :func:`crown_row_affine`).
    magnitude : Tensor, shape (B, R)
        ``|coef|`` summed against ``|x_0|`` is bounded by the caller; this is the magnitude of the
        constant terms, kept for the caller's own rounding allowance.
    terminal_quadratic : Tensor or None, shape (B,)
        Upper bound of ``x_Tᵀ P x_T`` over the box (the exact maximum over the zonotope of
        ``x_T`` for two states), when ``P`` was given.
    """

    coef: torch.Tensor
    offset: torch.Tensor
    magnitude: torch.Tensor
    terminal_quadratic: torch.Tensor | None = None


def _affine_rows(z: _Zonotope, A: torch.Tensor, const: torch.Tensor, extra_noise: torch.Tensor, margin: Margin):
    """Rows ``A x_t + const + noise``: coefficients on ``x_0``, widened offsets and magnitudes."""
    n, k = z.n, z.k
    Lam, c, c0 = z.Lam, z.c, z.c0
    coef = torch.einsum("bqi,bij->bqj", A, Lam) if A.ndim == 3 else torch.einsum("qi,bij->bqj", A, Lam)
    Ab = A if A.ndim == 3 else A.expand(c.shape[0], -1, -1)
    base = torch.einsum("bqi,bi->bq", Ab, c) - torch.einsum("bqj,bj->bq", coef, c0) + const
    noise = torch.bmm(Ab, z.G[..., n:k]).abs().sum(-1) + extra_noise
    mag = (torch.einsum("bqi,bi->bq", Ab.abs(), c.abs()) + torch.einsum("bqj,bj->bq", coef.abs(), c0.abs())
           + const.abs() + noise)
    return coef, margin.widen_upper(base + noise, mag), mag


def crown_row_affine(loop: ClosedLoop, boxes: IntervalBounds, T: int, H: torch.Tensor, Hu: torch.Tensor,
                     HT: torch.Tensor | None, hT: torch.Tensor | None, margin: Margin,
                     P: torch.Tensor | None = None) -> RowAffineBounds:
    """Per-row affine upper bounds in ``x_0`` of every constraint row along ``T`` steps (CROWN, zonotope form).

    The zonotope of :func:`crown_rollout` writes ``x_t = c_t + Λ_t (x_0 − c_0) + G^η_t η`` with the
    relaxation symbols ``η ∈ [−1, 1]^N`` and ``Λ_t = ∂x_t/∂x_0`` of the relaxed (affine) loop, for every
    ``x_0`` of the box. A row ``aᵀx_t − b`` is then at most ``(aᵀΛ_t) x_0 + aᵀ(c_t − Λ_t c_0) + Σ_j |aᵀg^η_j| − b``;
    input rows add the current step's relaxation, ``u_t = (K + M_t) x_t + d_t + Σ_i E_i η_i``. The
    bound is affine in ``x_0``, so its maximum over any subset of the box (e.g. the box clipped to a
    region) is attained at a vertex of that subset: that is how the region certificate bounds rows
    over ``box ∩ C`` instead of over the box. The pre-activation bounds that build the relaxations
    come from the whole box (sound for every subset).

    Rows, in :class:`~scpo.systems.RowLayout` order without the terminal quadratic: state rows
    ``H x_t − h`` for ``t = 1..T`` (``t``-major), input rows ``Hu u_t − hu`` for ``t = 0..T−1``, then the
    terminal target rows ``HT x_T − hT`` when ``HT`` is given. The right-hand sides ``h``, ``hu`` are
    *not* subtracted here (the caller subtracts them; see ``offset``); ``hT`` is subtracted.

    Floating point: every offset is widened by ``margin.rel · magnitude + margin.abs`` with the
    magnitude of all terms summed into it (see :class:`scpo.numerics.Margin`).

    Parameters
    ----------
    loop : ClosedLoop
    boxes : IntervalBounds, shape (B, n)
    T : int
    H : Tensor, shape (p, n)
    Hu : Tensor, shape (q, m)
    HT : Tensor, shape (r, n), optional
    hT : Tensor, shape (r,), optional
    margin : Margin
    P : Tensor, shape (n, n), optional
        Positive semidefinite: also bound ``x_Tᵀ P x_T`` over the box.

    Returns
    -------
    RowAffineBounds
        ``R = T p + T q (+ r)`` rows.
    """
    net = loop.network
    Ws = [torch.tensor(W, dtype=DT) for W in net.weights]
    bs = [torch.tensor(v, dtype=DT) for v in net.biases]
    act = net.structure.activation
    Acl = torch.tensor(loop.A_cl, dtype=DT)
    Bt = torch.tensor(loop.B, dtype=DT)
    Kt = torch.tensor(loop.K, dtype=DT)
    z = _Zonotope(boxes, symbols(loop, T))
    b = boxes.shape[0]
    st, inp = [], []
    zero_p = torch.zeros(b, H.shape[0], dtype=DT)
    for t in range(T):
        sup = _Support(z.gens)
        if t > 0:
            st.append(_affine_rows(z, H, zero_p, zero_p, margin))
        M, d, E = _relax_residual(Ws, bs, act, z.c, sup, margin)
        Mu = Kt[None] + M
        HM = torch.einsum("qm,bmi->bqi", Hu, Mu)
        enoise_rows = sum((torch.einsum("qm,bmh->bqh", Hu, Ei).abs().sum(-1) for Ei in E),
                          torch.zeros(b, Hu.shape[0], dtype=DT))
        inp.append(_affine_rows(z, HM, d @ Hu.T, enoise_rows, margin))
        enoise = sum((Ei.abs().sum(-1) for Ei in E), torch.zeros(b, loop.m, dtype=DT))
        _advance(z, M, d, E, enoise, Acl, Bt, loop.m)
    st.append(_affine_rows(z, H, zero_p, zero_p, margin))
    parts = st + inp
    if HT is not None:
        zero_r = torch.zeros(b, HT.shape[0], dtype=DT)
        coef, off, mag = _affine_rows(z, HT, -hT.expand(b, -1), zero_r, margin)
        parts.append((coef, off, mag))
    quad = zonotope_max_quadratic(z.c, z.gens, P, margin=margin) if P is not None else None
    return RowAffineBounds(torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1),
                           torch.cat([p[2] for p in parts], 1), quad)
