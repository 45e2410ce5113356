"""Interval bound propagation (IBP) through a network and through the unrolled closed loop.

Every quantity is an interval; affine maps use the midpoint-radius product of
:func:`scpo.certify.intervals.affine`, monotone activations map end points to end points, and every
layer's result is widened by the margin. Cheap and loose: the intervals forget correlations, so the
closed loop's radius grows like ``|A + BK|^t``. Optionally the parameters range over a box too.
"""

from __future__ import annotations

import numpy as np
import torch

from ..._validate import as_array
from ...errors import InvalidInputError, ShapeError, UnsupportedError
from ...numerics import DEFAULT_MARGIN, Margin
from ...numerics import UNIT_ROUNDOFF as _U
from .. import intervals as iv
from .network import ClosedLoop, Network
from .quadratic import box_max_quadratic
from .types import DT, IntervalBounds

__all__ = ["interval_affine", "ibp_network"]


def interval_affine(
    W_center: torch.Tensor,
    b_center: torch.Tensor,
    x: IntervalBounds,
    W_radius: torch.Tensor | None = None,
    b_radius: torch.Tensor | None = None,
) -> IntervalBounds:
    """Interval enclosure of ``W x + b`` for ``x ∈ [x]``, ``W ∈ W_c ± W_r``, ``b ∈ b_c ± b_r``.

    Midpoint-radius product (Rump 1999, :func:`scpo.certify.intervals.affine`):
    ``W x + b ∈ W_c x_c + b_c ± (|W_c| x_r + W_r (|x_c| + x_r) + b_r)``. Not widened (callers
    widen once per layer).

    Parameters
    ----------
    W_center : Tensor, shape (out, in) or (B, out, in)
    b_center : Tensor, shape (out,) or (B, out)
    x : IntervalBounds, shape (B, in)
    W_radius, b_radius : Tensor, optional
        Same shapes as the centres, non-negative.

    Returns
    -------
    IntervalBounds, shape (B, out)
    """
    c, r = iv.affine(W_center, b_center, x.center, x.radius, W_radius, b_radius)
    return IntervalBounds(c - r, c + r)


def layers_torch(network: Network, theta_box: tuple[np.ndarray, np.ndarray] | None) -> list[tuple]:
    """Per layer ``(W_c, b_c, W_r, b_r)`` as float64 tensors (radii ``None`` for fixed parameters).

    Parameters
    ----------
    network : Network
    theta_box : (ndarray, ndarray) or None
        Lower and upper flat parameters, shape (d,) each.

    Returns
    -------
    list of tuple
    """
    if theta_box is None:
        return [(torch.tensor(W, dtype=DT), torch.tensor(b, dtype=DT), None, None)
                for W, b in zip(network.weights, network.biases)]
    d = network.n_parameters
    lo = as_array("theta_box lower", theta_box[0], shape=(d,))
    hi = as_array("theta_box upper", theta_box[1], shape=(d,))
    if not np.all(lo <= hi):
        i = int(np.argmax(~(lo <= hi)))
        raise InvalidInputError(f"theta_box: expected lower <= upper, got {lo[i]!r} > {hi[i]!r} at parameter {i}")
    out = []
    st = network.structure
    for (Wl, bl), (Wh, bh) in zip(st.unflatten_numpy(lo), st.unflatten_numpy(hi)):
        Wc, Wr = (Wl + Wh) / 2, (Wh - Wl) / 2
        bc, br = (bl + bh) / 2, (bh - bl) / 2
        # The rounded centre may sit off the true midpoint by an ulp: widen the radius to cover [lo, hi].
        Wr = np.maximum(Wr, np.maximum(Wh - Wc, Wc - Wl)) * (1 + 4 * _U)
        br = np.maximum(br, np.maximum(bh - bc, bc - bl)) * (1 + 4 * _U)
        out.append(tuple(torch.as_tensor(a, dtype=DT) for a in (Wc, bc, Wr, br)))
    return out


def _monotone(network: Network):
    act = network.activation
    if not act.monotone:
        raise UnsupportedError(f"activation {act.name!r}: interval bound propagation maps end points and needs a monotone activation")
    return act.fn


def _ibp_phi(layers, fn, x: IntervalBounds, margin: Margin) -> IntervalBounds:
    h = x
    last = len(layers) - 1
    for j, (Wc, bc, Wr, br) in enumerate(layers):
        z = interval_affine(Wc, bc, h, Wr, br)
        lo, hi = margin.widen(z.lower, z.upper)
        if j < last:
            lo, hi = margin.widen(fn(lo), fn(hi))
        h = IntervalBounds(lo, hi)
    return h


def ibp_network(
    network: Network,
    x: IntervalBounds,
    *,
    theta_box: tuple[np.ndarray, np.ndarray] | None = None,
    margin: Margin = DEFAULT_MARGIN,
) -> IntervalBounds:
    """Interval bounds of ``φ(x)`` over input boxes, optionally over a box of parameters too.

    Parameters
    ----------
    network : Network
    x : IntervalBounds, shape (B, in_dim)
    theta_box : (ndarray, ndarray), optional
        Lower and upper flat parameters (the layout of :class:`~scpo.policies.MLPStructure`),
        shape (d,) each.
    margin : Margin
        Outward widening after every layer.

    Returns
    -------
    IntervalBounds, shape (B, out_dim)
    """
    if not isinstance(network, Network):
        raise UnsupportedError(f"network: expected a Network (see network_from_module), got {type(network).__name__}")
    if x.shape[-1] != network.in_dim:
        raise ShapeError(f"x: expected last dimension {network.in_dim}, got shape {tuple(x.shape)}")
    return _ibp_phi(layers_torch(network, theta_box), _monotone(network), x, margin)


def ibp_rollout(loop: ClosedLoop, boxes: IntervalBounds, T: int, H, Hu, Pt, theta_box, margin: Margin) -> dict:
    """IBP along ``T`` steps from each box: the fields of :class:`RolloutBounds` but ``method``, ``margin``.

    The arguments are those of :func:`scpo.certify.bounds.bound_rollout`, validated there (``H``,
    ``Hu``, ``Pt`` as float64 tensors or None).
    """
    layers = layers_torch(loop.network, theta_box)
    fn = _monotone(loop.network)
    Acl = torch.tensor(loop.A_cl, dtype=DT)
    Bt = torch.tensor(loop.B, dtype=DT)
    Kt = torch.tensor(loop.K, dtype=DT)
    zero_m = torch.zeros(loop.m, dtype=DT)
    x = boxes
    xs, us = [x], []
    for _ in range(T):
        phi = _ibp_phi(layers, fn, x, margin)
        kx = interval_affine(Kt, zero_m, x)
        uc, ur = kx.center + phi.center, kx.radius + phi.radius
        us.append(IntervalBounds(*margin.widen(uc - ur, uc + ur)))
        ax = interval_affine(Acl, torch.zeros(loop.n, dtype=DT), x)
        bp = interval_affine(Bt, torch.zeros(loop.n, dtype=DT), phi)
        xc, xr = ax.center + bp.center, ax.radius + bp.radius
        x = IntervalBounds(*margin.widen(xc - xr, xc + xr))
        xs.append(x)
    states = IntervalBounds.stack(xs, 1)
    inputs = IntervalBounds.stack(us, 1) if us else IntervalBounds.empty(boxes.shape[0], 0, loop.m)

    def rows(M, bounds):
        if M is None:
            return None
        c = bounds.center @ M.T
        r = bounds.radius @ M.abs().T
        return IntervalBounds(*margin.widen(c - r, c + r))

    term = box_max_quadratic(xs[-1].lower, xs[-1].upper, Pt, margin=margin) if Pt is not None else None
    return {"states": states, "inputs": inputs, "state_rows": rows(H, states), "input_rows": rows(Hu, inputs),
            "terminal_upper": term, "value_change_upper": None, "state_linear": None, "input_linear": None}
