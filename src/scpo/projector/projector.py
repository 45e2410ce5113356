"""The SCPO training loop around the projection SOCP (DESIGN §3).

The :class:`Projector` knows nothing about tasks. It takes

* ``objective(θ) -> float`` and ``objective_and_grad(θ) -> (float, ndarray (d,))``,
* ``constraints(Θ) -> ndarray (B, N)`` evaluating ``g`` at a batch ``Θ`` of shape ``(B, d)``
  (wrap a one-at-a-time function with :func:`batched`),

and owns the bank, the SOCP, the line search, the per-row adaptive ``L``, recentring and the
bookkeeping of rejected tries. Every accepted iterate has had ``g`` evaluated and satisfies
``max_i g_i(θ_{t+1}) ≤ 0`` exactly (no tolerance in the unsafe direction; NaN fails).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._iterate import IterateState
from .._validate import as_array
from ..errors import InvalidInputError, NonFiniteError, ShapeError, SolverError, UnsafeStartError
from .bank import Bank
from .config import ProjectorConfig
from .directions import AdamState, adam_direction, adam_init, sgd_direction
from .inner import bound_coefficients, max_feasible_scale, required_L
from .socp import ProjectionSOCP

__all__ = ["Projector", "StepRecord", "batched", "ConstraintFn"]

logger = logging.getLogger(__name__)

ConstraintFn = Callable[[np.ndarray], np.ndarray]
"""Evaluates ``g`` at a batch of parameter vectors: ``(B, d) -> (B, N)``."""

# A prediction counts as failed only when g exceeds (★) by more than the round-off in the data
# could explain: each evaluation of g carries an error of about _EVAL_RTOL·(1 + |g|), and the
# difference quotients of (★) amplify it by 1/‖δ_k‖. Safety never uses this tolerance.
_EVAL_RTOL = 64 * np.finfo(float).eps
# Steps (and bank offsets) shorter than this fraction of 1 + ‖θ‖ carry no usable information.
_NEGLIGIBLE_STEP = 1e-10


def batched(fn: Callable[[np.ndarray], np.ndarray]) -> ConstraintFn:
    """Turn ``g(θ) -> (N,)`` into the batched form ``g(Θ) -> (B, N)`` by a loop over rows."""

    def evaluate(thetas: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(fn(t), dtype=float) for t in thetas])

    return evaluate


@dataclass(frozen=True)
class StepRecord:
    """What one iteration did. ``theta`` after the iteration is ``Projector.theta``.

    ``accepted`` is True when ``θ`` moved; ``reason`` says why it did not otherwise
    (``"prediction_failed"``, ``"no_decrease"``, ``"zero_step"``, ``"solver_failed"``,
    ``"zero_gradient"``). With ``projection=False`` every finite raw step is taken and
    ``max_constraint`` may be positive.
    """

    iteration: int
    accepted: bool
    reason: str
    objective_before: float
    objective: float
    gradient_norm: float
    max_constraint: float
    candidate_max_constraint: float
    predicted_max_constraint: float
    step_norm: float
    raw_step_norm: float
    alpha: float
    rejected_tries: int
    prediction_failures: int
    prediction_excess: float
    L_min: float
    L_max: float
    L_median: float
    L_raised_rows: int
    bank_size: int
    evaluations: int
    solver: str
    solver_status: str
    solver_attempts: list[dict[str, Any]] = field(default_factory=list)
    socp_rows: int = 0
    socp_rounds: int = 0
    feasibility_scale: float = 1.0
    solve_time_s: float = 0.0
    setup_time_s: float = 0.0
    evaluation_time_s: float = 0.0
    gradient_time_s: float = 0.0
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Projector(IterateState):
    """Safe first-order training by projection onto the inner approximation (★).

    Parameters
    ----------
    theta0 : ndarray, shape (d,)
        Start; must satisfy ``g(θ₀) ≤ 0``.
    objective : callable
        ``f(θ) -> float``.
    objective_and_grad : callable
        ``θ -> (f(θ), ∇f(θ))``.
    constraints : callable
        ``(B, d) -> (B, N)``; see :data:`ConstraintFn`.
    config : ProjectorConfig
    g0 : ndarray, shape (N,), optional
        ``g(θ₀)`` if already evaluated.
    directions : callable, optional
        ``(θ, k) -> (k, d)`` extra probe directions (see ``ProjectorConfig.block_probes``).
    L0 : ndarray, shape (N,), optional
        Initial per-row smoothness constants (e.g. certified ones); default ``config.L_init``.
    L_provider : callable, optional
        ``θ -> L (N,)``: sound per-row constants over the ball of radius
        ``config.certified_radius`` around ``θ`` (required with ``L_mode="certified"``); called at
        the start and after every accepted step.

    Raises
    ------
    ShapeError, NonFiniteError
        When ``theta0`` or ``g(θ₀)`` is malformed.
    UnsafeStartError
        When ``max g(θ₀) > 0`` (with projection on): the induction has no base case.
    """

    def __init__(
        self,
        *,
        theta0: np.ndarray,
        objective: Callable[[np.ndarray], float],
        objective_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
        constraints: ConstraintFn,
        config: ProjectorConfig,
        g0: np.ndarray | None = None,
        directions: Callable[[np.ndarray, int], np.ndarray] | None = None,
        L0: np.ndarray | None = None,
        L_provider: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        if not isinstance(config, ProjectorConfig):
            raise TypeError(f"config: expected a ProjectorConfig, got {type(config).__name__}")
        self.config = config
        self._theta = as_array("theta0", theta0, ndim=1).copy()
        self.dim = self._theta.size
        if self.dim == 0:
            raise ShapeError("theta0: expected at least one parameter, got an empty vector")
        self._objective = objective
        self._objective_and_grad = objective_and_grad
        self._constraints = constraints
        self._directions = directions
        self.evaluations = 0
        if g0 is None:
            g0 = self._evaluate(self._theta[None, :], check_n=False)[0][0]
        g0 = as_array("g(theta0)", g0, ndim=1)
        self.n_constraints = g0.size
        if self.n_constraints == 0:
            raise ShapeError("g(theta0): expected at least one constraint row, got none")
        if config.projection and not np.all(g0 <= 0):
            raise UnsafeStartError(
                f"g(theta0): the start violates {int(np.sum(~(g0 <= 0)))} constraint row(s) "
                f"(max {float(np.max(g0)):.3e}); SCPO needs a safe start, e.g. a zero-initialised residual"
            )
        self._g = g0
        self._f = float(objective(self._theta))
        if not np.isfinite(self._f):
            raise NonFiniteError(f"objective(theta0): expected a finite value, got {self._f}")
        self._L_provider = L_provider
        self._trust = config.certified_radius if config.L_mode == "certified" else None
        if config.L_mode == "certified" and L_provider is None:
            raise InvalidInputError("L_provider: L_mode='certified' needs a function θ -> certified L (see scpo.certify.certified_L)")
        if L_provider is not None:
            self.L = self._certified_L(self._theta)
        elif L0 is None:
            self.L = np.full(self.n_constraints, config.L_init)
        else:
            self.L = as_array("L0", L0, shape=(self.n_constraints,)).copy()
            if not np.all(self.L > 0):
                raise InvalidInputError(f"L0: expected positive smoothness constants, got minimum {float(np.min(self.L))}")
        self.bank = Bank(config.bank_size, self.dim, self.n_constraints)
        self.socp = ProjectionSOCP(config.solver, config.working_set)
        self._adam: AdamState = adam_init(self.dim)
        self.iteration = 0

    def _certified_L(self, theta: np.ndarray) -> np.ndarray:
        L = as_array("L_provider(theta)", self._L_provider(theta), shape=(self.n_constraints,))
        if not np.all(L > 0):
            raise InvalidInputError(f"L_provider(theta): expected positive constants, got minimum {float(np.min(L))}")
        return L.copy()

    # ------------------------------------------------------------------ helpers
    def _raw_step(self, grad: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.direction == "sgd":
            return sgd_direction(grad, cfg.lr)
        step, self._adam = adam_direction(grad, self._adam, lr=cfg.lr, beta1=cfg.beta1, beta2=cfg.beta2, eps=cfg.adam_eps)
        return step

    def _probe_offset(self, direction: np.ndarray) -> np.ndarray:
        r = self.config.probe_radius
        if self._trust is not None:
            r = self._trust if r is None else min(r, self._trust)
        norm = float(np.linalg.norm(direction))
        if r is None or norm <= r:
            return direction.copy()
        return direction * (r / norm)

    # ------------------------------------------------------------------ one iteration
    def step(self) -> StepRecord:
        """Run one SCPO iteration and return its record.

        The iterate changes only if the evaluated ``g`` at the candidate satisfies
        ``max g ≤ 0`` (and the objective decreases sufficiently, unless disabled).
        """
        cfg = self.config
        t_start = time.perf_counter()
        evals_before = self.evaluations
        eval_time = 0.0
        self.iteration += 1
        f_before = self._f

        t0 = time.perf_counter()
        f_now, grad = self._objective_and_grad(self._theta)
        grad = np.asarray(grad, dtype=float)
        grad_time = time.perf_counter() - t0
        if grad.shape != (self.dim,):
            raise ShapeError(f"objective_and_grad: expected a gradient of shape ({self.dim},), got {grad.shape}")
        f_now = float(f_now)
        grad_norm = float(np.linalg.norm(grad))
        raw = self._raw_step(grad) if np.all(np.isfinite(grad)) else np.full(self.dim, np.nan)
        raw_norm = float(np.linalg.norm(raw))

        info: dict[str, Any] = dict(
            iteration=self.iteration,
            objective_before=f_before,
            gradient_norm=grad_norm,
            raw_step_norm=raw_norm,
            candidate_max_constraint=float("nan"),
            predicted_max_constraint=float("nan"),
            step_norm=0.0,
            alpha=0.0,
            rejected_tries=0,
            prediction_failures=0,
            prediction_excess=float("-inf"),
            L_raised_rows=0,
            solver="none",
            solver_status="not_run",
            gradient_time_s=grad_time,
        )
        attempts: list[dict[str, Any]] = []
        solve_time = setup_time = 0.0

        def finish(accepted: bool, reason: str, **extra: Any) -> StepRecord:
            info.update(extra)
            return StepRecord(
                accepted=accepted,
                reason=reason,
                objective=self._f,
                max_constraint=float(np.max(self._g)),
                L_min=float(np.min(self.L)),
                L_max=float(np.max(self.L)),
                L_median=float(np.median(self.L)),
                bank_size=len(self.bank),
                evaluations=self.evaluations - evals_before,
                solver_attempts=attempts,
                solve_time_s=solve_time,
                setup_time_s=setup_time,
                evaluation_time_s=eval_time,
                wall_time_s=time.perf_counter() - t_start,
                **info,
            )

        if not (np.isfinite(raw_norm) and raw_norm > 0):
            return finish(False, "zero_gradient" if raw_norm == 0 else "nonfinite_gradient")

        if not cfg.projection:
            G, dt = self._evaluate((self._theta + raw)[None, :])
            eval_time += dt
            G = G[0]
            f_c = float(self._objective(self._theta + raw))
            self._theta = self._theta + raw
            self._g, self._f = G, f_c
            return finish(True, "unprojected", step_norm=raw_norm, alpha=1.0, candidate_max_constraint=float(np.max(G)))

        probe = self._probe_offset(raw)
        probes = [probe]
        if cfg.block_probes and self._directions is not None:
            t0 = time.perf_counter()
            extra = np.asarray(self._directions(self._theta, cfg.block_probes), dtype=float)
            info["gradient_time_s"] += time.perf_counter() - t0  # block gradients are gradients too
            if extra.ndim != 2 or extra.shape[1] != self.dim:
                raise ShapeError(f"directions: expected an array of shape (k, {self.dim}), got {extra.shape}")
            if cfg.direction == "adam" and self._adam.count:
                v_hat = self._adam.v / (1.0 - cfg.beta2**self._adam.count)
                extra = extra / (np.sqrt(v_hat) + cfg.adam_eps)
            for e in extra:
                n = float(np.linalg.norm(e))
                if np.isfinite(n) and n > 0:
                    probes.append(self._probe_offset(e * (raw_norm / n)))
        G_all, dt = self._evaluate(self._theta[None, :] + np.stack(probes[::-1]))
        eval_time += dt
        for p_off, row in zip(probes[::-1], G_all):
            if np.all(np.isfinite(row)):
                self.bank.add(p_off, row)
        G_probe = G_all[-1]

        tries = 0
        L_raised = np.zeros(self.n_constraints, dtype=bool)
        while tries < cfg.max_tries:
            if len(self.bank) == 0:
                return finish(False, "empty_bank", rejected_tries=tries)
            norms, gram, q = self.bank.geometry(raw)
            H = self.bank.difference_quotients(self._g)
            try:
                res = self.socp.solve(gram, q, norms, self._g, H, self.L)
            except SolverError as exc:
                logger.warning("iteration %d: %s", self.iteration, exc)
                return finish(False, "solver_failed", rejected_tries=tries, solver_status=str(exc)[:300])
            attempts.extend(a.to_dict() for a in res.attempts)
            solve_time += res.solve_time_s
            setup_time += res.setup_time_s
            info.update(solver=res.solver, solver_status=res.status, socp_rows=res.rows, socp_rounds=res.rounds)
            step = self.bank.step(res.coef)
            # Re-check (★) with ‖Δ‖² computed in parameter space, not from the Gram matrix.
            a1, a2 = bound_coefficients(H, self.L, norms, res.coef, float(step @ step))
            scale = max_feasible_scale(self._g, a1, a2)
            if self._trust is not None and np.linalg.norm(step) * scale > self._trust:
                scale *= self._trust / (np.linalg.norm(step) * scale)  # stay inside the certified ball
            coef, step = res.coef * scale, step * scale
            a1, a2 = bound_coefficients(H, self.L, norms, coef, float(step @ step))
            info["feasibility_scale"] = res.scale * scale
            step_norm = float(np.linalg.norm(step))
            theta_scale = 1.0 + float(np.linalg.norm(self._theta))
            if not step_norm > _NEGLIGIBLE_STEP * theta_scale:
                return finish(False, "zero_step", rejected_tries=tries)

            alpha = 1.0
            f_dir = float(grad @ step)
            retry = False
            for _ in range(cfg.max_backtracks + 1):
                # (★) along the ray is convex with g ≤ 0 at 0, so every α ≤ 1 is feasible in exact
                # arithmetic; the scale makes it hold in floating point too.
                alpha *= max_feasible_scale(self._g, alpha * a1, alpha * alpha * a2)
                cand_offset = alpha * step
                if np.allclose(cand_offset, probe, rtol=1e-12, atol=0.0):
                    cand_offset = probe  # round-off away from the probe: use the evaluated point
                cand = self._theta + cand_offset
                if np.array_equal(cand_offset, probe) and np.all(np.isfinite(G_probe)):
                    G = G_probe  # the probe was exactly this point: reuse its evaluation
                else:
                    G2, dt = self._evaluate(cand[None, :])
                    eval_time += dt
                    G = G2[0]
                pred = self._g + alpha * a1 + alpha * alpha * a2
                info.update(candidate_max_constraint=float(np.max(G)), predicted_max_constraint=float(np.max(pred)))
                excess = G - pred
                info["prediction_excess"] = max(info["prediction_excess"], float(np.max(np.where(np.isnan(excess), np.inf, excess))))
                eps_g = _EVAL_RTOL * (1.0 + np.maximum(np.abs(self._g), np.abs(np.nan_to_num(G))))
                tol = eps_g * (2.0 + 2.0 * float(np.sum(np.abs(alpha * coef) / norms)))
                over = ~(G <= pred + tol)
                unsafe = ~(G <= 0)
                if np.any(over) or np.any(unsafe):
                    tries += 1
                    info["prediction_failures"] += int(np.any(over))
                    bad = over | unsafe
                    if not (cfg.L_fixed or cfg.L_mode == "certified"):
                        need = required_L(G, self._g, H, norms, alpha * coef, float(cand_offset @ cand_offset))
                        need = np.where(np.isfinite(need), need, 0.0)
                        self.L[bad] = np.maximum(self.L[bad] * cfg.L_growth, need[bad] * cfg.L_growth)
                        L_raised |= bad
                    if np.all(np.isfinite(G)) and not np.array_equal(cand_offset, probe) \
                            and np.linalg.norm(cand_offset) > _NEGLIGIBLE_STEP * theta_scale:
                        self.bank.add(cand_offset, G)
                    retry = True
                    break
                f_c = float(self._objective(cand))
                if cfg.armijo < 0 or (np.isfinite(f_c) and f_c <= f_now + cfg.armijo * alpha * min(f_dir, 0.0)):
                    self._theta = cand
                    self._g = G
                    self._f = f_c
                    self.bank.recentre(cand_offset, max_norm=self._trust)
                    if self._L_provider is not None:
                        self.L = self._certified_L(self._theta)
                    elif cfg.L_decay < 1.0 and not cfg.L_fixed:
                        self.L = np.maximum(self.L * cfg.L_decay, cfg.L_min)
                    eval_time += self._refresh(cand_offset)
                    return finish(
                        True,
                        "accepted",
                        step_norm=float(np.linalg.norm(cand_offset)),
                        alpha=alpha,
                        rejected_tries=tries,
                        L_raised_rows=int(L_raised.sum()),
                    )
                tries += 1
                alpha *= 0.5
            if not retry:
                return finish(False, "no_decrease", rejected_tries=tries, L_raised_rows=int(L_raised.sum()))
        return finish(False, "prediction_failed", rejected_tries=tries, L_raised_rows=int(L_raised.sum()))

    def _refresh(self, accepted_step: np.ndarray) -> float:
        """Re-probe the newest ``refresh`` bank directions at the new iterate (batched)."""
        k = min(self.config.refresh, len(self.bank))
        if k == 0:
            return 0.0
        old = self.bank.offsets[-k:] + accepted_step[None, :]  # offsets before recentring
        old = old[np.linalg.norm(old, axis=1) > 0]
        if old.shape[0] == 0:
            return 0.0
        probes = np.stack([self._probe_offset(o) for o in old])
        G, dt = self._evaluate(self._theta[None, :] + probes)
        for p, row in zip(probes, G):
            if np.all(np.isfinite(row)):
                self.bank.add(p, row)
        return dt

    # ------------------------------------------------------------------ persistence
    def state_dict(self, *, include_bank: bool = True) -> dict[str, np.ndarray]:
        """Arrays needed to continue where this projector stands.

        Parameters
        ----------
        include_bank : bool
            Include the bank (``bank_offsets``, ``bank_values`` and ``bank_theta_ref``, the iterate the
            offsets are relative to). It can be saved less often than the rest: its entries are
            evaluations at absolute points, so an older bank is still exact information.
        """
        out = {
            "theta": self._theta.copy(),
            "g": self._g.copy(),
            "L": self.L.copy(),
            "adam_m": self._adam.m.copy(),
            "adam_v": self._adam.v.copy(),
            "counters": np.array([self.iteration, self._adam.count, self.evaluations], dtype=np.int64),
            "objective": np.array([self._f]),
        }
        if include_bank:
            out.update(self.bank_state())
        return out

    def bank_state(self) -> dict[str, np.ndarray]:
        """The bank with the iterate its offsets are relative to."""
        return {**self.bank.state(), "bank_theta_ref": self._theta.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray], bank: dict[str, np.ndarray] | None = None) -> None:
        """Restore from :meth:`state_dict` (shapes are checked against this projector).

        Parameters
        ----------
        state : dict
            From :meth:`state_dict`.
        bank : dict, optional
            From :meth:`bank_state`, possibly saved at an earlier iterate; its offsets are
            re-expressed relative to the restored ``θ``. Default: the bank inside ``state``, if any.
        """
        self._theta = as_array("theta", state["theta"], shape=(self.dim,)).copy()
        self._g = as_array("g", state["g"], shape=(self.n_constraints,)).copy()
        self.L = as_array("L", state["L"], shape=(self.n_constraints,)).copy()
        if self._L_provider is not None:
            self.L = self._certified_L(self._theta)  # certified constants are recomputed, never trusted from disk
        counters = np.asarray(state["counters"], dtype=np.int64)
        self.iteration, adam_count, self.evaluations = (int(v) for v in counters)
        self._adam = AdamState(
            m=as_array("adam_m", state["adam_m"], shape=(self.dim,)).copy(),
            v=as_array("adam_v", state["adam_v"], shape=(self.dim,)).copy(),
            count=adam_count,
        )
        self._f = float(np.asarray(state["objective"])[0])
        bank = bank if bank is not None else (state if "bank_offsets" in state else None)
        if bank is not None:
            self.bank.load_state(bank)
            ref = as_array("bank_theta_ref", bank.get("bank_theta_ref", self._theta), shape=(self.dim,))
            if len(self.bank):
                self.bank.recentre(self._theta - ref)
