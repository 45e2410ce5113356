"""Optional reference backend: the same closed loop bounded by upstream auto_LiRPA (imported lazily)."""

from __future__ import annotations

import math

import torch

from ..._validate import check_int
from ...errors import UnsupportedError
from ...numerics import DEFAULT_MARGIN, Margin
from .network import ClosedLoop, closed_loop_module
from .types import DT, IntervalBounds, RolloutBounds

__all__ = ["auto_lirpa_rollout_bounds"]


def _import_auto_lirpa():
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor  # type: ignore[import-not-found]
        from auto_LiRPA.perturbations import PerturbationLpNorm  # type: ignore[import-not-found]
    except ImportError as exc:
        raise UnsupportedError(
            "backend 'auto_lirpa': the optional package auto_LiRPA is not installed (or failed to import: "
            f"{exc}); install it from https://github.com/Verified-Intelligence/auto_LiRPA, or use the built-in "
            "method='crown', which needs nothing extra"
        ) from None
    return BoundedModule, BoundedTensor, PerturbationLpNorm


def auto_lirpa_rollout_bounds(
    loop: ClosedLoop, boxes: IntervalBounds, horizon: int, *, method: str = "CROWN", margin: Margin = DEFAULT_MARGIN
) -> RolloutBounds:
    """Bounds of the states and inputs along the rollout computed by upstream auto_LiRPA (optional).

    auto_LiRPA is not a dependency of scpo; it is imported here, lazily. It traces
    :func:`~scpo.certify.bounds.closed_loop_module` (which runs :func:`scpo.systems.rollout`); its
    bounds are widened by the same ``margin`` and returned as :class:`RolloutBounds` (states with
    ``x_0`` = the box). auto_LiRPA creates its internal tensors in torch's default dtype, so the
    default dtype is float64 during the call (and restored afterwards, also on error).

    Parameters
    ----------
    loop : ClosedLoop
    boxes : IntervalBounds, shape (B, n)
    horizon : int
        ``T ≥ 1``.
    method : str
        An auto_LiRPA method name, e.g. ``"IBP"``, ``"CROWN"``, ``"CROWN-IBP"``, ``"alpha-CROWN"``.
    margin : Margin
        Outward widening of its bounds.

    Returns
    -------
    RolloutBounds
        ``state_rows``, ``input_rows``, ``terminal_upper``, ``value_change_upper`` and the linear
        bounds are ``None``.

    Raises
    ------
    UnsupportedError
        If auto_LiRPA cannot be imported (the message says how to get it and that the built-in
        ``"crown"`` method needs nothing extra).
    """
    BoundedModule, BoundedTensor, PerturbationLpNorm = _import_auto_lirpa()
    T = check_int("horizon", horizon, minimum=1)
    net = closed_loop_module(loop, T)
    lo, hi = boxes.lower, boxes.upper
    center = (lo + hi) / 2
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        bounded = BoundedModule(net, torch.zeros_like(center), device="cpu")
        x = BoundedTensor(center, PerturbationLpNorm(norm=math.inf, x_L=lo, x_U=hi))
        lb, ub = bounded.compute_bounds(x=(x,), method=method)
    finally:
        torch.set_default_dtype(old_dtype)
    lb, ub = margin.widen(lb.detach().to(DT), ub.detach().to(DT))
    n, m, b = loop.n, loop.m, lo.shape[0]
    xs_l = lb[:, : T * n].reshape(b, T, n)
    xs_u = ub[:, : T * n].reshape(b, T, n)
    states = IntervalBounds(torch.cat([lo[:, None], xs_l], 1), torch.cat([hi[:, None], xs_u], 1))
    inputs = IntervalBounds(lb[:, T * n :].reshape(b, T, m), ub[:, T * n :].reshape(b, T, m))
    return RolloutBounds(method=f"auto_LiRPA:{method}", states=states, inputs=inputs, state_rows=None, input_rows=None,
                         terminal_upper=None, value_change_upper=None, state_linear=None, input_linear=None, margin=margin)
