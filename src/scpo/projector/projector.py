"""The SCPO training loop around the projection SOCP (DESIGN §3).

The :class:`Projector` knows nothing about tasks. It takes

* ``objective(θ) -> float`` and ``objective_and_grad(θ) -> (float, ndarray (d,))``,
* ``constraints(Θ) -> ndarray (B, N)`` evaluating ``g`` at a batch ``Θ`` of shape ``(B, d)``
  (wrap a one-at-a-time function with :func:`batched`),

and owns the bank, the SOCP, the line search, the per-row adaptive ``L``, recentring and the
bookkeeping of rejected tries. Every accepted iterate has had ``g`` evaluated and satisfies
``max_i g_i(θ_{t+1}) ≤ 0`` exactly (no tolerance in the unsafe direction; NaN fails).

One iteration (:meth:`Projector.step`) is the sequence of DESIGN §3's paragraphs, one method
each:

1. **raw step** (:meth:`Projector._raw_step`): ``Δ_raw`` from ``∇f`` by Adam or SGD;
2. **bank** (:meth:`Projector._probe`): the raw direction and the block probes are evaluated in
   one batch and join the bank;
3. **projection** (:meth:`Projector._project`): the SOCP gives ``Δ* = Dc*``, re-checked against
   (★) in numpy and scaled until every row holds in floating point;
4. **acceptance** (:meth:`Projector._line_search`): ``α = 1, ½, …`` until ``max g ≤ 0`` and
   sufficient decrease; a failed prediction raises ``L`` (:meth:`Projector._learn_from_failure`)
   and re-solves; an accepted step recentres the bank and updates ``L``
   (:meth:`Projector._accept`).

The record bookkeeping lives in :mod:`scpo.projector.record`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._iterate import IterateState, check_config
from .._validate import as_array
from ..errors import InvalidInputError, ShapeError, SolverError, UnsafeStartError
from ..numerics import EVAL_RTOL, NEGLIGIBLE_STEP
from .bank import Bank
from .config import ProjectorConfig
from .directions import AdamState, adam_init, raw_direction
from .inner import bound_coefficients, max_feasible_scale, required_L
from .record import Rejected, StepLog, StepRecord
from .socp import ProjectionSOCP

__all__ = ["GateVerdict", "RowExtension", "Projector", "StepRecord", "batched", "ConstraintFn", "SubspaceProvider"]

logger = logging.getLogger(__name__)

ConstraintFn = Callable[[np.ndarray], np.ndarray]
"""Evaluates ``g`` at a batch of parameter vectors: ``(B, d) -> (B, N)``."""

SubspaceProvider = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, str]]
"""``(θ, offsets (k, d), r, first_row) -> (L (N − first_row,), digest)``: certified subspace constants."""

# The ball the subspace certificate covers is the cap r of every offset, widened by this relative
# amount so that offsets scaled to length r in floating point (‖·‖ = r(1 + O(u))) lie inside it.
_BALL_SLACK = 1e-12

# A prediction counts as failed only when g exceeds (★) by more than the round-off in the data
# could explain: each evaluation of g carries an error of about EVAL_RTOL·(1 + |g|), and the
# difference quotients of (★) amplify it by 1/‖δ_k‖. Safety never uses this tolerance.
# Steps (and bank offsets) shorter than NEGLIGIBLE_STEP·(1 + ‖θ‖) carry no usable information.


@dataclass(frozen=True)
class RowExtension:
    """Constraint rows a gate adds to ``g`` (the adaptive validation set).

    Attributes
    ----------
    evaluate : callable
        ``(B, d) -> (B, k)``: the new rows at parameter vectors (after the extension, the
        projector's ``constraints`` callable returns them as its last ``k`` columns).
    like : ndarray of int, shape (k,)
        For each new row, an existing row whose smoothness constant ``L`` it starts from.
    """

    evaluate: Callable[[np.ndarray], np.ndarray]
    like: np.ndarray


@dataclass(frozen=True)
class GateVerdict:
    """What a gate says of a candidate that passed the evaluated acceptance test.

    Attributes
    ----------
    ok : bool
        Accept the candidate.
    reason : str
        Why not (recorded as the rejected try's reason).
    certificate : object
        The gate's evidence for an accepted candidate (kept in :attr:`Projector.last_certificate`).
    extension : RowExtension or None
        Rows to add to ``g`` before the iteration re-projects.
    time_s : float
        Seconds the gate took.
    """

    ok: bool
    reason: str = ""
    certificate: object = None
    extension: RowExtension | None = None
    time_s: float = 0.0


def batched(fn: Callable[[np.ndarray], np.ndarray]) -> ConstraintFn:
    """Turn ``g(θ) -> (N,)`` into the batched form ``g(Θ) -> (B, N)`` by a loop over rows.

    Parameters
    ----------
    fn : callable
        ``θ (d,) -> g(θ) (N,)``.

    Returns
    -------
    callable
        ``Θ (B, d) -> (B, N)``.
    """

    def evaluate(thetas: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(fn(t), dtype=float) for t in thetas])

    return evaluate


@dataclass(frozen=True)
class _Projection:
    """A projected step ``Δ* = Σ_k c_k δ_k/n_k`` with the coefficients of (★) along its ray."""

    coef: np.ndarray  # (m,) normalised coefficients c
    step: np.ndarray  # (d,) Δ*
    a1: np.ndarray  # (N,) first-order coefficient of (★) at α: g + α a1 + α² a2
    a2: np.ndarray  # (N,) second-order coefficient
    H: np.ndarray  # (N, m) difference quotients
    norms: np.ndarray  # (m,) ‖δ_k‖
    theta_scale: float  # 1 + ‖θ‖


class Projector(IterateState):
    """Safe first-order training by projection onto the inner approximation (★).

    Each :meth:`step` solves, with the bank ``D`` and ``G`` at the current ``θ``,

        minimise_c ‖Dc − Δ_raw‖²  s.t.  g(θ) + H c + (L/2) ⊙ (Σ_k |c_k| s_k + ‖Dc‖²) ≤ 0,

    and accepts ``θ + αDc*`` only when ``g`` evaluated there is ``≤ 0`` (DESIGN §3).

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
        The projector's settings.
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
    gate : callable, optional
        ``(θ_candidate, θ_current) -> GateVerdict``, asked after the evaluated acceptance test passed (the sound
        region certificate of training's ``certify="sound"``); a rejected candidate counts as a
        try, its rows extend ``g`` and the iteration re-projects.
    subspace_provider : callable, optional
        ``(θ, offsets (k, d), r, first_row) -> (L, digest)``: sound constants ``L_i ≥ sup_{‖a‖≤r}
        ‖Qᵀ∇²g_i(θ+Qa)Q‖₂`` on the span ``Q`` of ``offsets`` for the rows ``first_row, …, N−1``,
        and the digest of that certificate (required with ``L_mode="subspace"``; see
        :func:`scpo.certify.smoothness.subspace_certified_L`). Called every iteration after the
        probes joined the bank, with ``r`` at least the largest offset and the cap of the step,
        and for the rows a gate adds. Within an iteration the bank only loses entries or gains
        points of its own span, so the constants stay valid for every re-projection.

    Raises
    ------
    ShapeError, NonFiniteError
        When ``theta0`` or ``g(θ₀)`` is malformed.
    UnsupportedError
        When ``config`` is not a :class:`ProjectorConfig`.
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
        gate: Callable[[np.ndarray, np.ndarray], GateVerdict] | None = None,
        subspace_provider: SubspaceProvider | None = None,
    ) -> None:
        self.config = check_config(config, ProjectorConfig)
        self._gate = gate
        self._subspace = subspace_provider
        if config.L_mode == "subspace" and subspace_provider is None:
            raise InvalidInputError("subspace_provider: L_mode='subspace' needs a function (θ, offsets, r, first_row) -> (L, digest) "
                                    "(see scpo.certify.smoothness.subspace_certified_L)")
        self.last_certificate: object = None
        self._directions = directions
        self._start(theta0, g0, (objective, objective_and_grad, constraints), check_start=self._check_safe_start)
        self._L_provider = L_provider
        self._trust = config.certified_radius if config.L_mode != "adaptive" else None
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

    def _check_safe_start(self, g0: np.ndarray) -> None:
        if self.config.projection and not np.all(g0 <= 0):
            raise UnsafeStartError(
                f"g(theta0): the start violates {int(np.sum(~(g0 <= 0)))} constraint row(s) "
                f"(max {float(np.max(g0)):.3e}); SCPO needs a safe start, e.g. a zero-initialised residual"
            )

    def _subspace_L(self, log: StepLog, first_row: int = 0) -> None:
        """Set ``L`` of the rows ``first_row, …`` to their certified subspace bound on the current bank (``L_mode="subspace"``).

        The ball holds every bank offset (capped at ``certified_radius`` when probed or recentred)
        and every step (:meth:`_project` caps it), widened by ``_BALL_SLACK`` against rounding.
        """
        offsets = np.array(self.bank.offsets)
        radius = max(float(self._trust), float(np.max(np.linalg.norm(offsets, axis=1)))) * (1.0 + _BALL_SLACK)
        t0 = time.perf_counter()
        L, digest = self._subspace(self._theta, offsets, radius, first_row)
        log.fields["L_time_s"] = log.fields.get("L_time_s", 0.0) + time.perf_counter() - t0
        L = as_array("subspace_provider(...)", L, shape=(self.n_constraints - first_row,))
        if not np.all(L > 0):
            raise InvalidInputError(f"subspace_provider(...): expected positive constants, got minimum {float(np.min(L))}")
        self.L[first_row:] = L
        log.fields["L_radius"] = radius
        log.fields.setdefault("L_certificates", []).append(str(digest))

    def _certified_L(self, theta: np.ndarray) -> np.ndarray:
        L = as_array("L_provider(theta)", self._L_provider(theta), shape=(self.n_constraints,))
        if not np.all(L > 0):
            raise InvalidInputError(f"L_provider(theta): expected positive constants, got minimum {float(np.min(L))}")
        return L.copy()

    # ------------------------------------------------------------------ one iteration
    def step(self) -> StepRecord:
        """Run one SCPO iteration and return its record.

        The iterate changes only if the evaluated ``g`` at the candidate satisfies
        ``max g ≤ 0`` (and the objective decreases sufficiently, unless disabled).

        Returns
        -------
        StepRecord
            What the iteration did; ``accepted`` says whether ``θ`` moved.
        """
        log = StepLog(self)
        self.iteration += 1
        f_before = self._f
        f_now, grad = self._gradient(log)
        grad_norm = float(np.linalg.norm(grad))
        raw = self._raw_step(grad) if np.all(np.isfinite(grad)) else np.full(self.dim, np.nan)
        raw_norm = float(np.linalg.norm(raw))
        log.begin(objective_before=f_before, gradient_norm=grad_norm, raw_step_norm=raw_norm)
        if not (np.isfinite(raw_norm) and raw_norm > 0):
            return log.finish(False, "zero_gradient" if raw_norm == 0 else "nonfinite_gradient")
        try:
            if not self.config.projection:
                return self._unprojected_step(raw, raw_norm, log)
            probe, G_probe = self._probe(raw, raw_norm, log)
            if len(self.bank) and self._subspace is not None:
                self._subspace_L(log)
            while log.tries < self.config.max_tries:
                if len(self.bank) == 0:
                    raise Rejected("empty_bank", rejected_tries=log.tries)
                projection = self._project(raw, log)
                record = self._line_search(projection, grad, f_now, probe, G_probe, log)
                if record is not None:
                    return record
        except Rejected as stop:
            return log.finish(False, stop.reason, **stop.fields)
        reason = "region_certificate_failed" if log.fields.get("gate_reason") and log.last_failure == "gate" else "prediction_failed"
        return log.finish(False, reason, rejected_tries=log.tries, L_raised_rows=int(log.L_raised.sum()))

    # ------------------------------------------------------------------ 1. raw step
    def _raw_step(self, grad: np.ndarray) -> np.ndarray:
        """``Δ_raw`` by the configured rule; Adam's moments advance."""
        step, self._adam = raw_direction(self.config, grad, self._adam)
        return step

    def _unprojected_step(self, raw: np.ndarray, raw_norm: float, log: StepLog) -> StepRecord:
        """``projection=False``: take the raw step whenever ``g`` there is finite."""
        cand = self._theta + raw
        G, dt = self._evaluate(cand[None, :])
        log.eval_time += dt
        G = G[0]
        if not np.all(np.isfinite(G)):
            raise Rejected("nonfinite_constraints", candidate_max_constraint=float(np.max(G)))
        f_c = float(self._objective(cand))
        self._theta = cand
        self._g, self._f = G, f_c
        return log.finish(True, "unprojected", step_norm=raw_norm, alpha=1.0, candidate_max_constraint=float(np.max(G)))

    # ------------------------------------------------------------------ 2. probing and the bank
    def _probe_offset(self, direction: np.ndarray) -> np.ndarray:
        """``direction`` capped at the probe radius (and at the certified ball, if any)."""
        r = self.config.probe_radius
        if self._trust is not None:
            r = self._trust if r is None else min(r, self._trust)
        norm = float(np.linalg.norm(direction))
        if r is None or norm <= r:
            return direction.copy()
        return direction * (r / norm)

    def _block_probes(self, raw_norm: float, log: StepLog) -> list[np.ndarray]:
        """The extra probe offsets of ``config.block_probes``, preconditioned like the raw step."""
        cfg = self.config
        t0 = time.perf_counter()
        extra = np.asarray(self._directions(self._theta, cfg.block_probes), dtype=float)
        log.grad_time += time.perf_counter() - t0  # block gradients are gradients too
        if extra.ndim != 2 or extra.shape[1] != self.dim:
            raise ShapeError(f"directions: expected an array of shape (k, {self.dim}), got {extra.shape}")
        if cfg.direction == "adam" and self._adam.count:
            v_hat = self._adam.v / (1.0 - cfg.beta2**self._adam.count)
            extra = extra / (np.sqrt(v_hat) + cfg.adam_eps)
        out = []
        for e in extra:
            n = float(np.linalg.norm(e))
            if np.isfinite(n) and n > 0:
                out.append(self._probe_offset(e * (raw_norm / n)))
        return out

    def _probe(self, raw: np.ndarray, raw_norm: float, log: StepLog) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate the raw-direction probe and the block probes in one batch; add them to the bank.

        Returns the raw probe's offset (d,) and its evaluated ``g`` (N,).
        """
        probe = self._probe_offset(raw)
        probes = [probe]
        if self.config.block_probes and self._directions is not None:
            probes += self._block_probes(raw_norm, log)
        G_all, dt = self._evaluate(self._theta[None, :] + np.stack(probes[::-1]))
        log.eval_time += dt
        for p_off, row in zip(probes[::-1], G_all):
            if np.all(np.isfinite(row)):
                self.bank.add(p_off, row)
        return probe, G_all[-1]

    # ------------------------------------------------------------------ 3. the projection
    def _project(self, raw: np.ndarray, log: StepLog) -> _Projection:
        """Solve the SOCP on the current bank and make its step satisfy (★) in numpy.

        The step is scaled by the largest factor for which every row of (★), with ``‖Δ‖²``
        computed in parameter space (not from the Gram matrix), holds in floating point, and
        kept inside the certified ball when there is one.
        """
        norms, gram, q = self.bank.geometry(raw)
        H = self.bank.difference_quotients(self._g)
        try:
            res = self.socp.solve(gram, q, norms, self._g, H, self.L, max_norm=self._trust)
        except SolverError as exc:
            logger.warning("iteration %d: %s", self.iteration, exc)
            raise Rejected("solver_failed", rejected_tries=log.tries, solver_status=str(exc)[:300]) from None
        log.solved(res)
        step = self.bank.step(res.coef)
        a1, a2 = bound_coefficients(H, self.L, norms, res.coef, float(step @ step))
        scale = max_feasible_scale(self._g, a1, a2)
        if self._trust is not None and np.linalg.norm(step) * scale > self._trust:
            scale *= self._trust / (np.linalg.norm(step) * scale)  # stay inside the certified ball
        coef, step = res.coef * scale, step * scale
        a1, a2 = bound_coefficients(H, self.L, norms, coef, float(step @ step))
        log.fields["feasibility_scale"] = res.scale * scale
        step_norm = float(np.linalg.norm(step))
        theta_scale = 1.0 + float(np.linalg.norm(self._theta))
        if not step_norm > NEGLIGIBLE_STEP * theta_scale:
            raise Rejected("zero_step", rejected_tries=log.tries)
        return _Projection(coef=coef, step=step, a1=a1, a2=a2, H=H, norms=norms, theta_scale=theta_scale)

    # ------------------------------------------------------------------ 4. acceptance
    def _line_search(
        self, proj: _Projection, grad: np.ndarray, f_now: float, probe: np.ndarray, G_probe: np.ndarray, log: StepLog
    ) -> StepRecord | None:
        """Try ``θ + αΔ*`` for ``α = 1, ½, …``; the record of an accepted step, or None to re-solve.

        Every ``α ≤ 1`` is feasible for (★) in exact arithmetic (the bound is convex along the
        ray with ``g ≤ 0`` at 0); the feasible scale makes it hold in floating point too.
        """
        cfg = self.config
        alpha = 1.0
        f_dir = float(grad @ proj.step)
        for _ in range(cfg.max_backtracks + 1):
            alpha *= max_feasible_scale(self._g, alpha * proj.a1, alpha * alpha * proj.a2)
            cand_offset = alpha * proj.step
            if np.allclose(cand_offset, probe, rtol=1e-12, atol=0.0):
                cand_offset = probe  # round-off away from the probe: use the evaluated point
            cand = self._theta + cand_offset
            if np.array_equal(cand_offset, probe) and np.all(np.isfinite(G_probe)):
                G = G_probe  # the probe was exactly this point: reuse its evaluation
            else:
                G2, dt = self._evaluate(cand[None, :])
                log.eval_time += dt
                G = G2[0]
            pred = self._g + alpha * proj.a1 + alpha * alpha * proj.a2
            log.candidate(G, pred)
            eps_g = EVAL_RTOL * (1.0 + np.maximum(np.abs(self._g), np.abs(np.nan_to_num(G))))
            tol = eps_g * (2.0 + 2.0 * float(np.sum(np.abs(alpha * proj.coef) / proj.norms)))
            over = ~(G <= pred + tol)
            unsafe = ~(G <= 0)  # NaN is unsafe
            if np.any(over) or np.any(unsafe):
                self._learn_from_failure(proj, alpha, cand_offset, probe, G, over, unsafe, log)
                return None
            f_c = float(self._objective(cand))
            if cfg.armijo < 0 or (np.isfinite(f_c) and f_c <= f_now + cfg.armijo * alpha * min(f_dir, 0.0)):
                if self._gate is not None and not self._ask_gate(cand, cand_offset, G, log):
                    return None
                return self._accept(cand, cand_offset, G, f_c, alpha, log)
            log.tries += 1
            log.try_reasons.append(f"no_decrease at alpha={alpha:.4g}")
            alpha *= 0.5
        raise Rejected("no_decrease", rejected_tries=log.tries, L_raised_rows=int(log.L_raised.sum()))

    def _learn_from_failure(
        self, proj: _Projection, alpha: float, cand_offset: np.ndarray, probe: np.ndarray, G: np.ndarray,
        over: np.ndarray, unsafe: np.ndarray, log: StepLog,
    ) -> None:
        """A candidate exceeded (★) or is unsafe: raise ``L`` on those rows, keep the point in the bank."""
        cfg = self.config
        log.tries += 1
        log.last_failure = "prediction"
        log.try_reasons.append("prediction" if np.any(over) else "unsafe")
        log.fields["prediction_failures"] += int(np.any(over))
        log.fields["safety_rejections"] += int(np.any(unsafe))
        bad = over | unsafe
        if cfg.L_mode != "adaptive":
            # with certified L, (★) is a sound bound and every candidate satisfies it with g ≤ 0: a bug, not a tuning event
            logger.warning("iteration %d: L_mode=%r but a candidate was rejected (%s; %d rows over (★), %d rows > 0)", self.iteration,
                           cfg.L_mode, "unsafe" if np.any(unsafe) else "prediction", int(over.sum()), int(unsafe.sum()))
        if not (cfg.L_fixed or cfg.L_mode != "adaptive"):
            need = required_L(G, self._g, proj.H, proj.norms, alpha * proj.coef, float(cand_offset @ cand_offset))
            need = np.where(np.isfinite(need), need, 0.0)
            self.L[bad] = np.maximum(self.L[bad] * cfg.L_growth, need[bad] * cfg.L_growth)
            log.L_raised |= bad
        if np.all(np.isfinite(G)) and not np.array_equal(cand_offset, probe) \
                and np.linalg.norm(cand_offset) > NEGLIGIBLE_STEP * proj.theta_scale:
            self.bank.add(cand_offset, G)

    def _ask_gate(self, cand: np.ndarray, cand_offset: np.ndarray, G: np.ndarray, log: StepLog) -> bool:
        """The sound gate on a candidate that passed the evaluated test; extend ``g`` when it refuses."""
        verdict = self._gate(cand, self._theta)
        log.fields["gate_tries"] = log.fields.get("gate_tries", 0) + 1
        log.fields["gate_time_s"] = log.fields.get("gate_time_s", 0.0) + float(verdict.time_s)
        if verdict.ok:
            self.last_certificate = verdict.certificate
            return True
        log.tries += 1
        log.last_failure = "gate"
        log.try_reasons.append(f"gate: {verdict.reason}")
        log.fields["gate_rejections"] = log.fields.get("gate_rejections", 0) + 1
        log.fields["gate_reason"] = verdict.reason
        if verdict.extension is not None:
            self._extend_rows(verdict.extension, cand_offset, G, log)
        return False

    def _extend_rows(self, ext: RowExtension, cand_offset: np.ndarray, G_cand: np.ndarray, log: StepLog) -> None:
        """Add ``k`` rows to ``g``: evaluate them at ``θ``, at every bank point and at the candidate.

        ``θ`` itself must satisfy them (it was certified on the region the new rows come from);
        otherwise the extension is refused with :class:`~scpo.errors.UnsafeStartError`.
        """
        like = np.asarray(ext.like, dtype=np.int64)
        k = like.size
        if k == 0:
            return
        pts = np.concatenate([self._theta[None, :], self._theta[None, :] + self.bank.offsets, (self._theta + cand_offset)[None, :]])
        t0 = time.perf_counter()
        vals = np.asarray(ext.evaluate(pts), dtype=float)
        log.eval_time += time.perf_counter() - t0
        if vals.shape != (pts.shape[0], k):
            raise ShapeError(f"extension.evaluate: expected shape {(pts.shape[0], k)}, got {vals.shape}")
        if not np.all(vals[0] <= 0):
            raise UnsafeStartError(f"extension: the current iterate violates {int(np.sum(~(vals[0] <= 0)))} of the new rows "
                                   f"(max {float(np.nanmax(vals[0])):.3e}); the rows do not come from a region it was certified on")
        self._g = np.concatenate([self._g, vals[0]])
        self.L = np.concatenate([self.L, self.L[like]])
        self.bank.extend_rows(vals[1:-1])
        self.n_constraints += k
        if self._subspace is not None and len(self.bank):
            self._subspace_L(log, first_row=self.n_constraints - k)  # the new rows get their own certified constants
        log.L_raised = np.concatenate([log.L_raised, np.zeros(k, dtype=bool)])
        log.fields["rows_added"] = log.fields.get("rows_added", 0) + k
        G_full = np.concatenate([G_cand, vals[-1]])
        if np.all(np.isfinite(G_full)) and np.linalg.norm(cand_offset) > 0:
            self.bank.add(cand_offset, G_full)

    def _accept(self, cand: np.ndarray, cand_offset: np.ndarray, G: np.ndarray, f_c: float, alpha: float,
                log: StepLog) -> StepRecord:
        """Move to ``cand``: recentre the bank, update ``L`` (certified or decayed), re-probe."""
        cfg = self.config
        self._theta = cand
        self._g = G
        self._f = f_c
        self.bank.recentre(cand_offset, max_norm=self._trust)
        if self._L_provider is not None:
            self.L = self._certified_L(self._theta)
        elif cfg.L_decay < 1.0 and not cfg.L_fixed:
            self.L = np.maximum(self.L * cfg.L_decay, cfg.L_min)
        log.eval_time += self._refresh(cand_offset)
        return log.finish(
            True,
            "accepted",
            step_norm=float(np.linalg.norm(cand_offset)),
            alpha=alpha,
            rejected_tries=log.tries,
            L_raised_rows=int(log.L_raised.sum()),
        )

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

        Returns
        -------
        dict of str to ndarray
            ``theta`` (d,), ``g`` (N,), ``L`` (N,), ``adam_m``, ``adam_v`` (d,), ``counters``
            (iteration, Adam step count, evaluations; int64), ``objective`` (1,), and with the bank
            ``bank_offsets`` (m, d), ``bank_values`` (m, N), ``bank_theta_ref`` (d,).
        """
        it = self._iterate_arrays()
        out = {
            "theta": it["theta"],
            "g": it["g"],
            "L": self.L.copy(),
            "adam_m": self._adam.m.copy(),
            "adam_v": self._adam.v.copy(),
            "counters": np.array([self.iteration, self._adam.count, self.evaluations], dtype=np.int64),
            "objective": it["objective"],
        }
        if include_bank:
            out.update(self.bank_state())
        return out

    def bank_state(self) -> dict[str, np.ndarray]:
        """The bank with the iterate its offsets are relative to.

        Returns
        -------
        dict of str to ndarray
            ``bank_offsets`` (m, d), ``bank_values`` (m, N), ``bank_theta_ref`` (d,).
        """
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
        self._load_iterate_arrays(state)
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
        bank = bank if bank is not None else (state if "bank_offsets" in state else None)
        if bank is not None:
            self.bank.load_state(bank)
            ref = as_array("bank_theta_ref", bank.get("bank_theta_ref", self._theta), shape=(self.dim,))
            if len(self.bank):
                self.bank.recentre(self._theta - ref)
