"""The interval-arithmetic toolkit of :mod:`scpo.certify` (midpoint-radius, float64, outward slack).

Every sound bound of the certify package — bound propagation through closed loops
(:mod:`scpo.certify.bounds`), Hessian and gradient bounds in the parameters
(:mod:`scpo.certify.smoothness`) and local state-Lipschitz bounds (:mod:`scpo.certify.lipschitz`)
— is built from the primitives below. An interval is a pair ``(mid, rad)`` of tensors of the same
shape, ``{x : |x − mid| ≤ rad}``.

Products use Rump's midpoint-radius rule (S. M. Rump, "Fast and parallel interval arithmetic",
BIT 39 (1999)): for ``x ∈ x_c ± x_r`` and ``W ∈ W_c ± W_r``,

    W x ∈ W_c x_c ± (|W_c| x_r + W_r (|x_c| + x_r)),

because ``W x − W_c x_c = W_c (x − x_c) + (W − W_c) x``. Rounding: torch has no directed rounding,
so a computed quantity of magnitude ``μ`` built from sums of ``n`` terms receives the slack
``(n + 4) u μ`` (``u = 2⁻⁵³``, :data:`scpo.numerics.UNIT_ROUNDOFF`; Higham's bound ``γ_n`` for a
length-``n`` dot product, with headroom), norms returned by eigen- and singular-value routines of
size ``n`` are inflated by the relative ``64 n u``.

The *parameter-region* products (:func:`param_affine` and friends) enclose ``(W + E) h`` over a
perturbation ``E`` of the weights in an L∞ box (``|E_ij| ≤ r``) or an L2 ball (``‖E‖_F ≤ ρ``,
hence ``‖E_i‖ ≤ ρ`` for every row) around the centre ``W``.

Activation enclosures (:data:`ENCLOSURES`, keyed by the names of
:data:`scpo.policies.ACTIVATIONS`) give, per activation, the interval of ``σ``, ``σ'`` and ``σ''``
over an interval of pre-activations and the slopes a Lipschitz bound needs; an activation without
an entry is refused (:class:`~scpo.errors.UnsupportedError`), never approximated by another one's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UnsupportedError
from ..numerics import UNIT_ROUNDOFF as _U
from ..policies import ACTIVATIONS

__all__ = [
    "TINY",
    "TANH_D2_MAX",
    "Interval",
    "ActivationEnclosure",
    "ENCLOSURES",
    "enclosure",
    "affine",
    "rounding_slack",
    "inflate_norm",
    "param_affine",
    "param_matmul",
    "param_rmatmul",
    "param_vecmat",
    "interval_mul",
    "forward_intervals",
    "collatz_wielandt_bound",
    "lambda_max_sym",
]

TINY = 1e-300
"""Absolute floor added to slacks and norms (keeps a zero bound strictly positive)."""
TANH_D2_MAX = ACTIVATIONS["tanh"].d2_max
"""``max |tanh''| = 4/(3√3)``, attained at ``z = ±atanh(1/√3)``."""
_Z_CRIT = math.atanh(1.0 / math.sqrt(3.0))

Interval = tuple[torch.Tensor, torch.Tensor]
"""``(mid, rad)``: the interval ``mid ± rad`` elementwise."""


# ----------------------------------------------------------------------------- slack and norms
def rounding_slack(mag: torch.Tensor, n: int = 1) -> torch.Tensor:
    """Rounding slack ``(n + 4) u · mag + TINY`` of a computed quantity of magnitude ``mag``.

    Parameters
    ----------
    mag : Tensor
        A bound on the magnitude of the terms (``≥ 0``).
    n : int
        Length of the sums the quantity was computed from.

    Returns
    -------
    Tensor, same shape as ``mag``
    """
    return mag * ((n + 4) * _U) + TINY


def inflate_norm(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inflate a norm returned by an eigen- or singular-value routine of size ``n``: ``x (1 + 64 n u) + TINY``.

    Parameters
    ----------
    x : Tensor
        Computed norms.
    n : int
        Matrix size.

    Returns
    -------
    Tensor, same shape as ``x``
    """
    return x * (1.0 + 64.0 * max(n, 1) * _U) + TINY


def affine(
    W_center: torch.Tensor,
    b_center: torch.Tensor,
    x_mid: torch.Tensor,
    x_rad: torch.Tensor,
    W_radius: torch.Tensor | None = None,
    b_radius: torch.Tensor | None = None,
) -> Interval:
    """Midpoint-radius enclosure of ``W x + b`` for ``x ∈ x_mid ± x_rad``, ``W ∈ W_c ± W_r``, ``b ∈ b_c ± b_r``.

    ``W x + b ∈ W_c x_c + b_c ± (|W_c| x_r + W_r (|x_c| + x_r) + b_r)`` (module docstring). No
    rounding slack is added (callers widen once per layer with their margin).

    Parameters
    ----------
    W_center : Tensor, shape (out, in) or (B, out, in)
    b_center : Tensor, shape (out,) or (B, out)
    x_mid, x_rad : Tensor, shape (B, in)
    W_radius : Tensor, optional
        Same shape as ``W_center``, non-negative.
    b_radius : Tensor, optional
        Same shape as ``b_center``, non-negative.

    Returns
    -------
    mid, rad : Tensor, shape (B, out)
    """
    if W_center.ndim == 2:
        c = x_mid @ W_center.T + b_center
        r = x_rad @ W_center.abs().T
        if W_radius is not None:
            r = r + (x_mid.abs() + x_rad) @ W_radius.T
    else:
        c = torch.einsum("boi,bi->bo", W_center, x_mid) + b_center
        r = torch.einsum("boi,bi->bo", W_center.abs(), x_rad)
        if W_radius is not None:
            r = r + torch.einsum("boi,bi->bo", W_radius, x_mid.abs() + x_rad)
    if b_radius is not None:
        r = r + b_radius
    return c, r


# ----------------------------------------------------------------------------- parameter regions
def param_affine(W: torch.Tensor, b: torch.Tensor, hm: torch.Tensor, hr: torch.Tensor, rad: torch.Tensor, ball: bool) -> Interval:
    """``z = (W + E) h + (b + e)`` over ``h ∈ hm ± hr`` and the parameter region around ``(W, b)``.

    Box (``|E_ij|, |e_i| ≤ r``): ``|E_i h + e_i| ≤ r (‖h‖₁ + 1)``; ball (``‖(E_i, e_i)‖ ≤ ρ`` per
    neuron): ``|E_i h + e_i| ≤ ρ ‖[h; 1]‖₂``.

    Parameters
    ----------
    W : Tensor, shape (B, out, in)
    b : Tensor, shape (B, out)
    hm, hr : Tensor, shape (B, in)
        The input interval.
    rad : Tensor, shape (B,)
        Region radius ``r`` (box) or ``ρ`` (ball).
    ball : bool
        L2 ball (True) or L∞ box (False).

    Returns
    -------
    mid, rad : Tensor, shape (B, out)
    """
    habs = hm.abs() + hr
    zm = torch.einsum("boi,bi->bo", W, hm) + b
    absW = W.abs()
    zr = torch.einsum("boi,bi->bo", absW, hr)
    if ball:
        pert = rad[:, None] * torch.sqrt((habs * habs).sum(-1, keepdim=True) + 1.0)
    else:
        pert = rad[:, None] * (habs.sum(-1, keepdim=True) + 1.0)
    mag = torch.einsum("boi,bi->bo", absW, habs) + b.abs() + pert
    return zm, zr + pert + rounding_slack(mag + zr, W.shape[-1] + 2)


def param_matmul(W: torch.Tensor, Xm: torch.Tensor, Xr: torch.Tensor, rad: torch.Tensor, ball: bool) -> Interval:
    """``(W + E) X`` for an interval matrix ``X ∈ Xm ± Xr`` and the parameter region (no bias).

    Box: ``|(E X)_ip| ≤ r ‖X_:p‖₁``; ball: ``|(E X)_ip| ≤ ‖E_i‖ ‖X_:p‖₂ ≤ ρ ‖X_:p‖₂``.

    Parameters
    ----------
    W : Tensor, shape (B, out, in)
    Xm, Xr : Tensor, shape (B, in, c)
    rad : Tensor, shape (B,)
    ball : bool

    Returns
    -------
    mid, rad : Tensor, shape (B, out, c)
    """
    Xabs = Xm.abs() + Xr
    absW = W.abs()
    mid = W @ Xm
    r = absW @ Xr
    if ball:
        pert = rad[:, None, None] * torch.linalg.vector_norm(Xabs, dim=-2, keepdim=True)
    else:
        pert = rad[:, None, None] * Xabs.sum(-2, keepdim=True)
    return mid, r + pert + rounding_slack(absW @ Xabs + pert + r, W.shape[-1] + 2)


def param_rmatmul(Xm: torch.Tensor, Xr: torch.Tensor, W: torch.Tensor, rad: torch.Tensor, ball: bool) -> Interval:
    """``X (W + E)`` for an interval matrix ``X ∈ Xm ± Xr`` and the parameter region.

    ``X (W + E) = ((W + E)ᵀ Xᵀ)ᵀ``: :func:`param_matmul` of the transposes (box:
    ``|(X E)_ij| ≤ r ‖X_i‖₁``; ball: ``|(X E)_ij| ≤ ‖X_i‖₂ ‖E_:j‖₂ ≤ ρ ‖X_i‖₂``).

    Parameters
    ----------
    Xm, Xr : Tensor, shape (B, r, out)
    W : Tensor, shape (B, out, in)
    rad : Tensor, shape (B,)
    ball : bool

    Returns
    -------
    mid, rad : Tensor, shape (B, r, in)
    """
    mid, r = param_matmul(W.transpose(-1, -2), Xm.transpose(-1, -2), Xr.transpose(-1, -2), rad, ball)
    return mid.transpose(-1, -2), r.transpose(-1, -2)


def param_vecmat(W: torch.Tensor, gm: torch.Tensor, gr: torch.Tensor, rad: torch.Tensor, ball: bool) -> Interval:
    """``(W + E)ᵀ g`` for an interval vector ``g ∈ gm ± gr`` and the parameter region (:func:`param_rmatmul` of a row).

    Parameters
    ----------
    W : Tensor, shape (B, out, in)
    gm, gr : Tensor, shape (B, out)
    rad : Tensor, shape (B,)
    ball : bool

    Returns
    -------
    mid, rad : Tensor, shape (B, in)
    """
    mid, r = param_rmatmul(gm.unsqueeze(-2), gr.unsqueeze(-2), W, rad, ball)
    return mid.squeeze(-2), r.squeeze(-2)


def interval_mul(am: torch.Tensor, ar: torch.Tensor, bm: torch.Tensor, br: torch.Tensor) -> Interval:
    """Elementwise product of the intervals ``am ± ar`` and ``bm ± br`` (broadcasting).

    Parameters
    ----------
    am, ar : Tensor
    bm, br : Tensor
        Broadcastable against ``am``.

    Returns
    -------
    mid, rad : Tensor
        ``am bm ± (|am| br + ar |bm| + ar br)`` plus rounding slack.
    """
    mid = am * bm
    r = am.abs() * br + ar * bm.abs() + ar * br
    return mid, r + rounding_slack(mid.abs() + r)


# ----------------------------------------------------------------------------- activations
def _tanh_value(zm: torch.Tensor, zr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    s = rounding_slack(zm.abs() + zr)
    lo, hi = zm - zr - s, zm + zr + s
    tl, th = torch.tanh(lo), torch.tanh(hi)
    return (tl + th) / 2, (th - tl) / 2 + rounding_slack(tl.abs() + th.abs(), 8), lo, hi


def _tanh_d1(lo: torch.Tensor, hi: torch.Tensor) -> Interval:
    straddle = (lo <= 0) & (hi >= 0)
    near = torch.where(straddle, torch.zeros_like(lo), torch.minimum(lo.abs(), hi.abs()))
    far = torch.maximum(lo.abs(), hi.abs())
    up = (1.0 - torch.tanh(near) ** 2 + 16 * _U).clamp(max=1.0)
    dn = (1.0 - torch.tanh(far) ** 2 - 16 * _U).clamp(min=0.0)
    return (up + dn) / 2, (up - dn) / 2 + TINY


def _d2tanh(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(z)
    return -2.0 * t * (1.0 - t * t)


def _tanh_d2(lo: torch.Tensor, hi: torch.Tensor) -> Interval:
    # tanh''' vanishes only at ±atanh(1/√3), so the extremes are at the ends or there.
    fl, fh = _d2tanh(lo), _d2tanh(hi)
    vmax, vmin = torch.maximum(fl, fh), torch.minimum(fl, fh)
    tol = 1e-9
    cap = TANH_D2_MAX * (1.0 + 8 * _U)
    vmax = torch.where((lo <= -_Z_CRIT + tol) & (hi >= -_Z_CRIT - tol), torch.full_like(vmax, cap), vmax)
    vmin = torch.where((lo <= _Z_CRIT + tol) & (hi >= _Z_CRIT - tol), torch.full_like(vmin, -cap), vmin)
    up = (vmax + 32 * _U).clamp(max=cap)
    dn = (vmin - 32 * _U).clamp(min=-cap)
    return (up + dn) / 2, (up - dn) / 2 + TINY


def _tanh_point(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.tanh(z)
    return t, 1 - t * t


def _relu_point(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(z, 0), (z > 0).astype(float)


def _tanh_slopes(Ws, bs, xm, xr) -> list[Interval]:
    zero = torch.zeros(xm.shape[0], dtype=xm.dtype)
    _, _, ends = forward_intervals(ENCLOSURES["tanh"], Ws, bs, xm, xr, zero, False)
    return [_tanh_d1(lo, hi) for lo, hi in ends]


def _relu_slopes(Ws, bs, xm, xr) -> list[Interval]:
    # ReLU' is 1 where z > 0, 0 where z < 0 and [0, 1] (the Clarke derivative) where z may switch.
    slopes = []
    hm, hr = xm, xr
    for l in range(len(Ws) - 1):
        zm = torch.einsum("boi,bi->bo", Ws[l], hm) + bs[l]
        zr = torch.einsum("boi,bi->bo", Ws[l].abs(), hr)
        zr = zr + (torch.einsum("boi,bi->bo", Ws[l].abs(), hm.abs() + hr) + bs[l].abs()) * ((Ws[l].shape[-1] + 4) * _U)
        zl, zu = zm - zr, zm + zr
        up = (zu >= 0).to(xm.dtype)
        dn = (zl > 0).to(xm.dtype)
        slopes.append(((up + dn) / 2, (up - dn) / 2))
        hl, hu = zl.clamp(min=0), zu.clamp(min=0)
        hm, hr = (hl + hu) / 2, (hu - hl) / 2
    return slopes


@dataclass(frozen=True)
class ActivationEnclosure:
    """Interval enclosures of one activation ``σ`` and its derivatives.

    Attributes
    ----------
    name : str
        A key of :data:`scpo.policies.ACTIVATIONS`.
    point : callable
        ``z (ndarray) -> (σ(z), σ'(z))``; for a non-smooth ``σ`` a selection of the Clarke derivative.
    slopes : callable
        ``(Ws, bs, xm, xr) -> [(mid, rad)]``: an enclosure of ``σ'`` (or of the Clarke derivative) of
        every hidden layer of the network with weights ``Ws`` (B, out, in) and biases ``bs``
        (B, out) over the input interval ``xm ± xr`` (B, in).
    value : callable or None
        ``(zm, zr) -> (mid, rad, lo, hi)``: ``σ`` over ``zm ± zr`` and the outward-rounded ends
        ``lo, hi`` of the pre-activation interval (smooth activations only).
    d1, d2 : callable or None
        ``(lo, hi) -> (mid, rad)``: ``σ'`` and ``σ''`` over ``[lo, hi]`` (smooth activations only).
    d2_max : float
        ``sup |σ''|`` (``inf`` for a non-smooth ``σ``).
    """

    name: str
    point: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    slopes: Callable[..., list[Interval]]
    value: Callable[..., tuple[torch.Tensor, ...]] | None
    d1: Callable[..., Interval] | None
    d2: Callable[..., Interval] | None
    d2_max: float


ENCLOSURES: dict[str, ActivationEnclosure] = {
    "tanh": ActivationEnclosure("tanh", _tanh_point, _tanh_slopes, _tanh_value, _tanh_d1, _tanh_d2, TANH_D2_MAX),
    "relu": ActivationEnclosure("relu", _relu_point, _relu_slopes, None, None, None, math.inf),
}
"""Activation name -> :class:`ActivationEnclosure`."""


def enclosure(name: str, *, smooth: bool = False) -> ActivationEnclosure:
    """The enclosures of the activation ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`scpo.policies.ACTIVATIONS`.
    smooth : bool
        Require the enclosures of ``σ``, ``σ'`` and ``σ''`` (Hessian bounds).

    Returns
    -------
    ActivationEnclosure

    Raises
    ------
    UnsupportedError
        No enclosure is implemented for ``name`` (or not the smooth ones).
    """
    enc = ENCLOSURES.get(name)
    if enc is None or (smooth and enc.d2 is None):
        have = [k for k, v in ENCLOSURES.items() if not smooth or v.d2 is not None]
        raise UnsupportedError(f"activation {name!r}: interval enclosures{' of σ, σ′, σ″' if smooth else ''} are implemented for "
                               f"{', '.join(map(repr, have))} only")
    return enc


def forward_intervals(enc: ActivationEnclosure, Ws, bs, xm, xr, rad, ball) -> tuple[list[Interval], list[Interval], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Interval bounds of every layer of an MLP over the parameter region and an input interval.

    Parameters
    ----------
    enc : ActivationEnclosure
        Of the hidden layers' activation (with a ``value`` enclosure).
    Ws : list of Tensor, shapes (B, out_l, in_l)
    bs : list of Tensor, shapes (B, out_l)
    xm, xr : Tensor, shape (B, in_1)
        The input interval.
    rad : Tensor, shape (B,)
        Parameter-region radius (``0``: the parameters are fixed).
    ball : bool
        L2 ball (True) or L∞ box (False).

    Returns
    -------
    zs : list of (mid, rad)
        Pre-activations ``z_1 … z_L``.
    hs : list of (mid, rad)
        ``h_0 = x, h_1, …, h_{L−1}``.
    ends : list of (lo, hi)
        Outward-rounded ends of ``z_1 … z_{L−1}``.
    """
    if enc.value is None:
        raise UnsupportedError(f"activation {enc.name!r}: no interval enclosure of σ over the parameter region")
    hs, zs, ends = [(xm, xr)], [], []
    L = len(Ws)
    for l in range(L):
        zm, zr = param_affine(Ws[l], bs[l], *hs[-1], rad, ball)
        zs.append((zm, zr))
        if l < L - 1:
            m, r, lo, hi = enc.value(zm, zr)
            hs.append((m, r))
            ends.append((lo, hi))
    return zs, hs, ends


# ----------------------------------------------------------------------------- eigenvalues
def collatz_wielandt_bound(S: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Upper bound on ``λ_max`` of entrywise non-negative symmetric matrices (Collatz–Wielandt).

    For any positive ``x``, ``λ_max(S) ≤ max_i (Sx)_i / x_i``; ``x`` is a power iterate from the
    all-ones vector, floored away from zero (the bound holds for any such ``x``; the iterations
    only make it tight).

    Parameters
    ----------
    S : Tensor, shape (B, n, n)
        Non-negative entries.
    iters : int
        Power iterations.

    Returns
    -------
    Tensor, shape (B,)
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
    return inflate_norm(ratio.amax(-1), S.shape[-1])


def lambda_max_sym(S: torch.Tensor) -> torch.Tensor:
    """``λ_max`` of symmetric matrices, inflated for rounding (:func:`inflate_norm`).

    Parameters
    ----------
    S : Tensor, shape (B, n, n)

    Returns
    -------
    Tensor, shape (B,)
    """
    if S.shape[-1] == 0:
        return torch.zeros(S.shape[:-2], dtype=S.dtype)
    return inflate_norm(torch.linalg.eigvalsh(S)[..., -1], S.shape[-1])
