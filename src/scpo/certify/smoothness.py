"""Certified smoothness constants ``L`` of constraint rows in the parameters ``θ`` (DESIGN §3, §6).

Problem
-------
For a constraint row ``g_i(θ)`` and a region ``Θ`` around a checkpoint ``θ_c`` — an L∞ box
``{θ : ‖θ − θ_c‖_∞ ≤ r}`` or an L2 ball ``{θ : ‖θ − θ_c‖₂ ≤ ρ}`` — bound

    L_i(Θ) = sup_{θ ∈ Θ} ‖∇²g_i(θ)‖₂

from above (``sound``) and from below (``estimated``). By Taylor's theorem with integral remainder,
``|g_i(θ+Δ) − g_i(θ) − ∇g_i(θ)ᵀΔ| ≤ (L_i/2)‖Δ‖²`` whenever the segment ``[θ, θ+Δ]`` lies in ``Θ``:
this is the smoothness assumption behind the inner approximation (★) of the projector. (★) at an
iteration uses the segments from ``θ`` to every bank point ``θ+δ_k`` and to the candidate
``θ+Dc``; a ball around ``θ`` containing them all is a region on which ``L_i(Θ)`` justifies (★).

Two sound upper bounds (the smaller one is reported)
----------------------------------------------------
(a) ``"interval"`` — interval arithmetic on the explicit Hessian graph, for MLP-output rows
    ``f_θ(x)`` at a fixed input. With ``z_l = W_l h_{l−1} + b_l``, ``h_l = tanh(z_l)`` and a direction
    ``v = (V_l, c_l)_l``, the second derivative of the output along ``v`` is

        vᵀ∇²f v = Σ_{l<L} [ ż_lᵀ diag(β_l ⊙ σ''_l) ż_l + 2 (V_{l+1}ᵀ G_{l+1})ᵀ diag(σ'_l) ż_l ],

    with ``ż_l = J_l v`` (forward Jacobians), ``G_l = ∂f/∂z_l`` and ``β_l = G_{l+1} W_{l+1}``. So
    ``∇²f = Uᵀ M U`` exactly, where the rows of ``U`` are the maps ``v ↦ ż_l`` and
    ``v ↦ V_{l+1}ᵀG_{l+1}`` (``r = 2 Σ_{l<L} n_l`` rows) and ``M`` is block diagonal with per-neuron
    blocks ``[[β σ'', σ'], [σ', 0]]``. Every block of ``U`` is a Kronecker product
    (``∂z_l/∂W_k = P_{l,k} ⊗ h_{k−1}ᵀ`` with ``P_{l,k} = ∂z_l/∂z_k``), so the Gram matrix ``U Uᵀ`` is
    formed from ``n × n`` matrices without ever building a ``d``-sized array. The bound is the
    exact spectral norm at the centre, ``‖Ûᵀ M̂ Û‖₂`` (an ``r × r`` eigenproblem of
    ``Γ^{1/2} M̂ Γ^{1/2}``, ``Γ = Û Ûᵀ``), plus a perturbation term from interval enclosures of
    ``U`` and ``M`` over the region (``|U − Û| ≤ R_U``, ``|M − M̂| ≤ R_M`` entrywise):

        ‖UᵀMU − ÛᵀM̂Û‖ ≤ ‖R_M‖‖Û‖² + 2‖R_U‖‖M̂Û‖ + 2‖R_U‖‖R_M‖‖Û‖ + ‖R_U‖²(‖M̂‖ + ‖R_M‖).

    It is tight for small regions (exact at radius 0) and degrades with the radius, faster on L2
    balls (whose interval enclosure is the box of the same radius, ``√d`` times wider).
(b) ``"norm-chain"`` — first- and second-order variation propagated through the layers with
    norm bounds. With ``a_l = ‖(V_l, c_l)‖_F`` (``Σ a_l² = 1``), ``‖ż_l‖ ≤ u_l·a`` and
    ``‖z̈_l‖ ≤ aᵀQ_l a`` where ``u_l, Q_l ≥ 0`` follow from ``‖[h;1]‖``, ``‖W diag(σ')‖``,
    ``‖W diag(|σ''|)‖`` over the region, ``|tanh'| ≤ 1`` and ``|tanh''| ≤ 4/(3√3)`` (tightened per
    neuron by interval bounds on the pre-activations); the bound is ``λ_max(Q_L)``. It costs
    milliseconds, handles L2 balls directly, and runs through unrolled closed loops, where the
    policy's input ``x_t`` itself varies with ``θ``. Two propagations are run and the smaller bound
    is kept per row: (i) ``x_t = M^t x_0 + Σ_s M^{t−1−s} B φ(x_s)`` (``M = A + BK``), variations of
    ``x_t`` as sums of those of ``φ(x_s)`` weighted by ``‖c M^k B‖``; (ii) variations of ``x_t`` in
    the LQR metric ``‖x‖_P``, propagated by interval closed-loop Jacobians
    ``J_t = M + B ∂φ/∂x`` over the state interval and the region (``ẋ_{t+1} = J_t ẋ_t + B ∂_θφ v``,
    ``ẍ_{t+1} = J_t ẍ_t + B·(curvature of φ)``), which keeps the backup's contraction. Both sum
    over time steps with the triangle inequality, so they loosen with the horizon ``T``;
    ``benchmarks/bench_smoothness.py`` measures by how much.

Aggregated rows
---------------
``rows="max"`` (``m = max_j r_j``): a maximum of ``L``-smooth functions is *not* ``L``-smooth
(``|θ| = max(θ, −θ)``), and (★) for ``m`` built from evaluated values of ``m`` can fail for steps
with negative bank coefficients. What holds: if every underlying row satisfies
``‖∇²r_j‖ ≤ L`` on the region, then for every step ``Δ = Σ_k c_k δ_k`` with ``c_k ≥ 0`` and
``Σ_k c_k ≤ 1``, ``m(θ+Δ) ≤ m(θ) + Σ_k c_k (m(θ+δ_k) − m(θ)) + (L/2)(Σ_k c_k‖δ_k‖² + ‖Δ‖²)``
(apply (★) to each ``r_j``, use ``r_j ≤ m`` at the bank points and ``1 − Σc_k ≥ 0``, take the max).
So the certificate of a max row is the largest bound of its underlying rows, and it covers (★)
on that cone of steps only; steps outside it rest on evaluation alone. ``rows="lse"``
(``τ log Σ exp(r_j/τ)``) is smooth: ``‖∇²‖ ≤ max_j ‖∇²r_j‖ + max_j ‖∇r_j‖² / τ`` (the gradient part
is a covariance under the softmax weights), with gradient bounds from the same chain.

Lower bounds (``estimated``)
----------------------------
:func:`smoothness_lower_bounds`: the largest of (i) ``|vᵀ∇²g(θ')v|`` for unit ``v`` found by
power iteration with Hessian-vector products and ``θ'`` moved by projected gradient ascent on
that Rayleigh quotient inside the region, and (ii) second differences
``|g(θ+δ)+g(θ−δ)−2g(θ)|/‖δ‖²`` (each is a weighted average of ``δᵀ∇²g δ/‖δ‖²`` along the
segment, so it never exceeds ``L_i(Θ)``) along random directions and along the top eigenvector,
less their rounding error. Plain random second differences underestimate badly in high
dimension (a random direction sees the average curvature, not the top eigenvalue).

Floating point
--------------
Everything is float64 with round-to-nearest. Interval operations carry midpoint-radius slack
``(n+4)u·(magnitude)`` (Rump's bound for a length-``n`` dot product, ``u = 2⁻⁵³``); norms from
eigen/singular value routines are inflated by ``64 n u`` relative; every returned sound bound is
then inflated by the recorded relative margin ``rel_margin`` (default ``1e-9``).

ReLU policies are refused (:class:`~scpo.errors.UnsupportedError`): the gradient in ``θ`` jumps,
so no finite ``L`` exists. The region certificate does not need ``L`` and still applies.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validate import as_array, check_in, check_int, check_nonnegative, check_positive
from ..errors import InvalidInputError, ShapeError, UnsupportedError
from ..evidence import Claim, Level

__all__ = [
    "DEFAULT_REL_MARGIN",
    "TANH_D2_MAX",
    "Region",
    "MLPStructure",
    "RolloutModel",
    "mlp_hessian_bound_interval",
    "mlp_hessian_bound_chain",
    "mlp_hessian_factors",
    "rollout_hessian_bound_chain",
    "SmoothnessCertificate",
    "smoothness_bounds",
    "certified_L",
    "LowerBounds",
    "smoothness_lower_bounds",
    "curvature_search",
    "task_row_function",
]

logger = logging.getLogger(__name__)

DEFAULT_REL_MARGIN = 1e-9
"""Relative outward margin applied to every sound bound (torch has no directed rounding)."""
TANH_D2_MAX = 4.0 / (3.0 * math.sqrt(3.0))
"""``max |tanh''| = 4/(3√3)``, attained at ``z = ±atanh(1/√3)``."""
_Z_CRIT = math.atanh(1.0 / math.sqrt(3.0))
_U = 2.0**-53
_TINY = 1e-300
_DT = torch.float64
REGION_KINDS = ("box", "ball")


# =============================================================================== regions, models
@dataclass(frozen=True, kw_only=True)
class Region:
    """A parameter region around a centre: ``box`` = L∞ ball of ``radius``, ``ball`` = L2 ball.

    Attributes
    ----------
    kind : {"box", "ball"}
    radius : float
        ``r`` (box) or ``ρ`` (ball), ``>= 0``; ``0`` is the centre itself.
    """

    kind: str
    radius: float

    def __post_init__(self) -> None:
        check_in("region kind", self.kind, REGION_KINDS)
        check_nonnegative("radius", self.radius)

    @classmethod
    def box(cls, radius: float) -> "Region":
        """``{θ : ‖θ − θ_c‖_∞ ≤ radius}``."""
        return cls(kind="box", radius=radius)

    @classmethod
    def ball(cls, radius: float) -> "Region":
        """``{θ : ‖θ − θ_c‖₂ ≤ radius}``."""
        return cls(kind="ball", radius=radius)

    def l2_radius(self, dim: int) -> float:
        """Largest ``‖θ − θ_c‖₂`` in the region for ``dim`` parameters."""
        return self.radius * (math.sqrt(dim) if self.kind == "box" else 1.0)

    def project(self, theta: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """Euclidean projection of rows of ``theta`` onto the region around ``centre``."""
        d = theta - centre
        if self.kind == "box":
            return centre + d.clamp(-self.radius, self.radius)
        n = torch.linalg.vector_norm(d, dim=-1, keepdim=True)
        scale = torch.where(n > self.radius, self.radius / torch.clamp(n, min=1e-300), torch.ones_like(n))
        return centre + d * scale

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "radius": self.radius}


@dataclass(frozen=True)
class MLPStructure:
    """Layer shapes and activation of an MLP ``x ↦ W_L σ(⋯σ(W_1 x + b_1)⋯) + b_L``.

    The flat parameter vector is ``(W_1, b_1, W_2, b_2, …)`` with each ``W_l`` row-major, the order
    of :meth:`scpo.policies.MLP.unflatten`.

    Attributes
    ----------
    shapes : tuple of (out, in)
    activation : {"tanh", "relu"}
    """

    shapes: tuple[tuple[int, int], ...]
    activation: str

    @classmethod
    def from_module(cls, module: nn.Module) -> "MLPStructure":
        """Read the structure of an :class:`scpo.policies.MLP` or an ``nn.Sequential`` of
        ``Linear`` layers separated by one kind of activation (``Tanh`` or ``ReLU``).

        Raises
        ------
        UnsupportedError
            For any other layer type (named in the message) or mixed activations.
        """
        from ..policies import MLP

        if isinstance(module, MLP):
            layers = list(module.layers)
            acts = {module.activation_name}
        elif isinstance(module, nn.Sequential):
            layers, acts = [], set()
            for i, m in enumerate(module):
                if isinstance(m, nn.Linear):
                    layers.append(m)
                elif isinstance(m, nn.Tanh):
                    acts.add("tanh")
                elif isinstance(m, nn.ReLU):
                    acts.add("relu")
                else:
                    raise UnsupportedError(
                        f"module[{i}]: layer type {type(m).__name__} is not supported; "
                        "expected Linear layers separated by Tanh or ReLU"
                    )
            kinds = [isinstance(m, nn.Linear) for m in module]
            if not kinds or not kinds[0] or not kinds[-1] or any(a == b for a, b in zip(kinds, kinds[1:])):
                raise UnsupportedError("module: expected Linear, activation, Linear, …, Linear (alternating, Linear first and last)")
        else:
            raise UnsupportedError(
                f"module: type {type(module).__name__} is not supported; expected scpo.policies.MLP or nn.Sequential"
            )
        if len(acts) > 1:
            raise UnsupportedError(f"module: mixed activations {sorted(acts)} are not supported")
        for i, lin in enumerate(layers):
            if lin.bias is None:
                raise UnsupportedError(f"layers[{i}]: Linear without bias is not supported")
        shapes = tuple((int(lin.out_features), int(lin.in_features)) for lin in layers)
        for a, b in zip(shapes, shapes[1:]):
            if b[1] != a[0]:
                raise ShapeError(f"module: layer widths do not chain ({a} then {b})")
        return cls(shapes=shapes, activation=(acts.pop() if acts else "tanh"))

    @property
    def dim(self) -> int:
        """Number of parameters ``d``."""
        return sum(o * i + o for o, i in self.shapes)

    @property
    def widths(self) -> list[int]:
        """``[n_0, n_1, …, n_L]``."""
        return [self.shapes[0][1]] + [o for o, _ in self.shapes]

    def unflatten(self, thetas: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``thetas`` (B, d) -> weights ``[W_l (B, out, in)]`` and biases ``[b_l (B, out)]``."""
        if thetas.ndim != 2 or thetas.shape[1] != self.dim:
            raise ShapeError(f"thetas: expected shape (B, {self.dim}), got {tuple(thetas.shape)}")
        Ws, bs, k = [], [], 0
        B = thetas.shape[0]
        for o, i in self.shapes:
            Ws.append(thetas[:, k : k + o * i].reshape(B, o, i))
            k += o * i
            bs.append(thetas[:, k : k + o])
            k += o
        return Ws, bs

    def offsets(self) -> list[tuple[int, int]]:
        """Start index of ``W_l`` and of ``b_l`` in the flat vector, per layer."""
        out, k = [], 0
        for o, i in self.shapes:
            out.append((k, k + o * i))
            k += o * i + o
        return out

    def require_smooth(self) -> None:
        """Raise :class:`UnsupportedError` unless the activation is ``tanh``."""
        if self.activation != "tanh":
            raise UnsupportedError(
                f"activation {self.activation!r}: a smoothness constant L in θ needs a smooth activation (tanh); "
                "with ReLU the gradient in θ jumps where a neuron switches, so no finite L exists and (★) is not "
                "justified by any L. The region certificate (scpo.certify.region) does not need L and still applies."
            )

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``φ_θ(x)`` for one flat ``theta`` (d,) and one input ``x`` (n_0,): shape (n_L,).

        Written with plain tensor operations so that ``torch.func`` can differentiate and
        ``vmap`` it.
        """
        h, k, last = x, 0, len(self.shapes) - 1
        for j, (o, i) in enumerate(self.shapes):
            W = theta[k : k + o * i].reshape(o, i)
            k += o * i
            b = theta[k : k + o]
            k += o
            h = W @ h + b
            if j < last:
                h = torch.tanh(h) if self.activation == "tanh" else torch.relu(h)
        return h


@dataclass(frozen=True)
class RolloutModel:
    """The closed loop ``x_{t+1} = A x_t + B u_t``, ``u_t = K x_t + φ_θ(x_t)`` and its rows.

    Rows (``≤ 0`` safe), in the order of
    :meth:`scpo.tasks.DoubleIntegratorTask.rollout_rows`: ``Hx x_t − hx`` for ``t = 1..T``
    (``t``-major), ``Hu u_t − hu`` for ``t = 0..T−1``, then ``x_Tᵀ P x_T − γ``.
    """

    A: np.ndarray
    B: np.ndarray
    K: np.ndarray
    Hx: np.ndarray
    hx: np.ndarray
    Hu: np.ndarray
    hu: np.ndarray
    P: np.ndarray
    gamma: float
    horizon: int

    @property
    def n_rows(self) -> int:
        return self.horizon * (self.Hx.shape[0] + self.Hu.shape[0]) + 1

    def row_labels(self) -> list[str]:
        T = self.horizon
        out = [f"t={t} state row {c}" for t in range(1, T + 1) for c in range(self.Hx.shape[0])]
        out += [f"t={t} input row {c}" for t in range(T) for c in range(self.Hu.shape[0])]
        return out + ["terminal xᵀPx<=γ"]

    def rows(self, struct: MLPStructure, theta: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """All rows of the rollout of one ``theta`` (d,) from one ``x0`` (n,): shape (n_rows,).

        Plain tensor code (``torch.func``-friendly); the reference for the bounds.
        """
        t = {k: torch.as_tensor(np.array(getattr(self, k), dtype=float), dtype=theta.dtype) for k in ("A", "B", "K", "Hx", "hx", "Hu", "hu", "P")}
        x = x0
        sx, su = [], []
        for _ in range(self.horizon):
            u = t["K"] @ x + struct.forward(theta, x)
            su.append(t["Hu"] @ u - t["hu"])
            x = t["A"] @ x + t["B"] @ u
            sx.append(t["Hx"] @ x - t["hx"])
        term = (x @ t["P"] @ x - self.gamma).reshape(1)
        return torch.cat([torch.cat(sx), torch.cat(su), term]) if self.horizon else term


# ====================================================================== interval primitives
def _sl(mag: torch.Tensor, n: int = 1) -> torch.Tensor:
    """Rounding slack of a computed quantity of magnitude ``mag`` from ``n``-term sums."""
    return mag * ((n + 4) * _U) + _TINY


def _norm_up(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inflate a norm computed by an eigen/singular value routine of size ``n``."""
    return x * (1.0 + 64.0 * max(n, 1) * _U) + _TINY


def _param_affine(W, b, hm, hr, rad, ball):
    """``z = (W+E)h + (b+e)`` over ``h ∈ hm ± hr`` and the parameter region: (mid, rad), (B, out)."""
    habs = hm.abs() + hr
    zm = torch.einsum("boi,bi->bo", W, hm) + b
    absW = W.abs()
    zr = torch.einsum("boi,bi->bo", absW, hr)
    if ball:  # per neuron ‖(E_i, e_i)‖ ≤ ρ: |E_i h + e_i| ≤ ρ ‖[h; 1]‖
        pert = rad[:, None] * torch.sqrt((habs * habs).sum(-1, keepdim=True) + 1.0)
    else:  # |E_ij| ≤ r: |E_i h + e_i| ≤ r (‖h‖₁ + 1)
        pert = rad[:, None] * (habs.sum(-1, keepdim=True) + 1.0)
    mag = torch.einsum("boi,bi->bo", absW, habs) + b.abs() + pert
    return zm, zr + pert + _sl(mag + zr, W.shape[-1] + 2)


def _param_matmul(W, Xm, Xr, rad, ball):
    """``(W+E) X`` for an interval matrix ``X`` (B, in, c) and the parameter region (no bias)."""
    Xabs = Xm.abs() + Xr
    absW = W.abs()
    mid = W @ Xm
    r = absW @ Xr
    if ball:  # |(E X)_ip| ≤ ‖E_i‖ ‖X_:p‖ ≤ ρ ‖X_:p‖
        pert = rad[:, None, None] * torch.linalg.vector_norm(Xabs, dim=-2, keepdim=True)
    else:
        pert = rad[:, None, None] * Xabs.sum(-2, keepdim=True)
    return mid, r + pert + _sl(absW @ Xabs + pert + r, W.shape[-1] + 2)


def _param_rmatmul(Xm, Xr, W, rad, ball):
    """``X (W+E)`` for an interval matrix ``X`` (B, r, out) and the parameter region: (B, r, in)."""
    Xabs = Xm.abs() + Xr
    absW = W.abs()
    mid = Xm @ W
    r = Xr @ absW
    if ball:  # |(X E)_ij| ≤ ‖X_i‖ ‖E_:j‖ ≤ ρ ‖X_i‖
        pert = rad[:, None, None] * torch.linalg.vector_norm(Xabs, dim=-1, keepdim=True)
    else:
        pert = rad[:, None, None] * Xabs.sum(-1, keepdim=True)
    return mid, r + pert + _sl(Xabs @ absW + pert + r, W.shape[-2] + 2)


def _param_vecmat(W, gm, gr, rad, ball):
    """``(W+E)ᵀ g`` for an interval vector ``g`` (B, out): (B, in)."""
    gabs = gm.abs() + gr
    absW = W.abs()
    mid = torch.einsum("boi,bo->bi", W, gm)
    r = torch.einsum("boi,bo->bi", absW, gr)
    if ball:
        pert = rad[:, None] * torch.linalg.vector_norm(gabs, dim=-1, keepdim=True)
    else:
        pert = rad[:, None] * gabs.sum(-1, keepdim=True)
    return mid, r + pert + _sl(torch.einsum("boi,bo->bi", absW, gabs) + pert + r, W.shape[1] + 2)


def _mul(am, ar, bm, br):
    """Elementwise interval product (broadcasting)."""
    mid = am * bm
    r = am.abs() * br + ar * bm.abs() + ar * br
    return mid, r + _sl(mid.abs() + r)


def _tanh_iv(zm, zr):
    """``tanh`` over ``zm ± zr``: (mid, rad, lo, hi) with ``lo, hi`` the rounded-outward ends."""
    s = _sl(zm.abs() + zr)
    lo, hi = zm - zr - s, zm + zr + s
    tl, th = torch.tanh(lo), torch.tanh(hi)
    return (tl + th) / 2, (th - tl) / 2 + _sl(tl.abs() + th.abs(), 8), lo, hi


def _dtanh_iv(lo, hi):
    """``tanh' = 1 − tanh²`` over ``[lo, hi]``: (mid, rad), within ``[0, 1]``."""
    straddle = (lo <= 0) & (hi >= 0)
    near = torch.where(straddle, torch.zeros_like(lo), torch.minimum(lo.abs(), hi.abs()))
    far = torch.maximum(lo.abs(), hi.abs())
    up = (1.0 - torch.tanh(near) ** 2 + 16 * _U).clamp(max=1.0)
    dn = (1.0 - torch.tanh(far) ** 2 - 16 * _U).clamp(min=0.0)
    return (up + dn) / 2, (up - dn) / 2 + _TINY


def _d2tanh(z):
    t = torch.tanh(z)
    return -2.0 * t * (1.0 - t * t)


def _d2tanh_iv(lo, hi):
    """``tanh'' = −2 tanh (1 − tanh²)`` over ``[lo, hi]``: (mid, rad), within ``±4/(3√3)``.

    ``tanh'''`` vanishes only at ``±atanh(1/√3)``, so the extremes are at the ends or there.
    """
    fl, fh = _d2tanh(lo), _d2tanh(hi)
    vmax, vmin = torch.maximum(fl, fh), torch.minimum(fl, fh)
    tol = 1e-9
    cap = TANH_D2_MAX * (1.0 + 8 * _U)
    vmax = torch.where((lo <= -_Z_CRIT + tol) & (hi >= -_Z_CRIT - tol), torch.full_like(vmax, cap), vmax)
    vmin = torch.where((lo <= _Z_CRIT + tol) & (hi >= _Z_CRIT - tol), torch.full_like(vmin, -cap), vmin)
    up = (vmax + 32 * _U).clamp(max=cap)
    dn = (vmin - 32 * _U).clamp(min=-cap)
    return (up + dn) / 2, (up - dn) / 2 + _TINY


def _forward_intervals(struct, Ws, bs, xm, xr, rad, ball):
    """Interval bounds of every layer over the parameter region and the input interval.

    Returns
    -------
    zs : list of (mid, rad)
        Pre-activations ``z_1 … z_L``.
    hs : list of (mid, rad)
        ``h_0 = x, h_1, …, h_{L−1}``.
    ends : list of (lo, hi)
        Outward-rounded ends of ``z_1 … z_{L−1}``.
    """
    hs, zs, ends = [(xm, xr)], [], []
    L = len(Ws)
    for l in range(L):
        zm, zr = _param_affine(Ws[l], bs[l], *hs[-1], rad, ball)
        zs.append((zm, zr))
        if l < L - 1:
            m, r, lo, hi = _tanh_iv(zm, zr)
            hs.append((m, r))
            ends.append((lo, hi))
    return zs, hs, ends


def _cw_bound(S: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Upper bound on ``λ_max`` of nonnegative symmetric matrices (B, n, n) (Collatz–Wielandt).

    For any positive ``x``, ``λ_max(S) ≤ max_i (Sx)_i / x_i``; ``x`` is a power iterate from the
    all-ones vector, floored away from zero (the bound holds for any such ``x``; the iterations
    only make it tight).
    """
    if S.shape[-1] == 0:
        return torch.zeros(S.shape[:-2], dtype=S.dtype)
    x = S.sum(-1) + 1e-300
    x = x / x.amax(-1, keepdim=True)
    for _ in range(iters):
        y = (S @ x.unsqueeze(-1)).squeeze(-1)
        x = y / torch.clamp(y.amax(-1, keepdim=True), min=1e-300)
    x = x + 1e-6 * x.amax(-1, keepdim=True) + 1e-300
    ratio = (S @ x.unsqueeze(-1)).squeeze(-1) / x
    return _norm_up(ratio.amax(-1), S.shape[-1])


def _lam_max_sym(S: torch.Tensor) -> torch.Tensor:
    """``λ_max`` of symmetric matrices (B, n, n), inflated for rounding."""
    if S.shape[-1] == 0:
        return torch.zeros(S.shape[:-2], dtype=S.dtype)
    return _norm_up(torch.linalg.eigvalsh(S)[..., -1], S.shape[-1])


def _as_batch(struct: MLPStructure, thetas, x, radius, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    th = torch.as_tensor(as_array("thetas", thetas, ndim=2), dtype=_DT)
    if th.shape[1] != struct.dim:
        raise ShapeError(f"thetas: expected shape (B, {struct.dim}), got {tuple(th.shape)}")
    xx = torch.as_tensor(as_array("x", x, ndim=2), dtype=_DT)
    if xx.shape[1] != n_in:
        raise ShapeError(f"x: expected shape (B, {n_in}), got {tuple(xx.shape)}")
    rr = as_array("radius", np.atleast_1d(np.asarray(radius, dtype=float)), ndim=1)
    if np.any(rr < 0):
        raise InvalidInputError(f"radius: expected non-negative radii, got minimum {float(rr.min())}")
    B = max(th.shape[0], xx.shape[0], rr.shape[0])
    for name, n in (("thetas", th.shape[0]), ("x", xx.shape[0]), ("radius", rr.shape[0])):
        if n not in (1, B):
            raise ShapeError(f"{name}: expected a batch of 1 or {B}, got {n}")
    return th.expand(B, -1).contiguous(), xx.expand(B, -1).contiguous(), torch.as_tensor(rr, dtype=_DT).expand(B).contiguous()


def _check_output(struct: MLPStructure, output: int) -> int:
    return check_int("output", output, minimum=0, maximum=struct.shapes[-1][0] - 1)


# ============================================================ (a) interval Hessian of an MLP output
def _centre(struct, Ws, bs, x):
    """Point values at the centre: h_0..h_{L−1}, σ'_1..σ'_{L−1}, σ''_1..σ''_{L−1}."""
    h, hs, sp, spp = x, [x], [], []
    for l in range(len(Ws) - 1):
        z = torch.einsum("boi,bi->bo", Ws[l], h) + bs[l]
        t = torch.tanh(z)
        hs.append(t)
        sp.append(1.0 - t * t)
        spp.append(-2.0 * t * (1.0 - t * t))
        h = t
    return hs, sp, spp


def _centre_P(Ws, sp, L):
    """``P̂[l][k] = ∂z_l/∂z_k`` at the centre for 1 ≤ k ≤ l ≤ L (0-based lists, P[l][k] with l ≥ k)."""
    B = Ws[0].shape[0]
    P: list[dict[int, torch.Tensor]] = [dict() for _ in range(L)]
    for k in range(L):
        P[k][k] = torch.eye(Ws[k].shape[-2], dtype=_DT).expand(B, -1, -1)
        for l in range(k + 1, L):
            P[l][k] = Ws[l] @ (sp[l - 1].unsqueeze(-1) * P[l - 1][k])
    return P


def mlp_hessian_factors(
    struct: MLPStructure, theta: np.ndarray, x: np.ndarray, *, output: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The exact factorisation ``∇²_θ f_θ(x) = Uᵀ M U`` used by the interval bound, as dense arrays.

    Meant for small networks (tests, explanations): ``U`` has ``d`` columns.

    Parameters
    ----------
    struct : MLPStructure
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
    struct.require_smooth()
    o = _check_output(struct, output)
    th, xx, _ = _as_batch(struct, np.atleast_2d(theta), np.atleast_2d(x), [0.0], struct.widths[0])
    Ws, bs = struct.unflatten(th)
    L = len(Ws)
    hs, sp, spp = _centre(struct, Ws, bs, xx)
    P = _centre_P(Ws, sp, L)
    G = [P[L - 1][k][:, o, :] for k in range(L)]  # G[k] = ∂f/∂z_{k+1} (0-based layer k)
    offs = struct.offsets()
    d = struct.dim
    blocks_U, blocks_M = [], []
    for l in range(L - 1):  # hidden layer l (0-based): rows J_l then F_{l+1}
        n_l = Ws[l].shape[1]
        J = torch.zeros(n_l, d, dtype=_DT)
        for k in range(l + 1):
            wo, bo = offs[k]
            o_k, i_k = struct.shapes[k]
            Pk = P[l][k][0]  # (n_l, n_k)
            J[:, wo : wo + o_k * i_k] = torch.einsum("ai,j->aij", Pk, hs[k][0]).reshape(n_l, -1)
            J[:, bo : bo + o_k] = Pk
        F = torch.zeros(n_l, d, dtype=_DT)
        wo, _ = offs[l + 1]
        o_n, i_n = struct.shapes[l + 1]
        Gn = G[l + 1][0]  # (o_n,)
        for j in range(i_n):
            F[j, wo + torch.arange(o_n) * i_n + j] = Gn
        beta = Gn @ Ws[l + 1][0]  # (n_l,)
        D = beta * spp[l][0]
        S = sp[l][0]
        blocks_U += [J, F]
        blocks_M.append(torch.cat([torch.cat([torch.diag(D), torch.diag(S)], 1), torch.cat([torch.diag(S), torch.zeros(n_l, n_l, dtype=_DT)], 1)], 0))
    if not blocks_U:
        return np.zeros((0, d)), np.zeros((0, 0))
    return torch.cat(blocks_U).numpy(), torch.block_diag(*blocks_M).numpy()


def mlp_hessian_bound_interval(
    struct: MLPStructure,
    thetas: np.ndarray,
    x: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "box",
    output: int = 0,
    rel_margin: float = DEFAULT_REL_MARGIN,
    details: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Method (a): sound ``sup_{θ ∈ Θ} ‖∇²_θ f_θ(x)‖₂`` by interval arithmetic on ``∇²f = UᵀMU``.

    Parameters
    ----------
    struct : MLPStructure
        A ``tanh`` network.
    thetas : ndarray, shape (B, d) or (1, d)
        Region centres.
    x : ndarray, shape (B, n_0) or (1, n_0)
        Inputs (fixed, not perturbed).
    radius : float or ndarray, shape (B,)
        Region radii (``r`` of the box or ``ρ`` of the ball).
    kind : {"box", "ball"}
    output : int
        Output component.
    rel_margin : float
        Relative outward margin of the result.
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
    struct.require_smooth()
    check_in("kind", kind, REGION_KINDS)
    check_nonnegative("rel_margin", rel_margin)
    o = _check_output(struct, output)
    th, xx, rad = _as_batch(struct, thetas, x, radius, struct.widths[0])
    ball = kind == "ball"
    Ws, bs = struct.unflatten(th)
    L = len(Ws)
    B = th.shape[0]
    if L == 1:  # affine in θ: the Hessian is zero
        out = np.zeros(B)
        return (out, {}) if details else out
    # ---- centre values
    hs, sp, spp = _centre(struct, Ws, bs, xx)
    P = _centre_P(Ws, sp, L)
    G = [P[L - 1][k][:, o, :] for k in range(L)]
    beta = [torch.einsum("bo,boi->bi", G[l + 1], Ws[l + 1]) for l in range(L - 1)]
    D = [beta[l] * spp[l] for l in range(L - 1)]
    S = sp
    # ---- interval enclosures over the region
    zeros_x = torch.zeros_like(xx)
    _, hiv, ends = _forward_intervals(struct, Ws, bs, xx, zeros_x, rad, ball)
    spiv = [_dtanh_iv(*e) for e in ends]
    sppiv = [_d2tanh_iv(*e) for e in ends]
    Piv: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] = [dict() for _ in range(L)]
    for k in range(L):
        eye = torch.eye(Ws[k].shape[-2], dtype=_DT).expand(B, -1, -1)
        Piv[k][k] = (eye, torch.zeros_like(eye))
        for l in range(k + 1, L):
            Xm, Xr = _mul(spiv[l - 1][0].unsqueeze(-1), spiv[l - 1][1].unsqueeze(-1), *Piv[l - 1][k])
            Piv[l][k] = _param_matmul(Ws[l], Xm, Xr, rad, ball)
    # backward adjoints G_k = ∂f/∂z_k and β_l = G_{l+1} W_{l+1}
    Giv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * L
    e_o = torch.zeros(B, Ws[-1].shape[-2], dtype=_DT)
    e_o[:, o] = 1.0
    Giv[L - 1] = (e_o, torch.zeros_like(e_o))
    betaiv: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * (L - 1)
    for l in range(L - 2, -1, -1):
        betaiv[l] = _param_vecmat(Ws[l + 1], *Giv[l + 1], rad, ball)
        Giv[l] = _mul(*betaiv[l], *spiv[l])
    Div = [_mul(*betaiv[l], *sppiv[l]) for l in range(L - 1)]

    def R(iv, centre):  # sup |X − X̂| over the region
        return (iv[0] - centre).abs() + iv[1]

    Rh = [torch.zeros_like(xx)] + [R(hiv[k], hs[k]) for k in range(1, L)]
    RP = [{k: R(Piv[l][k], P[l][k]) for k in Piv[l]} for l in range(L)]
    RG = [R(Giv[k], G[k]) for k in range(L)]
    RD = [R(Div[l], D[l]) for l in range(L - 1)]
    RS = [R(spiv[l], S[l]) for l in range(L - 1)]

    # ---- Gram matrices Γ = ÛÛᵀ and Γ_R = R_U R_Uᵀ from the Kronecker structure
    n = [Ws[l].shape[-2] for l in range(L)]  # n[l] = width of z_{l+1} (0-based)
    # row groups: for hidden l: J_l (n[l] rows), F_{l+1} (n[l] rows)
    offs, pos = {}, 0
    for l in range(L - 1):
        offs[("J", l)] = pos
        pos += n[l]
        offs[("F", l + 1)] = pos
        pos += n[l]
    r = pos
    Gam = torch.zeros(B, r, r, dtype=_DT)
    GamR = torch.zeros(B, r, r, dtype=_DT)
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
            g = torch.zeros(B, n[l], n[lp], dtype=_DT)
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
        eye = torch.eye(n[l], dtype=_DT)
        i = offs[("F", k)]
        Gam[:, i : i + n[l], i : i + n[l]] += sc((G[k] * G[k]).sum(-1)) * eye
        GamR[:, i : i + n[l], i : i + n[l]] += sc((RG[k] * RG[k]).sum(-1)) * eye
    # ---- M̂ and per-neuron block norms of M̂ and R_M (each 2×2 block [[a, b], [b, 0]] has norm
    # (|a| + √(a² + 4b²))/2); eM, eR are those norms on the diagonal, one per row of U.
    dJ = torch.zeros(B, r, dtype=_DT)  # M̂ = diag(dJ) + offdiagonal coupling J_l <-> F_{l+1} with weights sF
    sF = torch.zeros(B, r, dtype=_DT)
    partner = torch.arange(r)
    eM = torch.zeros(B, r, dtype=_DT)
    eR = torch.zeros(B, r, dtype=_DT)
    for l in range(L - 1):
        i, j = offs[("J", l)], offs[("F", l + 1)]
        idx = torch.arange(n[l])
        dJ[:, i : i + n[l]] = D[l]
        sF[:, i : i + n[l]] = S[l]
        sF[:, j : j + n[l]] = S[l]
        partner[i : i + n[l]] = j + idx
        partner[j : j + n[l]] = i + idx
        bm = _norm_up((D[l].abs() + torch.sqrt(D[l] ** 2 + 4 * S[l] ** 2)) / 2, 2)
        br = _norm_up((RD[l] + torch.sqrt(RD[l] ** 2 + 4 * RS[l] ** 2)) / 2, 2)
        eM[:, i : i + n[l]] = bm
        eM[:, j : j + n[l]] = bm
        eR[:, i : i + n[l]] = br
        eR[:, j : j + n[l]] = br
    nM, nRM = eM.amax(-1), eR.amax(-1)
    # ---- centre norm ‖ÛᵀM̂Û‖ = max |eig(Γ^{1/2} M̂ Γ^{1/2})|
    Gam = (Gam + Gam.transpose(-1, -2)) / 2
    lam, Q = torch.linalg.eigh(Gam)
    half = Q @ (torch.sqrt(lam.clamp(min=0.0)).unsqueeze(-1) * Q.transpose(-1, -2))
    def right_M(X):  # X M̂ for a batch of matrices X (B, k, r), using the sparsity of M̂
        return X * dJ.unsqueeze(-2) + X[..., partner] * sF.unsqueeze(-2)

    C = right_M(half) @ half
    C = (C + C.transpose(-1, -2)) / 2
    ev = torch.linalg.eigvalsh(C)
    nU2 = _norm_up(lam[..., -1].clamp(min=0.0), r)
    centre = ev.abs().amax(-1) + 64.0 * r * _U * nU2 * nM + _TINY
    MG = right_M(Gam).transpose(-1, -2)  # M̂ Γ (Γ, M̂ symmetric)
    MGM = right_M(MG)
    nMU = torch.sqrt(_lam_max_sym((MGM + MGM.transpose(-1, -2)) / 2).clamp(min=0.0))
    # ---- perturbation. With w = Ûv, e = ΔU v (|ΔU| ≤ R_U) and per-neuron block bounds,
    #   |wᵀΔM w| ≤ ‖E_R^{1/2} w‖²,  |eᵀM̂w| ≤ min(‖e‖‖M̂w‖, ‖E_M^{1/2}e‖‖E_M^{1/2}w‖),
    #   |eᵀΔM w| ≤ ‖E_R^{1/2}e‖‖E_R^{1/2}w‖,  |eᵀM'e| ≤ ‖e‖²‖M̂‖ + ‖E_R^{1/2}e‖²  (Cauchy–Schwarz per block).
    def weighted(Gx, wts, nonneg):
        sw = torch.sqrt(wts)
        Sx = sw.unsqueeze(-1) * Gx * sw.unsqueeze(-2)
        return _cw_bound(Sx) if nonneg else _lam_max_sym((Sx + Sx.transpose(-1, -2)) / 2)

    t_RU = _cw_bound(GamR).clamp(min=0.0)  # ‖R_U‖²
    t_ERU = weighted(GamR, eR, True).clamp(min=0.0)  # ‖E_R^{1/2} R_U‖²
    t_EMRU = weighted(GamR, eM, True).clamp(min=0.0)  # ‖E_M^{1/2} R_U‖²
    t_ERw = weighted(Gam, eR, False).clamp(min=0.0)  # ‖E_R^{1/2} Û‖²
    t_EMw = weighted(Gam, eM, False).clamp(min=0.0)  # ‖E_M^{1/2} Û‖²
    nRU = torch.sqrt(t_RU)
    cross = torch.minimum(nRU * nMU, torch.sqrt(t_EMRU * t_EMw))
    pert = t_ERw + 2 * cross + 2 * torch.sqrt(t_ERU * t_ERw) + t_RU * nM + t_ERU
    nU = torch.sqrt(nU2)
    bound = ((centre + pert) * (1.0 + 16 * _U)) * (1.0 + rel_margin)
    out = bound.numpy().copy()
    if not np.all(np.isfinite(out)):
        out = np.where(np.isfinite(out), out, np.inf)
    if details:
        parts = {k: v.numpy().copy() for k, v in dict(centre=centre, perturbation=pert, norm_U=nU, norm_MU=nMU, norm_RU=nRU, norm_M=nM, norm_RM=nRM).items()}
        return out, parts
    return out


# ============================================================ (b) norm chain for an MLP output
def _chain_layer_norms(Ws, ends, rad, ball, o):
    """Per layer l = 2..L: ω'_l, ω''_l (norm bounds of W diag(σ'), W diag(|σ''|)) and μ_{l−1} = max σ'.

    ``o`` restricts the last layer to one output row (``None``: all outputs).
    """
    L = len(Ws)
    out = []
    for l in range(1, L):
        W = Ws[l] if (l < L - 1 or o is None) else Ws[l][:, o : o + 1, :]
        lo, hi = ends[l - 1]
        spm, spr = _dtanh_iv(lo, hi)
        Sp = (spm + spr).clamp(max=1.0)
        sppm, sppr = _d2tanh_iv(lo, hi)
        Spp = (sppm.abs() + sppr).clamp(max=TANH_D2_MAX * (1 + 8 * _U))
        no, ni = W.shape[-2], W.shape[-1]
        eps = rad * (math.sqrt(no * ni) if not ball else 1.0)
        w1 = _norm_up(torch.linalg.matrix_norm(W * Sp.unsqueeze(-2), ord=2), max(no, ni)) + eps * Sp.amax(-1)
        w2 = _norm_up(torch.linalg.matrix_norm(W * Spp.unsqueeze(-2), ord=2), max(no, ni)) + eps * Spp.amax(-1)
        out.append((w1 * (1 + 8 * _U), w2 * (1 + 8 * _U), Sp.amax(-1)))
    return out


def _sym_outer(e_idx: int, u: torch.Tensor) -> torch.Tensor:
    """``e uᵀ + u eᵀ`` for a batch of vectors ``u`` (B, L)."""
    B, L = u.shape
    M = torch.zeros(B, L, L, dtype=u.dtype)
    M[:, e_idx, :] += u
    M[:, :, e_idx] += u
    return M


def mlp_hessian_bound_chain(
    struct: MLPStructure,
    thetas: np.ndarray,
    x: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "box",
    output: int = 0,
    rel_margin: float = DEFAULT_REL_MARGIN,
    gradient: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Method (b): sound ``sup_{θ ∈ Θ} ‖∇²_θ f_θ(x)‖₂`` by the norm chain (see the module docstring).

    Parameters
    ----------
    struct, thetas, x, radius, kind, output, rel_margin
        As in :func:`mlp_hessian_bound_interval`.
    gradient : bool
        Also return a sound bound on ``sup ‖∇_θ f_θ(x)‖₂``.

    Returns
    -------
    hessian : ndarray, shape (B,)
    grad : ndarray, shape (B,), only with ``gradient``
    """
    struct.require_smooth()
    check_in("kind", kind, REGION_KINDS)
    check_nonnegative("rel_margin", rel_margin)
    o = _check_output(struct, output)
    th, xx, rad = _as_batch(struct, thetas, x, radius, struct.widths[0])
    ball = kind == "ball"
    Ws, bs = struct.unflatten(th)
    L = len(Ws)
    B = th.shape[0]
    _, hiv, ends = _forward_intervals(struct, Ws, bs, xx, torch.zeros_like(xx), rad, ball)
    eta = [torch.sqrt(((m.abs() + r) ** 2).sum(-1) + 1.0) * (1 + 8 * _U) for m, r in hiv]
    norms = _chain_layer_norms(Ws, ends, rad, ball, o)
    u = torch.zeros(B, L, dtype=_DT)
    u[:, 0] = eta[0]
    Q = torch.zeros(B, L, L, dtype=_DT)
    for l in range(1, L):
        w1, w2, mu = norms[l - 1]
        Q = mu[:, None, None] * _sym_outer(l, u) + w2[:, None, None] * (u.unsqueeze(-1) * u.unsqueeze(-2)) + w1[:, None, None] * Q
        u = w1[:, None] * u
        u[:, l] = u[:, l] + eta[l]
    hess = (_lam_max_sym(Q) * (1 + 16 * _U) * (1.0 + rel_margin)).numpy().copy()
    if gradient:
        g = (torch.linalg.vector_norm(u, dim=-1) * (1 + 16 * _U) * (1.0 + rel_margin)).numpy().copy()
        return hess, g
    return hess


# ============================================================ (b) norm chain through a rollout
def rollout_hessian_bound_chain(
    struct: MLPStructure,
    model: RolloutModel,
    thetas: np.ndarray,
    x0: np.ndarray,
    radius: np.ndarray | float,
    *,
    kind: str = "ball",
    rel_margin: float = DEFAULT_REL_MARGIN,
) -> tuple[np.ndarray, np.ndarray]:
    """Method (b) through the unrolled closed loop: sound Hessian and gradient bounds of every rollout row.

    For the closed loop of :class:`RolloutModel`, bound ``sup_{θ ∈ Θ} ‖∇²_θ r_j(θ)‖₂`` and
    ``sup_{θ ∈ Θ} ‖∇_θ r_j(θ)‖₂`` for every row ``r_j`` of the rollout from ``x0``.

    Parameters
    ----------
    struct : MLPStructure
        The residual ``φ`` (``tanh``); its output dimension is the input dimension ``m`` of ``B``.
    model : RolloutModel
    thetas : ndarray, shape (B, d) or (1, d)
    x0 : ndarray, shape (B, n) or (1, n)
        Initial states (fixed).
    radius : float or ndarray (B,)
    kind : {"box", "ball"}
    rel_margin : float

    Returns
    -------
    hessian : ndarray, shape (B, n_rows)
    gradient : ndarray, shape (B, n_rows)
    """
    struct.require_smooth()
    check_in("kind", kind, REGION_KINDS)
    check_nonnegative("rel_margin", rel_margin)
    n_x = model.A.shape[0]
    m_u = model.B.shape[1]
    if struct.widths[0] != n_x or struct.widths[-1] != m_u:
        raise ShapeError(f"struct: expected a network {n_x} -> {m_u} for this closed loop, got {struct.widths[0]} -> {struct.widths[-1]}")
    th, xx, rad = _as_batch(struct, thetas, x0, radius, n_x)
    ball = kind == "ball"
    Ws, bs = struct.unflatten(th)
    L = len(Ws)
    Bn = th.shape[0]
    T = model.horizon
    A, Bm, K = (np.array(v, dtype=float) for v in (model.A, model.B, model.K))
    Mcl = A + Bm @ K
    grow = 1.0 + 64.0 * (T + n_x + 4) * _U
    MkB = [Bm]
    for _ in range(T):
        MkB.append(Mcl @ MkB[-1])
    Mk = [np.eye(n_x)]
    for _ in range(T):
        Mk.append(Mcl @ Mk[-1])
    nb = np.array([np.linalg.norm(Y, 2) for Y in MkB]) * grow
    Hx, Hu, P = (np.array(v, dtype=float) for v in (model.Hx, model.Hu, model.P))
    cs = np.array([[np.linalg.norm(Hx[c] @ Y) for c in range(Hx.shape[0])] for Y in MkB]) * grow  # (T+1, px)
    cu = np.array([[np.linalg.norm(Hu[c] @ K @ Y) for c in range(Hu.shape[0])] for Y in MkB]) * grow  # (T+1, pu)
    cu0 = np.linalg.norm(Hu, axis=1) * grow
    pb = np.array([math.sqrt(max(np.linalg.eigvalsh(Y.T @ P @ Y)[-1], 0.0)) for Y in MkB]) * grow
    PMkB = [torch.as_tensor(P @ Y, dtype=_DT) for Y in MkB]  # (n, m)
    MkB_t = [torch.as_tensor(Y, dtype=_DT) for Y in MkB]
    # first layer: ω1[b, k] = sup ‖(W_1+E_1) M^k B‖
    W1 = Ws[0]
    eps1 = rad * (math.sqrt(W1.shape[-2] * W1.shape[-1]) if not ball else 1.0)
    om1 = torch.stack([_norm_up(torch.linalg.matrix_norm(W1 @ Y, ord=2), max(W1.shape[-2], m_u)) + eps1 * float(nb[k])
                       for k, Y in enumerate(MkB_t)], dim=1) * grow  # (B, T+1)
    # ---- contractive variant: state variations in the metric ‖x‖_P of the LQR matrix P, propagated
    # by interval closed-loop Jacobians J_t = M + B ∂φ/∂x over ([x_t], Θ) instead of Σ_k ‖M^kB‖ Lip φ.
    ev_P, V_P = np.linalg.eigh((P + P.T) / 2)
    if not ev_P[0] > 0:
        raise InvalidInputError(f"model.P: expected a positive definite matrix, got smallest eigenvalue {ev_P[0]:.3e}")
    Ph = V_P @ np.diag(np.sqrt(ev_P)) @ V_P.T
    Pmh = V_P @ np.diag(1.0 / np.sqrt(ev_P)) @ V_P.T
    Ph_t, Pmh_t = torch.as_tensor(Ph, dtype=_DT), torch.as_tensor(Pmh, dtype=_DT)
    nPmh = float(np.linalg.norm(Pmh, 2)) * grow
    nBP = float(np.linalg.norm(Ph @ Bm, 2)) * grow
    om1P = (_norm_up(torch.linalg.matrix_norm(W1 @ Pmh_t, ord=2), max(W1.shape[-2], n_x)) + eps1 * nPmh) * grow
    Ws_rad = rad  # entry bound of the parameter perturbation (box r; ball ρ)
    cxP = torch.as_tensor(np.linalg.norm(Hx @ Pmh, axis=1) * grow, dtype=_DT)  # (px,)
    Mcl_t, B_t, K_t, Hu_t = (torch.as_tensor(v, dtype=_DT) for v in (Mcl, Bm, K, Hu))
    uxP = torch.zeros(Bn, L, dtype=_DT)
    QxP = torch.zeros(Bn, L, L, dtype=_DT)
    c_state_H, c_state_g = [], []  # per t = 1..T: (B, px, L, L), (B, px, L)
    c_in_H, c_in_g = [], []  # per t = 0..T−1: (B, pu, L, L), (B, pu, L)
    cu0_t = torch.as_tensor(cu0, dtype=_DT)
    # interval states: x_t = M^t x0 + Σ_s M^{t−1−s} B φ_s
    phim: list[torch.Tensor] = []
    phir: list[torch.Tensor] = []
    ps = torch.zeros(Bn, T, L, dtype=_DT)
    Qs = torch.zeros(Bn, T, L, L, dtype=_DT)
    xm_list, xr_list = [], []
    for t in range(T + 1):
        xm = xx @ torch.as_tensor(Mk[t].T, dtype=_DT)
        xr = torch.zeros_like(xm)
        mag = (xx.abs() @ torch.as_tensor(np.abs(Mk[t]).T, dtype=_DT))
        for s in range(t):
            Y = MkB_t[t - 1 - s]
            xm = xm + phim[s] @ Y.T
            xr = xr + phir[s] @ Y.abs().T
            mag = mag + (phim[s].abs() + phir[s]) @ Y.abs().T
        xr = xr + _sl(mag + xr, t + n_x + 2)
        xm_list.append(xm)
        xr_list.append(xr)
        if t == T:
            break
        zs, hiv, ends = _forward_intervals(struct, Ws, bs, xm, xr, rad, ball)
        phim.append(zs[-1][0])
        phir.append(zs[-1][1])
        eta = [torch.sqrt(((m.abs() + r) ** 2).sum(-1) + 1.0) * (1 + 8 * _U) for m, r in hiv]
        # ẋ_t and ẍ_t from earlier policy outputs
        coef = torch.as_tensor(nb[t - 1 :: -1][:t].copy() if t else np.zeros(0), dtype=_DT)  # nb[t−1−s], s = 0..t−1
        om = om1[:, :t].flip(-1) if t else om1[:, :0]  # ω1[b, t−1−s]
        ux = torch.einsum("s,bsi->bi", coef, ps[:, :t]) if t else torch.zeros(Bn, L, dtype=_DT)
        w1u = torch.einsum("bs,bsi->bi", om, ps[:, :t]) if t else torch.zeros(Bn, L, dtype=_DT)
        w1Q = torch.einsum("bs,bsij->bij", om, Qs[:, :t]) if t else torch.zeros(Bn, L, L, dtype=_DT)
        u = w1u.clone()
        u[:, 0] = u[:, 0] + eta[0]
        Q = _sym_outer(0, ux) + w1Q
        for l, (w1, w2, mu) in enumerate(_chain_layer_norms(Ws, ends, rad, ball, None), start=1):
            Q = mu[:, None, None] * _sym_outer(l, u) + w2[:, None, None] * (u.unsqueeze(-1) * u.unsqueeze(-2)) + w1[:, None, None] * Q
            u = w1[:, None] * u
            u[:, l] = u[:, l] + eta[l]
        ps[:, t] = u
        Qs[:, t] = Q
        # contractive variant at time t
        cn = _chain_layer_norms(Ws, ends, rad, ball, None)
        uP = torch.zeros(Bn, L, dtype=_DT)
        uP[:, 0] = eta[0]
        uth = uP.clone()
        uP = uP + om1P[:, None] * uxP
        QP = nPmh * _sym_outer(0, uxP)  # 2 V_1 ẋ_t; the W_1 ẍ_t part is in J_t ẍ_t
        for l, (w1, w2, mu) in enumerate(cn, start=1):
            QP = mu[:, None, None] * _sym_outer(l, uP) + w2[:, None, None] * (uP.unsqueeze(-1) * uP.unsqueeze(-2)) + w1[:, None, None] * QP
            uP = w1[:, None] * uP
            uP[:, l] = uP[:, l] + eta[l]
            uth = w1[:, None] * uth
            uth[:, l] = uth[:, l] + eta[l]
        # interval ∂φ/∂x over ([x_t], Θ), from the output side
        Xm = Ws[-1]
        Xr = torch.full_like(Xm, 0.0) + Ws_rad[:, None, None]
        for l in range(L - 2, -1, -1):
            dm, dr = _dtanh_iv(*ends[l])
            Xm, Xr = _mul(Xm, Xr, dm.unsqueeze(-2), dr.unsqueeze(-2))
            Xm, Xr = _param_rmatmul(Xm, Xr, Ws[l], rad, ball)
        Jm = Ph_t @ (Mcl_t + B_t @ Xm) @ Pmh_t
        JrN = torch.linalg.matrix_norm(Xr @ Pmh_t.abs(), ord=2) * nBP
        nJ = (_norm_up(torch.linalg.matrix_norm(Jm, ord=2), n_x) + JrN) * grow
        kin_m = (Hu_t @ (K_t + Xm)) @ Pmh_t  # (B, pu, n)
        kin = (torch.linalg.vector_norm(kin_m, dim=-1) + torch.linalg.vector_norm((Hu_t.abs() @ Xr) @ Pmh_t.abs(), dim=-1)) * grow
        c_in_H.append(kin[:, :, None, None] * QxP[:, None] + cu0_t[None, :, None, None] * QP[:, None])
        c_in_g.append(kin[:, :, None] * uxP[:, None] + cu0_t[None, :, None] * uth[:, None])
        uxP = nJ[:, None] * uxP + nBP * uth
        QxP = nJ[:, None, None] * QxP + nBP * QP
        c_state_H.append(cxP[None, :, None, None] * QxP[:, None])
        c_state_g.append(cxP[None, :, None] * uxP[:, None])
    # ---- rows
    px, pu = Hx.shape[0], Hu.shape[0]
    R = model.n_rows
    Cmat = np.zeros((R - 1, T))
    for t in range(1, T + 1):
        for c in range(px):
            Cmat[(t - 1) * px + c, :t] = cs[t - 1 :: -1, c][:t]
    base = T * px
    Cdir = np.zeros((R - 1, T))
    for t in range(T):
        for c in range(pu):
            if t:
                Cmat[base + t * pu + c, :t] = cu[t - 1 :: -1, c][:t]
            Cdir[base + t * pu + c, t] = cu0[c]
    Ct = torch.as_tensor(Cmat + Cdir, dtype=_DT)
    Hcoef = torch.einsum("rs,bsij->brij", Ct, Qs)
    gcoef = torch.einsum("rs,bsi->bri", Ct, ps)
    # terminal: 2 ẋᵀPẋ + 2 x_TᵀPẍ
    xTm, xTr = xm_list[T], xr_list[T]
    tw = torch.stack([torch.linalg.vector_norm((xTm @ Y).abs() + xTr @ Y.abs(), dim=-1) for Y in PMkB], dim=1) * grow  # (B, T+1)
    if T:
        pbt = torch.as_tensor(pb[T - 1 :: -1][:T].copy(), dtype=_DT)
        gvec = torch.einsum("s,bsi->bi", pbt, ps)
        twT = tw[:, :T].flip(-1)
        HT = 2 * gvec.unsqueeze(-1) * gvec.unsqueeze(-2) + 2 * torch.einsum("bs,bsij->bij", twT, Qs)
        gT = 2 * torch.einsum("bs,bsi->bi", twT, ps)
    else:
        HT = torch.zeros(Bn, L, L, dtype=_DT)
        gT = torch.zeros(Bn, L, dtype=_DT)
    Hcoef = torch.cat([Hcoef, HT.unsqueeze(1)], dim=1)
    gcoef = torch.cat([gcoef, gT.unsqueeze(1)], dim=1)
    hess = _lam_max_sym(Hcoef)
    grad = torch.linalg.vector_norm(gcoef, dim=-1)
    if T:
        xTP = (torch.linalg.vector_norm(xTm @ Ph_t.T, dim=-1) + torch.linalg.vector_norm(xTr @ Ph_t.abs().T, dim=-1)) * grow
        HTP = 2 * uxP.unsqueeze(-1) * uxP.unsqueeze(-2) + 2 * xTP[:, None, None] * QxP
        HP = torch.cat([torch.cat(c_state_H, 1), torch.cat(c_in_H, 1), HTP.unsqueeze(1)], dim=1)
        GP = torch.cat([torch.cat(c_state_g, 1), torch.cat(c_in_g, 1), (2 * xTP[:, None] * uxP).unsqueeze(1)], dim=1)
        hess = torch.minimum(hess, _lam_max_sym(HP))
        grad = torch.minimum(grad, torch.linalg.vector_norm(GP, dim=-1))
    hess = hess * (1 + 16 * _U) * (1.0 + rel_margin)
    grad = grad * (1 + 16 * _U) * (1.0 + rel_margin)
    h, g = hess.numpy().copy(), grad.numpy().copy()
    return np.where(np.isfinite(h), h, np.inf), np.where(np.isfinite(g), g, np.inf)


# ================================================================== task adapters and certificates
_ROWS_STATEMENT = {
    "mlp-output": "every row g_i(θ) = ±f_θ(x_j) − b is L_i-smooth on the region: sup_{θ∈Θ} ‖∇²g_i(θ)‖₂ ≤ L_i",
    "per-row": "every rollout row g_i(θ) is L_i-smooth on the region: sup_{θ∈Θ} ‖∇²g_i(θ)‖₂ ≤ L_i",
    "max": (
        "every rollout row r_j underlying the max row g_i = max_j r_j satisfies sup_{θ∈Θ} ‖∇²r_j(θ)‖₂ ≤ L_i; "
        "g_i itself is not smooth, and (★) for g_i is justified only for steps Δ = Σ c_k δ_k with c_k ≥ 0 "
        "and Σ c_k ≤ 1 (other steps rest on evaluation alone)"
    ),
    "lse": (
        "every log-sum-exp row g_i = τ log Σ_j exp(r_j/τ) is L_i-smooth on the region, with "
        "L_i = max_j sup‖∇²r_j‖ + max_j sup‖∇r_j‖² / τ"
    ),
}


@dataclass(frozen=True)
class SmoothnessCertificate:
    """Sound smoothness constants of a task's constraint rows over a parameter region.

    Attributes
    ----------
    L : ndarray, shape (N,)
        The sound bound per constraint row: the smallest of the methods that ran.
    methods : dict of str -> ndarray (N,)
        Each method's bound (``"interval"``, ``"norm-chain"``); ``inf`` where it did not run.
    gradient : ndarray, shape (N,) or None
        Sound bounds on ``sup ‖∇g_i‖₂`` over the region where available.
    region : Region
    rows : str
        ``"mlp-output"``, ``"per-row"``, ``"max"`` or ``"lse"``; see :attr:`statement`.
    statement : str
        What exactly is certified.
    rel_margin : float
    timings : dict of str -> float
        Seconds per method.
    notes : list of str
    underlying_argmax : ndarray or None
        For ``max``/``lse`` rows: index of the underlying rollout row with the largest bound.
    """

    L: np.ndarray
    methods: dict[str, np.ndarray]
    gradient: np.ndarray | None
    region: Region
    rows: str
    statement: str
    rel_margin: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    underlying_argmax: np.ndarray | None = None

    level = Level.SOUND

    def claim(self, L_used: np.ndarray) -> Claim:
        """``L_used ≥ L`` row by row (``sound``); NaN/inf in either fails."""
        L_used = as_array("L_used", L_used, shape=(self.L.size,), finite=False)
        ok = np.isfinite(self.L) & np.isfinite(L_used) & (L_used >= self.L)
        return Claim(
            name="smoothness_certified",
            statement=f"For the region {self.region.kind} of radius {self.region.radius:g}: {self.statement}, with L_i ≤ L_used_i.",
            level=Level.SOUND,
            holds=bool(np.all(ok)),
            details={"rows": int(self.L.size), "rows_certified": int(ok.sum()), "rel_margin": self.rel_margin,
                     "worst_ratio_bound_over_used": float(np.max(self.L / L_used)) if self.L.size else float("nan")},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "region": self.region.to_dict(),
            "rows": self.rows,
            "statement": self.statement,
            "rel_margin": self.rel_margin,
            "L": self.L,
            "methods": self.methods,
            "gradient": self.gradient,
            "timings": self.timings,
            "notes": self.notes,
        }


def _regression_parts(task) -> tuple[MLPStructure, np.ndarray]:
    struct = MLPStructure.from_module(task.policy.residual)
    x = task._x_grid.numpy().copy()  # the exact grid the task evaluates, (n_grid, 1)
    return struct, x


def rollout_model_of(task) -> RolloutModel:
    """The :class:`RolloutModel` of a double-integrator-like task (no switching)."""
    if getattr(task.config, "switching", False):
        raise UnsupportedError(
            "task.config.switching: the switched policy (backup alone inside X_s) is discontinuous in the state, "
            "so rollout rows are not smooth in θ where a trajectory crosses the switching surface; no L is certified"
        )
    s = task.system
    return RolloutModel(A=np.array(s.A), B=np.array(s.B), K=np.array(task.K), Hx=np.array(s.Hx), hx=np.array(s.hx),
                        Hu=np.array(s.Hu), hu=np.array(s.hu), P=np.array(task.P), gamma=float(task.gamma),
                        horizon=int(task.config.horizon))


def _task_type(task) -> str:
    from ..tasks import DoubleIntegratorTask, RegressionTask

    if isinstance(task, RegressionTask):
        return "regression"
    if isinstance(task, DoubleIntegratorTask):
        return "rollout"
    raise UnsupportedError(f"task: smoothness bounds support RegressionTask and DoubleIntegratorTask, got {type(task).__name__}")


METHODS = ("interval", "norm-chain")


def smoothness_bounds(
    task,
    theta: np.ndarray,
    region: Region,
    *,
    methods: Sequence[str] = METHODS,
    rel_margin: float = DEFAULT_REL_MARGIN,
    chunk: int = 64,
) -> SmoothnessCertificate:
    """Sound ``L_i ≥ sup_{θ' ∈ Θ} ‖∇²g_i(θ')‖₂`` for every constraint row of a built-in task.

    Parameters
    ----------
    task : RegressionTask or DoubleIntegratorTask
    theta : ndarray, shape (d,)
        Centre of the region.
    region : Region
    methods : sequence of {"interval", "norm-chain"}
        Methods to run; the reported ``L`` is their minimum. ``interval`` applies to MLP-output
        rows (regression); rollout rows use the norm chain (a note says so).
    rel_margin : float
    chunk : int
        Inputs or states per batch (memory).

    Returns
    -------
    SmoothnessCertificate

    Raises
    ------
    UnsupportedError
        ReLU policies, switched policies, other task types.
    InvalidInputError
        Bad ``theta``, unknown method, empty method list.
    """
    kind = _task_type(task)
    if not isinstance(region, Region):
        raise InvalidInputError(f"region: expected a Region, got {type(region).__name__}")
    theta = as_array("theta", theta, shape=(task.dim,))
    methods = list(methods)
    if not methods:
        raise InvalidInputError("methods: expected at least one of " + ", ".join(METHODS))
    for m in methods:
        check_in("method", m, METHODS)
    check_nonnegative("rel_margin", rel_margin)
    check_int("chunk", chunk, minimum=1)
    notes: list[str] = []
    timings: dict[str, float] = {}
    if kind == "regression":
        struct, x = _regression_parts(task)
        struct.require_smooth()
        n_grid = x.shape[0]
        res: dict[str, np.ndarray] = {}
        grad = None
        for m in methods:
            t0 = time.perf_counter()
            out = np.empty(n_grid)
            g = np.empty(n_grid)
            for i in range(0, n_grid, chunk):
                sl = slice(i, i + chunk)
                if m == "interval":
                    out[sl] = mlp_hessian_bound_interval(struct, theta[None], x[sl], region.radius, kind=region.kind, rel_margin=rel_margin)
                else:
                    out[sl], g[sl] = mlp_hessian_bound_chain(struct, theta[None], x[sl], region.radius, kind=region.kind,
                                                             rel_margin=rel_margin, gradient=True)
            if m == "norm-chain":
                grad = np.repeat(g, 2)
            timings[m] = time.perf_counter() - t0
            res[m] = np.repeat(out, 2)  # rows f − b and −f − b share |∇²|
        L = np.min(np.stack(list(res.values())), axis=0)
        return SmoothnessCertificate(L=L, methods=res, gradient=grad, region=region, rows="mlp-output",
                                     statement=_ROWS_STATEMENT["mlp-output"], rel_margin=rel_margin, timings=timings, notes=notes)
    # rollout rows
    struct = MLPStructure.from_module(task.policy.residual)
    struct.require_smooth()
    model = rollout_model_of(task)
    states = np.asarray(task.train_states, dtype=float)
    if "interval" in methods:
        notes.append("the interval method (a) is implemented for MLP-output rows; rollout rows use the norm chain (b) through the unrolled dynamics")
    if "norm-chain" not in methods:
        raise InvalidInputError("methods: rollout rows need 'norm-chain' (the interval method covers MLP-output rows only)")
    t0 = time.perf_counter()
    Hs, Gs = [], []
    for i in range(0, states.shape[0], chunk):
        h, g = rollout_hessian_bound_chain(struct, model, theta[None], states[i : i + chunk], region.radius, kind=region.kind, rel_margin=rel_margin)
        Hs.append(h)
        Gs.append(g)
    R_rows = model.n_rows
    H = np.concatenate(Hs) if Hs else np.zeros((0, R_rows))  # (S, R)
    G = np.concatenate(Gs) if Gs else np.zeros((0, R_rows))
    timings["norm-chain"] = time.perf_counter() - t0
    mode = task.config.rows
    argmax = None
    if mode == "per-row":
        L, grad = H.reshape(-1), G.reshape(-1)
    elif mode == "max":
        L, grad = H.max(axis=1), None
        argmax = H.argmax(axis=1)
    else:  # lse
        tau = float(task.config.lse_temperature)
        L = (H.max(axis=1) + G.max(axis=1) ** 2 / tau) * (1 + 16 * _U) * (1 + rel_margin)
        grad, argmax = G.max(axis=1), H.argmax(axis=1)
    if model.horizon > 10:
        notes.append(f"horizon T = {model.horizon}: the norm chain sums curvature over the unrolled steps and grows with T; "
                     "compare with the estimated lower bounds for its looseness")
    methods_out = {"norm-chain": L}
    return SmoothnessCertificate(L=L, methods=methods_out, gradient=grad, region=region, rows=mode,
                                 statement=_ROWS_STATEMENT[mode], rel_margin=rel_margin, timings=timings, notes=notes,
                                 underlying_argmax=argmax)


def certified_L(task, theta: np.ndarray, radius: float, *, kind: str = "ball", methods: Sequence[str] = METHODS,
                rel_margin: float = DEFAULT_REL_MARGIN) -> np.ndarray:
    """Sound per-row smoothness constants for the projector: ``L_i ≥ sup_{‖θ'−θ‖ ≤ radius} ‖∇²g_i(θ')‖₂``.

    Parameters
    ----------
    task : RegressionTask or DoubleIntegratorTask
    theta : ndarray, shape (d,)
    radius : float
        Positive radius of the L2 ball (``kind="ball"``, the geometry of (★)) or of the L∞ box.
    kind : {"ball", "box"}
    methods : sequence of {"interval", "norm-chain"}
        ``("norm-chain",)`` is the fast choice for use at every iteration (milliseconds per
        row); adding ``"interval"`` is tighter for small regions of MLP-output rows.
    rel_margin : float

    Returns
    -------
    ndarray, shape (N,)
        Strictly positive (a zero bound is raised to the smallest positive float so that the
        projector accepts it).
    """
    radius = check_positive("radius", radius)
    cert = smoothness_bounds(task, theta, Region(kind=kind, radius=radius), methods=methods, rel_margin=rel_margin)
    return np.maximum(cert.L, np.finfo(float).tiny)


# =================================================================== lower bounds (estimated)
def task_row_function(task) -> tuple[Callable[..., torch.Tensor], str]:
    """A ``torch.func``-friendly function of one constraint row and its context.

    Returns
    -------
    fn : callable
        Regression: ``fn(θ (d,), x (1,), sign ()) = sign·f_θ(x) − b``. Rollout tasks:
        ``fn(θ, x0 (n,), onehot (R,))`` = the selected rollout row, or for ``lse`` rows
        ``fn(θ, x0) = τ log Σ exp(r/τ)``.
    kind : str
        ``"regression"``, ``"rollout"`` or ``"rollout-lse"``.
    """
    kind = _task_type(task)
    struct = MLPStructure.from_module(task.policy.residual)
    if kind == "regression":
        b = float(task.config.bound)

        def fn(theta, x, sign):
            return sign * struct.forward(theta, x)[0] - b

        return fn, "regression"
    model = rollout_model_of(task)
    if task.config.rows == "lse":
        tau = float(task.config.lse_temperature)

        def fn_lse(theta, x0):
            return tau * torch.logsumexp(model.rows(struct, theta, x0) / tau, dim=0)

        return fn_lse, "rollout-lse"

    def fn_row(theta, x0, onehot):
        return model.rows(struct, theta, x0) @ onehot

    return fn_row, "rollout"


def curvature_search(
    fn: Callable[..., torch.Tensor],
    theta: np.ndarray,
    contexts: Sequence[torch.Tensor],
    region: Region,
    *,
    power_iters: int = 20,
    ascent_steps: int = 8,
    n_random: int = 8,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Largest observed curvature of rows ``fn(θ', *ctx)`` over ``θ'`` in the region (``estimated``).

    For each context: power iteration with Hessian-vector products at the centre (``‖∇²fn(θ)v‖``
    for the unit iterate ``v``), projected gradient ascent of ``‖∇²fn(θ')v‖²`` over ``θ'`` in the
    region (a few power steps after each move), second differences along the top eigenvector
    candidate and along random directions (less ``8u`` times the magnitudes, their rounding
    error). Every figure is a valid lower bound of ``sup_{θ'} ‖∇²fn(θ')‖₂`` in exact arithmetic.

    Parameters
    ----------
    fn : callable
        ``fn(θ (d,), *ctx) -> scalar tensor``.
    theta : ndarray, shape (d,)
    contexts : sequence of Tensor
        Each with leading dimension ``n`` (one entry per row examined).
    region : Region
    power_iters, ascent_steps, n_random : int
    seed : int

    Returns
    -------
    dict of ndarray (n,)
        ``lower`` (the largest of the others), ``power_centre`` (``‖∇²fn(θ)v‖`` after power
        iteration), ``second_diff_eig``, ``second_diff_random``, ``ascent`` (best ``‖∇²fn(θ')v‖``).
    """
    from torch.func import grad, jvp, vmap

    check_int("power_iters", power_iters, minimum=1)
    check_int("ascent_steps", ascent_steps, minimum=0)
    check_int("n_random", n_random, minimum=0)
    th0 = torch.as_tensor(as_array("theta", theta, ndim=1), dtype=_DT)
    d = th0.shape[0]
    ctx = [torch.as_tensor(c) for c in contexts]
    n = ctx[0].shape[0]
    gen = torch.Generator().manual_seed(int(seed))

    def hvp(th, v, *c):
        return jvp(lambda t: grad(fn)(t, *c), (th,), (v,))[1]

    vhvp = vmap(hvp)
    vfn = vmap(fn)

    def normalise(w):
        nw = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
        return torch.where(nw > 0, w / torch.clamp(nw, min=1e-300), torch.ones_like(w) / math.sqrt(d))

    def power(ths, v, k):
        """k power steps; then ‖Hv‖ (a lower bound of ‖H‖) and the better of the two eigenvector
        candidates v ± Hv/‖Hv‖ (they separate a ±λ pair, where the Rayleigh quotient of v itself can vanish)."""
        for _ in range(k):
            v = normalise(vhvp(ths, v, *ctx))
        w = vhvp(ths, v, *ctx)
        nrm = torch.linalg.vector_norm(w, dim=-1)
        w1 = normalise(w)
        cands = [normalise(v + w1), normalise(v - w1)]
        qs = [(c * vhvp(ths, c, *ctx)).sum(-1) for c in cands]
        pick = qs[0].abs() >= qs[1].abs()
        u = torch.where(pick.unsqueeze(-1), cands[0], cands[1])
        q = torch.where(pick, qs[0], qs[1])
        return v, u, torch.maximum(nrm, q.abs())

    ths = th0.expand(n, d).contiguous()
    v = normalise(torch.randn(n, d, dtype=_DT, generator=gen))
    v, u, lam = power(ths, v, power_iters)
    out = {"power_centre": lam}
    zeros = torch.zeros(n, dtype=_DT)
    sd_eig, sd_rand, best = zeros.clone(), zeros.clone(), lam.clone()
    rad = region.radius
    if rad > 0:
        with torch.no_grad():
            f0 = vfn(ths, *ctx)

            def second_diff(delta):
                fp, fm = vfn(ths + delta, *ctx), vfn(ths - delta, *ctx)
                num = (fp + fm - 2 * f0).abs() - 8 * _U * (fp.abs() + fm.abs() + 2 * f0.abs())
                return (num / (delta * delta).sum(-1)).clamp(min=0.0)

            h = rad if region.kind == "ball" else rad / u.abs().amax(-1, keepdim=True)
            sd_eig = second_diff(h * u)
            for _ in range(n_random):
                g = torch.randn(d, dtype=_DT, generator=gen)
                delta = (rad * g / torch.linalg.vector_norm(g)) if region.kind == "ball" else rad * torch.sign(g)
                sd_rand = torch.maximum(sd_rand, second_diff(delta.expand(n, d)))

        def sq(th, v, *c):  # ‖H(θ')v‖², maximised over θ' in the region
            w = hvp(th, v, *c)
            return (w * w).sum()

        vgrad = vmap(grad(sq))
        cur = ths.clone()
        for k in range(ascent_steps):
            gr = vgrad(cur, v, *ctx)
            if region.kind == "ball":
                step = normalise(gr) * (rad / (k + 1))
            else:
                step = torch.sign(gr) * (rad / (k + 1))
            cur = region.project(cur + step, th0)
            v, _, lk = power(cur, v, 3)
            best = torch.maximum(best, lk)
    out.update(second_diff_eig=sd_eig, second_diff_random=sd_rand, ascent=best)
    lower = torch.stack([out["power_centre"], sd_eig, sd_rand, best]).amax(0)
    out["lower"] = lower
    return {k: v_.detach().numpy().copy() for k, v_ in out.items()}


@dataclass(frozen=True)
class LowerBounds:
    """``estimated`` lower bounds on ``sup_{θ'∈Θ} ‖∇²g_i(θ')‖₂`` for some rows.

    Attributes
    ----------
    rows : ndarray of int, shape (n,)
        Task row indices.
    values : ndarray, shape (n,)
        The lower bounds (for ``max`` rows: of the largest underlying row curvature examined).
    details : dict of str -> ndarray (n,)
        The components (:func:`curvature_search`).
    region : Region
    """

    rows: np.ndarray
    values: np.ndarray
    details: dict[str, np.ndarray]
    region: Region

    level = Level.ESTIMATED


def smoothness_lower_bounds(
    task,
    theta: np.ndarray,
    region: Region,
    rows: Sequence[int] | np.ndarray | None = None,
    *,
    underlying_argmax: np.ndarray | None = None,
    power_iters: int = 20,
    ascent_steps: int = 8,
    n_random: int = 8,
    seed: int = 0,
    chunk: int = 128,
) -> LowerBounds:
    """``estimated`` lower bounds on the curvature of task rows over the region.

    Parameters
    ----------
    task : RegressionTask or DoubleIntegratorTask
    theta : ndarray, shape (d,)
    region : Region
    rows : sequence of int, optional
        Task row indices (default: all rows).
    underlying_argmax : ndarray, optional
        For ``max`` rows: the underlying row per state with the largest sound bound
        (:attr:`SmoothnessCertificate.underlying_argmax`); examined together with the row that
        attains the max at ``θ``.
    power_iters, ascent_steps, n_random, seed : int
        See :func:`curvature_search`.
    chunk : int
        Rows per vectorised batch.

    Returns
    -------
    LowerBounds
    """
    theta = as_array("theta", theta, shape=(task.dim,))
    fn, kind = task_row_function(task)
    N = int(np.asarray(task.constraints(theta[None])).shape[1])
    rows = np.arange(N) if rows is None else np.asarray(rows, dtype=int).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= N):
        raise InvalidInputError(f"rows: expected indices in [0, {N}), got range [{rows.min()}, {rows.max()}]")
    kw = dict(power_iters=power_iters, ascent_steps=ascent_steps, n_random=n_random, seed=seed)
    if kind == "regression":
        _, x = _regression_parts(task)
        grid = rows // 2
        uniq, inv = np.unique(grid, return_inverse=True)
        ctx = [torch.as_tensor(x[uniq]), torch.ones(uniq.size, dtype=_DT)]
        res = _chunked_search(fn, theta, ctx, region, chunk, kw)
        details = {k: v[inv] for k, v in res.items()}
        return LowerBounds(rows=rows, values=details["lower"], details=details, region=region)
    model = rollout_model_of(task)
    states = np.asarray(task.train_states, dtype=float)
    R = model.n_rows
    mode = task.config.rows
    if kind == "rollout-lse":
        ctx = [torch.as_tensor(states[rows])]
        res = _chunked_search(fn, theta, ctx, region, chunk, kw)
        return LowerBounds(rows=rows, values=res["lower"], details=res, region=region)
    if mode == "per-row":
        s_idx, r_idx = rows // R, rows % R
        own = np.arange(rows.size)
    else:  # max: the active row at θ and the row with the largest sound bound
        with torch.no_grad():
            ro = task.rollout(theta[None], states[rows])
            active = task.rollout_rows(ro)[0].numpy().argmax(axis=1)
        cand = [active] + ([np.asarray(underlying_argmax)[rows]] if underlying_argmax is not None else [])
        s_idx = np.concatenate([rows] * len(cand))
        r_idx = np.concatenate(cand)
        own = np.concatenate([np.arange(rows.size)] * len(cand))
    onehot = np.zeros((s_idx.size, R))
    onehot[np.arange(s_idx.size), r_idx] = 1.0
    res = _chunked_search(fn, theta, [torch.as_tensor(states[s_idx]), torch.as_tensor(onehot)], region, chunk, kw)
    details = {}
    for k, v in res.items():
        agg = np.zeros(rows.size)
        np.maximum.at(agg, own, v)
        details[k] = agg
    details["underlying_row"] = r_idx[: rows.size].astype(float)
    return LowerBounds(rows=rows, values=details["lower"], details=details, region=region)


def _chunked_search(fn, theta, ctx, region, chunk, kw) -> dict[str, np.ndarray]:
    n = ctx[0].shape[0]
    parts: list[dict[str, np.ndarray]] = []
    for i in range(0, n, chunk):
        parts.append(curvature_search(fn, theta, [c[i : i + chunk] for c in ctx], region, **kw))
    if not parts:
        return {k: np.zeros(0) for k in ("lower", "power_centre", "second_diff_eig", "second_diff_random", "ascent")}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
