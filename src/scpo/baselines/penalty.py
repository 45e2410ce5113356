"""Quadratic-penalty and augmented-Lagrangian training: the classic ways to trade objective for constraints.

For ``min f(θ) s.t. g(θ) ≤ 0`` (``g : R^d → R^N``) the Powell–Hestenes–Rockafellar augmented
Lagrangian for inequality constraints (Nocedal & Wright, *Numerical Optimization*, 2nd ed.,
§17.4, eq. (17.65)) is

    Φ_ρ(θ; λ) = f(θ) + (1 / 2ρ) Σᵢ [ max(0, λᵢ + ρ gᵢ(θ))² − λᵢ² ],
    ∇_θ Φ_ρ(θ; λ) = ∇f(θ) + Σᵢ max(0, λᵢ + ρ gᵢ(θ)) ∇gᵢ(θ),

with the multiplier update ``λᵢ ← max(0, λᵢ + ρ gᵢ(θ))`` after an (inexact) inner minimisation.
With ``λ ≡ 0`` it is the quadratic penalty ``f + (ρ/2) Σᵢ max(0, gᵢ)²`` (N&W §17.1), whose
minimiser approaches the constrained one as ``ρ → ∞``.

The inner minimisation uses the same optimiser as the SCPO projector (Adam or SGD, with the
same ``lr``), one step per iteration. Where the constraint term enters, its gradient
``Σᵢ wᵢ ∇gᵢ`` (``wᵢ = max(0, λᵢ + ρ gᵢ)``) comes either from

* ``gradient="zeroth-order"``: the two-point estimate ``Ĵᵀw`` of :mod:`scpo.baselines.common`
  from ``n`` evaluations of ``g`` (the same information SCPO and LB-SGD get), or
* ``gradient="autograd"``: automatic differentiation through a differentiable version of
  ``g`` (a stronger oracle than the other methods get; label it as such in reports).

When every ``wᵢ = 0`` (feasible and no active multiplier) the constraint term has zero
gradient and no probe is spent: the method then trains exactly like unconstrained training.
Every iterate is taken (a penalty method has no safety test); violating iterates are what the
benchmarks count.

Schedules, every ``update_every`` iterations: ``"quadratic"`` multiplies ``ρ`` by
``rho_growth``; ``"augmented-lagrangian"`` updates ``λ`` and multiplies ``ρ`` by ``rho_growth``
only when the largest violation did not fall below ``violation_decrease`` times its previous
value (N&W Algorithm 17.4, in the simplified form of a fixed inner iteration count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._iterate import StepClock, check_config
from .._validate import as_array, check_in, check_int, check_nonnegative, check_positive
from ..errors import ConfigError, InvalidInputError, ShapeError
from ..projector.directions import AdamState, adam_init, check_step_rule, raw_direction
from .common import DIRECTION_SAMPLERS, BaselineRecord, ZerothOrderBaseline

__all__ = ["PENALTY_METHODS", "PENALTY_GRADIENTS", "Penalty", "PenaltyConfig", "augmented_lagrangian"]

PENALTY_METHODS = ("quadratic", "augmented-lagrangian")
PENALTY_GRADIENTS = ("zeroth-order", "autograd")


@dataclass(frozen=True, kw_only=True)
class PenaltyConfig:
    """Settings of :class:`Penalty`.

    Attributes
    ----------
    method : {"quadratic", "augmented-lagrangian"}
        Penalty schedule (see the module docstring).
    rho : float
        Initial penalty parameter ``ρ``.
    rho_growth : float
        Factor ``≥ 1`` applied to ``ρ`` at an outer update (see the module docstring).
    rho_max : float
        Cap on ``ρ``.
    update_every : int
        Iterations between outer updates.
    violation_decrease : float
        Augmented Lagrangian: ``ρ`` grows when ``max g⁺`` did not fall below this fraction of
        its value at the previous outer update.
    gradient : {"zeroth-order", "autograd"}
        Source of ``∇g`` (see the module docstring).
    n_directions, nu, directions
        Zeroth-order estimator: number of directions, sampling radius, sampler.
    direction : {"adam", "sgd"}
        Step rule on ``∇Φ``.
    lr, beta1, beta2, adam_eps : float
        Learning rate and Adam's parameters, as in :class:`scpo.projector.ProjectorConfig`.
    seed : int
        Seeds the direction sampler.
    """

    method: str = "augmented-lagrangian"
    rho: float = 10.0
    rho_growth: float = 2.0
    rho_max: float = 1e6
    update_every: int = 50
    violation_decrease: float = 0.25
    gradient: str = "zeroth-order"
    n_directions: int = 8
    nu: float = 1e-3
    directions: str = "sphere"
    direction: str = "adam"
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            check_in("method", self.method, PENALTY_METHODS)
            check_positive("rho", self.rho)
            if not check_positive("rho_growth", self.rho_growth) >= 1:
                raise InvalidInputError(f"rho_growth: expected a number >= 1, got {self.rho_growth}")
            if not check_positive("rho_max", self.rho_max) >= self.rho:
                raise InvalidInputError(f"rho_max: expected a number >= rho = {self.rho}, got {self.rho_max}")
            check_int("update_every", self.update_every, minimum=1)
            v = check_nonnegative("violation_decrease", self.violation_decrease)
            if not v < 1:
                raise InvalidInputError(f"violation_decrease: expected a number in [0, 1), got {v}")
            check_in("gradient", self.gradient, PENALTY_GRADIENTS)
            check_int("n_directions", self.n_directions, minimum=1)
            check_positive("nu", self.nu)
            check_in("directions", self.directions, DIRECTION_SAMPLERS)
            check_step_rule(self)
            check_int("seed", self.seed, minimum=0)
        except InvalidInputError as exc:
            raise ConfigError(f"PenaltyConfig.{exc}") from None


def augmented_lagrangian(f: float, g: np.ndarray, lam: np.ndarray, rho: float) -> tuple[float, np.ndarray]:
    """Value of ``Φ_ρ(θ; λ)`` and the weights ``w = max(0, λ + ρ g)`` of ``∇g`` in its gradient.

    Parameters
    ----------
    f : float
        ``f(θ)``.
    g : ndarray, shape (N,)
        ``g(θ)``.
    lam : ndarray, shape (N,)
        Multipliers ``λ ≥ 0``.
    rho : float
        ``ρ > 0``.

    Returns
    -------
    value : float
        ``Φ_ρ(θ; λ)``.
    w : ndarray, shape (N,)
        ``∇_θ Φ = ∇f + Σᵢ wᵢ ∇gᵢ``.
    """
    w = np.maximum(0.0, lam + rho * g)
    return f + float(np.sum(w * w - lam * lam)) / (2.0 * rho), w


class Penalty(ZerothOrderBaseline):
    """Quadratic penalty / augmented Lagrangian with Adam or SGD inner steps (module docstring).

    Each :meth:`step` takes one step of the raw rule on ``∇_θ Φ_ρ(θ; λ)`` and then, every
    ``update_every`` iterations, updates ``ρ`` and ``λ``.

    Parameters
    ----------
    theta0 : ndarray, shape (d,)
        Start (need not be feasible).
    objective : callable
        ``f(θ) -> float``.
    objective_and_grad : callable
        ``θ -> (f(θ), ∇f(θ))``.
    constraints : callable
        ``(B, d) -> (B, N)``.
    config : PenaltyConfig
        The method's settings.
    differentiable_constraints : callable, optional
        ``torch.Tensor (d,) -> torch.Tensor (N,)``, differentiable; required by
        ``gradient="autograd"``.
    g0 : ndarray, shape (N,), optional
        ``g(θ₀)`` if already evaluated.

    Raises
    ------
    UnsupportedError
        When ``config`` is not a :class:`PenaltyConfig`.
    InvalidInputError
        ``gradient="autograd"`` without ``differentiable_constraints``, or a malformed start.
    """

    def __init__(
        self,
        *,
        theta0: np.ndarray,
        objective: Callable[[np.ndarray], float],
        objective_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
        constraints: Callable[[np.ndarray], np.ndarray],
        config: PenaltyConfig,
        differentiable_constraints: Callable[[Any], Any] | None = None,
        g0: np.ndarray | None = None,
    ) -> None:
        self.config = check_config(config, PenaltyConfig)
        if config.gradient == "autograd" and differentiable_constraints is None:
            raise InvalidInputError("differentiable_constraints: gradient='autograd' needs a differentiable constraint function")
        self._diff_constraints = differentiable_constraints
        self._rng = np.random.default_rng(config.seed)
        self._start(theta0, g0, (objective, objective_and_grad, constraints), finite_g=False)
        self.rho = config.rho
        self.multipliers = np.zeros(self.n_constraints)
        self._adam = adam_init(self.dim)
        self._last_violation = float(np.max(np.maximum(self._g, 0.0)))

    # ------------------------------------------------------------------ helpers
    def _constraint_gradient(self, w: np.ndarray, clock: StepClock) -> np.ndarray:
        """``Σᵢ wᵢ ∇gᵢ(θ)``, estimated (ZO) or by autograd; the time goes to ``clock.eval_time``."""
        cfg = self.config
        if cfg.gradient == "autograd":
            import torch

            t0 = time.perf_counter()
            t = torch.as_tensor(self._theta, dtype=torch.float64).clone().requires_grad_(True)
            g = self._diff_constraints(t)
            if tuple(g.shape) != (self.n_constraints,):
                raise ShapeError(f"differentiable_constraints: expected a tensor of shape ({self.n_constraints},), got {tuple(g.shape)}")
            (grad,) = torch.autograd.grad(g, t, grad_outputs=torch.as_tensor(w, dtype=g.dtype, device=g.device))
            self.evaluations += 1
            clock.eval_time += time.perf_counter() - t0
            return grad.detach().cpu().numpy().astype(float)
        jac, G = self._estimate_jacobian(clock, cfg.n_directions, cfg.nu, cfg.directions)
        return jac.vjp(w) if np.all(np.isfinite(G)) else np.full(self.dim, np.nan)

    def _outer_update(self) -> None:
        cfg = self.config
        violation = float(np.max(np.maximum(self._g, 0.0)))
        if cfg.method == "quadratic":
            self.rho = min(self.rho * cfg.rho_growth, cfg.rho_max)
            return
        self.multipliers = np.maximum(0.0, self.multipliers + self.rho * self._g)
        if violation > cfg.violation_decrease * self._last_violation:
            self.rho = min(self.rho * cfg.rho_growth, cfg.rho_max)
        self._last_violation = violation

    # ------------------------------------------------------------------ one iteration
    def step(self) -> BaselineRecord:
        """One inner step on ``Φ_ρ(·; λ)``, then the outer update when it is due.

        Returns
        -------
        BaselineRecord
            ``details`` holds ``rho``, ``merit`` (``Φ_ρ`` before the step), ``active_rows``
            (rows with ``wᵢ > 0``) and ``multiplier_max``.
        """
        cfg = self.config
        clock = StepClock(self)
        self.iteration += 1
        _, grad = self._gradient(clock)
        merit, w = augmented_lagrangian(self._f, np.nan_to_num(self._g, nan=np.inf), self.multipliers, self.rho)
        active = int(np.count_nonzero(w))
        if active:
            grad = grad + self._constraint_gradient(w, clock)
        details = dict(rho=self.rho, merit=merit, active_rows=active, multiplier_max=float(np.max(self.multipliers)))
        if not np.all(np.isfinite(grad)):
            return self._record(clock, False, "nonfinite_gradient", details=details)
        raw, self._adam = raw_direction(cfg, grad, self._adam)
        if not self._move(self._theta + raw, clock):
            return self._record(clock, False, "nonfinite_constraints", details=details)
        if self.iteration % cfg.update_every == 0:
            self._outer_update()
        return self._record(clock, True, "accepted", float(np.linalg.norm(raw)), details)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that let a fresh :class:`Penalty` (same arguments) continue exactly from here.

        Returns
        -------
        dict of str to ndarray
            ``theta`` (d,), ``g`` (N,), ``objective`` (1,), ``counters`` (iteration, Adam step
            count, evaluations), ``rng`` (6,), ``adam_m``, ``adam_v`` (d,), ``rho`` (ρ and the
            violation at the last outer update), ``multipliers`` (N,).
        """
        return {
            **self._baseline_arrays([self.iteration, self._adam.count, self.evaluations]),
            "adam_m": self._adam.m.copy(),
            "adam_v": self._adam.v.copy(),
            "rho": np.array([self.rho, self._last_violation]),
            "multipliers": self.multipliers.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state_dict` (shapes are checked).

        Parameters
        ----------
        state : dict of str to ndarray
            From :meth:`state_dict` of a penalty method with the same ``d`` and ``N``.
        """
        self.iteration, count, self.evaluations = self._load_baseline_arrays(state, 3, finite_g=False)
        self._adam = AdamState(
            m=as_array("adam_m", state["adam_m"], shape=(self.dim,)).copy(),
            v=as_array("adam_v", state["adam_v"], shape=(self.dim,)).copy(),
            count=count,
        )
        self.rho, self._last_violation = (float(v) for v in as_array("rho", state["rho"], shape=(2,)))
        self.multipliers = as_array("multipliers", state["multipliers"], shape=(self.n_constraints,)).copy()
