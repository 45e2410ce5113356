"""A chain of three integrators with an aggressive expert: a small 3-state task.

``x = (p, v, a)`` (position, velocity, acceleration), input ``u`` = jerk, sampled with a zero-order
hold at ``dt``: the exact discretisation of ``ṗ = v, v̇ = a, ȧ = u`` is

    A = [[1, dt, dt²/2], [0, 1, dt], [0, 0, 1]],   B = [[dt³/6], [dt²/2], [dt]].

Constraints ``|p| ≤ p_max``, ``|v| ≤ v_max``, ``|a| ≤ a_max``, ``|u| ≤ u_max``; LQR backup with
``Q = diag(q_diag)``, ``R = r``. The expert is a saturated state feedback tracking a position
target outside the constraints, ``u = clip(k_p (p* − p) − k_v v − k_a a, ±u_max)``, so plain
imitation leaves ``X``. Everything else (``S`` on a ``grid³`` grid, the objective, the rows) is
:mod:`scpo.tasks.linear`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validate import check_positive
from ..errors import InvalidInputError
from ..systems import LinearSystem
from .linear import LinearImitationTask, LinearTaskSettings

__all__ = ["ChainIntegratorConfig", "ChainIntegratorTask"]


@dataclass(frozen=True, kw_only=True)
class ChainIntegratorConfig(LinearTaskSettings):
    """Settings of the 3-state chain of integrators (small defaults: it trains in seconds).

    Attributes
    ----------
    dt : float
    p_max, v_max, a_max, u_max : float
        Box constraints.
    q_diag : tuple of float
        Diagonal of ``Q`` (three entries).
    r : float
        ``R``.
    expert_target, expert_kp, expert_kv, expert_ka : float
        The aggressive expert.
    horizon, grid, n_samples, rows, lse_temperature, hidden, activation, switching, gamma_shrink, region, region_margin, region_directions, row_margin, rows_in_region, device
        See :class:`~scpo.tasks.linear.LinearTaskSettings`.
    """

    dt: float = 0.2
    p_max: float = 1.0
    v_max: float = 1.0
    a_max: float = 1.0
    u_max: float = 1.0
    q_diag: tuple[float, ...] = (1.0, 1.0, 1.0)
    r: float = 1.0
    expert_target: float = 1.5
    expert_kp: float = 3.0
    expert_kv: float = 3.0
    expert_ka: float = 1.5
    horizon: int = 15
    grid: int = 9
    n_samples: int = 128
    hidden: tuple[int, ...] = (16, 16)

    def _check_task(self) -> None:
        for name in ("dt", "p_max", "v_max", "a_max", "u_max", "r", "expert_kp", "expert_kv", "expert_ka"):
            check_positive(name, getattr(self, name))
        if len(self.q_diag) != 3 or not all(q >= 0 for q in self.q_diag):
            raise InvalidInputError(f"q_diag: expected three non-negative numbers, got {self.q_diag}")


class ChainIntegratorTask(LinearImitationTask):
    """The 3-state chain of integrators with an aggressive expert (see the module docstring).

    Parameters
    ----------
    config : ChainIntegratorConfig, optional
    seed : int
    """

    name = "chain-integrator"
    config_class = ChainIntegratorConfig
    default_projector = {**LinearImitationTask.default_projector, "lr": 1e-3}
    state_names = ("p", "v", "a")
    input_names = ("u",)

    def linear_system(self) -> LinearSystem:
        """The zero-order-hold discretisation of the triple integrator with box constraints."""
        c = self.config
        dt = c.dt
        A = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
        B = np.array([[dt**3 / 6], [dt * dt / 2], [dt]])
        return LinearSystem.with_box_constraints(A, B, [c.p_max, c.v_max, c.a_max], [c.u_max], name="chain of three integrators")

    def lqr_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q = diag(q_diag)``, ``R = r``."""
        return np.diag(self.config.q_diag), np.array([[self.config.r]])

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The expert's jerk at ``states``.

        Parameters
        ----------
        states : ndarray, shape (S, 3)

        Returns
        -------
        ndarray, shape (S, 1)
        """
        c = self.config
        u = c.expert_kp * (c.expert_target - states[:, 0]) - c.expert_kv * states[:, 1] - c.expert_ka * states[:, 2]
        return np.clip(u, -c.u_max, c.u_max)[:, None]

    def expert_input(self, x: torch.Tensor) -> torch.Tensor:
        """The expert as a rollout policy.

        Parameters
        ----------
        x : Tensor, shape (…, 3)

        Returns
        -------
        Tensor, shape (…, 1)
        """
        c = self.config
        u = c.expert_kp * (c.expert_target - x[..., 0:1]) - c.expert_kv * x[..., 1:2] - c.expert_ka * x[..., 2:3]
        return u.clamp(-c.u_max, c.u_max)

    def expert_description(self) -> str:
        """The aggressive expert in one sentence."""
        return (f"The expert is aggressive: a saturated state feedback tracking p* = {self.config.expert_target}, "
                f"outside |p| ≤ {self.config.p_max}.")
