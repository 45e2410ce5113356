"""Imitation on a constrained linear system with an LQR backup: the common body of the control tasks.

A subclass supplies the system ``x⁺ = Ax + Bu`` with box (or polytopic) constraints, the LQR weights
``(Q, R)`` and an expert; this module does the rest, the same way for every dimension ``n``:

* backup ``u = Kx`` from discrete LQR, ``X_f = {xᵀPx ≤ γ}`` with the closed-form ``γ`` (DESIGN §5),
  shrunk by a relative ``gamma_shrink`` so that the exact check of ``X_f ⊆ X`` holds for the rounded
  float value; the :class:`~scpo.systems.ClosedLoopProblem` with horizon ``T``;
* the safety region ``S``: the states of a ``grid^n`` grid over the bounding box of ``X`` from which
  the backup satisfies every row of the ``T``-step rollout (the backup's backward reachable set of
  ``X_f``, sampled); in ``lse`` mode the constraint states are the part of ``S`` where the backup's
  log-sum-exp is ``≤ 0``;
* the objective: the mean squared action error to the expert on ``n_samples`` states drawn
  uniformly from the box and kept when the backup certifies them (states of ``S`` off the grid);
  block probe directions from ``k`` angular sectors of those states in the plane of the first two
  state coordinates.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import check_in, check_int, check_positive
from ..certify.backup import backup_certificate
from ..errors import ConfigError, InvalidInputError
from ..evidence import Claim
from ..policies import ACTIVATIONS, MLP, LinearBackup, ResidualPolicy
from ..systems import ROW_AGGREGATIONS, ClosedLoopProblem, LinearSystem, LQRResult, Rollout, aggregate_rows, dlqr, linear_policy, rollout, terminal_level
from .base import Task

__all__ = ["LinearTaskSettings", "LinearImitationTask"]


@dataclass(frozen=True, kw_only=True)
class LinearTaskSettings:
    """The settings every linear imitation task shares (a subclass adds its system and expert).

    Attributes
    ----------
    horizon : int
        ``T``.
    grid : int
        Grid points per axis over the state box.
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
    region : {"backup-reachable", "grid-cells"}
        The declared region ``C`` of the sound certificates: the backup's exact ``T``-step backward
        reachable set (:func:`scpo.certify.declared.backup_region`), or the legacy cover of one grid
        cell around each grid state of ``S`` (which reaches past ``S``; even the backup can fail it).
    region_margin : float
        ``ε`` of the backup-reachable region: constraints tightened by ``ε`` so that a learned
        residual has room (``0``: the backup's own set).
    region_directions : int
        Tangent directions of the polytope ``T_in ⊆ X_f`` the region is computed for.
    row_margin : float or None
        ``δ``: the rows of ``g`` are ``row + δ`` (the projector keeps every evaluated row ``≤ −δ``),
        a cushion for the sound certificate between the grid states. ``None``: chosen by training
        (0 with ``certify="grid"``, the gate's default with ``certify="sound"``).
    rows_in_region : bool or None
        Keep only the grid states of ``S`` that lie in the declared region ``C`` as constraint
        states (there the backup has the region's slack ``ε``). ``None``: chosen by training.
    device : str
        ``"cpu"`` or ``"cuda[:i]"``: where rollouts and the policy run (results come back as
        float64 numpy arrays either way).
    """

    horizon: int = 30
    grid: int = 50
    n_samples: int = 256
    rows: str = "per-row"
    lse_temperature: float = 0.02
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    switching: bool = False
    gamma_shrink: float = 1e-9
    region: str = "backup-reachable"
    region_margin: float = 0.01
    region_directions: int = 32
    row_margin: float | None = None
    rows_in_region: bool | None = None
    device: str = "cpu"

    def _check_settings(self) -> None:
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InvalidInputError(f"device: expected 'cpu' or 'cuda[:index]', got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidInputError(f"device: {self.device!r} requested but torch.cuda.is_available() is False on this machine")
        check_positive("lse_temperature", self.lse_temperature)
        check_int("horizon", self.horizon, minimum=1)
        check_int("grid", self.grid, minimum=2)
        check_int("n_samples", self.n_samples, minimum=1)
        check_in("rows", self.rows, ROW_AGGREGATIONS)
        check_in("region", self.region, ("backup-reachable", "grid-cells"))
        check_int("region_directions", self.region_directions, minimum=3)
        if self.row_margin is not None and (isinstance(self.row_margin, bool) or not isinstance(self.row_margin, (int, float))
                                            or not 0 <= self.row_margin < 1):
            raise InvalidInputError(f"row_margin: expected a number in [0, 1) or None, got {self.row_margin!r}")
        if self.rows_in_region is not None and not isinstance(self.rows_in_region, bool):
            raise InvalidInputError(f"rows_in_region: expected true, false or null, got {self.rows_in_region!r}")
        if isinstance(self.region_margin, bool) or not isinstance(self.region_margin, (int, float)) or not self.region_margin >= 0:
            raise InvalidInputError(f"region_margin: expected a non-negative number, got {self.region_margin!r}")
        check_in("activation", self.activation, tuple(ACTIVATIONS))
        for i, h in enumerate(self.hidden):
            check_int(f"hidden[{i}]", h, minimum=1)
        if not 0 <= self.gamma_shrink < 1:
            raise InvalidInputError(f"gamma_shrink: expected a number in [0, 1), got {self.gamma_shrink}")

    def _check_task(self) -> None:
        """The subclass's own checks (raise :class:`InvalidInputError` naming the field)."""

    def __post_init__(self) -> None:
        try:
            self._check_settings()
            self._check_task()
        except InvalidInputError as exc:
            raise ConfigError(f"{type(self).__name__}.{exc}") from None


class LinearImitationTask(Task):
    """Imitation of an expert on a constrained linear system with an LQR backup (module docstring).

    Subclasses set ``name``, ``config_class`` (a :class:`LinearTaskSettings` subclass),
    ``state_names``/``input_names`` and implement :meth:`linear_system`, :meth:`lqr_weights`,
    :meth:`expert` and :meth:`expert_input`.

    Parameters
    ----------
    config : LinearTaskSettings subclass instance
    seed : int
    """

    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    default_projector = {"lr": 0.01, "probe_radius": 1e-3, "block_probes": 7, "bank_size": 16}

    # ---------------------------------------------------------------- to implement
    @abc.abstractmethod
    def linear_system(self) -> LinearSystem:
        """The system ``x⁺ = Ax + Bu`` with its constraints, from ``self.config``."""

    @abc.abstractmethod
    def lqr_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, R)`` of the LQR backup, from ``self.config``."""

    @abc.abstractmethod
    def expert(self, states: np.ndarray) -> np.ndarray:
        """The expert's actions at ``states`` (S, n): shape (S, m).

        Parameters
        ----------
        states : ndarray, shape (S, n)

        Returns
        -------
        ndarray, shape (S, m)
        """

    @abc.abstractmethod
    def expert_input(self, x: torch.Tensor) -> torch.Tensor:
        """The expert as a rollout policy: states (…, n) -> inputs (…, m).

        Parameters
        ----------
        x : Tensor, shape (…, n)

        Returns
        -------
        Tensor, shape (…, m)
        """

    # ---------------------------------------------------------------- construction
    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        cfg = config if config is not None else self.config_class()
        self.config = cfg  # the hooks below read it before Task.__init__ stores it again
        self.seed = int(seed)
        self.system = self.linear_system()
        self.system.check_stabilisable()
        self.Q, self.R = self.lqr_weights()
        self.lqr = self.backup_gain()
        self.K, self.P = self.lqr.K, self.lqr.P
        s = self.system
        self.gamma_closed_form = terminal_level(self.P, self.K, s.Hx, s.hx, s.Hu, s.hu)
        self.gamma = self.gamma_closed_form * (1.0 - cfg.gamma_shrink)
        self.problem = ClosedLoopProblem(system=s, K=self.K, horizon=cfg.horizon, P=self.P, gamma=self.gamma,
                                         state_names=self.state_names, input_names=self.input_names, name=s.name)
        self.device = torch.device(cfg.device)
        self.rows = cfg.rows
        self.lse_temperature = cfg.lse_temperature
        self.box = s.state_box()
        grid = self.candidate_states()
        self.grid_states = grid[np.all(grid @ s.Hx.T <= s.hx, axis=1)]  # x_0 ∈ X (the box of a polytopic X is larger)
        backup_rows = self._backup_rows(self.grid_states)
        in_S = np.all(backup_rows <= 0, axis=-1)
        self.in_safety_region = in_S
        self.safety_states = self.grid_states[in_S]
        if self.safety_states.shape[0] == 0:
            raise InvalidInputError("the safety region S is empty on this grid: no grid state is certified by the backup")
        if cfg.rows == "lse":
            lse = aggregate_rows(torch.as_tensor(backup_rows[in_S])[None], "lse", cfg.lse_temperature)[0].cpu().numpy()
            self.constraint_states = self.safety_states[lse <= 0]
        else:
            self.constraint_states = self.safety_states
        if cfg.rows_in_region:
            region = self.declared_region()
            if region is not None:  # S sampled in C: the grid states of S that lie in the declared region
                self.in_safety_region = in_S & region.polytope.contains_points(self.grid_states)
                self.safety_states = self.grid_states[self.in_safety_region]
                self.constraint_states = self.constraint_states[region.polytope.contains_points(self.constraint_states)]
        self.sample_states, expert_actions = self.imitation_data(np.random.default_rng(seed))
        self._x_samples = self._tensor(self.sample_states)
        self._u_expert = self._tensor(expert_actions)
        order = np.argsort(np.arctan2(self.sample_states[:, 1], self.sample_states[:, 0]), kind="stable")
        self._sectors = torch.as_tensor(order, device=self.device)
        super().__init__(cfg, seed=seed)

    # ---------------------------------------------------------------- hooks with defaults
    def backup_gain(self) -> LQRResult:
        """The backup ``u = Kx`` with its ``P``: discrete LQR with :meth:`lqr_weights` by default.

        Returns
        -------
        LQRResult
            ``K`` (m, n), ``P`` (n, n) with ``(A+BK)ᵀP(A+BK) ≺ P``, the residual and the spectral radius.
        """
        return dlqr(self.system.A, self.system.B, self.Q, self.R)

    def candidate_states(self) -> np.ndarray:
        """The states on which ``S`` is decided: by default the ``grid^n`` grid over the state box.

        Returns
        -------
        ndarray, shape (G, n)
            States outside ``X`` are dropped by the caller.
        """
        axes = [np.linspace(lo, hi, self.config.grid) for lo, hi in zip(*self.box)]
        mesh = np.meshgrid(*axes, indexing="xy")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def imitation_data(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The states the objective averages over and the expert's actions there.

        By default ``n_samples`` states drawn uniformly from the box and kept when the backup
        certifies them (states of ``S``), and :meth:`expert` at them.

        Parameters
        ----------
        rng : numpy.random.Generator
            Seeded with the task's seed.

        Returns
        -------
        states : ndarray, shape (S, n)
        actions : ndarray, shape (S, m)
        """
        states = self._sample_safe_states(self.config.n_samples, rng)
        return states, self.expert(states)

    def build_policy(self) -> ResidualPolicy:
        """The residual policy ``Kx + φ_θ(x)`` (switched off inside ``X_f`` with ``switching``)."""
        cfg = self.config
        mlp = MLP(self.system.n, cfg.hidden, self.system.m, cfg.activation, seed=self.seed)
        if cfg.switching:
            return ResidualPolicy(LinearBackup(self.K), mlp, switch_P=self.P, switch_level=self.gamma)
        return ResidualPolicy(LinearBackup(self.K), mlp)

    def _backup_rows(self, states: np.ndarray) -> np.ndarray:
        """Rollout rows of the backup ``u = Kx`` from ``states`` (S, n): shape (S, R)."""
        with torch.no_grad():
            x0 = self._tensor(states)[None]
            K = self.problem.tensors(self.device)["K"]
            ro = rollout(self.problem, linear_policy(K), x0, self.config.horizon)
            return self.rollout_rows(ro)[0].cpu().numpy()

    def _sample_safe_states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.box
        s = self.system
        out: list[np.ndarray] = []
        count = 0
        for _ in range(200):
            cand = rng.uniform(lo, hi, size=(4 * n, s.n))
            ok = np.all(self._backup_rows(cand) <= 0, axis=-1) & np.all(cand @ s.Hx.T <= s.hx, axis=1)
            out.append(cand[ok])
            count += int(ok.sum())
            if count >= n:
                break
        states = np.concatenate(out)[:n]
        if states.shape[0] < n:
            raise InvalidInputError(f"n_samples: could only draw {states.shape[0]} of {n} states in the safety region")
        return states

    # ---------------------------------------------------------------- the protocol
    def expert_rollout(self, states: np.ndarray, horizon: int | None = None) -> Rollout:
        """Closed-loop rollouts of the expert.

        Parameters
        ----------
        states : ndarray, shape (S, n)
        horizon : int, optional
            Default: the task's ``T``.

        Returns
        -------
        Rollout
            Shape (1, S, …).
        """
        T = self.config.horizon if horizon is None else horizon
        return rollout(self.problem, self.expert_input, self._tensor(states)[None], T)

    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean squared action error to the expert on the sampled states of ``S``, and its gradient.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        (float, ndarray of shape (d,))
        """
        t = self._theta_tensor(theta, requires_grad=True)
        u = self.policy.forward_batched(t, self._x_samples)[0]
        loss = torch.mean(torch.sum((u - self._u_expert) ** 2, dim=-1))
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad[0].cpu().numpy().copy()

    def objective(self, theta: np.ndarray) -> float:
        """The imitation loss at ``θ``.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        float
        """
        with torch.no_grad():
            u = self.policy.forward_batched(self._theta_tensor(theta), self._x_samples)[0]
            return float(torch.mean(torch.sum((u - self._u_expert) ** 2, dim=-1)))

    def block_gradients(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Negative gradients of the imitation loss on ``k`` angular sectors of the sampled states.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        k : int

        Returns
        -------
        ndarray, shape (k, d)
            Their sum is ``−∇f``.
        """
        t = self._theta_tensor(theta, requires_grad=True)
        u = self.policy.forward_batched(t, self._x_samples)[0]
        per = torch.sum((u - self._u_expert) ** 2, dim=-1) / u.shape[0]
        return self._block_gradients(t, per, self._sectors, k)

    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """The imitation loss at ``θ``, the backup's and their ratio.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        dict
            ``imitation_loss``, ``imitation_loss_backup``, ``imitation_loss_ratio``.
        """
        f = self.objective(theta)
        f0 = self.objective(self.theta0)
        return {"imitation_loss": f, "imitation_loss_backup": f0, "imitation_loss_ratio": f / f0 if f0 > 0 else float("nan")}

    def quality_summary(self, initial: dict[str, float], final: dict[str, float]) -> list[str]:
        """``imitation loss  backup … -> final policy … (…% of the backup's)``.

        Parameters
        ----------
        initial, final : dict
            :meth:`quality` at ``θ₀`` and at the last iterate.

        Returns
        -------
        list of str
        """
        f0, f1 = initial["imitation_loss"], final["imitation_loss"]
        return [f"imitation loss       backup {f0:.4f} -> final policy {f1:.4f} ({100 * f1 / f0:.1f}% of the backup's)"]

    def base_claims(self, theta0: np.ndarray, g0: np.ndarray) -> list[Claim]:
        """The exact LQR backup certificate, then the evaluated feasibility of the backup.

        Parameters
        ----------
        theta0 : ndarray, shape (d,)
        g0 : ndarray, shape (N,)

        Returns
        -------
        list of Claim
        """
        s = self.system
        claims = backup_certificate(s.A, s.B, self.K, self.P, self.gamma, s.Hx, s.hx, s.Hu, s.hu, Q=self.Q, R=self.R)
        return claims + super().base_claims(theta0, g0)

    def declared_region(self) -> Any:
        """``C``: the backup's exact ``T``-step backward reachable set with margin ``region_margin``
        (computed once, on first use), or None for the legacy grid-cell cover."""
        if self.config.region != "backup-reachable":
            return None
        if getattr(self, "_region", None) is None:
            from ..certify.declared import backup_region

            self._region = backup_region(self.problem, margin=float(self.config.region_margin),
                                         directions=int(self.config.region_directions))
        return self._region

    def safety_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``grid^n`` grid over the state box and the mask of its states in ``S``."""
        return self.grid_states, self.in_safety_region

    def safety_grid_domain(self) -> Any:
        """The declared region ``C`` when ``S`` was restricted to it (``rows_in_region``), else ``None``."""
        if not self.config.rows_in_region:
            return None
        region = self.declared_region()
        return None if region is None else region.polytope

    def backup_design(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(Q, R, gamma_shrink)`` of the LQR backup (see :meth:`Task.backup_design`)."""
        return self.Q, self.R, float(self.config.gamma_shrink)

    def showcase_states(self, count: int = 5) -> np.ndarray:
        """A few states of ``S`` spread over the box, for trajectory plots.

        Parameters
        ----------
        count : int

        Returns
        -------
        ndarray, shape (count, n)
        """
        lo, hi = self.box
        base = np.array([[-0.9, 0.2], [-0.4, 0.8], [0.3, -0.9], [0.7, 0.1], [-0.2, -0.5]])
        targets = np.zeros((count, self.system.n))
        targets[:, :2] = base[np.arange(count) % len(base)]
        targets = targets * (hi - lo) / 2 + (hi + lo) / 2
        d = np.linalg.norm(self.safety_states[None, :, :] - targets[:, None, :], axis=-1)
        return self.safety_states[np.argmin(d, axis=1)]

    def report_paragraphs(self) -> list[str]:
        """The system, its constraints, the backup, ``S`` and the expert in words."""
        cfg = self.config
        s = self.system
        box = ", ".join(f"{lo:g} ≤ {n} ≤ {hi:g}" for n, lo, hi in zip(self.problem.state_names, *self.box))
        inputs = ", ".join(self.problem.row_label("input", r) for r in range(s.Hu.shape[0]))
        return [
            f"{s.name}: x⁺ = Ax + Bu with A = {np.round(s.A, 6).tolist()}, B = {np.round(s.B, 6).tolist()}; state "
            f"constraints {box}; input constraints {inputs}. Backup π_safe(x) = Kx from discrete LQR "
            f"(Q = {np.round(self.Q, 6).tolist()}, R = {np.round(self.R, 6).tolist()}): K = {np.round(self.K, 6).tolist()}. "
            f"Terminal set X_f = {{xᵀPx ≤ γ}}, γ = {self.gamma:.6g}. Safety region S: the {len(self.safety_states)} of "
            f"{len(self.grid_states)} {self.candidate_description()} from which the backup reaches X_f "
            f"within T = {cfg.horizon} steps inside the constraints. {self.expert_description()} Constraint rows: the "
            f"closed-loop rollout rows from each state of S (aggregated per state: {cfg.rows!r}), "
            f"{self.describe()['constraints']} rows in all."
        ]

    def candidate_description(self) -> str:
        """What the states :meth:`candidate_states` returned are, in a few words (for the report)."""
        return f"grid states ({'×'.join([str(self.config.grid)] * self.system.n)})"

    def expert_description(self) -> str:
        """One sentence on the expert (for the report)."""
        return "The expert is imitated on states of S."

    def meaning_of_g(self) -> str:
        """What ``g ≤ 0`` means here: the rollouts from the grid states of ``S`` stay inside and reach ``X_f``."""
        cfg = self.config
        how = {
            "max": "the largest of its rollout rows is ≤ 0",
            "per-row": "every rollout row is ≤ 0",
            "lse": f"the log-sum-exp of its rollout rows (temperature {cfg.lse_temperature}, an upper bound of their maximum) is ≤ 0",
        }[cfg.rows]
        box = ", ".join(f"{lo:g} ≤ {n} ≤ {hi:g}" for n, lo, hi in zip(self.problem.state_names, *self.box))
        inputs = ", ".join(self.problem.row_label("input", r) for r in range(self.system.Hu.shape[0]))
        return (
            f"i.e. from each of the {len(self.constraint_states)} states of S used as constraint rows, the "
            f"T = {cfg.horizon}-step closed-loop rollout of π_θt keeps {box}, {inputs} and ends in X_f ({how})"
        )

    def describe(self) -> dict[str, Any]:
        """The base description plus the LQR backup, ``X_f`` and the grid sizes."""
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
            "training_grid_states": int(self.constraint_states.shape[0]),
        }
