"""The subspace smoothness certificate: sound curvature bounds on the bank's span (DESIGN §3, §6).

Why this is exactly the constant (★) needs
------------------------------------------
At an iterate ``θ`` the projector's inner approximation (★) evaluates ``g`` only at ``θ`` itself,
at the bank points ``θ + δ_k`` and at candidates ``θ + Dc``, and its derivation uses the
smoothness inequality only along the segments ``θ → θ + δ_k`` and ``θ → θ + Dc``. All of them lie
in the affine subspace ``θ + span(D)``. Let ``Q ∈ R^{d×m}`` be an orthonormal basis of ``span(D)``
and ``ψ_i(a) = g_i(θ + Qa)``. Every offset used is ``Δ = Qa`` with ``‖Δ‖ = ‖a‖``, and
``∇g_i(θ)ᵀΔ = ∇ψ_i(0)ᵀa``, ``∇²ψ_i(a) = Qᵀ∇²g_i(θ+Qa)Q``. Taylor's theorem with integral
remainder for ``ψ_i`` on the segment ``[0, a]`` gives

    |g_i(θ+Δ) − g_i(θ) − ∇g_i(θ)ᵀΔ| = |ψ_i(a) − ψ_i(0) − ∇ψ_i(0)ᵀa| ≤ ½ sup_{s∈[0,1]} ‖∇²ψ_i(sa)‖₂ ‖a‖²,

so if every offset (bank entries and candidate) has ``‖a‖ ≤ r`` (the ball is convex, so it contains
the segments),

    L_i ≥ L_i^sub(θ, Q, r) = sup_{‖a‖ ≤ r} ‖Qᵀ ∇²g_i(θ + Qa) Q‖₂

is all that (★) needs: ``∇g_iᵀδ_k ≤ h_ik + (L_i/2)‖δ_k‖²`` and the bound at ``Dc`` follow for those
offsets word for word as in DESIGN §3. The full Hessian ``∇²g_i`` is ``d × d`` (``d = 1,185`` on the
double integrator); ``L^sub`` is the norm of an ``m × m`` compression of it (``m ≤ 16``), which can
be far smaller — curvature in directions the bank never spans does not enter (★).
Floating point: ``Q`` spans the offsets up to a residual ``ε = max_k ‖(I − QQᵀ)δ_k‖/‖δ_k‖`` of order
``10⁻¹⁶`` (recorded); the curvature seen along such an offset exceeds ``‖∇²ψ‖`` by at most
``(2ε + ε²)`` times the full-space curvature, far below every tolerance of the projector.

Method: forward propagation through the unrolled rollout
--------------------------------------------------------
With ``θ(c) = θ + Qc`` every weight matrix is affine in ``c``: ``W_l(c) = W_l + Σ_k c_k Q^W_{l,k}``.
For one initial state, the closed loop ``x_{t+1} = M x_t + B φ(x_t; θ(c))`` (``M = A + BK``) and
the residual ``φ`` are propagated in ``c`` together with their first and second derivatives: per
layer ``z = W(c) h + b(c)``,

    ż_k  = W(c) ḣ_k + Q^W_k h + Q^b_k,
    z̈_jk = W(c) ḧ_jk + Q^W_j ḣ_k + Q^W_k ḣ_j,
    h = σ(z),  ḣ_k = σ'(z) ż_k,  ḧ_jk = σ''(z) ż_j ż_k + σ'(z) z̈_jk,

starting from ``h_0 = x_t``, ``ḣ_0 = ∂x_t/∂c`` (``n × m``), ``ḧ_0 = ∂²x_t/∂c²`` (``n × m × m``), and
in time ``J_{t+1} = M J_t + B φ̇_t``, ``H_{t+1} = M H_t + B φ̈_t``. Every quantity is a centred
interval ``v̂ ± ρ``: ``v̂`` is the plain floating-point value at ``c = 0`` (so the centre Hessian is
the ordinary one) and ``ρ`` bounds ``|v(c) − v̂|`` over the whole ball ``‖c‖ ≤ r``, including
rounding. Enclosures:

* values by the mean-value form ``z(c) ∈ z(0) ± r · sup‖ż_i‖`` (intersected with the natural
  interval extension), ``tanh``, ``tanh'``, ``tanh''`` over the resulting interval from
  :mod:`scpo.certify.intervals`, the weight perturbation by ``|ΔW_ia| ≤ r ‖Q_(ia),:‖₂``;
* correlations across time steps are kept exactly: the deviation of ``x_t``, ``J_t``, ``H_t`` from
  its centre is ``Σ_{s<t} M^{t−1−s} B (F_s − F̂_s)`` plus rounding, so its radius is
  ``Σ_s |M^{t−1−s}B| ρ(F_s)`` and, for a constraint row ``a``, ``Σ_s |a M^{t−1−s}B| ρ(F_s)``
  (never an interval step through ``M``, whose wrapping would grow like ``ρ(|M|)^t``);
* the terminal row ``xᵀPx − γ`` has Hessian ``2JᵀPJ + 2 Σ_i (Px)_i H_i``, enclosed term by term.

The bound per row is ``‖Ĥ‖₂ + ‖R‖₂`` with ``Ĥ`` the centre Hessian (``eigvalsh``, inflated for
rounding, :func:`scpo.certify.intervals.inflate_norm`) and ``R ≥ |H(c) − Ĥ|`` entrywise over the
ball (``‖R‖₂`` by Collatz–Wielandt, valid for non-negative symmetric ``R``); the recorded ``margin``
is applied last. At ``r = 0`` the bound is ``‖∇²ψ(0)‖₂`` up to rounding. Rows are aggregated as in
:mod:`scpo.certify.smoothness.certificate` (``max``: the largest underlying bound, valid for (★) on
the cone of steps described there; ``lse``: ``max_j L_j + max_j G_j²/τ`` with ``G_j ≥ sup‖∇ψ_j‖``).
Static problems (``problem.is_static``) are the case ``T = 1``, ``A = B = 0``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..._validate import as_array, check_in, check_int, check_nonnegative
from ...errors import InvalidInputError, ShapeError, UnsupportedError
from ...evidence import Claim, Level
from ...numerics import UNIT_ROUNDOFF as _U
from ...numerics import Margin
from ...policies import MLPStructure
from ...systems import ROW_AGGREGATIONS, ClosedLoopProblem, constraint_rows, rollout
from .. import intervals as iv
from ._batch import DT, finite_or_inf
from .types import SMOOTHNESS_MARGIN

__all__ = ["SUBSPACE_STATEMENT", "SubspaceCertificate", "subspace_basis", "subspace_smoothness_bounds", "subspace_certified_L",
           "subspace_row_hessians"]

SUBSPACE_STATEMENT = {
    "mlp-output": "every row ψ_i(a) = g_i(θ + Qa) = ±f_{θ+Qa}(x_j) − b satisfies sup_{‖a‖≤r} ‖Qᵀ∇²g_i(θ+Qa)Q‖₂ ≤ L_i",
    "per-row": "every rollout row ψ_i(a) = g_i(θ + Qa) satisfies sup_{‖a‖≤r} ‖Qᵀ∇²g_i(θ+Qa)Q‖₂ ≤ L_i",
    "max": ("every rollout row r_j underlying the max row g_i = max_j r_j satisfies sup_{‖a‖≤r} ‖Qᵀ∇²r_j(θ+Qa)Q‖₂ ≤ L_i; "
            "(★) for g_i is then justified for steps Δ = Σ c_k δ_k with c_k ≥ 0 and Σ c_k ≤ 1"),
    "lse": ("every log-sum-exp row g_i = τ log Σ_j exp(r_j/τ) satisfies sup_{‖a‖≤r} ‖Qᵀ∇²g_i(θ+Qa)Q‖₂ ≤ L_i, with "
            "L_i = max_j sup‖Qᵀ∇²r_jQ‖ + max_j sup‖Qᵀ∇r_j‖² / τ"),
}
"""What a :class:`SubspaceCertificate` certifies, by row mode (``Q``: the basis, ``r``: the radius)."""

_BASIS_RTOL = 1e-12


# ----------------------------------------------------------------------------- the basis
def subspace_basis(offsets: np.ndarray, *, rtol: float = _BASIS_RTOL) -> tuple[np.ndarray, float]:
    """An orthonormal basis ``Q`` of the span of bank offsets, and the residual of the offsets.

    ``Q`` holds the left singular vectors of ``Dᵀ = offsetsᵀ`` whose singular values exceed
    ``rtol`` times the largest (a numerically dependent direction is dropped; its offsets' part
    outside ``span(Q)`` is the residual).

    Parameters
    ----------
    offsets : ndarray, shape (k, d)
        The bank offsets ``δ_k`` (rows), e.g. ``Bank.offsets``.
    rtol : float
        Relative singular value cut-off.

    Returns
    -------
    basis : ndarray, shape (d, m)
        Orthonormal columns, ``1 ≤ m ≤ min(k, d)``.
    residual : float
        ``max_k ‖(I − QQᵀ)δ_k‖ / ‖δ_k‖`` over the non-zero offsets.

    Raises
    ------
    InvalidInputError
        No non-zero offset (a bank with fewer than one direction), non-finite entries.
    """
    D = as_array("offsets", offsets, ndim=2)
    norms = np.linalg.norm(D, axis=1) if D.size else np.zeros(0)
    keep = norms > 0
    if not np.any(keep):
        raise InvalidInputError(f"offsets: the subspace certificate needs a bank with at least one non-zero direction, got {D.shape[0]} "
                                "offset(s), none non-zero")
    D = D[keep]
    U, s, _ = np.linalg.svd(D.T, full_matrices=False)
    m = int(np.sum(s > rtol * s[0]))
    Q = np.ascontiguousarray(U[:, :m])
    res = D - (D @ Q) @ Q.T
    residual = float(np.max(np.linalg.norm(res, axis=1) / norms[keep]))
    return Q, residual


def _check_basis(basis: np.ndarray, d: int) -> np.ndarray:
    Q = as_array("basis", basis, ndim=2)
    if Q.shape[0] != d:
        raise ShapeError(f"basis: expected shape ({d}, m) for {d} parameters, got {Q.shape}")
    if Q.shape[1] < 1:
        raise InvalidInputError("basis: the subspace certificate needs at least one direction, got m = 0 (an empty bank)")
    G = Q.T @ Q
    dev = float(np.max(np.abs(G - np.eye(Q.shape[1]))))
    if dev > 1e-10:
        raise InvalidInputError(f"basis: expected orthonormal columns (QᵀQ = I), got max |QᵀQ − I| = {dev:.3e}; "
                                "use subspace_basis(offsets)")
    return Q


# ----------------------------------------------------------------------------- interval helpers
def _sl(mag: torch.Tensor, n: int = 1) -> torch.Tensor:
    return iv.rounding_slack(mag, n)


def _up(x: torch.Tensor, n: int = 1) -> torch.Tensor:
    """``x`` rounded up: a computed non-negative sum of ``n`` terms inflated by ``(n + 4) u`` (plus TINY)."""
    return x * (1.0 + (n + 4) * _U) + iv.TINY


def _fro(X: torch.Tensor) -> torch.Tensor:
    """Frobenius norms over the last two dimensions, rounded up (a bound on the spectral norm)."""
    return _up(torch.linalg.vector_norm(X, dim=(-2, -1)), X.shape[-1] * X.shape[-2])


def _vnorm(X: torch.Tensor) -> torch.Tensor:
    """Euclidean norms over the last dimension, rounded up."""
    return _up(torch.linalg.vector_norm(X, dim=-1), X.shape[-1])


def _cw(N: torch.Tensor) -> torch.Tensor:
    """Spectral-norm bound of entrywise non-negative matrices (…, m, m), symmetrised first (Collatz–Wielandt)."""
    shape, m = N.shape[:-2], N.shape[-1]
    N = torch.maximum(N, N.transpose(-1, -2))
    return iv.collatz_wielandt_bound(N.reshape(-1, m, m), iters=12).reshape(shape)


def _spec(X: torch.Tensor) -> torch.Tensor:
    """Sound upper bound on the spectral norm of matrices (…, p, q): ``√λ_max`` of the smaller Gram matrix.

    The Gram matrix carries the rounding ``|fl(XᵀX) − XᵀX| ≤ γ_n |X|ᵀ|X|``, whose spectral norm is at
    most ``γ_n ‖X‖_F²``; ``eigvalsh`` is inflated by :func:`~scpo.certify.intervals.inflate_norm`.
    """
    p, q = X.shape[-2], X.shape[-1]
    if X.numel() == 0:
        return torch.zeros(X.shape[:-2], dtype=X.dtype, device=X.device)
    G = X.transpose(-1, -2) @ X if q <= p else X @ X.transpose(-1, -2)
    k = min(p, q)
    lam = torch.linalg.eigvalsh(G.reshape(-1, k, k))[..., -1].clamp(min=0.0).reshape(X.shape[:-2])
    fro2 = (X * X).sum((-2, -1))
    return torch.sqrt(iv.inflate_norm(lam, k) + (max(p, q) + 4) * _U * 2.0 * fro2) * (1 + 2 * _U) + iv.TINY


def _spec_nonneg(X: torch.Tensor) -> torch.Tensor:
    """Sound upper bound on the spectral norm of entrywise non-negative matrices (…, p, q) (Collatz–Wielandt of the Gram)."""
    p, q = X.shape[-2], X.shape[-1]
    G = X.transpose(-1, -2) @ X if q <= p else X @ X.transpose(-1, -2)
    G = _up(G, max(p, q))
    return torch.sqrt(_cw(G)) * (1 + 2 * _U) + iv.TINY


def _recentre(p: torch.Tensor, mid: torch.Tensor, rad: torch.Tensor) -> torch.Tensor:
    """Radius about the point value ``p`` of an interval ``mid ± rad`` (so that ``p ± ρ ⊇ mid ± rad``)."""
    up, dn = mid + rad, mid - rad
    r = torch.maximum(up - p, p - dn).clamp(min=0.0)
    return r + _sl(up.abs() + dn.abs() + p.abs(), 2)


class _Layer:
    """One affine layer ``z = W(c) h + b(c)`` with its subspace directions (fixed tensors)."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor, Qw: torch.Tensor, Qb: torch.Tensor) -> None:
        n_out, n_in, m = Qw.shape
        self.n_out, self.n_in, self.m = n_out, n_in, m
        self.W, self.Wabs, self.b = W, W.abs(), b
        self.Wrow1 = self.Wabs.sum(-1)
        Qp = Qw.permute(0, 2, 1).reshape(n_out * m, n_in).contiguous()  # row (i, k) = Q^W[i, :, k]
        self.Qp, self.Qpabs = Qp, Qp.abs()
        self.Qprow1 = self.Qpabs.sum(-1)
        self.Qc = Qw.permute(1, 0, 2).reshape(n_in, n_out * m).contiguous()  # column (i, j) = Q^W[i, :, j]
        self.Qprow1_norm = torch.linalg.vector_norm(self.Qprow1.reshape(n_out, m), dim=-1)  # ‖(‖Q^W[i, :, j]‖₁)_j‖
        self.Qa = Qw.reshape(n_out, n_in * m).contiguous()  # adjoint side: (adj Q^W)[a, j] = Σ_i adj_i Q^W[i, a, j]
        self.Qa_abs = self.Qa.abs()
        self.Qb = Qb
        self.rhoW = _up(torch.linalg.vector_norm(Qw, dim=-1), m)  # ‖Q^W[i, a, :]‖: |ΔW_ia| ≤ r ρW_ia
        self.rhob = _up(torch.linalg.vector_norm(Qb, dim=-1), m)

    def lin(self, Vm: torch.Tensor, Vr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W V`` for an interval ``V`` of shape (S, n_in, K): (S, n_out, K)."""
        mid = self.W @ Vm
        rad = self.Wabs @ Vr
        mag = self.Wrow1[:, None] * (Vm.abs() + Vr).amax(-2, keepdim=True)
        return mid, rad + _sl(mag + rad, self.n_in)

    def pert_cs(self, Vm: torch.Tensor, Vr: torch.Tensor, r: float) -> torch.Tensor:
        """Bound on ``|ΔW(c) V|`` over the ball for ``V`` (S, n_in, K): (S, n_out, K).

        ``(ΔW V)_{ik} = Σ_j c_j (Q^W_j V̂)_{ik} + (ΔW (V − V̂))_{ik}``, so by Cauchy–Schwarz in ``c``
        ``≤ r ‖(Q^W_j V̂)_{ik}‖_j + r Σ_a ρW_ia ρ_ak`` (``ρW_ia = ‖Q^W_{ia,:}‖``).
        """
        S, K = Vm.shape[0], Vm.shape[-1]
        if r == 0.0:
            return torch.zeros((S, self.n_out, K), dtype=Vm.dtype, device=Vm.device)
        T = (Vm.transpose(-1, -2) @ self.Qc).reshape(S, K, self.n_out, self.m)  # T[s, k, i, j] = Σ_a V̂[s, a, k] Q^W[i, a, j]
        # its rounding: |error| ≤ γ Σ_a |Q^W[i, a, j]| |V̂[a, k]| ≤ γ ‖Q^W[i, :, j]‖₁ max_a |V̂[a, k]|
        err = _sl(Vm.abs().amax(-2)[:, None, :] * self.Qprow1_norm[None, :, None], self.n_in)
        cs = torch.linalg.vector_norm(T, dim=-1).transpose(-1, -2) + err
        return r * _up(cs + self.rhoW @ Vr, self.n_in + self.m)

    def forward(self, h, h0r, hp, r: float):
        """Value and first-derivative enclosures of ``z`` over the ball ``‖c‖ ≤ r``.

        ``h``: (S, n_in) centre and radius; ``h0r``: radius of ``h(0)`` (rounding only); ``hp``:
        (S, n_in, m) centre and entrywise radius. Returns ``z``, ``z0r`` and ``ż`` alike.
        """
        S, m, n_in = h[0].shape[0], self.m, self.n_in
        hm, hr = h
        hpm, hpr = hp
        # ż_k = W(c) ḣ_k + Q^W_k h + Q^b_k
        a = self.lin(hpm, hpr)
        qm = (self.Qp @ hm[..., None]).reshape(S, self.n_out, m)
        qr = (self.Qpabs @ hr[..., None]).reshape(S, self.n_out, m)
        qmag = (self.Qprow1 * (hm.abs() + hr).amax(-1, keepdim=True)).reshape(S, self.n_out, m)
        zpm = a[0] + qm + self.Qb
        zpr = a[1] + qr + self.pert_cs(hpm, hpr, r) + _sl(qmag + qr + a[0].abs() + a[1] + self.Qb.abs(), n_in + 3)
        # value: natural extension ∩ mean-value form
        vm, vr = self.lin(hm[..., None], hr[..., None])
        zm = vm[..., 0] + self.b
        zr = vr[..., 0] + _sl(zm.abs() + self.b.abs(), 2)
        _, v0r = self.lin(hm[..., None], h0r[..., None])
        z0r = v0r[..., 0] + _sl(zm.abs() + self.b.abs(), 2)
        if r > 0.0:
            # ΔW h + Δb = Σ_k c_k (Q^W_k h + Q^b_k): Cauchy–Schwarz in c on the centre, entrywise on the radius of h
            zr = zr + r * _up(_vnorm(qm + self.Qb) + _vnorm(_sl(qmag + self.Qb.abs(), n_in + 2)) + hr @ self.rhoW.T, 3)
            zr = torch.minimum(zr, z0r + r * _vnorm(zpm.abs() + zpr))
        else:
            zr = torch.minimum(zr, z0r)
        return (zm, zr), z0r, (zpm, zpr)

    def adjoint(self, am: torch.Tensor, ar: torch.Tensor, r: float, Um: torch.Tensor, Uslack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``a W(c)`` over the ball for an interval row vector ``a`` (S, mu, n_out): (S, mu, n_in).

        ``a ΔW = Σ_k c_k (â Q^W_k) + (a − â) ΔW``: ``≤ r ‖Û_a‖ + r Σ_i ρ(a)_i ρW_ia`` with ``Û = â Q^W``
        (n_in × m, from :meth:`sources`).
        """
        mid = am @ self.W
        rad = ar @ self.Wabs
        mag = (am.abs() + ar) @ self.Wabs
        if r > 0.0:
            rad = rad + r * _up(_vnorm(Um) + _vnorm(Uslack) + ar @ self.rhoW, self.n_out)
        return mid, rad + _sl(mag + rad, self.n_out)

    def source(self, am: torch.Tensor, ar: torch.Tensor, hp) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The second-order source of this layer seen at the output: ``Σ_i a_i (Q^W_{i,:,j}ᵀ ḣ_k + (j↔k))``.

        Equals ``Uᵀḣ + ḣᵀU`` with ``U = a Q^W`` (n_in × m). Returns the centre (S, mu, m, m), a
        spectral bound (S, mu) of its deviation over the ball, and ``Û`` with the bound on its
        rounding (both (S, mu, n_in, m), for :meth:`adjoint`).
        """
        S, mu = am.shape[:2]
        n_in, m = self.n_in, self.m
        Um = (am @ self.Qa).reshape(S, mu, n_in, m)
        Uslack = _sl((am.abs() @ self.Qa_abs).reshape(S, mu, n_in, m), self.n_out)
        Ur = (ar @ self.Qa_abs).reshape(S, mu, n_in, m)
        Ur = Ur + _sl(((am.abs() + ar) @ self.Qa_abs).reshape(S, mu, n_in, m), self.n_out)
        hpm, hpr = hp
        G = torch.einsum("soaj,sak->sojk", Um, hpm)
        Ua = Um.abs()
        # UᵀḢ − ÛᵀḢ̂ = E_Uᵀ Ḣ + Ûᵀ E_H: entrywise (|E_U|ᵀ(|Ḣ̂| + ρ_H) + |Û|ᵀρ_H, Collatz–Wielandt) or by
        # spectral norms (‖ρ_U‖(‖Ḣ̂‖ + ‖ρ_H‖) + ‖Û‖‖ρ_H‖, free of the sign loss of |Û|); the smaller holds
        N = torch.einsum("soaj,sak->sojk", Ur, hpm.abs() + hpr) + torch.einsum("soaj,sak->sojk", Ua, hpr)
        nH, nrH = _spec(hpm)[:, None], _spec_nonneg(hpr)[:, None]
        alt = _spec_nonneg(Ur) * (nH + nrH) + _spec(Um) * nrH
        dev = torch.minimum(_cw(N), alt)
        rounding = _sl(_fro(Um) * _fro(hpm)[:, None], n_in)  # entries of fl(ÛᵀḢ̂) are off by ≤ γ Σ|Û||Ḣ̂|
        return G + G.transpose(-1, -2), _up(2.0 * (dev + rounding), 2), Um, Uslack


def _activation(enc: iv.ActivationEnclosure, act, z, z0r, zp):
    """``h = σ(z)``, ``ḣ = σ'(z) ż`` and the enclosures of ``σ'``, ``σ''`` (point values from ``scpo.policies.ACTIVATIONS``)."""
    zm, zr = z
    vm, vr, lo, hi = enc.value(zm, zr)
    p = act.fn(zm)
    hr = _recentre(p, vm, vr)
    h0r = z0r * (act.d1_max * (1 + 2 * _U)) + _sl(p.abs(), 8)  # |σ(z(0)) − fl σ(ẑ)| ≤ sup|σ'| |z(0) − ẑ| + rounding
    d1m, d1r = enc.d1(lo, hi)
    p1 = act.d1(zm)
    r1 = _recentre(p1, d1m, d1r)
    d2m, d2r = enc.d2(lo, hi)
    p2 = act.d2(zm)
    r2 = _recentre(p2, d2m, d2r)
    hp = iv.interval_mul(p1[..., None], r1[..., None], *zp)
    return (p, hr), h0r, hp, (p1, r1), (p2, r2)


def _mlp(layers: list[_Layer], enc, act, x, x0r, J, H, r: float):
    """``φ(x_t(c); θ(c))``, its first derivative (entrywise) and second derivative in ``c`` over the ball.

    Forward: values and first derivatives layer by layer. Second derivative by adjoints: the
    forward recursion ``z̈_l = W_l(c) ḧ_{l−1} + S_l``, ``ḧ_l = σ'_l z̈_l + σ''_l ż_l ż_lᵀ`` is linear in
    ``(z̈, ḧ)`` with sources ``S_l = Q^W_j ḣ_k + Q^W_k ḣ_j`` and ``σ''_l ż_l ż_lᵀ``, so

        φ̈ = Σ_l Σ_i ā_{l,i} S_{l,i} + Σ_{l<L} Σ_i b̄_{l,i} σ''_{l,i} ż_{l,i} ż_{l,i}ᵀ + b̄_0 · H_t,

    with ``ā_l = ∂φ/∂z_l`` and ``b̄_l = ∂φ/∂h_l`` (backpropagation through ``W(c)``, ``σ'(z(c))``,
    enclosed over the ball; ``b̄_0 = ∂φ/∂x``). Each term is an ``m × m`` matrix per state: centre
    ``T̂`` and a spectral bound of ``T(c) − T̂`` (Collatz–Wielandt of an entrywise bound matrix).

    ``H`` is ``(centre (S, n, m, m), spectral radius (S, n), centre Frobenius norms (S, n))``.
    Returns ``φ`` (S, mu) interval, ``φ(0)`` radius, ``φ̇`` (S, mu, m) interval and
    ``(φ̈ centre (S, mu, m, m), spectral radius (S, mu), centre Frobenius norms (S, mu))``.
    """
    L = len(layers)
    h, h0r, hp = x, x0r, J
    cache = []
    for li, layer in enumerate(layers):
        hp_in = hp
        z, z0r, zp = layer.forward(h, h0r, hp, r)
        if li < L - 1:
            h, h0r, hp, d1, d2 = _activation(enc, act, z, z0r, zp)
            cache.append((hp_in, zp, d1, d2))
        else:
            cache.append((hp_in, zp, None, None))
            phi, phi0r, phip = z, z0r, zp
    S, mu = phi[0].shape
    dev, dt = phi[0].device, phi[0].dtype
    am = torch.eye(mu, dtype=dt, device=dev).expand(S, mu, mu)
    ar = torch.zeros_like(am)
    mid = torch.zeros(S, mu, layers[0].m, layers[0].m, dtype=dt, device=dev)
    rad = torch.zeros(S, mu, dtype=dt, device=dev)
    mag = torch.zeros(S, mu, dtype=dt, device=dev)
    for l in range(L - 1, -1, -1):
        layer = layers[l]
        hp_in, _, _, _ = cache[l]
        Sm, Sr, Um, Us = layer.source(am, ar, hp_in)
        mid, rad, mag = mid + Sm, rad + Sr, mag + _fro(Sm)
        bm, br = layer.adjoint(am, ar, r, Um, Us)  # ∂φ/∂h_{l−1}
        if l >= 1:
            _, Zp, (p1, r1), (p2, r2) = cache[l - 1]
            Zm, Zr = Zp
            wm, wr = iv.interval_mul(bm, br, p2[:, None, :], r2[:, None, :])  # b̄ σ''  (S, mu, n)
            Rm = torch.einsum("saj,soa,sak->sojk", Zm, wm, Zm)
            Za, wa = Zm.abs(), wm.abs()
            B1 = Za + Zr
            N = (torch.einsum("saj,soa,sak->sojk", Za, wa, Zr) + torch.einsum("saj,soa,sak->sojk", Zr, wa, B1)
                 + torch.einsum("saj,soa,sak->sojk", B1, wr, B1))
            # by spectral norms: ŻᵀDŻ − ẐᵀD̂Ẑ = Ẑᵀ(D − D̂)Ẑ + EᵀDẐ + ẐᵀDE + EᵀDE with D = diag(w), |E| ≤ ρ_Z
            nZ, nrZ = _spec(Zm)[:, None], _spec_nonneg(Zr)[:, None]
            wmax = (wa + wr).amax(-1)
            dD = torch.minimum(_cw(torch.einsum("saj,soa,sak->sojk", Za, wr, Za)), wr.amax(-1) * nZ * nZ)
            DZ = _spec(wm[..., None] * Zm[:, None]) + _spec_nonneg(wr[..., None] * Za[:, None])
            alt = dD + 2.0 * nrZ * DZ + nrZ * nrZ * wmax
            rounding = _sl(_fro(Zm * wa.amax(1)[..., None]) * _fro(Zm), Zm.shape[1])[:, None] * 2.0
            mid, rad, mag = mid + Rm, rad + _up(torch.minimum(_cw(N), alt) + rounding, 3), mag + _fro(Rm)
            am, ar = iv.interval_mul(bm, br, p1[:, None, :], r1[:, None, :])  # ∂φ/∂z_{l−1}
        else:
            Hm, Hr, HF = H
            Im = torch.einsum("soa,sajk->sojk", bm, Hm)
            mid = mid + Im
            rad = rad + (bm.abs() * Hr[:, None, :] + br * (HF + Hr)[:, None, :]).sum(-1) + _sl((bm.abs() * HF[:, None, :]).sum(-1), Hm.shape[1])
            mag = mag + _fro(Im)
    rad = _up(rad + _sl(mag, 2 * L + 2), 2 * L + 2)
    return phi, phi0r, phip, (mid, rad, _fro(mid))


# ----------------------------------------------------------------------------- closed-loop constants
def _power_enclosures(M: np.ndarray, Mr: np.ndarray, B: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """``M_true^k B ∈ Y_k ± Yr_k`` for ``k = 0 … T`` (``M_true ∈ M ± Mr``), as (T+1, n, mu) arrays."""
    n = M.shape[0]
    Ys, Yrs = [B.copy()], [np.zeros_like(B)]
    Mabs = np.abs(M)
    for _ in range(T):
        Y, Yr = Ys[-1], Yrs[-1]
        Yn = M @ Y
        mag = Mabs @ (np.abs(Y) + Yr) + Mr @ (np.abs(Y) + Yr)
        Yrn = Mabs @ Yr + Mr @ (np.abs(Y) + Yr) + (n + 4) * _U * mag + iv.TINY
        Ys.append(Yn)
        Yrs.append(Yrn * (1 + 8 * _U))
    return np.stack(Ys), np.stack(Yrs)


def _functional_coef(a: np.ndarray, Y: np.ndarray, Yr: np.ndarray) -> np.ndarray:
    """Upper bounds of ``|a M^k B|`` for rows ``a`` (p, n): (T+1, p, mu)."""
    n = a.shape[-1]
    mid = np.einsum("pn,knu->kpu", a, Y)
    mag = np.einsum("pn,knu->kpu", np.abs(a), np.abs(Y) + Yr)
    return (np.abs(mid) + np.einsum("pn,knu->kpu", np.abs(a), Yr) + (n + 4) * _U * mag) * (1 + 8 * _U) + iv.TINY


@dataclass
class _Loop:
    """Tensors of one closed loop on a device (built once per call)."""

    M: torch.Tensor
    Mabs_up: torch.Tensor  # ≥ |M_true|
    Mr: torch.Tensor  # |M_true − M| ≤ Mr
    B: torch.Tensor
    Babs: torch.Tensor
    K: torch.Tensor
    Hx: torch.Tensor
    Hu: torch.Tensor
    HuK: torch.Tensor
    HuK_abs_up: torch.Tensor  # ≥ |Hu K|
    HuK_r: torch.Tensor  # |Hu K − fl(Hu K)| ≤ HuK_r
    Y: torch.Tensor  # (T+1, n, mu): M^k B ∈ Y ± Yr
    Yr: torch.Tensor
    C: torch.Tensor  # (T+1, n, mu) ≥ |M^k B|
    CHx: torch.Tensor  # (T+1, p, mu) ≥ |Hx M^k B|
    CHuK: torch.Tensor  # (T+1, q, mu) ≥ |Hu K M^k B|
    P: torch.Tensor | None
    Pabs: torch.Tensor | None


def _loop(problem: ClosedLoopProblem, device) -> _Loop:
    A, B, K = (np.array(v, dtype=float) for v in (problem.A, problem.B, problem.K))
    Hx, Hu = np.array(problem.Hx, dtype=float).reshape(-1, problem.n), np.array(problem.Hu, dtype=float).reshape(-1, problem.m)
    n, mu = B.shape
    T = problem.horizon
    M = A + B @ K
    Mr = (mu + 4) * _U * (np.abs(A) + np.abs(B) @ np.abs(K)) + iv.TINY  # M_true = A + BK ∈ M ± Mr
    Y, Yr = _power_enclosures(M, Mr, B, T)
    C = (np.abs(Y) + Yr) * (1 + 4 * _U)
    HuK = Hu @ K
    HuK_r = (n + 4) * _U * (np.abs(Hu) @ np.abs(K)) + iv.TINY
    CHx = _functional_coef(Hx, Y, Yr) if Hx.shape[0] else np.zeros((T + 1, 0, mu))
    CHuK = _functional_coef(HuK, Y, Yr) + np.einsum("qn,knu->kqu", HuK_r, np.abs(Y) + Yr) * (1 + 8 * _U)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=DT, device=device)  # noqa: E731
    P = np.array(problem.P, dtype=float) if problem.has_terminal else None
    return _Loop(M=t(M), Mabs_up=t((np.abs(M) + Mr) * (1 + 4 * _U)), Mr=t(Mr), B=t(B), Babs=t(np.abs(B)), K=t(K), Hx=t(Hx), Hu=t(Hu),
                 HuK=t(HuK), HuK_abs_up=t((np.abs(HuK) + HuK_r) * (1 + 4 * _U)), HuK_r=t(HuK_r), Y=t(Y), Yr=t(Yr), C=t(C), CHx=t(CHx),
                 CHuK=t(CHuK), P=None if P is None else t(P), Pabs=None if P is None else t(np.abs(P)))


def _superpose(coef: torch.Tensor, store: torch.Tensor, t: int) -> torch.Tensor:
    """``Σ_{u<t} coef[t−1−u] · store[:, u]``: coef (T+1, a, mu), store (S, T, mu, *X) → (S, a, *X) (zeros for t = 0)."""
    S, X = store.shape[0], store.shape[3:]
    if t == 0:
        return torch.zeros((S, coef.shape[1], *X), dtype=store.dtype, device=store.device)
    F = store[:, :t]  # (S, t, mu, *X)
    c = coef[:t].flip(0)  # c[u] = coef[t−1−u]
    mu = F.shape[2]
    out = torch.einsum("uao,suox->sax", c, F.reshape(S, t, mu, -1))
    return _up(out, t * mu).reshape(S, c.shape[1], *X)


def _time_step(lp: _Loop, V: torch.Tensor, F: torch.Tensor, E: torch.Tensor, Vabs: torch.Tensor, Fabs: torch.Tensor):
    """Centre ``V̂_{t+1} = M V̂ + B F̂`` and the bound ``E_{t+1}`` on its accumulated rounding.

    ``V`` (S, n, *X), ``F`` (S, mu, *X); ``E``, ``Vabs``, ``Fabs`` are magnitudes per entry, or per
    state component for matrices (then ``Vabs``, ``Fabs`` are Frobenius norms): the error obeys
    ``e_{t+1} = M_true e_t + (M_true − M) V̂ + (rounding of M V̂ + B F̂)``.
    """
    S, n, mu = V.shape[0], V.shape[1], F.shape[1]
    Vn = (lp.M @ V.reshape(S, n, -1) + lp.B @ F.reshape(S, mu, -1)).reshape(V.shape)
    sh = E.shape
    Ef, Va, Fa = E.reshape(S, n, -1), Vabs.reshape(S, n, -1), Fabs.reshape(S, mu, -1)
    mag = lp.Mabs_up @ Va + lp.Babs @ Fa
    En = _up(lp.Mabs_up @ Ef + lp.Mr @ Va + (n + mu + 4) * _U * mag, n + 2)
    return Vn, En.reshape(sh)


def _eig_norms(mid: torch.Tensor) -> torch.Tensor:
    """``‖Ĥ‖₂`` of the symmetrised centre matrices (…, m, m), inflated for the rounding of ``eigvalsh``."""
    m = mid.shape[-1]
    shape = mid.shape[:-2]
    if mid.numel() == 0:
        return torch.zeros(shape, dtype=mid.dtype, device=mid.device)
    sym = (mid + mid.transpose(-1, -2)) / 2
    ev = torch.linalg.eigvalsh(sym.reshape(-1, m, m)).abs().amax(-1)
    return iv.inflate_norm(ev, m).reshape(shape)


def _asym(mid: torch.Tensor) -> torch.Tensor:
    """``‖(Ĥ − Ĥᵀ)/2‖_F``: what the symmetrisation of a computed centre drops (rounding only)."""
    return _fro((mid - mid.transpose(-1, -2)) / 2)


def _chunk(structure, lp: _Loop, layers: list[_Layer], enc, x0: torch.Tensor, r: float, T: int, layout, want_grad: bool,
           lse_weights: torch.Tensor | None, keep_mid: bool = False) -> dict[str, torch.Tensor]:
    """Bounds for every row of the rollouts from ``x0`` (S, n): centre and radius norms, (S, R) each
    (and the centre Hessians (S, R, m, m) with ``keep_mid``)."""
    S, n = x0.shape
    m = layers[0].m
    mu = lp.B.shape[1]
    dev, dt = x0.device, x0.dtype
    p, q = layout.state_rows, layout.input_rows
    R = layout.n_rows
    act = structure.act
    centre = torch.zeros(S, R, dtype=dt, device=dev)
    radn = torch.zeros(S, R, dtype=dt, device=dev)
    grad = torch.zeros(S, R, dtype=dt, device=dev) if want_grad else None
    mids = torch.zeros(S, R, m, m, dtype=dt, device=dev) if keep_mid else None
    with_g = want_grad or lse_weights is not None
    lse = None
    if lse_weights is not None:
        lse = {"H": torch.zeros(S, m, m, dtype=dt, device=dev), "g1": torch.zeros(S, m, dtype=dt, device=dev),
               "g2": torch.zeros(S, m, m, dtype=dt, device=dev)}
    # centres and rounding bounds of x, J (entrywise) and H (per state component, spectral)
    xm = x0.clone()
    Jm = torch.zeros(S, n, m, dtype=dt, device=dev)
    Hm = torch.zeros(S, n, m, m, dtype=dt, device=dev)
    Ex, EJ, EH = torch.zeros_like(xm), torch.zeros_like(Jm), torch.zeros(S, n, dtype=dt, device=dev)
    HF = torch.zeros(S, n, dtype=dt, device=dev)  # ‖Ĥ_t,i‖_F
    # radii of φ, φ(0), φ̇ (entrywise) and φ̈ (spectral) per step: the sources of every later deviation
    phr = torch.zeros(S, T, mu, dtype=dt, device=dev)
    ph0r = torch.zeros_like(phr)
    phpr = torch.zeros(S, T, mu, m, dtype=dt, device=dev)
    phppP = torch.zeros(S, T, mu, dtype=dt, device=dev)

    def put(idx: slice, mid, rad, gm=None, gr=None):
        centre[:, idx] = _eig_norms(mid)
        radn[:, idx] = _up(rad + _asym(mid), 2)
        if mids is not None:
            mids[:, idx] = (mid + mid.transpose(-1, -2)) / 2
        if want_grad:
            grad[:, idx] = _vnorm(gm.abs() + gr)
        if lse is not None:
            w = lse_weights[:, idx]
            lse["H"].add_(torch.einsum("sr,srjk->sjk", w, (mid + mid.transpose(-1, -2)) / 2))
            lse["g1"].add_(torch.einsum("sr,srj->sj", w, gm))
            lse["g2"].add_(torch.einsum("sr,srj,srk->sjk", w, gm, gm))

    for t in range(T + 1):
        # radii of x_t, J_t, H_t: superposition over the earlier steps plus rounding
        Jr = _superpose(lp.C, phpr, t) + EJ
        Hr = _superpose(lp.C, phppP, t) + EH
        x0r = _superpose(lp.C, ph0r, t) + Ex
        xr = _superpose(lp.C, phr, t) + Ex
        xr = torch.minimum(xr, x0r + r * _vnorm(Jm.abs() + Jr)) if r > 0.0 else torch.minimum(xr, x0r)
        if t >= 1 and p:  # state rows Hx x_t − hx
            mid = torch.einsum("pn,snjk->spjk", lp.Hx, Hm)
            rad = _superpose(lp.CHx, phppP, t) + EH @ lp.Hx.abs().T + _sl(HF @ lp.Hx.abs().T, n)
            gm = gr = None
            if with_g:
                gm = torch.einsum("pn,snj->spj", lp.Hx, Jm)
                gmag = torch.einsum("pn,snj->spj", lp.Hx.abs(), Jm.abs() + EJ)
                gr = _superpose(lp.CHx, phpr, t) + torch.einsum("pn,snj->spj", lp.Hx.abs(), EJ) + _sl(gmag, n)
            put(slice((t - 1) * p, t * p), mid, rad, gm, gr)
        if t == T:
            break
        # the residual network at x_t over the ball
        (phm, phrr), h0r, (phpm, phprr), (phppm, phP, phF) = _mlp(layers, enc, act, (xm, xr), x0r, (Jm, Jr), (Hm, Hr, HF), r)
        phr[:, t], ph0r[:, t], phpr[:, t], phppP[:, t] = phrr, h0r, phprr, phP
        if q:  # input rows Hu (K x_t + φ_t) − hu
            mid = torch.einsum("qn,snjk->sqjk", lp.HuK, Hm) + torch.einsum("qo,sojk->sqjk", lp.Hu, phppm)
            rad = (_superpose(lp.CHuK, phppP, t) + EH @ lp.HuK_abs_up.T + HF @ lp.HuK_r.T + phP @ lp.Hu.abs().T
                   + _sl(HF @ lp.HuK_abs_up.T + phF @ lp.Hu.abs().T, n + mu))
            gm = gr = None
            if with_g:
                gm = torch.einsum("qn,snj->sqj", lp.HuK, Jm) + torch.einsum("qo,soj->sqj", lp.Hu, phpm)
                gmag = torch.einsum("qn,snj->sqj", lp.HuK_abs_up, Jm.abs() + EJ) + torch.einsum("qo,soj->sqj", lp.Hu.abs(), phpm.abs() + phprr)
                gr = (_superpose(lp.CHuK, phpr, t) + torch.einsum("qn,snj->sqj", lp.HuK_abs_up, EJ)
                      + torch.einsum("qn,snj->sqj", lp.HuK_r, Jm.abs()) + torch.einsum("qo,soj->sqj", lp.Hu.abs(), phprr) + _sl(gmag, n + mu))
            base = T * p + t * q
            put(slice(base, base + q), mid, rad, gm, gr)
        # centres and rounding bounds at t + 1
        xm, Ex = _time_step(lp, xm, phm, Ex, xm.abs(), phm.abs())
        Jm, EJ = _time_step(lp, Jm, phpm, EJ, Jm.abs(), phpm.abs())
        Hm, EH = _time_step(lp, Hm, phppm, EH, HF, phF)
        HF = _fro(Hm)
    if layout.terminal:
        _terminal(lp, xm, xr, Jm, Jr, Hm, Hr, HF, EH, phppP, T, R - 1, put, with_g)
    out = {"centre": centre, "radius": radn}
    if mids is not None:
        out["mid"] = mids
    if want_grad:
        out["gradient"] = grad
    if lse is not None:
        out.update({f"lse_{k}": v for k, v in lse.items()})
    return out


def _terminal(lp: _Loop, xm, xr, Jm, Jr, Hm, Hr, HF, EH, phppP, T, idx, put, with_grad):
    """The terminal row ``x_TᵀPx_T − γ``: Hessian ``2JᵀPJ + 2Σ_i (Px)_i H_i`` and gradient ``2JᵀPx``.

    ``‖JᵀPJ − ĴᵀPĴ‖ ≤ ‖ρᵀ|PĴ| + |PĴ|ᵀρ + ρᵀ|P|ρ‖`` (entrywise ``|J − Ĵ| ≤ ρ``; Collatz–Wielandt of
    that non-negative matrix), and ``‖Σ v_i H_i − Σ v̂_i Ĥ_i‖ ≤ Σ_u |v̂ M^{T−1−u} B| P_u + |v̂|·E +
    Σ_i ρ(v)_i (‖Ĥ_i‖ + ρ(H)_i)`` with ``v = P x_T``.
    """
    P, Pabs = lp.P, lp.Pabs
    S, n = xm.shape
    PJ = P @ Jm  # (S, n, m)
    PJabs = PJ.abs() + _sl(Pabs @ Jm.abs(), n)
    A1 = Jm.transpose(-1, -2) @ PJ
    mag1 = Jm.abs().transpose(-1, -2) @ PJabs
    R1 = Jr.transpose(-1, -2) @ PJabs + PJabs.transpose(-1, -2) @ Jr + Jr.transpose(-1, -2) @ (Pabs @ Jr) + _sl(mag1, n)
    r1 = _cw(R1)
    v = xm @ P.T  # (S, n) = P x̂_T
    vr = xr @ Pabs.T + _sl(xm.abs() @ Pabs.T, n)
    A2 = torch.einsum("si,sijk->sjk", v, Hm)
    coef = _up(torch.einsum("si,kiu->sku", v, lp.Y).abs() + torch.einsum("si,kiu->sku", v.abs(), lp.Yr)
               + _sl(torch.einsum("si,kiu->sku", v.abs(), lp.Y.abs() + lp.Yr), n), 2)  # ≥ |v̂ M^k B|
    sup = torch.einsum("suo,suo->s", coef[:, :T].flip(1), phppP) if T else torch.zeros(S, dtype=xm.dtype, device=xm.device)
    r2 = _up(sup, T + 1) + (v.abs() * EH).sum(-1) + (vr * (HF + Hr)).sum(-1) + _sl(((v.abs() + vr) * (HF + Hr)).sum(-1), n)
    mid = 2 * (A1 + A2)
    rad = _up(2 * (r1 + r2) + _sl(2 * _fro(A1) + 2 * _fro(A2), 2), 4)
    gm = gr = None
    if with_grad:
        gm = 2 * torch.einsum("snj,sn->sj", Jm, v)
        gr = 2 * (torch.einsum("snj,sn->sj", Jr, v.abs() + vr) + torch.einsum("snj,sn->sj", PJabs, xr))
        gr = gr + _sl(2 * torch.einsum("snj,sn->sj", Jm.abs() + Jr, v.abs() + vr), n + 2)
        gm, gr = gm[:, None], gr[:, None]
    put(slice(idx, idx + 1), mid[:, None], rad[:, None], gm, gr)


# ----------------------------------------------------------------------------- the certificate
@dataclass(frozen=True)
class SubspaceCertificate:
    """Sound per-row curvature bounds restricted to a subspace ``θ + span(Q)`` over ``‖a‖ ≤ r``.

    Attributes
    ----------
    L : ndarray, shape (N,)
        ``L_i ≥ sup_{‖a‖≤r} ‖Qᵀ∇²g_i(θ+Qa)Q‖₂`` per row of ``g`` (margin applied).
    centre : ndarray, shape (N,)
        ``‖Qᵀ∇²g_i(θ)Q‖₂`` at the centre (floating point, no margin): an ``estimated`` lower
        bound of the supremum (for ``max`` rows: the largest underlying row's).
    radius_term : ndarray, shape (N,)
        The part ``‖R‖₂`` of the bound that covers the ball (``0`` up to rounding at ``r = 0``).
    gradient : ndarray, shape (N,) or None
        Sound ``sup ‖Qᵀ∇g_i‖₂`` over the ball where computed (``lse`` rows, or on request).
    dim : int
        ``m``, the subspace dimension.
    radius : float
        ``r``.
    rows : str
        ``"mlp-output"``, ``"per-row"``, ``"max"`` or ``"lse"``.
    statement : str
    margin : Margin
    digest : str
        SHA-256 of ``θ``, ``Q``, ``r``, the margin and ``L`` (what a projector record cites).
    residual : float
        ``max_k ‖(I − QQᵀ)δ_k‖/‖δ_k‖`` of the offsets the basis was built from (NaN if given).
    timings : dict of str -> float
    notes : list of str
    underlying_argmax : ndarray or None
        ``max``/``lse`` rows: the underlying rollout row with the largest bound, per state.
    """

    L: np.ndarray
    centre: np.ndarray
    radius_term: np.ndarray
    gradient: np.ndarray | None
    dim: int
    radius: float
    rows: str
    statement: str
    margin: Margin
    digest: str
    residual: float = float("nan")
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    underlying_argmax: np.ndarray | None = None

    level: ClassVar[Level] = Level.SOUND

    def claim(self, L_used: np.ndarray) -> Claim:
        """``L_used ≥ L`` row by row (``sound``); NaN/inf in either fails.

        Parameters
        ----------
        L_used : ndarray, shape (N,)

        Returns
        -------
        Claim
        """
        L_used = as_array("L_used", L_used, shape=(self.L.size,), finite=False)
        ok = np.isfinite(self.L) & np.isfinite(L_used) & (L_used >= self.L)
        return Claim(name="smoothness_certified",
                     statement=f"On the ball ‖a‖ ≤ {self.radius:g} of the {self.dim}-dimensional bank subspace: {self.statement}, with L_i ≤ L_used_i.",
                     level=Level.SOUND, holds=bool(np.all(ok)),
                     details={"rows": int(self.L.size), "rows_certified": int(ok.sum()), "margin": self.margin.to_dict(),
                              "digest": self.digest})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (arrays as arrays)."""
        return {"level": self.level.value, "region": {"kind": "subspace-ball", "dim": self.dim, "radius": self.radius},
                "rows": self.rows, "statement": self.statement, "margin": self.margin.to_dict(), "digest": self.digest,
                "residual": self.residual, "L": self.L, "centre": self.centre, "radius_term": self.radius_term,
                "gradient": self.gradient, "timings": self.timings, "notes": self.notes}


def _digest(theta: np.ndarray, Q: np.ndarray, r: float, margin: Margin, L: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (theta, Q, np.array([r, margin.rel, margin.abs]), L):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def _setup(problem: ClosedLoopProblem, structure: MLPStructure, th_t: torch.Tensor, Q: np.ndarray, dev) -> tuple[list[_Layer], _Loop]:
    """The layers (weights and their subspace directions) and the closed-loop constants on ``dev``."""
    m = Q.shape[1]
    Q_t = torch.as_tensor(Q, dtype=DT, device=dev)
    layers = []
    for (W, b), (wo, bo), (o, i) in zip(structure.unflatten(th_t[None]), structure.offsets(), structure.shapes):
        layers.append(_Layer(W[0], b[0], Q_t[wo : wo + o * i].reshape(o, i, m), Q_t[bo : bo + o]))
    return layers, _loop(problem, dev)


def subspace_row_hessians(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    basis: np.ndarray,
    *,
    chunk: int = 256,
    device: Any = None,
) -> np.ndarray:
    """The restricted Hessians ``Qᵀ∇²r_j(θ)Q`` of every rollout row at ``θ`` (floating point, symmetrised).

    The centres of :func:`subspace_smoothness_bounds` (its forward propagation at radius 0), for the
    estimated lower bounds and their searches; rows in the layout of ``problem.layout``.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual (smooth activation).
    theta : ndarray, shape (d,)
    states : ndarray, shape (S, n)
    basis : ndarray, shape (d, m)
        Orthonormal basis ``Q``.
    chunk : int
        States per batch (memory: ``chunk · R · m²`` floats).
    device : torch.device or str, optional

    Returns
    -------
    ndarray, shape (S, R, m, m)
    """
    structure.require_smooth()
    enc = iv.enclosure(structure.activation, smooth=True)
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    Q = _check_basis(basis, structure.dim)
    check_int("chunk", chunk, minimum=1)
    dev = torch.device("cpu") if device is None else torch.device(device)
    layers, lp = _setup(problem, structure, torch.as_tensor(theta, dtype=DT, device=dev), Q, dev)
    X = torch.as_tensor(states, dtype=DT, device=dev)
    out = []
    with torch.no_grad():
        for s0 in range(0, states.shape[0], chunk):
            out.append(_chunk(structure, lp, layers, enc, X[s0 : s0 + chunk], 0.0, problem.horizon, problem.layout, False, None,
                              keep_mid=True)["mid"].cpu().numpy())
    m, R = Q.shape[1], problem.layout.n_rows
    return np.concatenate(out) if out else np.zeros((0, R, m, m))


def subspace_smoothness_bounds(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    basis: np.ndarray,
    radius: float,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    margin: Margin = SMOOTHNESS_MARGIN,
    chunk: int = 512,
    device: Any = None,
    gradient: bool = False,
    residual: float = float("nan"),
) -> SubspaceCertificate:
    """Sound ``L_i ≥ sup_{‖a‖ ≤ r} ‖Qᵀ∇²g_i(θ + Qa)Q‖₂`` for every row of ``g`` (module docstring).

    ``g = aggregate_rows(constraint_rows(rollout(problem, π_θ, states)), aggregation, temperature)``:
    ``S·R`` rows, state-major, for ``per-row``; ``S`` rows otherwise.

    Parameters
    ----------
    problem : ClosedLoopProblem
        A closed loop, or a static problem (rows on the policy's output).
    structure : MLPStructure
        The residual ``φ`` (smooth activation).
    theta : ndarray, shape (d,)
        The iterate ``θ`` (centre).
    states : ndarray, shape (S, n)
        Initial states (inputs of a static problem) of the rows.
    basis : ndarray, shape (d, m)
        Orthonormal basis ``Q`` of the subspace (:func:`subspace_basis`), ``m ≥ 1``.
    radius : float
        ``r ≥ 0``; ``0`` gives the centre Hessian's norm (up to rounding).
    aggregation : {"per-row", "max", "lse"}
    temperature : float
        ``τ > 0`` of the log-sum-exp rows.
    margin : Margin
        Outward margin applied to every bound after the (device) computation, and recorded.
    chunk : int
        Initial states per batch (memory: about ``chunk · R · m²`` floats).
    device : torch.device or str, optional
        Where the propagation runs (default CPU); results come back as float64 numpy arrays.
    gradient : bool
        Also bound ``sup ‖Qᵀ∇g_i‖₂`` (always done for ``lse``).
    residual : float
        The basis residual to record (from :func:`subspace_basis`).

    Returns
    -------
    SubspaceCertificate

    Raises
    ------
    UnsupportedError
        A ReLU residual (no finite curvature); a structure that does not fit the problem.
    InvalidInputError
        Radius negative or non-finite, a basis with no column or not orthonormal, bad arrays.
    """
    if not isinstance(structure, MLPStructure):
        raise UnsupportedError(f"structure: expected a scpo.policies.MLPStructure, got {type(structure).__name__}")
    structure.require_smooth()
    enc = iv.enclosure(structure.activation, smooth=True)
    if not isinstance(problem, ClosedLoopProblem):
        raise InvalidInputError(f"problem: expected a ClosedLoopProblem, got {type(problem).__name__}")
    if structure.in_dim != problem.n or structure.out_dim != problem.m:
        raise UnsupportedError(f"structure: expected a network {problem.n} -> {problem.m} for this problem, "
                               f"got {structure.in_dim} -> {structure.out_dim}")
    r = check_nonnegative("radius", radius)
    check_in("aggregation", aggregation, ROW_AGGREGATIONS)
    if not isinstance(margin, Margin):
        raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(margin).__name__}")
    check_int("chunk", chunk, minimum=1)
    theta = as_array("theta", theta, shape=(structure.dim,))
    states = as_array("states", states, shape=(None, problem.n))
    Q = _check_basis(basis, structure.dim)
    tau = None
    if aggregation == "lse":
        tau = float(temperature)
        if not (np.isfinite(tau) and tau > 0):
            raise InvalidInputError(f"temperature: expected a positive finite τ, got {temperature!r}")
    t0 = time.perf_counter()
    dev = torch.device("cpu") if device is None else torch.device(device)
    m = Q.shape[1]
    th_t = torch.as_tensor(theta, dtype=DT, device=dev)
    layers, lp = _setup(problem, structure, th_t, Q, dev)
    layout = problem.layout
    T = problem.horizon
    want_grad = gradient or aggregation == "lse"
    parts: list[dict[str, torch.Tensor]] = []
    X = torch.as_tensor(states, dtype=DT, device=dev)
    with torch.no_grad():
        for s0 in range(0, states.shape[0], chunk):
            x0 = X[s0 : s0 + chunk]
            w = None
            if aggregation == "lse":
                from ..bounds.network import feedback_policy

                ro = rollout(problem, feedback_policy(structure, th_t, lp.K), x0, T)
                w = torch.softmax(constraint_rows(problem, ro)[0] / tau, dim=-1)
            parts.append(_chunk(structure, lp, layers, enc, x0, r, T, layout, want_grad, w))
    Rn = layout.n_rows
    if parts:
        cat = {k: torch.cat([p[k] for p in parts]).cpu().numpy() for k in parts[0]}
    else:
        cat = {"centre": np.zeros((0, Rn)), "radius": np.zeros((0, Rn))}
        if want_grad:
            cat["gradient"] = np.zeros((0, Rn))
    H = cat["centre"] + cat["radius"]  # (S, R)
    total = margin.inflate(H * (1 + 4 * _U))
    G = margin.inflate(cat["gradient"]) if want_grad else None
    argmax = None
    rows = ("mlp-output" if problem.is_static else "per-row") if aggregation == "per-row" else aggregation
    if aggregation == "per-row":
        L, centre, radn = total.reshape(-1), cat["centre"].reshape(-1), cat["radius"].reshape(-1)
        grad_out = None if G is None else G.reshape(-1)
    elif aggregation == "max":
        argmax = total.argmax(axis=1) if total.size else np.zeros(0, dtype=int)
        L, centre = total.max(axis=1, initial=0.0), cat["centre"].max(axis=1, initial=0.0)
        radn = np.take_along_axis(cat["radius"], argmax[:, None], axis=1)[:, 0] if total.size else np.zeros(0)
        grad_out = None if G is None else G.max(axis=1, initial=0.0)
    else:
        argmax = total.argmax(axis=1) if total.size else np.zeros(0, dtype=int)
        Gm = G.max(axis=1, initial=0.0)
        L = margin.inflate((total.max(axis=1, initial=0.0) + Gm ** 2 / tau) * (1 + 16 * _U))
        if parts:
            Hl = torch.cat([p["lse_H"] for p in parts])
            g1 = torch.cat([p["lse_g1"] for p in parts])
            g2 = torch.cat([p["lse_g2"] for p in parts])
            Hc = Hl + (g2 - g1[:, :, None] * g1[:, None, :]) / tau
            centre = torch.linalg.eigvalsh((Hc + Hc.transpose(-1, -2)) / 2).abs().amax(-1).cpu().numpy()
        else:
            centre = np.zeros(0)
        radn = np.maximum(L - centre, 0.0)
        grad_out = Gm
    L = finite_or_inf(np.asarray(L, dtype=float))
    notes = [f"subspace of dimension {m}, ball radius {r:g}; rows: {SUBSPACE_STATEMENT[rows]}"]
    if aggregation == "lse":
        notes.append("lse rows: the centre value is the exact Hessian norm of the log-sum-exp at θ; the bound is max_j L_j + max_j G_j²/τ")
    timings = {"subspace": time.perf_counter() - t0}
    return SubspaceCertificate(L=L, centre=np.asarray(centre, dtype=float), radius_term=np.asarray(radn, dtype=float), gradient=grad_out,
                               dim=m, radius=r, rows=rows, statement=SUBSPACE_STATEMENT[rows], margin=margin,
                               digest=_digest(theta, Q, r, margin, L), residual=float(residual), timings=timings, notes=notes,
                               underlying_argmax=argmax)


def subspace_certified_L(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    states: np.ndarray,
    offsets: np.ndarray,
    radius: float,
    *,
    aggregation: str = "per-row",
    temperature: float = 0.02,
    margin: Margin = SMOOTHNESS_MARGIN,
    device: Any = None,
) -> tuple[np.ndarray, SubspaceCertificate]:
    """Certified per-row ``L`` for the projector: the subspace bound on the span of the bank's offsets.

    The provider of the projector's subspace mode: with the bank ``offsets`` at ``θ`` (after the
    iteration's probes were added) and the radius ``r`` of the ball that holds every offset and the
    step (the projector caps the step at ``r``), (★) is a sound bound with these ``L`` (module
    docstring).

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual (smooth activation).
    theta : ndarray, shape (d,)
    states : ndarray, shape (S, n)
        The task's constraint states.
    offsets : ndarray, shape (k, d)
        The bank offsets relative to ``θ`` (``Bank.offsets``), at least one non-zero.
    radius : float
        ``r > 0``, at least ``max_k ‖δ_k‖`` (checked) and the cap of the step.
    aggregation : {"per-row", "max", "lse"}
    temperature : float
    margin : Margin
    device : torch.device or str, optional

    Returns
    -------
    L : ndarray, shape (N,)
        Strictly positive (a zero bound becomes the smallest positive float).
    certificate : SubspaceCertificate
        Its ``digest`` is what the projector's record cites.

    Raises
    ------
    InvalidInputError
        ``radius`` not positive and finite, or smaller than an offset; no non-zero offset.
    """
    r = check_nonnegative("radius", radius)
    if not r > 0:
        raise InvalidInputError(f"radius: expected a positive radius, got {radius!r}")
    D = as_array("offsets", offsets, ndim=2)
    far = float(np.max(np.linalg.norm(D, axis=1))) if D.size else 0.0
    if far > r:
        raise InvalidInputError(f"radius: the ball must contain every bank offset, got radius {r:.6g} < largest offset {far:.6g}")
    Q, res = subspace_basis(D)
    cert = subspace_smoothness_bounds(problem, structure, theta, states, Q, r, aggregation=aggregation, temperature=temperature,
                                      margin=margin, device=device, residual=res)
    return np.maximum(cert.L, np.finfo(float).tiny), cert
