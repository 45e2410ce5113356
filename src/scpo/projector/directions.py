"""Raw step rules ``Δ_raw = direction(∇f)``, as pure functions with explicit state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import check_in, check_nonnegative, check_positive
from ..errors import InvalidInputError

__all__ = ["DIRECTIONS", "AdamState", "sgd_direction", "adam_init", "adam_direction", "raw_direction", "check_step_rule"]

DIRECTIONS = ("adam", "sgd")
"""The raw step rules: Adam (bias-corrected) or plain gradient descent."""


def sgd_direction(grad: np.ndarray, lr: float) -> np.ndarray:
    """Plain gradient step ``Δ_raw = −η ∇f``.

    Parameters
    ----------
    grad : ndarray, shape (d,)
        ``∇f(θ)``.
    lr : float
        Learning rate ``η``.

    Returns
    -------
    ndarray, shape (d,)
        ``−η ∇f``.
    """
    return -lr * grad


@dataclass(frozen=True)
class AdamState:
    """Adam's first and second moments and step count.

    Attributes
    ----------
    m : ndarray, shape (d,)
        First-moment estimate (before bias correction).
    v : ndarray, shape (d,)
        Second-moment estimate (before bias correction).
    count : int
        Steps taken so far.
    """

    m: np.ndarray
    v: np.ndarray
    count: int


def adam_init(dim: int) -> AdamState:
    """Zero moments for a parameter vector of length ``dim``.

    Parameters
    ----------
    dim : int
        Parameter dimension ``d``.

    Returns
    -------
    AdamState
        ``m = v = 0`` (d,), ``count = 0``.
    """
    return AdamState(m=np.zeros(dim), v=np.zeros(dim), count=0)


def adam_direction(
    grad: np.ndarray, state: AdamState, *, lr: float, beta1: float, beta2: float, eps: float
) -> tuple[np.ndarray, AdamState]:
    """Adam's step ``Δ_raw = −η m̂ / (√v̂ + ε)`` (Kingma & Ba 2015, Algorithm 1).

    Parameters
    ----------
    grad : ndarray, shape (d,)
        ``∇f(θ)``.
    state : AdamState
        Moments before this step.
    lr, beta1, beta2, eps : float
        Learning rate ``η``, moment decay rates ``β₁, β₂`` and denominator offset ``ε``.

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


def raw_direction(config: Any, grad: np.ndarray, state: AdamState) -> tuple[np.ndarray, AdamState]:
    """``Δ_raw`` by the rule ``config.direction``: :func:`sgd_direction` or :func:`adam_direction`.

    Parameters
    ----------
    config : object
        Has ``direction`` (one of :data:`DIRECTIONS`), ``lr``, ``beta1``, ``beta2`` and
        ``adam_eps`` (:class:`~scpo.projector.ProjectorConfig`, :class:`~scpo.baselines.PenaltyConfig`).
    grad : ndarray, shape (d,)
        ``∇f(θ)`` (or the gradient of a merit function).
    state : AdamState
        Adam's moments; returned unchanged by the SGD rule.

    Returns
    -------
    step : ndarray, shape (d,)
        ``Δ_raw``.
    state : AdamState
        The moments after this step.
    """
    if config.direction == "sgd":
        return sgd_direction(grad, config.lr), state
    return adam_direction(grad, state, lr=config.lr, beta1=config.beta1, beta2=config.beta2, eps=config.adam_eps)


def check_step_rule(config: Any) -> None:
    """Validate the step-rule fields of a configuration (``direction, lr, beta1, beta2, adam_eps``).

    Parameters
    ----------
    config : object
        As for :func:`raw_direction`.

    Raises
    ------
    InvalidInputError
        A field out of range (``β`` must lie in ``[0, 1)``, ``lr`` and ``adam_eps`` be positive).
    """
    check_in("direction", config.direction, DIRECTIONS)
    check_positive("lr", config.lr)
    for name in ("beta1", "beta2"):
        v = check_nonnegative(name, getattr(config, name))
        if not v < 1:
            raise InvalidInputError(f"{name}: expected a number in [0, 1), got {v}")
    check_positive("adam_eps", config.adam_eps)
