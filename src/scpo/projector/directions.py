"""Raw step rules ``Δ_raw = direction(∇f)``, as pure functions with explicit state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AdamState", "sgd_direction", "adam_init", "adam_direction"]


def sgd_direction(grad: np.ndarray, lr: float) -> np.ndarray:
    """Plain gradient step ``Δ_raw = −η ∇f``.

    Parameters
    ----------
    grad : ndarray, shape (d,)
    lr : float

    Returns
    -------
    ndarray, shape (d,)
    """
    return -lr * grad


@dataclass(frozen=True)
class AdamState:
    """Adam's first and second moments ``m, v`` (shape (d,)) and step count."""

    m: np.ndarray
    v: np.ndarray
    count: int


def adam_init(dim: int) -> AdamState:
    """Zero moments for a parameter vector of length ``dim``."""
    return AdamState(m=np.zeros(dim), v=np.zeros(dim), count=0)


def adam_direction(
    grad: np.ndarray, state: AdamState, *, lr: float, beta1: float, beta2: float, eps: float
) -> tuple[np.ndarray, AdamState]:
    """Adam's step ``Δ_raw = −η m̂ / (√v̂ + ε)`` (Kingma & Ba 2015, Algorithm 1).

    Parameters
    ----------
    grad : ndarray, shape (d,)
    state : AdamState
    lr, beta1, beta2, eps : float

    Returns
    -------
    step : ndarray, shape (d,)
    state : AdamState
        The updated moments. The moments advance whether or not the projected step is accepted.
    """
    count = state.count + 1
    m = beta1 * state.m + (1.0 - beta1) * grad
    v = beta2 * state.v + (1.0 - beta2) * grad * grad
    m_hat = m / (1.0 - beta1**count)
    v_hat = v / (1.0 - beta2**count)
    return -lr * m_hat / (np.sqrt(v_hat) + eps), AdamState(m=m, v=v, count=count)
