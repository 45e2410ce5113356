"""A black-box task: the pendulum of Gymnasium's ``Pendulum-v1`` kept near upright, rows from env rollouts.

Train it with the examples folder on the import path (``module:Class`` names resolve by import)::

    pip install "scpo[gym]"
    PYTHONPATH=examples scpo train gym_pendulum:GymPendulumTask --out runs/gym-pendulum --iterations 40

The constraint rows come from rollouts of a Gymnasium vector environment (``SyncVectorEnv`` of
``Pendulum-v1``), not from a model: every row is ``evaluated`` (never ``sound``;
:class:`scpo.tasks.blackbox.BlackBoxTask`). Row ``j`` is the largest of ``|θ_t| − θ_max``,
``|θ̇_t| − ω_max`` (``t = 1 … T``) and ``|u_t| − u_max`` (``t = 0 … T−1``, the policy's raw torque
before the environment clips it) along the rollout from the ``j``-th initial state.

The backup is discrete LQR on the environment's own update linearised at the top
(``θ̇⁺ = θ̇ + dt (3g/(2l) θ + 3/(m l²) u)``, ``θ⁺ = θ + dt θ̇⁺``, ``g = 10``, ``m = l = 1``,
``dt = 0.05``; Gymnasium ``classic_control/pendulum.py``). The expert is aggressive: a PD law that
tracks ``θ* = 0.8 rad``, beyond ``θ_max = 0.5 rad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scpo.policies import MLP, LinearBackup, ResidualPolicy
from scpo.systems import ClosedLoopProblem, LinearSystem, dlqr
from scpo.tasks.blackbox import BlackBoxTask


@dataclass(frozen=True, kw_only=True)
class GymPendulumConfig:
    """Settings of the Gymnasium pendulum task.

    Attributes
    ----------
    horizon : int
        Steps of each environment rollout.
    initial_states : int
        Number of rollouts (rows).
    theta_max, omega_max, u_max : float
        Limits of the rows.
    expert_target, expert_kp, expert_kd : float
        The aggressive PD expert.
    n_samples : int
        States of the imitation loss.
    hidden : tuple of int
    """

    horizon: int = 20
    initial_states: int = 24
    theta_max: float = 0.5
    omega_max: float = 3.0
    u_max: float = 2.0
    expert_target: float = 0.8
    expert_kp: float = 10.0
    expert_kd: float = 2.0
    n_samples: int = 128
    hidden: tuple[int, ...] = (16,)


def _linearised(dt: float = 0.05, g: float = 10.0, m: float = 1.0, l: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    a, b = 3 * g / (2 * l), 3 / (m * l * l)
    return np.array([[1 + a * dt * dt, dt], [a * dt, 1.0]]), np.array([[b * dt * dt], [b * dt]])


class GymPendulumTask(BlackBoxTask):
    """Keep ``Pendulum-v1`` near upright while imitating an aggressive expert (module docstring).

    Parameters
    ----------
    config : GymPendulumConfig, optional
    seed : int
    """

    name = "gym-pendulum"
    config_class = GymPendulumConfig
    evaluator_description = "rollouts of a Gymnasium SyncVectorEnv of Pendulum-v1"
    default_projector = {"lr": 0.01, "probe_radius": 1e-3, "block_probes": 0, "bank_size": 12}
    rows = "max"

    def __init__(self, config: GymPendulumConfig | None = None, *, seed: int = 0) -> None:
        import gymnasium as gym

        cfg = config if config is not None else GymPendulumConfig()
        self.config, self.seed = cfg, int(seed)
        A, B = _linearised()
        system = LinearSystem.with_box_constraints(A, B, [cfg.theta_max, cfg.omega_max], [cfg.u_max], name="pendulum (nominal model)")
        self.K = dlqr(A, B, np.diag([10.0, 1.0]), np.array([[1.0]])).K
        self.problem = ClosedLoopProblem(system=system, K=self.K, horizon=cfg.horizon, state_names=("theta", "thetadot"),
                                         input_names=("torque",), name="pendulum near upright (Gymnasium Pendulum-v1)")
        rng = np.random.default_rng(seed)
        self.constraint_states = np.column_stack([rng.uniform(-0.12, 0.12, cfg.initial_states), rng.uniform(-0.3, 0.3, cfg.initial_states)])
        self.safety_states = self.constraint_states
        self._env = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1") for _ in range(cfg.initial_states)])
        self._env.reset(seed=seed)
        xs = np.column_stack([rng.uniform(-0.12, 0.12, cfg.n_samples), rng.uniform(-0.3, 0.3, cfg.n_samples)])
        super().__init__(cfg, seed=seed)
        self._x = self._tensor(xs)
        self._u = self._tensor(self.expert(xs))

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The aggressive PD expert ``clip(k_p (θ* − θ) − k_d θ̇, ±u_max)``.

        Parameters
        ----------
        states : ndarray, shape (S, 2)

        Returns
        -------
        ndarray, shape (S, 1)
        """
        c = self.config
        return np.clip(c.expert_kp * (c.expert_target - states[:, 0]) - c.expert_kd * states[:, 1], -c.u_max, c.u_max)[:, None]

    def build_policy(self) -> ResidualPolicy:
        """``Kx + φ_θ(x)`` with a zero final layer."""
        return ResidualPolicy(LinearBackup(self.K), MLP(2, self.config.hidden, 1, "tanh", seed=self.seed))

    def evaluate_rows(self, thetas: np.ndarray) -> np.ndarray:
        """One row per initial state: the worst limit excess along a rollout of the environment.

        Parameters
        ----------
        thetas : ndarray, shape (B, d)

        Returns
        -------
        ndarray, shape (B, S)
        """
        c = self.config
        out = np.empty((thetas.shape[0], len(self.constraint_states)))
        for b, theta in enumerate(thetas):
            self._env.reset()
            for i, env in enumerate(self._env.envs):
                env.unwrapped.state = self.constraint_states[i].copy()
            x = self.constraint_states.copy()
            worst = np.full(x.shape[0], -np.inf)
            t = self._theta_tensor(theta)
            for _ in range(c.horizon):
                with torch.no_grad():
                    u = self.policy.forward_batched(t, self._tensor(x))[0].cpu().numpy()
                worst = np.maximum(worst, np.abs(u[:, 0]) - c.u_max)
                obs, *_ = self._env.step(u.astype(np.float32))
                x = np.column_stack([np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2]]).astype(float)
                worst = np.maximum(worst, np.maximum(np.abs(x[:, 0]) - c.theta_max, np.abs(x[:, 1]) - c.omega_max))
            out[b] = worst
        return out

    def row_labels(self) -> list[str]:
        """``max of env rollout rows from x0=(θ, θ̇)`` per initial state."""
        return [f"max of Pendulum-v1 rollout rows from x0=({x[0]:+.4f}, {x[1]:+.4f})" for x in self.constraint_states]

    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean squared torque error to the expert, and its gradient.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        (float, ndarray of shape (d,))
        """
        t = self._theta_tensor(theta, requires_grad=True)
        loss = torch.mean((self.policy.forward_batched(t, self._x)[0] - self._u) ** 2)
        (g,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), g[0].cpu().numpy().copy()

    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """The imitation loss and the backup's.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        dict
        """
        f, f0 = self.objective(theta), self.objective(self.theta0)
        return {"imitation_loss": f, "imitation_loss_backup": f0, "imitation_loss_ratio": f / f0 if f0 > 0 else float("nan")}

    def quality_summary(self, initial: dict[str, float], final: dict[str, float]) -> list[str]:
        """One line comparing the imitation losses.

        Parameters
        ----------
        initial, final : dict

        Returns
        -------
        list of str
        """
        f0, f1 = initial["imitation_loss"], final["imitation_loss"]
        return [f"imitation loss       backup {f0:.4f} -> final policy {f1:.4f} ({100 * f1 / f0:.1f}% of the backup's)"]

    def report_paragraphs(self) -> list[str]:
        """The task in words."""
        c = self.config
        return [f"Gymnasium Pendulum-v1 near upright: an LQR backup on the linearised update, an aggressive PD expert tracking "
                f"θ* = {c.expert_target} rad; constraint rows from {len(self.constraint_states)} environment rollouts of "
                f"{c.horizon} steps (|θ| ≤ {c.theta_max}, |θ̇| ≤ {c.omega_max}, |u| ≤ {c.u_max}), evaluated only."]

    def meaning_of_g(self) -> str:
        """What ``g ≤ 0`` means here."""
        c = self.config
        return (f"i.e. each of the {len(self.constraint_states)} Gymnasium rollouts of {c.horizon} steps keeps |θ| ≤ {c.theta_max}, "
                f"|θ̇| ≤ {c.omega_max} and the raw torque within ±{c.u_max} (evaluated on these rollouts only)")
