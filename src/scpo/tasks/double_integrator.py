"""Double integrator with a malicious expert (DESIGN §5).

``x = (p, v)``, ``x⁺ = A x + B u`` with ``A = [[1, dt], [0, 1]]``, ``B = [[dt²/2], [dt]]``,
constraints ``|p| ≤ 1, |v| ≤ 1, |u| ≤ 1``. The backup is discrete LQR (``Q = I, R = 1``), the
terminal set ``X_f = {xᵀPx ≤ γ}`` uses the closed-form ``γ`` (shrunk by a relative 1e-9 so that
the exact check of ``X_f ⊆ X`` holds for the rounded float value). The safety region ``S`` is the
set of grid states (``grid × grid`` over the box) from which the backup satisfies every
constraint for ``T`` steps and ends in ``X_f``.

The expert is a saturated PD law ``u = clip(k_p (p* − p) − k_d v, ±u_max)`` tracking
``p* = 1.5``, outside the box: plain imitation drives states out of ``X``. The objective is the
mean squared action error on ``n_samples`` states drawn uniformly from the box and kept when the
backup certifies them (i.e. states of the safety region, off the grid).

Constraint rows of a grid state ``x_j`` come from the closed-loop rollout of ``π_θ``: the state
rows ``Hx x_t − hx`` for ``t = 1..T`` (``t = 0`` does not depend on ``θ``), the input rows
``Hu u_t − hu`` for ``t = 0..T−1`` and the terminal row ``x_Tᵀ P x_T − γ``. They enter the
projector one by one (``rows="per-row"``), as their maximum per grid state (``"max"``), or as the
log-sum-exp ``τ log Σ exp(r/τ)`` (``"lse"``), a smooth upper bound of the maximum; in ``lse``
mode the grid is the part of ``S`` where the backup's log-sum-exp is ``≤ 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import check_in, check_int, check_positive
from ..certify.backup import backup_certificate
from ..errors import ConfigError, InvalidInputError
from ..evidence import Claim, Level
from ..policies import ACTIVATIONS, MLP, LinearBackup, ResidualPolicy
from ..policies.lqr import dlqr, terminal_level
from ..systems import LinearSystem, Rollout, rollout
from .base import Task

__all__ = ["DoubleIntegratorConfig", "DoubleIntegratorTask", "ROW_MODES"]

ROW_MODES = ("per-row", "max", "lse")


@dataclass(frozen=True, kw_only=True)
class DoubleIntegratorConfig:
    """Settings of the double-integrator task; the defaults are DESIGN §5's numbers.

    Attributes
    ----------
    dt : float
    p_max, v_max, u_max : float
        Box constraints.
    q_diag : tuple of float
        Diagonal of ``Q``.
    r : float
        ``R``.
    horizon : int
        ``T``.
    grid : int
        Grid points per axis over the state box.
    expert_target, expert_kp, expert_kd : float
        The malicious PD expert.
    expert_saturate : bool
        Clip the expert's action to ``±u_max``.
    n_samples : int
        States of ``S`` on which the imitation loss is averaged.
    rows : {"per-row", "max", "lse"}
        How the rollout rows enter the projector. ``per-row`` is the default: on the benchmark
        (``benchmarks/bench_ablations.py --studies rows``, seed 0, 450 evaluations of ``g``) it
        reached the lowest imitation loss (0.474 of the backup's, against 0.536 for ``max`` and
        0.906 for ``lse`` with ``τ = 0.02``). The max has kinks where the maximising row switches,
        which (★) reads as a large ``L`` (``L_max`` 102 against 48, and 44 prediction failures
        against 12); the log-sum-exp is a smooth but conservative upper bound of the max.
    lse_temperature : float
        ``τ`` of the log-sum-exp rows.
    hidden : tuple of int
        Hidden widths of the residual.
    activation : {"tanh", "relu"}
    switching : bool
        Apply the backup alone inside ``X_s = X_f``.
    gamma_shrink : float
        Relative reduction of the closed-form ``γ`` before the exact check.
    device : str
        ``"cpu"`` or ``"cuda[:i]"``: where rollouts and the policy run (results come back as
        float64 numpy arrays either way).
    """

    dt: float = 0.1
    p_max: float = 1.0
    v_max: float = 1.0
    u_max: float = 1.0
    q_diag: tuple[float, ...] = (1.0, 1.0)
    r: float = 1.0
    horizon: int = 30
    grid: int = 50
    expert_target: float = 1.5
    expert_kp: float = 4.0
    expert_kd: float = 3.0
    expert_saturate: bool = True
    n_samples: int = 256
    rows: str = "per-row"
    lse_temperature: float = 0.02
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    switching: bool = False
    gamma_shrink: float = 1e-9
    device: str = "cpu"

    def __post_init__(self) -> None:
        try:
            if not (self.device == "cpu" or self.device.startswith("cuda")):
                raise InvalidInputError(f"device: expected 'cpu' or 'cuda[:index]', got {self.device!r}")
            if self.device.startswith("cuda") and not torch.cuda.is_available():
                raise InvalidInputError(f"device: {self.device!r} requested but torch.cuda.is_available() is False on this machine")
            for name in ("dt", "p_max", "v_max", "u_max", "r", "expert_kp", "expert_kd", "lse_temperature"):
                check_positive(name, getattr(self, name))
            if len(self.q_diag) != 2 or not all(q >= 0 for q in self.q_diag):
                raise InvalidInputError(f"q_diag: expected two non-negative numbers, got {self.q_diag}")
            check_int("horizon", self.horizon, minimum=1)
            check_int("grid", self.grid, minimum=2)
            check_int("n_samples", self.n_samples, minimum=1)
            check_in("rows", self.rows, ROW_MODES)
            check_in("activation", self.activation, tuple(ACTIVATIONS))
            for i, h in enumerate(self.hidden):
                check_int(f"hidden[{i}]", h, minimum=1)
            if not 0 <= self.gamma_shrink < 1:
                raise InvalidInputError(f"gamma_shrink: expected a number in [0, 1), got {self.gamma_shrink}")
        except InvalidInputError as exc:
            raise ConfigError(f"DoubleIntegratorConfig.{exc}") from None


class DoubleIntegratorTask(Task):
    """The double integrator with a malicious expert (see the module docstring)."""

    name = "double-integrator"
    config_class = DoubleIntegratorConfig
    default_projector = {"lr": 0.01, "probe_radius": 1e-3, "block_probes": 7, "bank_size": 16}

    def __init__(self, config: DoubleIntegratorConfig | None = None, *, seed: int = 0) -> None:
        cfg = config or DoubleIntegratorConfig()
        dt = cfg.dt
        A = np.array([[1.0, dt], [0.0, 1.0]])
        B = np.array([[dt * dt / 2], [dt]])
        self.system = LinearSystem.with_box_constraints(A, B, [cfg.p_max, cfg.v_max], [cfg.u_max], name="double integrator")
        self.system.check_stabilisable()
        self.Q = np.diag(cfg.q_diag)
        self.R = np.array([[cfg.r]])
        self.lqr = dlqr(A, B, self.Q, self.R)
        self.K, self.P = self.lqr.K, self.lqr.P
        self.gamma_closed_form = terminal_level(self.P, self.K, self.system.Hx, self.system.hx, self.system.Hu, self.system.hu)
        self.gamma = self.gamma_closed_form * (1.0 - cfg.gamma_shrink)
        self.device = torch.device(cfg.device)
        self._t = {
            k: self._tensor(v)
            for k, v in (("A", A), ("B", B), ("Hx", self.system.Hx), ("hx", self.system.hx), ("Hu", self.system.Hu),
                         ("hu", self.system.hu), ("P", self.P), ("K", self.K))
        }
        self.config = cfg  # needed by build_policy before Task.__init__ stores it
        self.seed = int(seed)
        pv = np.linspace(-cfg.p_max, cfg.p_max, cfg.grid)
        vv = np.linspace(-cfg.v_max, cfg.v_max, cfg.grid)
        P_, V_ = np.meshgrid(pv, vv, indexing="xy")
        self.grid_states = np.stack([P_.ravel(), V_.ravel()], axis=1)
        backup_rows = self._backup_rows(self.grid_states)
        in_S = np.all(backup_rows <= 0, axis=-1)
        self.in_safety_region = in_S
        self.safety_states = self.grid_states[in_S]
        if self.safety_states.shape[0] == 0:
            raise InvalidInputError("the safety region S is empty on this grid: no grid state is certified by the backup")
        if cfg.rows == "lse":
            lse = self._aggregate(torch.as_tensor(backup_rows[in_S])[None], "lse")[0].cpu().numpy()
            keep = lse <= 0
            self.train_states = self.safety_states[keep]
        else:
            self.train_states = self.safety_states
        self._x_train = self._tensor(self.train_states)
        self.sample_states = self._sample_safe_states(cfg.n_samples, np.random.default_rng(seed))
        self._x_samples = self._tensor(self.sample_states)
        self._u_expert = self._tensor(self.expert(self.sample_states))
        order = np.argsort(np.arctan2(self.sample_states[:, 1], self.sample_states[:, 0]), kind="stable")
        self._sectors = torch.as_tensor(order, device=self.device)
        super().__init__(cfg, seed=seed)
        self.policy.to(self.device)

    def _tensor(self, value: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.array(value, dtype=np.float64), device=self.device)

    # ------------------------------------------------------------------ model pieces
    def build_policy(self) -> ResidualPolicy:
        cfg = self.config
        mlp = MLP(2, cfg.hidden, 1, cfg.activation, seed=self.seed)
        if cfg.switching:
            return ResidualPolicy(LinearBackup(self.K), mlp, switch_P=self.P, switch_level=self.gamma)
        return ResidualPolicy(LinearBackup(self.K), mlp)

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The malicious PD expert's actions, shape (S, 1)."""
        cfg = self.config
        u = cfg.expert_kp * (cfg.expert_target - states[:, 0]) - cfg.expert_kd * states[:, 1]
        if cfg.expert_saturate:
            u = np.clip(u, -cfg.u_max, cfg.u_max)
        return u[:, None]

    def rollout(self, thetas: np.ndarray | torch.Tensor, states: np.ndarray | torch.Tensor, horizon: int | None = None) -> Rollout:
        """Closed-loop rollouts of ``π_θ`` for parameter rows (B, d) from states (S, 2)."""
        th = self._tensor(np.atleast_2d(thetas)) if not isinstance(thetas, torch.Tensor) else thetas.to(self.device)
        x0 = self._tensor(states) if not isinstance(states, torch.Tensor) else states.to(self.device)
        T = self.config.horizon if horizon is None else horizon
        params = self.policy.residual.unflatten(th)
        x0b = x0.unsqueeze(0).expand(th.shape[0], -1, -1)

        def pol(x: torch.Tensor) -> torch.Tensor:
            r = self.policy.residual.forward_batched(params, x)
            mask = self.policy._switch_mask(x)
            return x @ self._t["K"].T + (r if mask is None else mask * r)

        return rollout(self._t["A"], self._t["B"], pol, x0b, T)

    def expert_rollout(self, states: np.ndarray, horizon: int | None = None) -> Rollout:
        """Closed-loop rollouts of the expert, shape (1, S, …)."""
        T = self.config.horizon if horizon is None else horizon
        cfg = self.config

        def pol(x: torch.Tensor) -> torch.Tensor:
            u = cfg.expert_kp * (cfg.expert_target - x[..., 0:1]) - cfg.expert_kd * x[..., 1:2]
            return u.clamp(-cfg.u_max, cfg.u_max) if cfg.expert_saturate else u

        return rollout(self._t["A"], self._t["B"], pol, self._tensor(states)[None], T)

    def rollout_rows(self, ro: Rollout) -> torch.Tensor:
        """All constraint rows of rollouts, shape (B, S, T·(px + pu) + 1), ``≤ 0`` is safe."""
        t = self._t
        X = ro.states[:, :, 1:, :]
        sx = X @ t["Hx"].T - t["hx"]
        su = ro.inputs @ t["Hu"].T - t["hu"]
        xT = ro.states[:, :, -1, :]
        term = torch.einsum("bsi,ij,bsj->bs", xT, t["P"], xT) - self.gamma
        B_, S_ = X.shape[:2]
        return torch.cat([sx.reshape(B_, S_, -1), su.reshape(B_, S_, -1), term.unsqueeze(-1)], dim=-1)

    def _aggregate(self, rows: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "max":
            return rows.max(dim=-1).values
        if mode == "lse":
            tau = self.config.lse_temperature
            return tau * torch.logsumexp(rows / tau, dim=-1)
        return rows.reshape(rows.shape[0], -1)

    def _backup_rows(self, states: np.ndarray) -> np.ndarray:
        """Rollout rows of the backup ``u = Kx`` from ``states`` (S, 2): shape (S, R)."""
        with torch.no_grad():
            x0 = self._tensor(states)[None]
            ro = rollout(self._t["A"], self._t["B"], lambda x: x @ self._t["K"].T, x0, self.config.horizon)
            return self.rollout_rows(ro)[0].cpu().numpy()

    def _sample_safe_states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        out: list[np.ndarray] = []
        count = 0
        for _ in range(200):
            cand = rng.uniform([-cfg.p_max, -cfg.v_max], [cfg.p_max, cfg.v_max], size=(4 * n, 2))
            ok = np.all(self._backup_rows(cand) <= 0, axis=-1)
            out.append(cand[ok])
            count += int(ok.sum())
            if count >= n:
                break
        states = np.concatenate(out)[:n]
        if states.shape[0] < n:
            raise InvalidInputError(f"n_samples: could only draw {states.shape[0]} of {n} states in the safety region")
        return states

    # ------------------------------------------------------------------ Task interface
    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = self._theta_tensor(theta, requires_grad=True)
        u = self.policy.forward_batched(t, self._x_samples)[0]
        loss = torch.mean(torch.sum((u - self._u_expert) ** 2, dim=-1))
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad[0].cpu().numpy().copy()

    def objective(self, theta: np.ndarray) -> float:
        with torch.no_grad():
            u = self.policy.forward_batched(self._theta_tensor(theta), self._x_samples)[0]
            return float(torch.mean(torch.sum((u - self._u_expert) ** 2, dim=-1)))

    def block_gradients(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Negative gradients of the imitation loss on ``k`` angular sectors of the sampled states, (k, d)."""
        t = self._theta_tensor(theta, requires_grad=True)
        u = self.policy.forward_batched(t, self._x_samples)[0]
        per = torch.sum((u - self._u_expert) ** 2, dim=-1) / u.shape[0]
        blocks = torch.tensor_split(self._sectors, k)
        block_loss = torch.stack([per[idx].sum() for idx in blocks])
        eye = torch.eye(k, dtype=block_loss.dtype, device=block_loss.device)
        (g,) = torch.autograd.grad(block_loss, t, grad_outputs=eye, is_grads_batched=True)
        return -g[:, 0, :].cpu().numpy().copy()

    def constraints(self, thetas: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            ro = self.rollout(thetas, self._x_train)
            return self._aggregate(self.rollout_rows(ro), self.config.rows).cpu().numpy()

    def constraint_labels(self) -> list[str]:
        states = [f"x0=({p:+.3f},{v:+.3f})" for p, v in self.train_states]
        if self.config.rows != "per-row":
            return [f"{self.config.rows} of rollout rows from {s}" for s in states]
        T = self.config.horizon
        # per grid state: state rows (t = 1..T), input rows (t = 0..T−1), the terminal row
        out = []
        for s in states:
            out += [f"{s} t={t} state row {c}" for t in range(1, T + 1) for c in range(self.system.Hx.shape[0])]
            out += [f"{s} t={t} input row {c}" for t in range(T) for c in range(self.system.Hu.shape[0])]
            out.append(f"{s} terminal xᵀPx<=γ")
        return out

    def quality(self, theta: np.ndarray) -> dict[str, float]:
        f = self.objective(theta)
        f0 = self.objective(self.theta0)
        return {"imitation_loss": f, "imitation_loss_backup": f0, "imitation_loss_ratio": f / f0 if f0 > 0 else float("nan")}

    def base_claims(self, theta0: np.ndarray, g0: np.ndarray) -> list[Claim]:
        s = self.system
        claims = backup_certificate(s.A, s.B, self.K, self.P, self.gamma, s.Hx, s.hx, s.Hu, s.hu, Q=self.Q, R=self.R)
        return claims + super().base_claims(theta0, g0)

    def final_claims(self, theta: np.ndarray, *, iteration: int | None = None) -> list[Claim]:
        """Reach-avoid (evaluated on every grid state of ``S``, with max rows whatever the
        training aggregation) and the value-decrease report at ``θ``."""
        from ..certify.reach_avoid import reach_avoid_claim, value_decrease_claim

        with torch.no_grad():
            ro = self.rollout(theta[None], self.safety_states)
        X, U = ro.states[0].cpu().numpy(), ro.inputs[0].cpu().numpy()
        s = self.system
        return [
            reach_avoid_claim(self.safety_states, X, U, s.Hx, s.hx, s.Hu, s.hu, self.P, self.gamma, iteration=iteration),
            value_decrease_claim(self.safety_states, X, self.P, self.gamma),
        ]

    def showcase_states(self) -> np.ndarray:
        """A few states of ``S`` spread over the box, for trajectory plots: shape (5, 2)."""
        targets = np.array([[-0.9, 0.2], [-0.4, 0.8], [0.3, -0.9], [0.7, 0.1], [-0.2, -0.5]])
        targets = targets * np.array([self.config.p_max, self.config.v_max])
        d = np.linalg.norm(self.safety_states[None, :, :] - targets[:, None, :], axis=-1)
        return self.safety_states[np.argmin(d, axis=1)]

    def figures(self, records, thetas, out_dir):
        from ..reports.figures import double_integrator_portrait, save

        paths = super().figures(records, thetas, out_dir)
        x0 = self.showcase_states()
        with torch.no_grad():
            trajs = {
                "backup": self.rollout(thetas["θ0"][None], x0).states[0].cpu().numpy(),
                "expert": self.expert_rollout(x0).states[0].cpu().numpy(),
                "final policy": self.rollout(thetas["final"][None], x0).states[0].cpu().numpy(),
            }
            rows = self.rollout_rows(self.rollout(thetas["final"][None], self.grid_states))[0].cpu().numpy()
        learned = np.all(rows <= 0, axis=-1)
        fig = double_integrator_portrait(self, trajs, learned_set=learned,
                                         title="double integrator: backup, malicious expert and the SCPO policy")
        return paths + [save(fig, out_dir / "state_box.png")]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "K": self.K.tolist(),
            "P": self.P.tolist(),
            "gamma": self.gamma,
            "gamma_closed_form": self.gamma_closed_form,
            "dare_residual": self.lqr.residual,
            "spectral_radius": self.lqr.spectral_radius,
            "grid_states": int(self.grid_states.shape[0]),
            "safety_region_states": int(self.safety_states.shape[0]),
            "training_grid_states": int(self.train_states.shape[0]),
        }
