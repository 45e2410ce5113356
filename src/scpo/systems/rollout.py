"""The one closed-loop rollout and the one row builder of scpo.

Time convention (every caller shares it because there is only this loop): ``states[..., t, :]``
is ``x_t`` for ``t = 0 … T`` and ``inputs[..., t, :]`` is ``u_t = π(x_t)`` for ``t = 0 … T−1``;
``x_{t+1} = A x_t + B u_t``. The rows of a rollout follow
:class:`~scpo.systems.problem.RowLayout`: state rows for ``t = 1 … T``, input rows for
``t = 0 … T−1``, then the terminal row.

There is no Python loop over policies or states, only over time; the functions are plain tensor
code, so ``torch.func`` can differentiate and ``vmap`` them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_in, check_int, check_positive
from ..errors import ShapeError

__all__ = ["Rollout", "rollout", "constraint_rows", "aggregate_rows", "linear_policy", "ROW_AGGREGATIONS"]

ROW_AGGREGATIONS = ("per-row", "max", "lse")
"""How the rows of one initial state enter ``g``: one by one, as their maximum, or as the
log-sum-exp ``τ log Σ exp(r/τ)`` (a smooth upper bound of the maximum)."""

PolicyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Rollout:
    """Batched closed-loop trajectories.

    Attributes
    ----------
    states : Tensor, shape (P, S, T+1, n)
        ``x_0 … x_T`` for ``P`` policies (parameter vectors) and ``S`` initial states.
    inputs : Tensor, shape (P, S, T, m)
        ``u_0 … u_{T−1}``.
    """

    states: torch.Tensor
    inputs: torch.Tensor


def _tensor(M: Any, like: torch.Tensor) -> torch.Tensor:
    if isinstance(M, torch.Tensor):
        return M.to(dtype=like.dtype, device=like.device)
    import numpy as np

    return torch.as_tensor(np.array(M, dtype=np.float64), device=like.device).to(like.dtype)


def linear_policy(K: Any) -> PolicyFn:
    """``π(x) = K x`` as a rollout policy.

    Parameters
    ----------
    K : array_like or Tensor, shape (m, n)

    Returns
    -------
    callable
        Maps states (…, n) to inputs (…, m).
    """

    def policy(x: torch.Tensor) -> torch.Tensor:
        return x @ _tensor(K, x).T

    return policy


def rollout(dynamics: Any, policy: PolicyFn, x0: torch.Tensor, horizon: int) -> Rollout:
    """Simulate ``x_{t+1} = A x_t + B π(x_t)`` for ``t = 0 … T−1``.

    Parameters
    ----------
    dynamics : ClosedLoopProblem or LinearSystem
        Anything with attributes ``A`` (n, n) and ``B`` (n, m) (arrays or tensors).
    policy : callable
        The whole input ``u_t = π(x_t)``: maps states of shape (P, S, n) to inputs (P, S, m).
        When ``x0`` has shape (S, n) it receives (S, n) at ``t = 0`` and must broadcast to
        (P, S, m) (the residual policies of :mod:`scpo.policies` do).
    x0 : Tensor, shape (P, S, n) or (S, n)
        Initial states: one set per policy, or one set shared by every policy.
    horizon : int
        ``T ≥ 0``.

    Returns
    -------
    Rollout
        ``states`` (P, S, T+1, n), ``inputs`` (P, S, T, m); ``P = 1`` when ``x0`` is shared and
        ``T = 0``.
    """
    T = check_int("horizon", horizon, minimum=0)
    if x0.ndim not in (2, 3):
        raise ShapeError(f"x0: expected shape (P, S, n) or (S, n), got {tuple(x0.shape)}")
    A = _tensor(dynamics.A, x0)
    B = _tensor(dynamics.B, x0)
    n = A.shape[0]
    if x0.shape[-1] != n:
        raise ShapeError(f"x0: expected last dimension {n} to match A, got shape {tuple(x0.shape)}")
    states, inputs = [x0], []
    x = x0
    for _ in range(T):
        u = policy(x)
        inputs.append(u)
        x = x @ A.T + u @ B.T
        states.append(x)
    if x0.ndim == 2:  # a shared x0: broadcast it to the policies' batch
        P = inputs[0].shape[0] if inputs and inputs[0].ndim == 3 else 1
        states[0] = x0.unsqueeze(0).expand(P, -1, -1)
    P, S = states[0].shape[:2]
    U = torch.stack(inputs, dim=2) if inputs else torch.zeros(P, S, 0, B.shape[1], dtype=x0.dtype, device=x0.device)
    return Rollout(states=torch.stack(states, dim=2), inputs=U)


def constraint_rows(problem: Any, ro: Rollout) -> torch.Tensor:
    """Every constraint row of rollouts in the problem's row layout (``≤ 0`` safe).

    Parameters
    ----------
    problem : ClosedLoopProblem
    ro : Rollout
        States (P, S, T+1, n), inputs (P, S, T, m) with ``T = problem.horizon``.

    Returns
    -------
    Tensor, shape (P, S, R)
        ``R = problem.layout.n_rows``: ``Hx x_t − hx`` (``t = 1 … T``), ``Hu u_t − hu``
        (``t = 0 … T−1``), ``x_TᵀPx_T − γ``.
    """
    t = problem.tensors(ro.states.device, ro.states.dtype)
    if ro.inputs.shape[2] != problem.horizon:
        raise ShapeError(f"ro: expected a rollout of T = {problem.horizon} steps, got {ro.inputs.shape[2]}")
    X = ro.states[:, :, 1:, :]
    sx = X @ t["Hx"].T - t["hx"]
    su = ro.inputs @ t["Hu"].T - t["hu"]
    P_, S_ = X.shape[:2]
    parts = [sx.reshape(P_, S_, -1), su.reshape(P_, S_, -1)]
    if problem.has_terminal:
        xT = ro.states[:, :, -1, :]
        parts.append((torch.einsum("bsi,ij,bsj->bs", xT, t["P"], xT) - problem.gamma).unsqueeze(-1))
    return torch.cat(parts, dim=-1)


def aggregate_rows(rows: torch.Tensor, mode: str = "per-row", temperature: float = 0.02) -> torch.Tensor:
    """Turn the rows of each initial state into the entries of ``g``.

    Parameters
    ----------
    rows : Tensor, shape (P, S, R)
    mode : {"per-row", "max", "lse"}
        See :data:`ROW_AGGREGATIONS`.
    temperature : float
        ``τ > 0`` of the log-sum-exp.

    Returns
    -------
    Tensor
        ``(P, S·R)`` for ``per-row`` (state-major), ``(P, S)`` otherwise.
    """
    check_in("mode", mode, ROW_AGGREGATIONS)
    if mode == "max":
        return rows.max(dim=-1).values
    if mode == "lse":
        tau = check_positive("temperature", temperature)
        return tau * torch.logsumexp(rows / tau, dim=-1)
    return rows.reshape(rows.shape[0], -1)
