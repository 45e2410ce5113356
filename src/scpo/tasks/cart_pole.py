"""The cart-pole linearised about the upright equilibrium: a 4-state task with an aggressive expert.

Model (the cart-pole of Barto, Sutton & Anderson 1983, in the form and with the parameters of
Gymnasium's ``CartPole-v1``, ``gymnasium/envs/classic_control/cartpole.py``): cart mass
``M = 1.0 kg``, pole mass ``m = 0.1 kg``, half pole length ``l = 0.5 m``, ``g = 9.8 m/s²``,
force ``F`` on the cart; with ``μ = m + M``,

    θ̈ = (g sin θ − cos θ (F + m l θ̇² sin θ)/μ) / (l (4/3 − m cos²θ / μ)),
    ẍ = (F + m l θ̇² sin θ)/μ − m l θ̈ cos θ / μ.

Linearised at ``x = ẋ = θ = θ̇ = 0`` (upright), with ``λ = l (4/3 − m/μ)``, state
``(x, ẋ, θ, θ̇)`` and input ``F``:

    A_c = [[0, 1, 0, 0], [0, 0, −m l g/(μ λ), 0], [0, 0, 0, 1], [0, 0, g/λ, 0]],
    B_c = [0, 1/μ + m l/(μ² λ), 0, −1/(μ λ)]ᵀ,

discretised by a zero-order hold at ``dt = 0.05 s`` (:func:`scipy.signal.cont2discrete`). The
open loop has the unstable eigenvalue ``+sqrt(g/λ) ≈ 3.97 s⁻¹``.

Constraints: the track ``|x| ≤ 2.4 m`` and the pole angle ``|θ| ≤ 12° = 0.2094 rad`` (Gymnasium's
termination limits), ``|ẋ| ≤ 2 m/s``, ``|θ̇| ≤ 2 rad/s`` and the force ``|F| ≤ 10 N`` (Gymnasium's
``force_mag``). Backup: discrete LQR with ``Q = diag(1, 1, 10, 1)``, ``R = 0.1``. The expert is
aggressive: a saturated state feedback (the LQR gain of ``Q = diag(50, 5, 10, 1)``, ``R = 0.01``)
tracking a cart target ``x* = 3.5 m``, outside the track, so plain imitation leaves ``X``.
``S`` is drawn from the exact 4-D backward reachable polytope: ``safety_samples`` uniform random
states (seeded) of the declared region ``C``, the backup's exact ``T``-step backward reachable
set of ``T_in ⊆ X_f`` under constraints tightened by ``region_margin``
(:func:`scpo.certify.declared.backup_region`); the backup's rollouts then decide each of them, as
for every linear task. ``safety_samples = 0`` gives the ``grid⁴`` grid over the box instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch

from .._validate import check_int, check_positive
from ..errors import InvalidInputError
from ..systems import LinearSystem, dlqr
from .linear import LinearImitationTask, LinearTaskSettings

__all__ = ["CartPoleConfig", "CartPoleTask", "cart_pole_continuous"]


def cart_pole_continuous(masscart: float = 1.0, masspole: float = 0.1, half_length: float = 0.5, gravity: float = 9.8) -> tuple[np.ndarray, np.ndarray]:
    """``(A_c, B_c)`` of the cart-pole linearised about the upright equilibrium (module docstring).

    Parameters
    ----------
    masscart, masspole : float
        ``M`` and ``m`` in kg.
    half_length : float
        ``l`` in m (half the pole's length, Gymnasium's ``length``).
    gravity : float
        ``g`` in m/s².

    Returns
    -------
    A : ndarray, shape (4, 4)
    B : ndarray, shape (4, 1)
    """
    mu = masscart + masspole
    lam = half_length * (4.0 / 3.0 - masspole / mu)
    A = np.zeros((4, 4))
    A[0, 1] = A[2, 3] = 1.0
    A[1, 2] = -masspole * half_length * gravity / (mu * lam)
    A[3, 2] = gravity / lam
    B = np.array([[0.0], [1.0 / mu + masspole * half_length / (mu * mu * lam)], [0.0], [-1.0 / (mu * lam)]])
    return A, B


@dataclass(frozen=True, kw_only=True)
class CartPoleConfig(LinearTaskSettings):
    """Settings of the linearised cart-pole (module docstring for the model and its source).

    Attributes
    ----------
    dt : float
        Zero-order-hold sample time (s).
    masscart, masspole, half_length, gravity : float
        Model parameters.
    x_max, v_max, theta_max, omega_max, force_max : float
        Box constraints on cart position, velocity, pole angle, angular rate and force.
    q_diag : tuple of float
        Diagonal of the backup's ``Q`` (four entries).
    r : float
        Backup's ``R``.
    expert_target : float
        The cart position the expert tracks.
    expert_q_diag : tuple of float
        ``Q`` of the expert's LQR gain.
    expert_r : float
        ``R`` of the expert's LQR gain.
    safety_samples : int
        States of ``S`` drawn uniformly from the exact backward reachable polytope ``C``; ``0``:
        the ``grid⁴`` grid over the box.
    horizon, grid, n_samples, rows, lse_temperature, hidden, activation, switching, gamma_shrink, region, region_margin, region_directions, row_margin, rows_in_region, device
        See :class:`~scpo.tasks.linear.LinearTaskSettings`.
    """

    dt: float = 0.05
    masscart: float = 1.0
    masspole: float = 0.1
    half_length: float = 0.5
    gravity: float = 9.8
    x_max: float = 2.4
    v_max: float = 2.0
    theta_max: float = 0.2094
    omega_max: float = 2.0
    force_max: float = 10.0
    q_diag: tuple[float, ...] = (1.0, 1.0, 10.0, 1.0)
    r: float = 0.1
    expert_target: float = 3.5
    expert_q_diag: tuple[float, ...] = (50.0, 5.0, 10.0, 1.0)
    expert_r: float = 0.01
    safety_samples: int = 100
    horizon: int = 30
    grid: int = 7
    n_samples: int = 256
    rows: str = "max"
    hidden: tuple[int, ...] = (16, 16)

    def _check_task(self) -> None:
        check_int("safety_samples", self.safety_samples, minimum=0)
        for name in ("dt", "masscart", "masspole", "half_length", "gravity", "x_max", "v_max", "theta_max", "omega_max",
                     "force_max", "r", "expert_r"):
            check_positive(name, getattr(self, name))
        for name in ("q_diag", "expert_q_diag"):
            v = getattr(self, name)
            if len(v) != 4 or not all(q >= 0 for q in v):
                raise InvalidInputError(f"{name}: expected four non-negative numbers, got {v}")


class CartPoleTask(LinearImitationTask):
    """The linearised cart-pole with an aggressive expert (see the module docstring).

    Parameters
    ----------
    config : CartPoleConfig, optional
    seed : int
    """

    name = "cart-pole"
    config_class = CartPoleConfig
    default_projector = {**LinearImitationTask.default_projector, "lr": 0.03}
    """Forces are in newtons (the imitation loss of the backup is about 130 N²): a larger step than the chain's."""
    state_names = ("x", "xdot", "theta", "thetadot")
    input_names = ("F",)
    stored_run_defaults = {"safety_samples": 0}
    """Runs written before ``safety_samples`` existed decided ``S`` on the grid."""

    def linear_system(self) -> LinearSystem:
        """The zero-order hold of the linearised cart-pole with its box constraints."""
        c = self.config
        A, B = cart_pole_continuous(c.masscart, c.masspole, c.half_length, c.gravity)
        Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, np.eye(4), np.zeros((4, 1))), c.dt, method="zoh")
        return LinearSystem.with_box_constraints(np.asarray(Ad), np.asarray(Bd), [c.x_max, c.v_max, c.theta_max, c.omega_max],
                                                 [c.force_max], name="cart-pole (linearised, upright)")

    def candidate_states(self) -> np.ndarray:
        """``safety_samples`` uniform random states of the exact polytope ``C`` (seeded by the task's
        seed), or the ``grid⁴`` grid over the box when ``safety_samples = 0``.

        ``C`` is the declared region (or, for the legacy grid-cell cover, the backup's exact
        ``T``-step backward reachable set of ``T_in`` without margin).

        Returns
        -------
        ndarray, shape (G, 4)
        """
        c = self.config
        if c.safety_samples <= 0:
            return super().candidate_states()
        from ..certify.declared import backup_region
        from ..reachability.polytope import uniform_points

        region = self.declared_region() or backup_region(self.problem, directions=int(c.region_directions))
        return uniform_points(region.polytope, c.safety_samples, np.random.default_rng([self.seed, 11]))

    def candidate_description(self) -> str:
        """The states ``S`` was decided on, in words."""
        if self.config.safety_samples <= 0:
            return super().candidate_description()
        return "uniform random states of the exact backward reachable polytope C"

    def lqr_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q = diag(q_diag)``, ``R = r``."""
        return np.diag(self.config.q_diag), np.array([[self.config.r]])

    def _expert_gain(self) -> np.ndarray:
        if not hasattr(self, "_Ke"):
            c = self.config
            self._Ke = dlqr(self.system.A, self.system.B, np.diag(c.expert_q_diag), np.array([[c.expert_r]])).K
        return self._Ke

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The aggressive expert's force at ``states``.

        Parameters
        ----------
        states : ndarray, shape (S, 4)

        Returns
        -------
        ndarray, shape (S, 1)
        """
        c = self.config
        err = np.asarray(states, dtype=float) - np.array([c.expert_target, 0.0, 0.0, 0.0])
        return np.clip(err @ self._expert_gain().T, -c.force_max, c.force_max)

    def expert_input(self, x: torch.Tensor) -> torch.Tensor:
        """The expert as a rollout policy.

        Parameters
        ----------
        x : Tensor, shape (…, 4)

        Returns
        -------
        Tensor, shape (…, 1)
        """
        c = self.config
        Ke = torch.as_tensor(self._expert_gain(), dtype=x.dtype, device=x.device)
        ref = torch.as_tensor([c.expert_target, 0.0, 0.0, 0.0], dtype=x.dtype, device=x.device)
        return ((x - ref) @ Ke.T).clamp(-c.force_max, c.force_max)

    def expert_description(self) -> str:
        """The aggressive expert in one sentence."""
        c = self.config
        return (f"The expert is aggressive: a saturated LQR-type state feedback tracking the cart position x* = {c.expert_target} m, "
                f"outside the track |x| ≤ {c.x_max} m.")
