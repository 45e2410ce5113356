"""Parallel-chord linear relaxations of activations on intervals (used by CROWN, :mod:`.crown`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...errors import UnsupportedError
from ...numerics import UNIT_ROUNDOFF as _U
from ...policies import ACTIVATIONS

__all__ = ["RELAXATIONS", "activation_relaxation"]


def _tanh_candidates(l: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = u - l
    mid = (l + u) / 2
    tl, tu = torch.tanh(l), torch.tanh(u)
    chord = (tu - tl) / torch.where(w > 0, w, torch.ones_like(w))
    k = torch.where(w > 1e-9, chord, 1.0 - torch.tanh(mid) ** 2)
    s = torch.sqrt(torch.clamp(1.0 - k, min=0.0, max=1.0))
    zc = torch.atanh(torch.clamp(s, max=1.0 - 2 * _U))  # ≥ 0; finite
    cands = torch.stack([l, u, torch.minimum(torch.maximum(zc, l), u), torch.minimum(torch.maximum(-zc, l), u)])
    return k, torch.tanh(cands) - k * cands


def _relu_candidates(l: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = u - l
    k = torch.where(l >= 0, torch.ones_like(l), torch.where(u <= 0, torch.zeros_like(l), u / torch.where(w > 0, w, torch.ones_like(w))))
    cands = torch.stack([l, u, torch.minimum(torch.maximum(torch.zeros_like(l), l), u)])
    return k, torch.relu(cands) - k * cands


RELAXATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "tanh": _tanh_candidates,
    "relu": _relu_candidates,
}
"""Activation name -> ``(l, u) -> (slope k, g(z) = σ(z) − k z at every candidate extremum)``."""


def activation_relaxation(name: str, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Parallel linear bounds of an activation on intervals: ``k z + β_l ≤ σ(z) ≤ k z + β_u`` on ``[l, u]``.

    The slope ``k`` is the chord slope ``(σ(u) − σ(l))/(u − l)`` (for ``u − l ≤ 1e-9`` the
    derivative at the midpoint); the offsets are the exact extrema

        β_l = min_{z∈[l,u]} g(z),   β_u = max_{z∈[l,u]} g(z),   g(z) = σ(z) − k z,

    widened by a few units of round-off.

    Soundness. For every ``z ∈ [l, u]``, ``β_l ≤ g(z) ≤ β_u`` by definition of the minimum and the
    maximum, i.e. ``k z + β_l ≤ σ(z) ≤ k z + β_u``; nothing depends on the choice of ``k``. The
    extrema of the continuous ``g`` on the compact ``[l, u]`` are attained at an end point or at an
    interior critical point. For ``tanh``, ``g'(z) = 1 − tanh²(z) − k`` vanishes only at
    ``z = ±atanh(√(1 − k))`` when ``0 < k ≤ 1`` (and nowhere otherwise), so the candidates are
    ``{l, u, ±atanh(√(1−k))}`` clipped to ``[l, u]`` (a clipped candidate is an end point, already a
    candidate). For ``ReLU`` ``g`` is piecewise linear with its only kink at 0, so the candidates
    are ``{l, u, clip(0, l, u)}``. Round-off: ``g`` is evaluated with an error below
    ``4u (1 + |k| max(|l|,|u|))``; a critical point computed with error ``δ`` lowers the computed
    extremum by at most ``max|g''| δ² / 2 ≤ 0.4 δ²`` (``g'`` vanishes there); both are covered by the
    widening ``16u (1 + |k| max(|l|, |u|))``.

    For a fixed slope these offsets are the tightest possible; for ReLU with ``l < 0 < u`` they give
    the relaxation ``k z ≤ ReLU(z) ≤ k (z − l)``, ``k = u/(u−l)``.

    Parameters
    ----------
    name : str
        An activation of :data:`scpo.policies.ACTIVATIONS` with a relaxation in :data:`RELAXATIONS`.
    lower, upper : Tensor, same shape
        Pre-activation bounds with ``lower ≤ upper``.

    Returns
    -------
    slope, offset_lower, offset_upper : Tensor
        Same shape as ``lower``.

    Raises
    ------
    UnsupportedError
        An activation without a relaxation.
    """
    if name not in RELAXATIONS or name not in ACTIVATIONS:
        raise UnsupportedError(f"activation: bound propagation has relaxations for {', '.join(map(repr, RELAXATIONS))}, got {name!r}")
    l, u = lower, upper
    k, g = RELAXATIONS[name](l, u)
    slack = 16 * _U * (1.0 + k.abs() * torch.maximum(l.abs(), u.abs()))
    return k, g.min(dim=0).values - slack, g.max(dim=0).values + slack
