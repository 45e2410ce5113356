"""Double integrator with a malicious expert (DESIGN §5).

``x = (p, v)``, ``x⁺ = A x + B u`` with ``A = [[1, dt], [0, 1]]``, ``B = [[dt²/2], [dt]]``,
constraints ``|p| ≤ 1, |v| ≤ 1, |u| ≤ 1``. The backup is discrete LQR (``Q = I, R = 1``), the
terminal set ``X_f = {xᵀPx ≤ γ}`` uses the closed-form ``γ``; the safety region ``S`` is the set of
grid states (``grid × grid`` over the box) from which the backup satisfies every constraint for
``T`` steps and ends in ``X_f`` (:mod:`scpo.tasks.linear` does this part for every linear task).

The expert is a saturated PD law ``u = clip(k_p (p* − p) − k_d v, ±u_max)`` tracking
``p* = 1.5``, outside the box: plain imitation drives states out of ``X``. The objective is the
mean squared action error on ``n_samples`` states drawn uniformly from the box and kept when the
backup certifies them (i.e. states of the safety region, off the grid).

Constraint rows of a grid state ``x_j`` come from the closed-loop rollout of ``π_θ`` in the layout
of :class:`scpo.systems.RowLayout`: the state rows ``Hx x_t − hx`` for ``t = 1..T``, the input rows
``Hu u_t − hu`` for ``t = 0..T−1`` and the terminal row ``x_Tᵀ P x_T − γ``. They enter the
projector one by one (``rows="per-row"``), as their maximum per grid state (``"max"``), or as the
log-sum-exp ``τ log Σ exp(r/τ)`` (``"lse"``), a smooth upper bound of the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .._validate import check_positive
from ..errors import InvalidInputError
from ..plotting import ellipse_patch, save
from ..systems import ROW_AGGREGATIONS, LinearSystem
from .linear import LinearImitationTask, LinearTaskSettings

__all__ = ["DoubleIntegratorConfig", "DoubleIntegratorTask", "ROW_MODES"]

ROW_MODES = ROW_AGGREGATIONS


@dataclass(frozen=True, kw_only=True)
class DoubleIntegratorConfig(LinearTaskSettings):
    """Settings of the double-integrator task; the defaults are DESIGN §5's numbers.

    The shared settings (``horizon``, ``grid``, ``n_samples``, ``rows``, ``lse_temperature``,
    ``hidden``, ``activation``, ``switching``, ``gamma_shrink``, ``device``) are those of
    :class:`scpo.tasks.linear.LinearTaskSettings`.

    Attributes
    ----------
    dt : float
    p_max, v_max, u_max : float
        Box constraints.
    q_diag : tuple of float
        Diagonal of ``Q``.
    r : float
        ``R``.
    expert_target, expert_kp, expert_kd : float
        The malicious PD expert.
    expert_saturate : bool
        Clip the expert's action to ``±u_max``.
    horizon, grid, n_samples, rows, lse_temperature, hidden, activation, switching, gamma_shrink, region, region_margin, region_directions, row_margin, rows_in_region, device
        See :class:`~scpo.tasks.linear.LinearTaskSettings`.
    """

    dt: float = 0.1
    p_max: float = 1.0
    v_max: float = 1.0
    u_max: float = 1.0
    q_diag: tuple[float, ...] = (1.0, 1.0)
    r: float = 1.0
    expert_target: float = 1.5
    expert_kp: float = 4.0
    expert_kd: float = 3.0
    expert_saturate: bool = True

    def _check_task(self) -> None:
        for name in ("dt", "p_max", "v_max", "u_max", "r", "expert_kp", "expert_kd"):
            check_positive(name, getattr(self, name))
        if len(self.q_diag) != 2 or not all(q >= 0 for q in self.q_diag):
            raise InvalidInputError(f"q_diag: expected two non-negative numbers, got {self.q_diag}")


class DoubleIntegratorTask(LinearImitationTask):
    """The double integrator with a malicious expert (see the module docstring).

    Parameters
    ----------
    config : DoubleIntegratorConfig, optional
    seed : int
    """

    name = "double-integrator"
    config_class = DoubleIntegratorConfig
    state_names = ("p", "v")
    input_names = ("u",)

    def linear_system(self) -> LinearSystem:
        """``A = [[1, dt], [0, 1]]``, ``B = [[dt²/2], [dt]]`` with ``|p| ≤ p_max``, ``|v| ≤ v_max``, ``|u| ≤ u_max``."""
        cfg = self.config
        dt = cfg.dt
        A = np.array([[1.0, dt], [0.0, 1.0]])
        B = np.array([[dt * dt / 2], [dt]])
        return LinearSystem.with_box_constraints(A, B, [cfg.p_max, cfg.v_max], [cfg.u_max], name="double integrator")

    def lqr_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q = diag(q_diag)``, ``R = r``."""
        return np.diag(self.config.q_diag), np.array([[self.config.r]])

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The malicious PD expert's actions.

        Parameters
        ----------
        states : ndarray, shape (S, 2)

        Returns
        -------
        ndarray, shape (S, 1)
        """
        cfg = self.config
        u = cfg.expert_kp * (cfg.expert_target - states[:, 0]) - cfg.expert_kd * states[:, 1]
        if cfg.expert_saturate:
            u = np.clip(u, -cfg.u_max, cfg.u_max)
        return u[:, None]

    def expert_input(self, x: torch.Tensor) -> torch.Tensor:
        """The PD expert as a rollout policy.

        Parameters
        ----------
        x : Tensor, shape (…, 2)

        Returns
        -------
        Tensor, shape (…, 1)
        """
        cfg = self.config
        u = cfg.expert_kp * (cfg.expert_target - x[..., 0:1]) - cfg.expert_kd * x[..., 1:2]
        return u.clamp(-cfg.u_max, cfg.u_max) if cfg.expert_saturate else u

    def expert_description(self) -> str:
        """The malicious PD expert in one sentence."""
        cfg = self.config
        return f"The expert is malicious: a PD law tracking p* = {cfg.expert_target}, outside |p| ≤ {cfg.p_max}."

    def figure_captions(self) -> dict[str, str]:
        """Captions of the training curves and the state-box figure."""
        return {**super().figure_captions(),
                "state_box.png": "The state box X, the grid, the safety region S, the terminal set X_f, and trajectories of "
                                 "the backup, the malicious expert and the final policy."}

    def portrait(self, trajectories: dict[str, np.ndarray], *, title: str = "", learned_set: np.ndarray | None = None) -> Figure:
        """The state box with the grid, ``S``, ``X_f`` and closed-loop trajectories.

        Parameters
        ----------
        trajectories : dict of label -> ndarray, shape (k, T+1, 2)
        title : str
        learned_set : ndarray of bool, shape (grid²,), optional
            Grid states certified for the learned policy (drawn as a second marker).

        Returns
        -------
        Figure
        """
        cfg = self.config
        fig = Figure(figsize=(7, 6.2))
        ax = fig.subplots()
        g = self.grid_states
        ax.plot(g[:, 0], g[:, 1], ".", ms=1.5, color="0.75", label="grid")
        s = self.safety_states
        ax.plot(s[:, 0], s[:, 1], ".", ms=2.5, color="tab:blue", alpha=0.6, label=f"S: backup reaches X_f in T={cfg.horizon} ({len(s)} states)")
        if learned_set is not None:
            ls = g[learned_set]
            ax.plot(ls[:, 0], ls[:, 1], "s", ms=2, mfc="none", color="tab:green", alpha=0.5, label=f"learned policy reaches X_f ({len(ls)})")
        ax.add_patch(ellipse_patch(self.P, self.gamma, fill=False, color="tab:purple", lw=2, label="X_f"))
        ax.add_patch(Rectangle((-cfg.p_max, -cfg.v_max), 2 * cfg.p_max, 2 * cfg.v_max, fill=False, color="k", lw=1.5, label="state box X"))
        colors = {"backup": "tab:blue", "expert": "tab:red", "final policy": "tab:green", "plain imitation": "tab:orange"}
        for label, traj in trajectories.items():
            c = colors.get(label, None)
            for k, tr in enumerate(traj):
                ax.plot(tr[:, 0], tr[:, 1], "-", color=c, lw=1.3, alpha=0.9, label=label if k == 0 else None)
                ax.plot(tr[0, 0], tr[0, 1], "o", color=c, ms=3)
        ax.axvline(cfg.expert_target, color="tab:red", ls=":", lw=1, label=f"expert target p* = {cfg.expert_target}")
        ax.set_xlim(-1.3 * cfg.p_max, max(1.3 * cfg.p_max, cfg.expert_target + 0.2))
        ax.set_ylim(-1.4 * cfg.v_max, 1.4 * cfg.v_max)
        ax.set_xlabel("position p")
        ax.set_ylabel("velocity v")
        ax.set_title(title or "double integrator")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig

    def figures(self, records: list[dict[str, Any]], thetas: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
        """Training curves and the state box with trajectories of backup, expert and final policy.

        Parameters
        ----------
        records : list of dict
        thetas : dict of label -> ndarray
            At least ``"θ0"`` and ``"final"``.
        out_dir : Path

        Returns
        -------
        list of Path
        """
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
        fig = self.portrait(trajs, learned_set=learned, title="double integrator: backup, malicious expert and the SCPO policy")
        return paths + [save(fig, Path(out_dir) / "state_box.png")]
