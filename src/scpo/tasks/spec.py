"""Any constrained linear system as a task: from a TOML spec file, a Python call or python-control.

The task ``linear`` (:class:`LinearSpecTask`) is :class:`~scpo.tasks.linear.LinearImitationTask`
driven entirely by its settings (:class:`LinearSpecConfig`, a flat frozen dataclass stored as the
run's ``task_config``, so that ``report``, ``audit`` and ``certify`` rebuild it from the run alone):

* the system: discrete ``(A, B)``, or continuous ``(A, B)`` with ``continuous = true`` and a sample
  time ``dt``, discretised by a zero-order hold (:func:`scipy.signal.cont2discrete`, method
  ``"zoh"``: ``A_d = e^{A dt}``, ``B_d = ∫_0^dt e^{A s} ds B``); or a python-control
  ``StateSpace`` with ``dt > 0`` (:func:`spec_from_statespace`; ``C`` and ``D`` are not used);
* polytopic constraints: boxes ``x_min ≤ x ≤ x_max``, ``u_min ≤ u ≤ u_max`` and/or rows
  ``Hx x ≤ hx``, ``Hu u ≤ hu`` (intersected), required bounded with the origin inside;
* the backup: LQR weights ``Q``/``R`` (or their diagonals), or a given gain ``K`` (then ``P`` is
  the cost-to-go of ``K``: ``A_clᵀ P A_cl − P + Q + KᵀRK = 0``, :func:`scipy.linalg.solve_discrete_lyapunov`);
* the objective: imitation of an expert — ``linear`` ``u = sat(K_e (x − x*) + u₀)``, ``pd``
  ``u = sat(k_p (p* − x_p) − k_d x_v)`` or ``dataset`` (states and expert actions, from an
  ``.npz`` file with arrays ``states`` (N, n) and ``actions`` (N, m), copied into the settings) —
  or a quadratic ``tracking`` cost ``mean_{x₀} (1/T) Σ_t (x_t − r)ᵀQ_tr(x_t − r) + u_tᵀR_tr u_t``
  along the closed loop's ``T``-step rollout from states of ``S``;
* ``S`` on a ``grid^n`` grid (``grid``) or on ``safety_samples`` uniform random states of ``X``;
  the horizon, the row aggregation and the residual's architecture as for every linear task.

TOML layout (every section optional except ``[system]``; an unknown section or key is an error
that names it and lists the valid ones)::

    name = "chain of three integrators"
    device = "cpu"
    [system]       A, B, dt, continuous, state_names, input_names
    [constraints]  x_min, x_max, Hx, hx, u_min, u_max, Hu, hu
    [backup]       Q, q_diag, R, r_diag, K, gamma_shrink
    [objective]    kind ("imitation" | "tracking"), expert ("linear" | "pd" | "dataset"),
                   expert_gain, expert_target, expert_offset, saturate, kp, kd, position, velocity,
                   dataset, reference, Q_track, q_track_diag, R_track, r_track_diag, n_samples
    [safety]       grid, samples, horizon, rows, lse_temperature
    [residual]     hidden, activation, switching
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import scipy.signal
import torch

from .._validate import check_in, check_int, check_positive
from ..config import from_mapping, to_mapping
from ..errors import ConfigError, InvalidInputError, UnsupportedError
from ..systems import LinearSystem, LQRResult, is_stabilisable, rollout
from .linear import LinearImitationTask, LinearTaskSettings

__all__ = [
    "LinearSpecConfig",
    "LinearSpecTask",
    "TOML_SECTIONS",
    "load_spec",
    "spec_mapping",
    "linear_task",
    "spec_from_statespace",
    "discretise",
]

Matrix = tuple[tuple[float, ...], ...]
Vector = tuple[float, ...]

EXPERTS = ("linear", "pd", "dataset")
OBJECTIVES = ("imitation", "tracking")


@dataclass(frozen=True, kw_only=True)
class LinearSpecConfig(LinearTaskSettings):
    """The settings of a user-defined linear task (module docstring for the meaning of each).

    Attributes
    ----------
    name : str
        The system's name in reports.
    A, B : tuple of tuple of float
        ``(n, n)`` and ``(n, m)``; continuous-time when ``continuous``.
    dt : float
        Sample time of the zero-order hold (``continuous``); informational otherwise (``0``: not given).
    continuous : bool
    state_names, input_names : tuple of str
        Default ``x1 … xn`` and ``u1 … um``.
    x_min, x_max, u_min, u_max : tuple of float
        Box constraints (``x_min`` defaults to ``−x_max``, likewise ``u_min``); empty: none.
    Hx, Hu : tuple of tuple of float
        Extra polytopic rows; ``hx``, ``hu`` their right-hand sides.
    hx, hu : tuple of float
    Q, R : tuple of tuple of float
        LQR weights (default ``I``); ``q_diag``/``r_diag`` give diagonals instead.
    q_diag, r_diag : tuple of float
    K : tuple of tuple of float
        A given backup gain ``u = Kx`` (shape (m, n)) instead of LQR.
    objective : {"imitation", "tracking"}
    expert : {"linear", "pd", "dataset"}
    expert_gain : tuple of tuple of float
        ``K_e`` (m, n) of the linear expert.
    expert_target, expert_offset : tuple of float
        ``x*`` (n,) (for ``pd`` only the position entry is used) and ``u₀`` (m,).
    expert_saturate : bool
        Clip the expert to the input box ``[u_min, u_max]`` (needs a box).
    expert_kp, expert_kd : float
    expert_position, expert_velocity : int
        State indices of the ``pd`` expert (single input).
    expert_states, expert_actions : tuple of tuple of float
        The ``dataset`` expert: (N, n) states and (N, m) actions.
    expert_dataset : str
        Where the dataset was read from, with its SHA-256 (information only).
    reference : tuple of float
        ``r`` (n,) of the tracking cost.
    Q_track, R_track : tuple of tuple of float
    q_track_diag, r_track_diag : tuple of float
    safety_samples : int
        ``> 0``: ``S`` is decided on this many uniform random states of ``X`` instead of the grid.
    horizon, grid, n_samples, rows, lse_temperature, hidden, activation, switching, gamma_shrink, region, region_margin, region_directions, row_margin, rows_in_region, device
        See :class:`~scpo.tasks.linear.LinearTaskSettings`.
    """

    name: str = "linear system"
    A: Matrix = ()
    B: Matrix = ()
    dt: float = 0.0
    continuous: bool = False
    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()
    x_min: Vector = ()
    x_max: Vector = ()
    Hx: Matrix = ()
    hx: Vector = ()
    u_min: Vector = ()
    u_max: Vector = ()
    Hu: Matrix = ()
    hu: Vector = ()
    Q: Matrix = ()
    q_diag: Vector = ()
    R: Matrix = ()
    r_diag: Vector = ()
    K: Matrix = ()
    objective: str = "imitation"
    expert: str = "linear"
    expert_gain: Matrix = ()
    expert_target: Vector = ()
    expert_offset: Vector = ()
    expert_saturate: bool = True
    expert_kp: float = 0.0
    expert_kd: float = 0.0
    expert_position: int = 0
    expert_velocity: int = 1
    expert_states: Matrix = ()
    expert_actions: Matrix = ()
    expert_dataset: str = ""
    reference: Vector = ()
    Q_track: Matrix = ()
    q_track_diag: Vector = ()
    R_track: Matrix = ()
    r_track_diag: Vector = ()
    safety_samples: int = 0

    # ---------------------------------------------------------------- validation
    def _matrix(self, key: str, shape: tuple[int | None, int | None], *, allow_empty: bool = True) -> np.ndarray | None:
        value = getattr(self, key)
        if len(value) == 0:
            if allow_empty:
                return None
            raise InvalidInputError(f"{key}: expected a matrix, got nothing")
        rows = [len(r) for r in value]
        if len(set(rows)) != 1:
            raise InvalidInputError(f"{key}: expected rows of equal length, got lengths {rows}")
        M = np.array(value, dtype=float)
        if not np.all(np.isfinite(M)):
            raise InvalidInputError(f"{key}: expected finite numbers, got NaN or infinity")
        for axis, (want, got) in enumerate(zip(shape, M.shape)):
            if want is not None and want != got:
                raise InvalidInputError(f"{key}: expected shape {tuple('*' if s is None else s for s in shape)}, got {M.shape}")
        return M

    def _vector(self, key: str, size: int | None) -> np.ndarray | None:
        value = getattr(self, key)
        if len(value) == 0:
            return None
        v = np.array(value, dtype=float)
        if not np.all(np.isfinite(v)):
            raise InvalidInputError(f"{key}: expected finite numbers, got NaN or infinity")
        if size is not None and v.size != size:
            raise InvalidInputError(f"{key}: expected {size} entries, got {v.size}")
        return v

    def _check_task(self) -> None:
        A = self._matrix("A", (None, None), allow_empty=False)
        if A.shape[0] != A.shape[1]:
            raise InvalidInputError(f"A: expected a square matrix, got shape {A.shape}")
        n = A.shape[0]
        B = self._matrix("B", (None, None), allow_empty=False)
        if B.shape[0] != n:
            raise InvalidInputError(f"B: expected {n} rows to match A of shape {A.shape}, got shape {B.shape}")
        m = B.shape[1]
        if not math.isfinite(self.dt) or self.dt < 0:
            raise InvalidInputError(f"dt: expected a sample time ≥ 0, got {self.dt}")
        if self.continuous and not self.dt > 0:
            raise InvalidInputError(f"dt: a continuous-time system needs a sample time dt > 0 for the zero-order hold, got {self.dt}")
        for key, size in (("state_names", n), ("input_names", m)):
            names = getattr(self, key)
            if names and len(names) != size:
                raise InvalidInputError(f"{key}: expected {size} names, got {len(names)}")
        for key, size in (("x_min", n), ("x_max", n), ("hx", None), ("u_min", m), ("u_max", m), ("hu", None)):
            self._vector(key, size)
        Hx = self._matrix("Hx", (None, n))
        Hu = self._matrix("Hu", (None, m))
        if (Hx is None) != (len(self.hx) == 0) or (Hx is not None and Hx.shape[0] != len(self.hx)):
            raise InvalidInputError(f"hx: expected one entry per row of Hx ({0 if Hx is None else Hx.shape[0]}), got {len(self.hx)}")
        if (Hu is None) != (len(self.hu) == 0) or (Hu is not None and Hu.shape[0] != len(self.hu)):
            raise InvalidInputError(f"hu: expected one entry per row of Hu ({0 if Hu is None else Hu.shape[0]}), got {len(self.hu)}")
        for key, size in (("Q", n), ("R", m), ("Q_track", n), ("R_track", m)):
            self._matrix(key, (size, size))
        for key, size in (("q_diag", n), ("r_diag", m), ("q_track_diag", n), ("r_track_diag", m), ("reference", n),
                          ("expert_target", n), ("expert_offset", m)):
            self._vector(key, size)
        self._matrix("K", (m, n))
        check_in("objective", self.objective, OBJECTIVES)
        check_in("expert", self.expert, EXPERTS)
        check_int("safety_samples", self.safety_samples, minimum=0)
        # the constraint sets: non-empty, bounded, the origin strictly inside
        from ..reachability.polytope import Polytope, is_bounded, is_empty

        for label, (H, h), keys in (("state", constraint_rows(self, "x"), "x_min, x_max, Hx, hx"),
                                    ("input", constraint_rows(self, "u"), "u_min, u_max, Hu, hu")):
            if H.shape[0] == 0:
                raise InvalidInputError(f"{keys}: expected {label} constraints (a box or rows), got none (the {label} set is unbounded)")
            P = Polytope(H=H, h=h)
            if is_empty(P, tol=0.0):
                raise InvalidInputError(f"{keys}: the {label} constraint set is empty")
            if not is_bounded(P):
                raise InvalidInputError(f"{keys}: the {label} constraint set is unbounded; add bounds in every direction")
            if not np.all(h > 0):
                raise InvalidInputError(f"{keys}: expected the origin strictly inside the {label} constraint set (every bound > 0)")
        Ad, Bd = discretise(self)
        if len(self.K) == 0 and not is_stabilisable(Ad, Bd):
            raise InvalidInputError(
                f"A, B: the pair is not stabilisable (eigenvalues of the discrete A: {np.round(np.linalg.eigvals(Ad), 6).tolist()}), "
                "so no stabilising LQR backup exists"
            )
        if len(self.K) and not np.max(np.abs(np.linalg.eigvals(Ad + Bd @ np.array(self.K, dtype=float)))) < 1:
            raise InvalidInputError("K: expected a stabilising gain (A + BK Schur stable), got one with spectral radius ≥ 1")
        if self.objective == "imitation":
            self._check_expert(n, m)
        elif len(self.reference) == 0:
            raise InvalidInputError("reference: the tracking objective needs a reference state r (n entries)")

    def _check_expert(self, n: int, m: int) -> None:
        if self.expert == "linear":
            self._matrix("expert_gain", (m, n), allow_empty=False)
        elif self.expert == "pd":
            if m != 1:
                raise InvalidInputError(f"expert: the 'pd' expert drives one input, the system has {m}; use 'linear'")
            for key in ("expert_position", "expert_velocity"):
                check_int(key, getattr(self, key), minimum=0, maximum=n - 1)
            check_positive("expert_kp", self.expert_kp)
            if not self.expert_kd >= 0:
                raise InvalidInputError(f"expert_kd: expected a number ≥ 0, got {self.expert_kd}")
        else:
            X = self._matrix("expert_states", (None, n), allow_empty=False)
            U = self._matrix("expert_actions", (None, m), allow_empty=False)
            if X.shape[0] != U.shape[0]:
                raise InvalidInputError(f"expert_actions: expected one action per state ({X.shape[0]}), got {U.shape[0]}")
        if self.expert_saturate and self.expert != "dataset" and not (len(self.u_max) or len(self.u_min)):
            raise InvalidInputError("expert_saturate: clipping the expert needs an input box (u_max); set saturate = false or give u_max")


def constraint_rows(cfg: LinearSpecConfig, which: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``H z ≤ h`` of the state (``which = "x"``) or input (``"u"``) constraints of ``cfg``.

    Parameters
    ----------
    cfg : LinearSpecConfig
    which : {"x", "u"}

    Returns
    -------
    H : ndarray, shape (p, n or m)
    h : ndarray, shape (p,)
        The box rows (``+e_i``, ``−e_i`` per coordinate) then the given rows.
    """
    size = len(cfg.A) if which == "x" else (len(cfg.B[0]) if cfg.B else 0)
    hi = getattr(cfg, f"{which}_max")
    lo = getattr(cfg, f"{which}_min")
    Hs, hs = [], []
    if len(hi) or len(lo):
        hi_v = np.array(hi, dtype=float) if len(hi) else np.full(size, np.inf)
        lo_v = np.array(lo, dtype=float) if len(lo) else (-hi_v if len(hi) else np.full(size, -np.inf))
        for i in range(size):
            if np.isfinite(hi_v[i]):
                Hs.append(np.eye(size)[i])
                hs.append(hi_v[i])
            if np.isfinite(lo_v[i]):
                Hs.append(-np.eye(size)[i])
                hs.append(-lo_v[i])
    rows = getattr(cfg, "Hx" if which == "x" else "Hu")
    rhs = getattr(cfg, "hx" if which == "x" else "hu")
    for r, b in zip(rows, rhs):
        Hs.append(np.array(r, dtype=float))
        hs.append(float(b))
    if not Hs:
        return np.zeros((0, size)), np.zeros(0)
    return np.array(Hs, dtype=float).reshape(-1, size), np.array(hs, dtype=float)


def discretise(cfg: LinearSpecConfig) -> tuple[np.ndarray, np.ndarray]:
    """The discrete ``(A, B)`` of ``cfg``: as given, or the zero-order hold of the continuous pair.

    Parameters
    ----------
    cfg : LinearSpecConfig

    Returns
    -------
    A : ndarray, shape (n, n)
    B : ndarray, shape (n, m)
    """
    A = np.array(cfg.A, dtype=float)
    B = np.array(cfg.B, dtype=float)
    if not cfg.continuous:
        return A, B
    n, m = B.shape
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, np.eye(n), np.zeros((n, m))), cfg.dt, method="zoh")
    return np.asarray(Ad, dtype=float), np.asarray(Bd, dtype=float)


def _square(cfg: LinearSpecConfig, full: str, diag: str, size: int) -> np.ndarray:
    if len(getattr(cfg, full)):
        return np.array(getattr(cfg, full), dtype=float)
    if len(getattr(cfg, diag)):
        return np.diag(np.array(getattr(cfg, diag), dtype=float))
    return np.eye(size)


class LinearSpecTask(LinearImitationTask):
    """A user-defined constrained linear system (see the module docstring).

    Parameters
    ----------
    config : LinearSpecConfig
    seed : int
    """

    name = "linear"
    config_class = LinearSpecConfig
    default_projector = {**LinearImitationTask.default_projector, "lr": 1e-3}
    """A smaller step than the double integrator's (as the chain of integrators uses): a safer default
    for systems nobody has tuned for."""

    def __init__(self, config: Any = None, *, seed: int = 0) -> None:
        cfg = config if config is not None else self.config_class()
        n, m = len(cfg.A), len(cfg.B[0]) if cfg.B else 0
        self.state_names = tuple(cfg.state_names) or tuple(f"x{i + 1}" for i in range(n))
        self.input_names = tuple(cfg.input_names) or tuple(f"u{j + 1}" for j in range(m))
        super().__init__(cfg, seed=seed)

    # ---------------------------------------------------------------- the system and backup
    def linear_system(self) -> LinearSystem:
        """The discrete system of the settings (:func:`discretise`) with its polytopic constraints."""
        c = self.config
        A, B = discretise(c)
        Hx, hx = constraint_rows(c, "x")
        Hu, hu = constraint_rows(c, "u")
        return LinearSystem(A=A, B=B, Hx=Hx, hx=hx, Hu=Hu, hu=hu, name=c.name)

    def lqr_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q`` and ``R`` (full matrices, diagonals, or identities)."""
        c = self.config
        return _square(c, "Q", "q_diag", len(c.A)), _square(c, "R", "r_diag", len(c.B[0]))

    def backup_gain(self) -> LQRResult:
        """LQR, or the given ``K`` with ``P`` its cost-to-go ``A_clᵀPA_cl − P + Q + KᵀRK = 0``."""
        if not len(self.config.K):
            return super().backup_gain()
        K = np.array(self.config.K, dtype=float)
        Acl = self.system.A + self.system.B @ K
        P = scipy.linalg.solve_discrete_lyapunov(Acl.T, self.Q + K.T @ self.R @ K)
        P = 0.5 * (P + P.T)
        res = Acl.T @ P @ Acl - P + self.Q + K.T @ self.R @ K
        if np.linalg.eigvalsh(P).min() <= 0:
            raise InvalidInputError("K, Q, R: the cost-to-go P of the given K is not positive definite; make Q positive definite")
        rho = float(np.max(np.abs(np.linalg.eigvals(Acl))))
        return LQRResult(K=K, P=P, residual=float(np.linalg.norm(res) / max(1.0, np.linalg.norm(P))), spectral_radius=rho)

    def backup_design(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """LQR weights for the audit's fresh DARE solve; ``None`` for a given ``K``."""
        return None if len(self.config.K) else super().backup_design()

    def candidate_states(self) -> np.ndarray:
        """The grid, or ``safety_samples`` uniform states of the state box (seeded by the task's seed)."""
        c = self.config
        if c.safety_samples <= 0:
            return super().candidate_states()
        rng = np.random.default_rng([self.seed, 7])
        lo, hi = self.box
        return rng.uniform(lo, hi, size=(c.safety_samples, len(lo)))

    def candidate_description(self) -> str:
        """The grid, or the uniform random states of the box."""
        if self.config.safety_samples <= 0:
            return super().candidate_description()
        return "uniform random states of the state box"

    # ---------------------------------------------------------------- the expert
    def _expert_np(self, x: np.ndarray) -> np.ndarray:
        c = self.config
        n = x.shape[-1]
        if c.expert == "pd":
            target = c.expert_target[c.expert_position] if len(c.expert_target) else 0.0
            u = c.expert_kp * (target - x[..., c.expert_position]) - c.expert_kd * x[..., c.expert_velocity]
            u = u[..., None]
        else:
            Ke = np.array(c.expert_gain, dtype=float)
            xs = np.array(c.expert_target, dtype=float) if len(c.expert_target) else np.zeros(n)
            u0 = np.array(c.expert_offset, dtype=float) if len(c.expert_offset) else np.zeros(Ke.shape[0])
            u = (x - xs) @ Ke.T + u0
        if c.expert_saturate:
            Hu, hu = constraint_rows(c, "u")
            lo, hi = _box_of(Hu, hu)
            u = np.clip(u, lo, hi)
        return u

    def expert(self, states: np.ndarray) -> np.ndarray:
        """The expert's actions at ``states`` (linear or PD law; a dataset has no law).

        Parameters
        ----------
        states : ndarray, shape (S, n)

        Returns
        -------
        ndarray, shape (S, m)
        """
        if self.config.expert == "dataset":
            raise UnsupportedError("expert: a dataset expert has actions only at its own states, no law to evaluate elsewhere")
        return self._expert_np(np.asarray(states, dtype=float))

    def expert_input(self, x: torch.Tensor) -> torch.Tensor:
        """The expert law as a rollout policy (not for a dataset expert).

        Parameters
        ----------
        x : Tensor, shape (…, n)

        Returns
        -------
        Tensor, shape (…, m)
        """
        if self.config.expert == "dataset":
            raise UnsupportedError("expert: a dataset expert cannot be rolled out")
        return torch.as_tensor(self._expert_np(x.detach().cpu().numpy()), dtype=x.dtype, device=x.device)

    def imitation_data(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The dataset's states and actions, states of ``S`` with the expert law, or (tracking) states of ``S`` only.

        Parameters
        ----------
        rng : numpy.random.Generator

        Returns
        -------
        states : ndarray, shape (S, n)
        actions : ndarray, shape (S, m)
            Zeros for the tracking objective (unused).
        """
        c = self.config
        if c.objective == "imitation" and c.expert == "dataset":
            return np.array(c.expert_states, dtype=float), np.array(c.expert_actions, dtype=float)
        if c.objective == "tracking":
            states = self._sample_safe_states(c.n_samples, rng)
            return states, np.zeros((states.shape[0], self.system.m))
        return super().imitation_data(rng)

    def expert_description(self) -> str:
        """The expert (or the tracking cost) in one sentence."""
        c = self.config
        if c.objective == "tracking":
            return f"The objective is a quadratic tracking cost of the closed loop towards r = {list(c.reference)}."
        if c.expert == "dataset":
            return f"The expert is a dataset of {len(c.expert_states)} state-action pairs ({c.expert_dataset or 'given in Python'})."
        if c.expert == "pd":
            return f"The expert is a PD law on x{c.expert_position + 1} (target {list(c.expert_target)}), kp = {c.expert_kp}, kd = {c.expert_kd}."
        return f"The expert is the linear law u = K_e (x − x*) + u₀ with K_e = {[list(r) for r in c.expert_gain]}, x* = {list(c.expert_target)}."

    # ---------------------------------------------------------------- the tracking objective
    def _tracking_losses(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        T = c.horizon
        ro = rollout(self.problem, self.policy.batched(t), self._x_samples.unsqueeze(0), T)
        Qt = self._tensor(_square(c, "Q_track", "q_track_diag", self.system.n))
        m = self.system.m
        has_r = bool(len(c.R_track) or len(c.r_track_diag))
        Rt = self._tensor(_square(c, "R_track", "r_track_diag", m) if has_r else np.zeros((m, m)))
        r = self._tensor(np.array(c.reference, dtype=float))
        e = ro.states[0, :, :T, :] - r
        u = ro.inputs[0]
        cost = torch.einsum("stj,jk,stk->st", e, Qt, e) + torch.einsum("stj,jk,stk->st", u, Rt, u)
        return cost.mean(dim=1)  # per initial state, shape (S,)

    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Imitation (the base class) or the tracking cost, and its gradient.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        (float, ndarray of shape (d,))
        """
        if self.config.objective != "tracking":
            return super().objective_and_grad(theta)
        t = self._theta_tensor(theta, requires_grad=True)
        loss = self._tracking_losses(t).mean()
        (grad,) = torch.autograd.grad(loss, t)
        return float(loss.detach()), grad[0].cpu().numpy().copy()

    def objective(self, theta: np.ndarray) -> float:
        """``f(θ)``.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        float
        """
        if self.config.objective != "tracking":
            return super().objective(theta)
        with torch.no_grad():
            return float(self._tracking_losses(self._theta_tensor(theta)).mean())

    def block_gradients(self, theta: np.ndarray, k: int) -> np.ndarray:
        """Negative gradients of the objective on ``k`` angular sectors of the sampled states.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        k : int

        Returns
        -------
        ndarray, shape (k, d)
        """
        if self.config.objective != "tracking":
            return super().block_gradients(theta, k)
        t = self._theta_tensor(theta, requires_grad=True)
        per = self._tracking_losses(t) / self._x_samples.shape[0]
        return self._block_gradients(t, per, self._sectors, k)

    def quality_summary(self, initial: dict[str, float], final: dict[str, float]) -> list[str]:
        """The objective of the backup and of the final policy.

        Parameters
        ----------
        initial, final : dict
            :meth:`quality` at ``θ₀`` and at the last iterate.

        Returns
        -------
        list of str
        """
        if self.config.objective != "tracking":
            return super().quality_summary(initial, final)
        f0, f1 = initial["imitation_loss"], final["imitation_loss"]
        return [f"tracking cost        backup {f0:.4f} -> final policy {f1:.4f} ({100 * f1 / f0:.1f}% of the backup's)"]


def _box_of(H: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ..systems import box_bounds

    lo, hi, _ = box_bounds(H, h)
    return lo, hi


# ---------------------------------------------------------------------------- TOML
TOML_SECTIONS: dict[str, dict[str, str]] = {
    "": {"name": "name", "device": "device"},
    "system": {"A": "A", "B": "B", "dt": "dt", "continuous": "continuous", "state_names": "state_names", "input_names": "input_names"},
    "constraints": {k: k for k in ("x_min", "x_max", "Hx", "hx", "u_min", "u_max", "Hu", "hu")},
    "backup": {"Q": "Q", "q_diag": "q_diag", "R": "R", "r_diag": "r_diag", "K": "K", "gamma_shrink": "gamma_shrink"},
    "objective": {
        "kind": "objective", "expert": "expert", "expert_gain": "expert_gain", "expert_target": "expert_target",
        "expert_offset": "expert_offset", "saturate": "expert_saturate", "kp": "expert_kp", "kd": "expert_kd",
        "position": "expert_position", "velocity": "expert_velocity", "dataset": "expert_dataset", "reference": "reference",
        "Q_track": "Q_track", "q_track_diag": "q_track_diag", "R_track": "R_track", "r_track_diag": "r_track_diag",
        "n_samples": "n_samples",
    },
    "safety": {"grid": "grid", "samples": "safety_samples", "horizon": "horizon", "rows": "rows", "lse_temperature": "lse_temperature"},
    "residual": {"hidden": "hidden", "activation": "activation", "switching": "switching"},
}
"""TOML section -> {key in the file -> field of :class:`LinearSpecConfig`} (``""``: top level)."""

_FIELD_LABEL = {field: (f"[{sec}] {key}" if sec else key) for sec, keys in TOML_SECTIONS.items() for key, field in keys.items()}
_FIELD_LABEL.update({"expert_states": "[objective] dataset (its states)", "expert_actions": "[objective] dataset (its actions)"})


def _relabel(message: str) -> str:
    """``LinearSpecConfig.A: …`` -> ``[system] A: …`` in a validation message."""
    prefix = "LinearSpecConfig."
    if prefix in message:
        head, _, rest = message.partition(prefix)
        key, sep, tail = rest.partition(":")
        keys = [k.strip() for k in key.split(",")]
        sections = {_FIELD_LABEL.get(k, k).partition("] ")[0] for k in keys}
        if len(keys) > 1 and len(sections) == 1 and all(_FIELD_LABEL.get(k, "").startswith("[") for k in keys):
            label = f"{sections.pop()}] {', '.join(keys)}"  # "[system] A, B"
        else:
            label = ", ".join(_FIELD_LABEL.get(k, k) for k in keys)
        return f"{head}{label}{sep}{tail}"
    return message


def _read_dataset(path: Path, where: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("states", "actions") if k not in data.files]
            if missing:
                raise ConfigError(f"{where}: [objective] dataset {str(path)!r}: expected arrays 'states' and 'actions', missing {missing} (has {data.files})")
            X = np.asarray(data["states"], dtype=float)
            U = np.asarray(data["actions"], dtype=float)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: [objective] dataset {str(path)!r}: cannot read it as an .npz file ({exc})") from None
    if X.ndim != 2 or U.ndim != 2:
        raise ConfigError(f"{where}: [objective] dataset: expected 2-D arrays states (N, n) and actions (N, m), got shapes {X.shape} and {U.shape}")
    return {"expert_states": X.tolist(), "expert_actions": U.tolist(),
            "expert_dataset": f"{path.name} (sha256 {hashlib.sha256(raw).hexdigest()[:16]})"}


def spec_mapping(data: dict[str, Any], *, where: str = "spec", base_dir: Path | None = None) -> dict[str, Any]:
    """The :class:`LinearSpecConfig` mapping of a parsed TOML spec (keys checked, the dataset read).

    Parameters
    ----------
    data : dict
        The parsed file (:mod:`tomllib`).
    where : str
        The file name, for messages.
    base_dir : Path, optional
        Directory that a relative dataset path is relative to (default: the working directory).

    Returns
    -------
    dict
        Field name -> value, ready for :func:`scpo.config.from_mapping`.

    Raises
    ------
    ConfigError
        An unknown section or key (the message lists the valid ones), or an unreadable dataset.
    """
    out: dict[str, Any] = {}
    sections = [s for s in TOML_SECTIONS if s]
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in TOML_SECTIONS or not key:
                raise ConfigError(f"{where}: unknown section [{key}]; valid sections are {', '.join(f'[{s}]' for s in sections)}")
            valid = TOML_SECTIONS[key]
            for k, v in value.items():
                if k not in valid:
                    raise ConfigError(f"{where}: [{key}] unknown key {k!r}; valid keys are {', '.join(sorted(valid))}")
                out[valid[k]] = v
        elif key in TOML_SECTIONS[""]:
            out[TOML_SECTIONS[""][key]] = value
        else:
            raise ConfigError(
                f"{where}: unknown top-level key {key!r}; valid keys are {', '.join(sorted(TOML_SECTIONS['']))} "
                f"and the sections {', '.join(f'[{s}]' for s in sections)}"
            )
    if "A" not in out or "B" not in out:
        raise ConfigError(f"{where}: [system] A and B are required")
    if "expert_dataset" in out:
        if not isinstance(out["expert_dataset"], str):
            raise ConfigError(f"{where}: [objective] dataset: expected a file name, got {out['expert_dataset']!r}")
        path = Path(out["expert_dataset"])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        out.update(_read_dataset(path, where))
        out.setdefault("expert", "dataset")
    return out


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML spec file: the task settings mapping of the ``linear`` task.

    Every setting is checked here (shapes, finiteness, bounded non-empty constraint sets,
    stabilisability, the expert), so a bad file fails before anything is written.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        The validated :class:`LinearSpecConfig` as a JSON-ready mapping (the run's ``task_config``).

    Raises
    ------
    ConfigError
        Unreadable or invalid TOML, an unknown key, or an invalid setting; the message names the key.
    """
    p = Path(path)
    where = str(p)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"spec file {where!r}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"spec file {where!r}: not valid TOML ({exc})") from None
    mapping = spec_mapping(data, where=where, base_dir=p.parent)
    try:
        cfg = from_mapping(LinearSpecConfig, mapping)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {_relabel(str(exc))}") from None
    return to_mapping(cfg)


# ---------------------------------------------------------------------------- Python
def linear_task(A: Any, B: Any, *, seed: int = 0, **settings: Any) -> LinearSpecTask:
    """The ``linear`` task from Python: ``linear_task(A, B, dt=0.1, continuous=True, x_max=[…], …)``.

    Parameters
    ----------
    A : array_like, shape (n, n)
    B : array_like, shape (n, m)
    seed : int
    **settings
        Any field of :class:`LinearSpecConfig` (arrays are accepted).

    Returns
    -------
    LinearSpecTask
    """
    def plain(v: Any) -> Any:
        return np.asarray(v, dtype=float).tolist() if isinstance(v, np.ndarray) else v

    mapping = {"A": plain(np.asarray(A, dtype=float)), "B": plain(np.asarray(B, dtype=float))}
    mapping.update({k: plain(v) for k, v in settings.items()})
    return LinearSpecTask(from_mapping(LinearSpecConfig, mapping), seed=seed)


def spec_from_statespace(sys: Any) -> dict[str, Any]:
    """``A`` and ``B`` (and ``dt``) of a discrete-time python-control ``StateSpace`` as spec settings.

    Parameters
    ----------
    sys : control.StateSpace
        With a sample time ``dt > 0`` (``C`` and ``D`` are not used: constraints are on the state).

    Returns
    -------
    dict
        ``{"A": …, "B": …, "dt": …}``, to merge with the other settings.

    Raises
    ------
    InvalidInputError
        Not a state-space model, or not discrete-time with a numeric ``dt > 0``.
    """
    for attr in ("A", "B", "dt"):
        if not hasattr(sys, attr):
            raise InvalidInputError(f"sys: expected a python-control StateSpace, got {type(sys).__name__}")
    dt = sys.dt
    if dt is None or isinstance(dt, bool) or not float(dt) > 0:
        raise InvalidInputError(f"sys.dt: expected a discrete-time model with a sample time dt > 0, got dt = {dt!r}")
    return {"A": np.asarray(sys.A, dtype=float).tolist(), "B": np.asarray(sys.B, dtype=float).tolist(), "dt": float(dt)}

