"""Input checks and small helpers shared by the smoothness methods (private)."""

from __future__ import annotations

import numpy as np
import torch

from ..._validate import as_array, check_in, check_int
from ...errors import InvalidInputError, ShapeError, UnsupportedError
from ...numerics import Margin
from ...policies import MLPStructure
from .. import intervals as iv
from .types import REGION_KINDS

DT = torch.float64


def check_common(structure: MLPStructure, kind: str, margin: Margin) -> iv.ActivationEnclosure:
    """Smooth activation with enclosures, a known region kind, a Margin; returns the enclosures."""
    if not isinstance(structure, MLPStructure):
        raise UnsupportedError(f"structure: expected a scpo.policies.MLPStructure, got {type(structure).__name__}")
    structure.require_smooth()
    check_in("kind", kind, REGION_KINDS)
    if not isinstance(margin, Margin):
        raise InvalidInputError(f"margin: expected a scpo.numerics.Margin, got {type(margin).__name__}")
    return iv.enclosure(structure.activation, smooth=True)


def as_batch(structure: MLPStructure, thetas, x, radius, n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``thetas`` (B or 1, d), ``x`` (B or 1, n_in) and ``radius`` (scalar or B) as float64 tensors of batch B."""
    th = torch.as_tensor(as_array("thetas", thetas, ndim=2), dtype=DT)
    if th.shape[1] != structure.dim:
        raise ShapeError(f"thetas: expected shape (B, {structure.dim}), got {tuple(th.shape)}")
    xx = torch.as_tensor(as_array("x", x, ndim=2), dtype=DT)
    if xx.shape[1] != n_in:
        raise ShapeError(f"x: expected shape (B, {n_in}), got {tuple(xx.shape)}")
    rr = as_array("radius", np.atleast_1d(np.asarray(radius, dtype=float)), ndim=1)
    if np.any(rr < 0):
        raise InvalidInputError(f"radius: expected non-negative radii, got minimum {float(rr.min())}")
    B = max(th.shape[0], xx.shape[0], rr.shape[0])
    for name, n in (("thetas", th.shape[0]), ("x", xx.shape[0]), ("radius", rr.shape[0])):
        if n not in (1, B):
            raise ShapeError(f"{name}: expected a batch of 1 or {B}, got {n}")
    return th.expand(B, -1).contiguous(), xx.expand(B, -1).contiguous(), torch.as_tensor(rr, dtype=DT).expand(B).contiguous()


def check_output(structure: MLPStructure, output: int) -> int:
    """``0 ≤ output < out_dim``."""
    return check_int("output", output, minimum=0, maximum=structure.out_dim - 1)


def weights_biases(structure: MLPStructure, th: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-layer views ``[W_l (B, out, in)]``, ``[b_l (B, out)]`` of the flat rows ``th`` (B, d)."""
    layers = structure.unflatten(th)
    return [W for W, _ in layers], [b for _, b in layers]


def sym_outer(e_idx: int, u: torch.Tensor) -> torch.Tensor:
    """``e uᵀ + u eᵀ`` for a batch of vectors ``u`` (B, L) and the unit vector ``e = e_{e_idx}``."""
    B, L = u.shape
    M = torch.zeros(B, L, L, dtype=u.dtype)
    M[:, e_idx, :] += u
    M[:, :, e_idx] += u
    return M


def finite_or_inf(x: np.ndarray) -> np.ndarray:
    """NaN and −inf become +inf (a bound that is not finite certifies nothing)."""
    return np.where(np.isfinite(x), x, np.inf)
