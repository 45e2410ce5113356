"""The task protocol: what a task provides to training, certificates, reports and the audit.

A task is a policy-learning problem: a residual policy ``π_θ = π_safe + φ_θ``, a differentiable
objective ``f(θ)`` and constraints ``g(θ) ≤ 0`` evaluated (never differentiated). Every task
*produces* a :class:`~scpo.systems.ClosedLoopProblem` (the dynamics, constraints, backup, terminal
set and horizon) and the initial states its constraint rows start from; ``g`` is then

    g(θ) = aggregate( rows( rollout(problem, π_θ, constraint_states) ) ),

computed by :func:`scpo.systems.rollout`, :func:`scpo.systems.constraint_rows` and
:func:`scpo.systems.aggregate_rows`. Certificates, reachability, reports and the audit consume the
problem and the policy structure; they never ask which task they serve. What is particular to a
task — its prose, its figures, its quality figures — is provided by the task itself.

A new task is a subclass in its own module of :mod:`scpo.tasks` plus one registry entry
(:data:`scpo.tasks.registry.BUILTIN_TASKS`), or a ``module:factory`` the user names.
"""

from __future__ import annotations

import abc
import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import ConfigError
from ..evidence import Claim, Level
from ..plotting import save, training_curves
from ..policies import MLPStructure, ResidualPolicy, flatten_parameters, load_flat_parameters
from ..systems import ClosedLoopProblem, Rollout, aggregate_rows, constraint_rows, rollout

__all__ = ["Task"]


class Task(abc.ABC):
    """Base class of the tasks (the protocol; see the module docstring).

    Subclasses set :attr:`name` and :attr:`config_class`, build :attr:`problem`,
    :attr:`constraint_states` and :attr:`safety_states` in ``__init__`` before calling
    ``super().__init__``, and implement the abstract methods. The task owns tensors (data sets,
    grids), hence a class; its maths lives in functions.

    Parameters
    ----------
    config : dataclass instance of :attr:`config_class`
    seed : int
        Seeds the hidden-layer initialisation and any sampling the task does.

    Attributes
    ----------
    problem : ClosedLoopProblem
    constraint_states : ndarray, shape (S, n)
        Initial states of the rollouts whose rows make ``g``.
    safety_states : ndarray, shape (S', n)
        Grid states of the safety region ``S`` (reach-avoid is evaluated on them).
    rows : {"per-row", "max", "lse"}
        How the rows of one initial state enter ``g`` (:func:`scpo.systems.aggregate_rows`).
    lse_temperature : float
    device : torch.device
    policy : ResidualPolicy
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    default_projector: ClassVar[dict[str, Any]] = {}
    """Projector settings that suit this task, applied over the library defaults."""
    stored_run_defaults: ClassVar[dict[str, Any]] = {}
    """Task settings added after runs of this task were written, with the value that keeps what those
    runs did: a run's ``config.json`` stores every setting, so a missing key means "written before the
    key existed", and the run is rebuilt with this value rather than today's default."""

    problem: ClosedLoopProblem
    constraint_states: np.ndarray
    safety_states: np.ndarray
    rows: str = "per-row"
    lse_temperature: float = 0.02
    device: torch.device = torch.device("cpu")
    block_gradients: Any = None
    """Optional probe directions for the projector: a method ``(θ (d,), k) -> (k, d)`` (e.g. the
    negative gradients of the objective on ``k`` blocks of the data), or ``None``."""
    expand_initial_states: ClassVar[bool] = True
    """Whether :meth:`rollout` gives every policy its own copy of the initial states (B, S, n) or
    one shared (S, n) tensor. The maths is the same; the first layer is evaluated by a different
    kernel, whose rounding differs in the last bit, and a seeded run's θ sequence depends on it."""

    def __init__(self, config: Any, *, seed: int = 0) -> None:
        if not isinstance(config, self.config_class):
            raise ConfigError(f"config: expected {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.seed = int(seed)
        self.policy: ResidualPolicy = self.build_policy()
        self.policy.to(self.device)
        self._theta0 = flatten_parameters(self.policy.residual)
        self._x_constraints = self._tensor(self.constraint_states)

    # ---------------------------------------------------------------- to implement
    @abc.abstractmethod
    def build_policy(self) -> ResidualPolicy:
        """The residual policy at ``θ₀`` (zero final layer)."""

    @abc.abstractmethod
    def objective_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``(f(θ), ∇f(θ))`` with ``∇f`` of shape (d,).

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        (float, ndarray of shape (d,))
        """

    @abc.abstractmethod
    def quality(self, theta: np.ndarray) -> dict[str, float]:
        """The task's quality figures at ``θ`` (e.g. the improvement fraction).

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        dict of str -> float
        """

    @abc.abstractmethod
    def quality_summary(self, initial: dict[str, float], final: dict[str, float]) -> list[str]:
        """Lines for a run summary comparing the quality figures at ``θ₀`` and at the last iterate.

        Parameters
        ----------
        initial, final : dict
            :meth:`quality` at ``θ₀`` and at the last iterate.

        Returns
        -------
        list of str
        """

    @abc.abstractmethod
    def report_paragraphs(self) -> list[str]:
        """The task described in a few sentences for the report (what is learnt, the constraints, the backup)."""

    @abc.abstractmethod
    def meaning_of_g(self) -> str:
        """What ``g(θ) ≤ 0`` means for this task, in words (completes "every accepted iterate satisfies g ≤ 0, …")."""

    # ---------------------------------------------------------------- provided
    def objective(self, theta: np.ndarray) -> float:
        """``f(θ)``.

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        float
        """
        return self.objective_and_grad(theta)[0]

    @property
    def theta0(self) -> np.ndarray:
        """The initial parameters, shape (d,)."""
        return self._theta0.copy()

    @property
    def dim(self) -> int:
        """Number of trainable parameters ``d``."""
        return self._theta0.size

    @property
    def row_margin(self) -> float:
        """``δ ≥ 0`` added to every row of ``g`` (the config's ``row_margin``; 0 when unset)."""
        return float(getattr(self.config, "row_margin", None) or 0.0)

    @property
    def structure(self) -> MLPStructure:
        """The residual's architecture and flat parameter layout."""
        return self.policy.residual.structure

    def policy_at(self, theta: np.ndarray) -> ResidualPolicy:
        """A copy of the policy with parameters ``θ`` (a ``torch.nn.Module`` on the CPU).

        Parameters
        ----------
        theta : ndarray, shape (d,)

        Returns
        -------
        ResidualPolicy
        """
        pol = copy.deepcopy(self.policy).cpu()
        load_flat_parameters(pol.residual, theta)
        return pol

    def _tensor(self, value: Any) -> torch.Tensor:
        return torch.as_tensor(np.array(value, dtype=np.float64), device=self.device)

    def _theta_tensor(self, theta: np.ndarray, *, requires_grad: bool = False) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=self.device).reshape(1, -1).clone()
        return t.requires_grad_(requires_grad)

    @staticmethod
    def _block_gradients(t: torch.Tensor, per_sample: torch.Tensor, order: torch.Tensor, k: int) -> np.ndarray:
        """``−∇_θ`` of the per-sample losses summed over ``k`` contiguous blocks of ``order``, one batched backward pass.

        Parameters
        ----------
        t : Tensor, shape (1, d)
            The parameters the losses were computed from (``requires_grad``).
        per_sample : Tensor, shape (S,)
            Per-sample losses (scaled so that their sum is the objective).
        order : Tensor of int, shape (S,)
            The samples in the order in which they are split into blocks.
        k : int

        Returns
        -------
        ndarray, shape (k, d)
        """
        block_loss = torch.stack([per_sample[idx].sum() for idx in torch.tensor_split(order, k)])
        eye = torch.eye(k, dtype=block_loss.dtype, device=block_loss.device)
        (g,) = torch.autograd.grad(block_loss, t, grad_outputs=eye, is_grads_batched=True)
        return -g[:, 0, :].cpu().numpy().copy()

    def rollout(self, thetas: np.ndarray | torch.Tensor, states: np.ndarray | torch.Tensor, horizon: int | None = None) -> Rollout:
        """Closed-loop rollouts of ``π_θ`` for parameter rows (B, d) from states (S, n).

        Parameters
        ----------
        thetas : ndarray or Tensor, shape (B, d) or (d,)
        states : ndarray or Tensor, shape (S, n)
        horizon : int, optional
            Default: the problem's ``T``.

        Returns
        -------
        Rollout
            States (B, S, T+1, n), inputs (B, S, T, m) on the task's device.
        """
        th = self._tensor(np.atleast_2d(thetas)) if not isinstance(thetas, torch.Tensor) else thetas.to(self.device)
        if th.ndim == 1:
            th = th.unsqueeze(0)
        x0 = self._tensor(states) if not isinstance(states, torch.Tensor) else states.to(self.device)
        T = self.problem.horizon if horizon is None else horizon
        if self.expand_initial_states:
            x0 = x0.unsqueeze(0).expand(th.shape[0], -1, -1)
        return rollout(self.problem, self.policy.batched(th), x0, T)

    def rollout_rows(self, ro: Rollout) -> torch.Tensor:
        """Every constraint row of rollouts over the problem's horizon: shape (B, S, R), ``≤ 0`` safe.

        Parameters
        ----------
        ro : Rollout

        Returns
        -------
        Tensor, shape (B, S, R)
        """
        return constraint_rows(self.problem, ro)

    def constraints(self, thetas: np.ndarray) -> np.ndarray:
        """``g`` at a batch of parameter vectors: (B, d) -> (B, N); safe means ``≤ 0``.

        ``g`` is the rows of the rollouts from :attr:`constraint_states`, aggregated, plus
        :attr:`row_margin`.

        Parameters
        ----------
        thetas : ndarray, shape (B, d)

        Returns
        -------
        ndarray, shape (B, N)
        """
        with torch.no_grad():
            ro = self.rollout(thetas, self._x_constraints)
            return self._with_margin(self.rollout_rows(ro), self._state_margins()).cpu().numpy()

    def declared_region(self) -> Any:
        """The region ``C`` of initial states this task's sound certificates are about.

        Returns
        -------
        scpo.certify.declared.DeclaredRegion or None
            ``None``: the task declares none (its rows are only ``evaluated``).
        """
        return None

    def _state_margins(self) -> np.ndarray | None:
        """Per constraint state, the margin added to its rows (None: :attr:`row_margin` for all)."""
        m = getattr(self, "_margins", None)
        return None if m is None else m

    def _with_margin(self, rows: torch.Tensor, margins: np.ndarray | None) -> torch.Tensor:
        """Aggregate rows (B, S, R) and add the margins (:attr:`row_margin`, or one per state)."""
        g = aggregate_rows(rows, self.rows, self.lse_temperature)
        if margins is None:
            return g + self.row_margin if self.row_margin else g
        m = torch.as_tensor(margins, dtype=g.dtype, device=g.device)
        if self.rows == "per-row":
            m = m.repeat_interleave(rows.shape[-1])
        return g + m

    def add_constraint_states(self, states: np.ndarray, margins: np.ndarray | None = None) -> tuple[Any, np.ndarray]:
        """Append initial states to the rows of ``g`` (the adaptive validation set of the sound gate).

        Parameters
        ----------
        states : ndarray, shape (k, n)
        margins : ndarray, shape (k,), optional
            The margin added to the rows of each new state (default :attr:`row_margin`); a state
            added where the current iterate is certified but has less slack than ``row_margin``
            gets the slack it has, so that the current iterate satisfies the new rows.

        Returns
        -------
        evaluate : callable
            ``(B, d) -> (B, k·R)`` (``R`` rows per state, or 1 with an aggregation): the new rows,
            which :meth:`constraints` now returns as its last columns.
        like : ndarray of int, shape (k·R,)
            For each new row, the same row of the nearest existing constraint state.
        """
        new = np.asarray(states, dtype=np.float64).reshape(-1, self.problem.n)
        old = self.constraint_states
        m_new = np.full(len(new), self.row_margin) if margins is None else np.asarray(margins, dtype=np.float64).reshape(len(new))
        current = self._state_margins()
        self._margins = np.concatenate([np.full(len(old), self.row_margin) if current is None else current, m_new])
        R = self.problem.layout.n_rows if self.rows == "per-row" else 1
        nearest = np.argmin(((new[:, None, :] - old[None, :, :]) ** 2).sum(-1), axis=1)
        like = (nearest[:, None] * R + np.arange(R)[None, :]).reshape(-1)
        self.constraint_states = np.concatenate([old, new])
        self._x_constraints = self._tensor(self.constraint_states)
        x_new = self._tensor(new)

        def evaluate(thetas: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                ro = self.rollout(thetas, x_new)
                return self._with_margin(self.rollout_rows(ro), m_new).cpu().numpy()

        return evaluate, like

    def constraint_labels(self) -> list[str]:
        """A short description of each of the ``N`` rows of ``g``, in order."""
        states = [f"x0=({', '.join(f'{v:+.4f}' for v in x)})" for x in self.constraint_states]
        if self.rows != "per-row":
            return [f"{self.rows} of rollout rows from {s}" for s in states]
        row_labels = self.problem.labels()
        return [f"{s} {lab}" for s in states for lab in row_labels]

    def base_claims(self, theta0: np.ndarray, g0: np.ndarray) -> list[Claim]:
        """Claims about ``θ₀`` beyond the zero final layer: by default, that the backup satisfies every row.

        Parameters
        ----------
        theta0 : ndarray, shape (d,)
        g0 : ndarray, shape (N,)
            ``g(θ₀)``.

        Returns
        -------
        list of Claim
        """
        worst = float(np.max(g0)) if g0.size else float("nan")
        return [
            Claim(
                name="backup_feasible",
                statement="The backup policy π_safe = π_θ0 satisfies every constraint row: max_i g_i(θ0) ≤ 0.",
                level=Level.EVALUATED,
                holds=bool(np.all(g0 <= 0)),
                details={"max_constraint": worst, "rows": int(g0.size)},
            )
        ]

    def final_claims(self, theta: np.ndarray, *, iteration: int | None = None) -> list[Claim]:
        """Certificates to write for a trained iterate: with a terminal set, reach-avoid (evaluated on
        every grid state of ``S`` with every row, whatever the aggregation) and the value-decrease report.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        iteration : int, optional

        Returns
        -------
        list of Claim
        """
        if not self.problem.has_terminal:
            return []
        from ..certify.reach_avoid import reach_avoid_claim, value_decrease_claim

        with torch.no_grad():
            ro = self.rollout(theta[None], self.safety_states)
        X, U = ro.states[0].cpu().numpy(), ro.inputs[0].cpu().numpy()
        return [
            reach_avoid_claim(self.problem, self.safety_states, X, U, iteration=iteration),
            value_decrease_claim(self.safety_states, X, self.problem.P, self.problem.gamma),
        ]

    def figures(self, records: list[dict[str, Any]], thetas: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
        """Write the task's figures for a run into ``out_dir``; returns the files written.

        Parameters
        ----------
        records : list of dict
            The run's certificate records.
        thetas : dict of label -> ndarray
            Parameter vectors to show (at least ``"θ0"`` and ``"final"``).
        out_dir : Path

        Returns
        -------
        list of Path
        """
        return [save(training_curves(records, title=f"{self.name}: SCPO training"), Path(out_dir) / "training_curves.png")]

    def safety_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The grid the safety region ``S`` was sampled on, and which of its states are in ``S``.

        Returns
        -------
        grid_states : ndarray, shape (G, n)
        in_S : ndarray of bool, shape (G,)
            ``grid_states[in_S]`` are :attr:`safety_states`. By default the grid is ``S`` itself.
        """
        return self.safety_states, np.ones(len(self.safety_states), dtype=bool)

    def safety_grid_domain(self) -> Any:
        """The polytope ``S`` was restricted to, or ``None`` (``S`` is the backup's whole grid set).

        Returns
        -------
        scpo.reachability.polytope.Polytope or None
            E.g. the declared region ``C`` when ``S`` is the set of grid states of the backup's
            safety region that lie in ``C``.
        """
        return None

    def backup_design(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """How the backup was designed, for an independent re-derivation (the audit's fresh DARE solve).

        Returns
        -------
        (Q (n, n), R (m, m), gamma_shrink) or None
            LQR weights with ``K, P`` the DARE solution and ``problem.gamma = (1 − gamma_shrink) · γ``
            with ``γ`` the closed form of DESIGN §5; ``None`` when the backup is not an LQR design
            (e.g. ``π_safe ≡ 0``).
        """
        return None

    def figure_captions(self) -> dict[str, str]:
        """Captions of the figures :meth:`figures` writes (file name -> caption), for reports."""
        return {"training_curves.png": "Objective, evaluated and predicted max constraint, smoothness constants L "
                                       "and accepted/rejected steps over the iterations."}

    def describe(self) -> dict[str, Any]:
        """Task name, problem, policy architecture and sizes, JSON-ready (written to ``config.json``)."""
        return {
            "task": self.name,
            "parameters": self.dim,
            "constraints": int(self.constraint_states.shape[0]) * (self.problem.layout.n_rows if self.rows == "per-row" else 1),
            "residual": self.structure.describe(),
            "seed": self.seed,
            "problem": self.problem.to_dict(),
            "row_aggregation": self.rows,
        }
