"""The audit's own closed loop: deliberately a second implementation of the rollout.

Everything else in scpo rolls out through :func:`scpo.systems.rollout`; the audit does not, so
that a bug there cannot hide itself from the audit. It evaluates

    x_{t+1} = A x_t + B u_t,   u_t = K x_t + m(x_t) · φ_θ(x_t),   t = 0 … T−1,

for ``C`` checkpoints at once from ``S`` initial states, with ``A, B, K`` and ``T`` from the
task's :class:`~scpo.systems.ClosedLoopProblem`, ``φ_θ`` evaluated from the checkpoint tensors
read by name (``W`` then ``b`` per layer, ``h ← σ(h Wᵀ + b)``, no activation after the last layer;
``σ`` from :data:`scpo.policies.ACTIVATIONS`, named by the task's policy structure), and the
switching mask ``m(x) = [xᵀ P_s x > γ_s]`` when the policy switches its residual off inside
``X_s`` (else ``m ≡ 1``). Batched float64 matrix products; NaN/inf propagate (and then fail the
reach-avoid claim). Time convention as in :mod:`scpo.systems.problem`: states ``x_0 … x_T``,
inputs ``u_0 … u_{T−1}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..policies.structure import activation as activation_of
from ..systems import ClosedLoopProblem

__all__ = ["closed_loop", "layers_from_tensors", "policy_switch"]


def layers_from_tensors(tensors: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stack the layers of ``C`` checkpoints: the names pair up as ``(weight, bias)`` in order.

    Parameters
    ----------
    tensors : sequence of mapping name -> ndarray
        One mapping per checkpoint (as read from the file).
    names : sequence of str
        ``policy.parameter_names`` of ``config.json``: ``W_1, b_1, W_2, b_2, …``.

    Returns
    -------
    list of (W, b)
        ``W`` of shape (C, out, in), ``b`` of shape (C, out), float64.

    Raises
    ------
    ShapeError
        An odd number of names, or a weight and bias that do not fit.
    """
    if len(names) % 2:
        raise ShapeError(f"names: expected (weight, bias) pairs, got {len(names)} names")
    layers = []
    for wn, bn in zip(names[0::2], names[1::2]):
        W = np.stack([np.asarray(t[wn], dtype=np.float64) for t in tensors])
        b = np.stack([np.asarray(t[bn], dtype=np.float64) for t in tensors])
        if W.ndim != 3 or b.ndim != 2 or b.shape[1] != W.shape[1]:
            raise ShapeError(f"{wn}, {bn}: expected a weight (out, in) and a bias (out,), got {W.shape[1:]} and {b.shape[1:]}")
        layers.append((W, b))
    return layers


def policy_switch(policy: Any) -> tuple[np.ndarray, float] | None:
    """``(P_s, γ_s)`` of a residual policy that switches its residual off inside ``X_s``, else None.

    Parameters
    ----------
    policy : ResidualPolicy
        Read through its public ``switches``, ``switch_P`` and ``switch_level``.

    Returns
    -------
    (ndarray of shape (n, n), float) or None
    """
    if not policy.switches:
        return None
    return np.array(policy.switch_P.detach().cpu().numpy(), dtype=float), float(policy.switch_level)


def closed_loop(
    problem: ClosedLoopProblem,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    x0: np.ndarray,
    *,
    activation: str,
    switch: tuple[np.ndarray, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Roll the closed loop out over the problem's horizon (see the module docstring).

    Parameters
    ----------
    problem : ClosedLoopProblem
        ``A, B, K`` and ``T``.
    layers : sequence of (W, b)
        From :func:`layers_from_tensors`: ``W`` (C, out, in), ``b`` (C, out).
    x0 : ndarray, shape (S, n)
        Initial states, shared by the ``C`` checkpoints.
    activation : str
        A key of :data:`scpo.policies.ACTIVATIONS` (the hidden layers' ``σ``).
    switch : (ndarray of shape (n, n), float), optional
        ``(P_s, γ_s)``; see :func:`policy_switch`.

    Returns
    -------
    states : ndarray, shape (C, S, T+1, n)
    inputs : ndarray, shape (C, S, T, m)

    Raises
    ------
    ShapeError
        ``x0`` or the layers do not fit the problem.
    """
    import torch

    f64 = torch.float64
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 2 or x0.shape[1] != problem.n:
        raise ShapeError(f"x0: expected shape (S, {problem.n}), got {x0.shape}")
    if not layers or layers[0][0].shape[2] != problem.n or layers[-1][0].shape[1] != problem.m:
        raise ShapeError(f"layers: expected a network from {problem.n} states to {problem.m} inputs")
    A = torch.tensor(np.array(problem.A, dtype=float), dtype=f64)
    Bm = torch.tensor(np.array(problem.B, dtype=float), dtype=f64)
    K = torch.tensor(np.array(problem.K, dtype=float), dtype=f64)
    T = int(problem.horizon)
    net = [(torch.tensor(W, dtype=f64).transpose(1, 2).contiguous(), torch.tensor(b, dtype=f64)[:, None, :].contiguous())
           for W, b in layers]
    act = activation_of(activation).fn
    sw = None if switch is None else (torch.tensor(np.array(switch[0], dtype=float), dtype=f64), float(switch[1]))
    nb = net[0][0].shape[0]
    x = torch.tensor(x0, dtype=f64).unsqueeze(0).expand(nb, -1, -1).contiguous()
    states = torch.empty((nb, x.shape[1], T + 1, x.shape[2]), dtype=f64)
    inputs = torch.empty((nb, x.shape[1], T, Bm.shape[1]), dtype=f64)
    states[:, :, 0] = x
    with torch.no_grad():
        for t in range(T):
            h = x
            for j, (Wt, b) in enumerate(net):
                h = torch.baddbmm(b, h, Wt)
                if j < len(net) - 1:
                    h = act(h)
            if sw is not None:
                h = h * (torch.einsum("bsi,ij,bsj->bs", x, sw[0], x) > sw[1]).to(f64).unsqueeze(-1)
            u = x @ K.T + h
            x = x @ A.T + u @ Bm.T
            inputs[:, :, t] = u
            states[:, :, t + 1] = x
    return states.numpy(), inputs.numpy()
