"""What one SCPO iteration did: :class:`StepRecord`, and the log that fills it during the step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._iterate import StepClock

if TYPE_CHECKING:
    from .projector import Projector
    from .socp import ProjectionResult

__all__ = ["StepRecord"]


@dataclass(frozen=True)
class StepRecord:
    """What one iteration did. ``theta`` after the iteration is ``Projector.theta``.

    ``accepted`` is True when ``θ`` moved; ``reason`` says why it did not otherwise
    (``"prediction_failed"``, ``"no_decrease"``, ``"zero_step"``, ``"solver_failed"``,
    ``"empty_bank"``, ``"zero_gradient"``, ``"nonfinite_gradient"``, ``"nonfinite_constraints"``).
    With ``projection=False`` every raw step with finite ``g`` is taken (``reason="unprojected"``)
    and ``max_constraint`` may be positive.

    Attributes
    ----------
    iteration : int
        Number of this iteration (1 for the first).
    accepted : bool
        Whether ``θ`` moved.
    reason : str
        ``"accepted"``, ``"unprojected"`` or why the iteration was rejected (see above).
    objective_before : float
        ``f(θ_t)``.
    objective : float
        ``f`` at the iterate after the iteration.
    gradient_norm : float
        ``‖∇f(θ_t)‖``.
    max_constraint : float
        ``max_i g_i`` at the iterate after the iteration.
    candidate_max_constraint : float
        ``max_i g_i`` at the last evaluated candidate (NaN if none).
    predicted_max_constraint : float
        ``max_i`` of the right side of (★) at the last candidate (NaN if none).
    step_norm : float
        ``‖θ_{t+1} − θ_t‖``.
    raw_step_norm : float
        ``‖Δ_raw‖``.
    alpha : float
        Line-search factor of the accepted step (0 when rejected).
    rejected_tries : int
        Candidates rejected in this iteration (prediction failures, unsafe or no decrease).
    prediction_failures : int
        Candidates whose evaluated ``g`` exceeded the prediction (★).
    prediction_excess : float
        Largest ``g_i − (★)_i`` seen at a candidate (``-inf`` if none was evaluated).
    L_min, L_max, L_median : float
        Statistics of the per-row smoothness constants after the iteration.
    L_raised_rows : int
        Rows whose ``L_i`` was raised in this iteration.
    bank_size : int
        Entries of the bank after the iteration.
    evaluations : int
        Parameter vectors at which ``g`` was evaluated in this iteration.
    solver : str
        Solver of the last SOCP (``"none"`` when none ran).
    solver_status : str
        Its status (or the failure message, or why no solve was needed).
    solver_attempts : list of dict
        Every solver call of the iteration (``solver, status, time_s``).
    socp_rows : int
        Rows of the last SOCP's working set.
    socp_rounds : int
        Working-set rounds of the last SOCP.
    feasibility_scale : float
        Product of the SOCP's and the numpy re-check's scale factors of the step.
    solve_time_s, setup_time_s : float
        Seconds in the solver and in setting up its parameters.
    evaluation_time_s, gradient_time_s, wall_time_s : float
        Seconds evaluating ``g``, computing gradients, and in the whole iteration.
    gate_tries : int
        Candidates submitted to the sound gate (0 without one).
    gate_rejections : int
        Of those, rejected because the region certificate did not hold on all of ``C``.
    rows_added : int
        Constraint rows added to ``g`` by the gate in this iteration (the adaptive validation set).
    gate_time_s : float
        Seconds in the gate.
    gate_reason : str
        Why the gate refused the last candidate it refused (empty when none).
    try_reasons : list of str
        Why each rejected try of the iteration was rejected, in order (``prediction`` — the
        evaluated ``g`` exceeded (★); ``unsafe`` — some evaluated row is > 0 or NaN;
        ``no_decrease`` — insufficient decrease at that ``α``; ``gate`` — the region certificate failed).
    safety_rejections : int
        Candidates rejected because some evaluated row was > 0 or NaN (with a certified ``L_mode``
        the theorem excludes this: a nonzero count is a bug).
    L_mode : str
        Which ``L`` the iteration used: ``adaptive``, ``certified`` (full-space ball) or
        ``subspace`` (the certified bound on the bank's span, computed in this iteration).
    L_radius : float
        Radius of the ball the subspace certificate covers (NaN when none was computed).
    L_certificates : list of str
        SHA-256 digests of the subspace certificates behind this iteration's ``L`` (one, plus one
        per row extension by a gate; :attr:`scpo.certify.smoothness.SubspaceCertificate.digest`).
    L_time_s : float
        Seconds computing the certified constants.
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
    gate_tries: int = 0
    gate_rejections: int = 0
    rows_added: int = 0
    gate_time_s: float = 0.0
    gate_reason: str = ""
    try_reasons: list[str] = field(default_factory=list)
    safety_rejections: int = 0
    L_mode: str = "adaptive"
    L_radius: float = float("nan")
    L_certificates: list[str] = field(default_factory=list)
    L_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, fields in declaration order."""
        return asdict(self)


class Rejected(Exception):
    """Raised inside :meth:`Projector.step` to end an iteration without moving ``θ``.

    ``reason`` goes to :attr:`StepRecord.reason`, ``fields`` into the record.
    """

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class StepLog(StepClock):
    """The record of one iteration while it runs (the bookkeeping of :meth:`Projector.step`).

    ``fields`` holds the record fields set so far; ``tries`` counts rejected candidates and
    ``L_raised`` marks the rows whose ``L_i`` was raised in this iteration.
    """

    def __init__(self, projector: Projector) -> None:
        super().__init__(projector)
        self._projector = projector
        self.fields: dict[str, Any] = {}
        self.attempts: list[dict[str, Any]] = []
        self.solve_time = 0.0
        self.setup_time = 0.0
        self.tries = 0
        self.last_failure = ""
        self.try_reasons: list[str] = []
        self.L_raised = np.zeros(projector.n_constraints, dtype=bool)

    def begin(self, *, objective_before: float, gradient_norm: float, raw_step_norm: float) -> None:
        """Set the fields known before any candidate is tried."""
        self.fields = dict(
            objective_before=objective_before,
            gradient_norm=gradient_norm,
            raw_step_norm=raw_step_norm,
            candidate_max_constraint=float("nan"),
            predicted_max_constraint=float("nan"),
            step_norm=0.0,
            alpha=0.0,
            rejected_tries=0,
            prediction_failures=0,
            prediction_excess=float("-inf"),
            safety_rejections=0,
            L_mode=self._projector.config.L_mode,
            L_raised_rows=0,
            solver="none",
            solver_status="not_run",
        )

    def solved(self, res: ProjectionResult) -> None:
        """Account for one answer of the projection SOCP."""
        self.attempts.extend(a.to_dict() for a in res.attempts)
        self.solve_time += res.solve_time_s
        self.setup_time += res.setup_time_s
        self.fields.update(solver=res.solver, solver_status=res.status, socp_rows=res.rows, socp_rounds=res.rounds)

    def candidate(self, G: np.ndarray, pred: np.ndarray) -> None:
        """Account for one evaluated candidate: ``G = g(θ + αΔ)`` against its prediction ``pred``."""
        self.fields.update(candidate_max_constraint=float(np.max(G)), predicted_max_constraint=float(np.max(pred)))
        excess = G - pred
        self.fields["prediction_excess"] = max(
            self.fields["prediction_excess"], float(np.max(np.where(np.isnan(excess), np.inf, excess)))
        )

    def finish(self, accepted: bool, reason: str, **extra: Any) -> StepRecord:
        """The record of the iteration, with the projector's state as it is now."""
        p = self._projector
        self.fields.update(extra)
        core = self.core()
        return StepRecord(
            accepted=accepted,
            reason=reason,
            L_min=float(np.min(p.L)),
            L_max=float(np.max(p.L)),
            L_median=float(np.median(p.L)),
            bank_size=len(p.bank),
            solver_attempts=self.attempts,
            solve_time_s=self.solve_time,
            setup_time_s=self.setup_time,
            try_reasons=list(self.try_reasons),
            **core,
            **self.fields,
        )
