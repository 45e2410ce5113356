"""LB-SGD: stochastic gradient descent on a log barrier with a safe adaptive step size.

Reference: I. Usmanova, Y. As, M. Kamgarpour, A. Krause, "Log barriers for safe black-box
optimization with application to safe reinforcement learning", JMLR 25 (2024),
arXiv:2207.10415. The pieces implemented here, in the paper's notation (``f⁰ = f`` the
objective, ``fⁱ = g_i`` the constraints, ``αᵢ(x) = −fⁱ(x)`` the slack):

* the log-barrier surrogate of the constrained problem ``min f⁰(x) s.t. fⁱ(x) ≤ 0``,

      B_η(x) = f⁰(x) − η Σᵢ log(−fⁱ(x)),      ∇B_η(x) = ∇f⁰(x) + η Σᵢ ∇fⁱ(x) / αᵢ(x);        (B)

* its gradient estimate ``g_t = ∇f⁰(x_t) + η Σᵢ Ĝⁱ(x_t) / α̂ᵢ(x_t)`` with the zeroth-order
  two-point estimator of the constraint gradients, ``Ĝⁱ = (d/n) Σⱼ (fⁱ(x+νUⱼ) − fⁱ(x))/ν · Uⱼ``,
  ``Uⱼ`` uniform on the unit sphere (:mod:`scpo.baselines.common`, eq. (ZO));
* the adaptive safe step size of LB-SGD,

      γ_t = min{ (1/‖g_t‖) minᵢ α̂ᵢ / (2 θ̂ᵢ + √(α̂ᵢ Mᵢ)) ,  1 / M̂₂(x_t) },                      (S)
      M̂₂(x_t) = M₀ + 2η Σᵢ Mᵢ / α̂ᵢ + 4η Σᵢ θ̂ᵢ² / α̂ᵢ²,                                          (M2)

  where ``θ̂ᵢ`` bounds the directional derivative ``|⟨∇fⁱ(x_t), g_t/‖g_t‖⟩|`` and ``Mᵢ`` is the
  smoothness constant of ``fⁱ``. The first term keeps ``fⁱ(x_{t+1}) ≤ fⁱ(x_t)/2`` for every ``i``
  (by ``fⁱ(x+γu) ≤ fⁱ(x) + γ⟨∇fⁱ, u⟩ + Mᵢγ²/2``: each iterate keeps at least half its slack),
  the second is the inverse of the barrier's local smoothness along the step on the region
  where every slack is at least half its current value, ``M₀ + Σᵢ η(Mᵢ/(αᵢ/2) + θᵢ²/(αᵢ/2)²)``;
* the outer loop with a decreasing barrier parameter: ``T_k`` iterations with ``η_k``, then
  ``η_{k+1} = η_k / 2`` (the paper's schedule; ``eta_decay`` here).

Equation numbers: only the paper's abstract was retrievable when this was written, so the
labels (B), (ZO), (S), (M2) are this module's own; they name the paper's log barrier,
zeroth-order gradient estimator, adaptive step size and local-smoothness bound of its LB-SGD
section. (S) and (M2) were cross-checked against a public multi-constraint LB-SGD
implementation (the same two formulas), not against the paper's numbered equations: a reader
with the paper should check them against it.

What differs from the paper, and why:

* Constraint values here are exact (simulated rollouts, forward passes), so the noise
  confidence terms of the paper's lower bound ``α̂ᵢ`` vanish; ``α̂ᵢ = αᵢ − ν·L`` keeps only
  the term that makes the probes ``x + νU`` safe when ``L`` (a Lipschitz constant of every
  ``fⁱ``) is given, as in the zeroth-order variant.
* ``θ̂ᵢ`` (``directional_bound``): ``"estimate"`` uses the estimated directional derivative
  plus a high-probability margin ``√(2 log(1/δ)) L / √n`` (for ``U`` uniform on the sphere the
  error of ``⟨Ĝⁱ, u⟩`` has standard deviation at most about ``‖∇fⁱ‖/√n ≤ L/√n``: this margin is
  our derivation for exact values, not a formula of the paper); ``"plug-in"`` uses the estimate
  alone (what practical implementations do); ``"lipschitz"`` uses ``θ̂ᵢ = L`` (sound when ``L``
  is a true Lipschitz constant; the more conservative step of the authors' earlier s0-LBM).
* The objective is differentiable here, so ``∇f⁰`` is exact (the paper allows first-order
  feedback for ``f⁰``); only the constraints are zeroth-order, as for SCPO.
* The paper has no rejection step: every iterate is taken. If an iterate nevertheless
  violates a constraint (the step bound rests on ``Mᵢ`` and ``θ̂ᵢ`` being right), the barrier
  is undefined there and the run stops; the violating iterate is recorded as accepted.

Cost per iteration: ``n`` constraint evaluations at the probes (one batch) and one at the new
iterate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._iterate import StepClock, check_config
from .._validate import as_array, check_in, check_int, check_positive
from ..errors import ConfigError, InvalidInputError, UnsafeStartError
from .common import DIRECTION_SAMPLERS, BaselineRecord, TwoPointJacobian, ZerothOrderBaseline

__all__ = ["LBSGD", "LBSGDConfig", "DIRECTIONAL_BOUNDS", "lbsgd_step_size"]

logger = logging.getLogger(__name__)

DIRECTIONAL_BOUNDS = ("estimate", "plug-in", "lipschitz")


@dataclass(frozen=True, kw_only=True)
class LBSGDConfig:
    """Settings of :class:`LBSGD`.

    Attributes
    ----------
    eta : float
        Initial barrier parameter ``η₀``.
    eta_decay : float
        Factor in ``(0, 1]`` applied to ``η`` after every stage (the paper halves it: 0.5).
    stage_iterations : int
        Iterations ``T_k`` per value of ``η``.
    M0 : float
        Smoothness constant of the objective ``f⁰``.
    M : float
        Smoothness constant ``Mᵢ`` of every constraint row (a per-row array can be passed to
        :class:`LBSGD` instead).
    lipschitz : float or None
        Lipschitz constant ``L`` of every constraint row; needed by ``directional_bound`` in
        {"estimate", "lipschitz"} and for the probe margin ``ν·L``.
    directional_bound : {"estimate", "plug-in", "lipschitz"}
        How ``θ̂ᵢ`` in (S) and (M2) bounds ``|⟨∇fⁱ, u⟩|`` (see the module docstring).
    delta : float
        Confidence level of the ``"estimate"`` margin ``√(2 log(1/δ)) L / √n``.
    n_directions : int
        Directions ``n`` of the zeroth-order estimator per iteration.
    nu : float
        Sampling radius ``ν``.
    directions : {"sphere", "orthogonal"}
        Direction sampler (see :func:`scpo.baselines.common.sample_directions`).
    seed : int
        Seeds the direction sampler.
    """

    eta: float = 1e-2
    eta_decay: float = 0.5
    stage_iterations: int = 100
    M0: float = 1.0
    M: float = 1.0
    lipschitz: float | None = None
    directional_bound: str = "estimate"
    delta: float = 0.05
    n_directions: int = 8
    nu: float = 1e-3
    directions: str = "sphere"
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            check_positive("eta", self.eta)
            decay = check_positive("eta_decay", self.eta_decay)
            if decay > 1:
                raise InvalidInputError(f"eta_decay: expected a number in (0, 1], got {decay}")
            check_int("stage_iterations", self.stage_iterations, minimum=1)
            check_positive("M0", self.M0)
            check_positive("M", self.M)
            check_in("directional_bound", self.directional_bound, DIRECTIONAL_BOUNDS)
            if self.lipschitz is not None:
                check_positive("lipschitz", self.lipschitz)
            elif self.directional_bound != "plug-in":
                raise InvalidInputError(
                    f"lipschitz: directional_bound={self.directional_bound!r} needs a Lipschitz constant; "
                    "give one or use directional_bound='plug-in'"
                )
            d = check_positive("delta", self.delta)
            if not d < 1:
                raise InvalidInputError(f"delta: expected a number in (0, 1), got {d}")
            check_int("n_directions", self.n_directions, minimum=1)
            check_positive("nu", self.nu)
            check_in("directions", self.directions, DIRECTION_SAMPLERS)
            check_int("seed", self.seed, minimum=0)
        except InvalidInputError as exc:
            raise ConfigError(f"LBSGDConfig.{exc}") from None


def lbsgd_step_size(
    alpha: np.ndarray, theta: np.ndarray, M: np.ndarray, M0: float, eta: float, grad_norm: float
) -> tuple[float, float, float]:
    """The LB-SGD step size (S) with the local smoothness (M2).

    Parameters
    ----------
    alpha : ndarray, shape (N,)
        Slacks ``α̂ᵢ > 0``.
    theta : ndarray, shape (N,)
        Bounds ``θ̂ᵢ ≥ 0`` on the directional derivatives along the step.
    M : ndarray, shape (N,)
        Smoothness constants of the constraints.
    M0 : float
        Smoothness constant of the objective.
    eta : float
        Barrier parameter.
    grad_norm : float
        ``‖g_t‖ > 0``.

    Returns
    -------
    gamma : float
        ``min(gamma_safe, gamma_smooth)``.
    gamma_safe : float
        ``(1/‖g_t‖) minᵢ α̂ᵢ / (2θ̂ᵢ + √(α̂ᵢ Mᵢ))``: with it ``fⁱ(x_{t+1}) ≤ fⁱ(x_t)/2`` whenever
        ``θ̂ᵢ`` and ``Mᵢ`` are valid bounds.
    gamma_smooth : float
        ``1 / M̂₂``.
    """
    gamma_safe = float(np.min(alpha / (2.0 * theta + np.sqrt(alpha * M)))) / grad_norm
    M2 = M0 + 2.0 * eta * float(np.sum(M / alpha)) + 4.0 * eta * float(np.sum((theta / alpha) ** 2))
    gamma_smooth = 1.0 / M2
    return min(gamma_safe, gamma_smooth), gamma_safe, gamma_smooth


_STOP_REASONS = (None, "slack_below_probe_radius", "infeasible_iterate")


class LBSGD(ZerothOrderBaseline):
    """LB-SGD with zeroth-order constraint gradients (see the module docstring).

    Each :meth:`step` estimates ``∇B_η(θ)`` (B) and moves by ``−γ_t ∇B_η`` with the safe step
    size (S).

    Parameters
    ----------
    theta0 : ndarray, shape (d,)
        Start; must be strictly feasible (``g(θ₀) < 0``: the barrier is finite only there).
    objective : callable
        The objective ``f⁰``: ``θ -> float``.
    objective_and_grad : callable
        ``θ -> (f⁰(θ), ∇f⁰(θ))``; the gradient is exact (first-order feedback for ``f⁰``).
    constraints : callable
        The rows ``fⁱ = g_i``, evaluated in batches ``(B, d) -> (B, N)`` (never differentiated).
    config : LBSGDConfig
        Barrier schedule, step-size constants and estimator settings.
    M : ndarray, shape (N,), optional
        Per-row smoothness constants (default ``config.M`` for every row).
    g0 : ndarray, shape (N,), optional
        ``g(θ₀)`` when the caller has evaluated it already (saves one evaluation).

    Raises
    ------
    UnsafeStartError
        When some ``g_i(θ₀) ≥ 0``.
    UnsupportedError
        When ``config`` is not an :class:`LBSGDConfig`.
    """

    def __init__(
        self,
        *,
        theta0: np.ndarray,
        objective: Callable[[np.ndarray], float],
        objective_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
        constraints: Callable[[np.ndarray], np.ndarray],
        config: LBSGDConfig,
        M: np.ndarray | None = None,
        g0: np.ndarray | None = None,
    ) -> None:
        self.config = check_config(config, LBSGDConfig)
        self._rng = np.random.default_rng(config.seed)
        self._M_given = M
        self._start(theta0, g0, (objective, objective_and_grad, constraints), check_start=self._check_start)
        self._stopped: str | None = None

    def _check_start(self, g0: np.ndarray) -> None:
        """Strict feasibility of ``θ₀`` and the per-row ``M`` (checked before ``f(θ₀)`` is evaluated)."""
        if not np.all(g0 < 0):
            raise UnsafeStartError(
                f"g(theta0): LB-SGD needs a strictly feasible start, but {int(np.sum(~(g0 < 0)))} row(s) are >= 0 "
                f"(max {float(np.max(g0)):.3e})"
            )
        M = self._M_given
        self.M = np.full(g0.size, self.config.M) if M is None else as_array("M", M, shape=(g0.size,)).copy()
        if not np.all(self.M > 0):
            raise InvalidInputError(f"M: expected positive smoothness constants, got minimum {float(np.min(self.M))}")

    # ------------------------------------------------------------------ state
    @property
    def eta(self) -> float:
        """Barrier parameter of the next iteration: ``η₀ · eta_decay^⌊t / T_k⌋``."""
        cfg = self.config
        return cfg.eta * cfg.eta_decay ** (self.iteration // cfg.stage_iterations)

    @property
    def stopped(self) -> str | None:
        """Why the run cannot continue (an iterate left the feasible set), or None."""
        return self._stopped

    def barrier_value(self) -> float:
        """``B_η(θ)`` at the current iterate with the current ``η`` (inf outside the feasible set).

        Returns
        -------
        float
            ``f(θ) − η Σᵢ log(−gᵢ(θ))``.
        """
        if not np.all(self._g < 0):
            return float("inf")
        return self._f - self.eta * float(np.sum(np.log(-self._g)))

    # ------------------------------------------------------------------ one iteration
    def _directional_bound(self, jac: TwoPointJacobian, u: np.ndarray) -> np.ndarray:
        """``θ̂ᵢ`` of (S) and (M2): a bound on ``|⟨∇fⁱ, u⟩|`` by ``config.directional_bound``."""
        cfg = self.config
        if cfg.directional_bound == "lipschitz":
            return np.full(self.n_constraints, float(cfg.lipschitz))
        theta_hat = np.abs(jac.jvp(u))
        if cfg.directional_bound == "estimate":
            theta_hat = theta_hat + math.sqrt(2.0 * math.log(1.0 / cfg.delta)) * float(cfg.lipschitz) / math.sqrt(cfg.n_directions)
        return theta_hat

    def step(self) -> BaselineRecord:
        """One LB-SGD iteration: estimate ``∇B_η``, take the step (S), evaluate the new iterate.

        Returns
        -------
        BaselineRecord
            ``details`` holds ``eta`` and, for a step taken, ``gamma, gamma_safe, gamma_smooth``,
            ``barrier_grad_norm`` and ``min_slack``.
        """
        cfg = self.config
        clock = StepClock(self)
        eta = self.eta
        self.iteration += 1
        if self._stopped is not None:
            return self._record(clock, False, self._stopped, details={"eta": eta})
        _, grad_f = self._gradient(clock)
        jac, G = self._estimate_jacobian(clock, cfg.n_directions, cfg.nu, cfg.directions)
        if not np.all(np.isfinite(G)):
            return self._record(clock, False, "nonfinite_probe", details={"eta": eta})
        alpha = -self._g
        if cfg.lipschitz is not None:
            alpha = alpha - cfg.nu * cfg.lipschitz
        if not np.all(alpha > 0):
            # Within ν·L of the boundary the probes themselves may be unsafe: the zeroth-order
            # variant cannot go on from here.
            self._stopped = "slack_below_probe_radius"
            return self._record(clock, False, self._stopped, details={"eta": eta})
        direction = grad_f + jac.vjp(eta / alpha)
        gnorm = float(np.linalg.norm(direction))
        if not math.isfinite(gnorm) or gnorm == 0.0:
            reason = "zero_gradient" if gnorm == 0.0 else "nonfinite_gradient"
            return self._record(clock, False, reason, details={"eta": eta})
        theta_hat = self._directional_bound(jac, direction / gnorm)
        gamma, gamma_safe, gamma_smooth = lbsgd_step_size(alpha, theta_hat, self.M, cfg.M0, eta, gnorm)
        details = dict(eta=eta, gamma=gamma, gamma_safe=gamma_safe, gamma_smooth=gamma_smooth, barrier_grad_norm=gnorm,
                       min_slack=float(np.min(alpha)))
        if not self._move(self._theta - gamma * direction, clock):
            return self._record(clock, False, "nonfinite_constraints", details=details)
        if not np.all(self._g < 0):
            self._stopped = "infeasible_iterate"
            logger.warning("LB-SGD iteration %d: the iterate violates %d row(s) (max %.3e); the barrier is undefined, stopping",
                           self.iteration, int(np.sum(~(self._g < 0))), float(np.max(self._g)))
            return self._record(clock, True, "infeasible_iterate", gamma * gnorm, details)
        return self._record(clock, True, "accepted", gamma * gnorm, details)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that let a fresh :class:`LBSGD` (same arguments) continue exactly from here.

        Returns
        -------
        dict of str to ndarray
            ``theta`` (d,), ``g`` (N,), ``objective`` (1,), ``counters`` (iteration,
            evaluations, stop reason code), ``rng`` (6,), ``M`` (N,).
        """
        stop = _STOP_REASONS.index(self._stopped)
        return {**self._baseline_arrays([self.iteration, self.evaluations, stop]), "M": self.M.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict` (shapes are checked).

        Parameters
        ----------
        state : dict of str to ndarray
            From :meth:`state_dict` of an LB-SGD with the same ``d`` and ``N``.
        """
        self.iteration, self.evaluations, stop = self._load_baseline_arrays(state, 3)
        if not 0 <= stop < len(_STOP_REASONS):
            raise InvalidInputError(f"counters: expected a stop code in [0, {len(_STOP_REASONS)}), got {stop}")
        self._stopped = _STOP_REASONS[stop]
        self.M = as_array("M", state["M"], shape=(self.n_constraints,)).copy()
