"""Configuration of the SCPO projector."""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import check_in, check_int, check_positive
from ..errors import ConfigError, InvalidInputError
from .directions import DIRECTIONS, check_step_rule

__all__ = ["ProjectorConfig", "DIRECTIONS", "L_MODES", "SOLVERS"]

L_MODES = ("adaptive", "certified", "subspace")
"""How the projector sets ``L`` (see :class:`ProjectorConfig` ``L_mode``)."""
SOLVERS = ("auto", "clarabel", "mosek", "scs")


@dataclass(frozen=True, kw_only=True)
class ProjectorConfig:
    """Settings of :class:`scpo.projector.Projector`.

    Attributes
    ----------
    bank_size : int
        Capacity ``m`` of the bank of offsets (columns of ``D``).
    direction : {"adam", "sgd"}
        Raw step rule: ``Δ_raw = −lr ∇f`` (``sgd``) or the bias-corrected Adam direction.
    lr : float
        Learning rate ``η``.
    beta1, beta2, adam_eps : float
        Adam's moment decay rates and denominator offset.
    L_init : float
        Initial smoothness constant of every constraint row.
    L_growth : float
        Factor (> 1) applied to ``L_i`` when the evaluated ``g_i`` exceeds the prediction (★).
    L_decay : float
        Factor in ``(0, 1]`` applied to every ``L_i`` after an accepted step (1 = never decrease).
        Safety never rests on it: each accepted iterate is evaluated.
    L_min : float
        Floor for ``L_i`` when decaying.
    L_fixed : bool
        Keep ``L`` fixed at ``L_init`` (a prediction failure then only rejects the try).
    L_mode : {"adaptive", "certified", "subspace"}
        ``adaptive``: ``L`` starts at ``L_init`` and grows on prediction failures (DESIGN §3).
        ``certified``: before every step ``L`` is set to a sound bound on each row's Hessian norm
        over the ball of radius ``certified_radius`` around ``θ`` (``scpo.certify.certified_L``),
        and every point (★) uses is kept inside that ball (probes, bank offsets and the step are
        capped at the radius), so (★) is a sound bound and no step is rejected for safety.
        ``subspace``: the same, but every iteration, after its probes joined the bank, ``L`` is set
        to the sound bound on each row's Hessian restricted to the bank's span over that ball
        (``scpo.certify.smoothness.subspace_certified_L``) — the constant (★) needs, and far
        smaller than the full-space one (DESIGN §3, "Where L is used").
    certified_radius : float or None
        Radius of that ball (required for ``L_mode="certified"`` and ``"subspace"``).
    max_tries : int
        Re-solves allowed per iteration after prediction failures before the iteration is rejected.
    max_backtracks : int
        Halvings of ``α`` allowed when the objective does not decrease sufficiently.
    armijo : float
        Sufficient-decrease constant ``c₁``: accept when ``f(θ+αΔ) ≤ f(θ) + c₁ α min(∇fᵀΔ, 0)``.
        A negative value disables the decrease test (steps are then accepted on safety alone).
    probe_radius : float or None
        ``None``: the bank stores the raw step itself (the paper's plain bank). A positive
        value: the raw direction is probed at distance ``min(‖Δ_raw‖, probe_radius)``, which
        shrinks the first-order slack ``(L/2)Σ|c_k|s_k`` of (★).
    refresh : int
        Number of the newest bank directions re-probed at the current ``θ`` after each accepted
        step (0 = the paper's recentred bank; each refresh costs one evaluation of ``g``).
    block_probes : int
        Number of extra probe directions requested each iteration from the ``directions``
        callable given to the projector (e.g. gradients of the objective on disjoint blocks of
        the data), preconditioned like the raw step and probed at the current ``θ`` in one
        batched evaluation (0 = the paper's plain bank of raw steps).
    solver : {"auto", "clarabel", "mosek", "scs"}
        First solver of the fallback chain; ``auto`` takes MOSEK when a licence is found.
    working_set : int
        Initial number of constraint rows in the SOCP; rows are added until every row holds.
    projection : bool
        ``False`` gives the unconstrained baseline: the same raw steps, always accepted.
    """

    bank_size: int = 16
    direction: str = "adam"
    lr: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    L_init: float = 1.0
    L_growth: float = 2.0
    L_decay: float = 1.0
    L_min: float = 1e-6
    L_fixed: bool = False
    L_mode: str = "adaptive"
    certified_radius: float | None = None
    max_tries: int = 5
    max_backtracks: int = 4
    armijo: float = 1e-4
    probe_radius: float | None = None
    refresh: int = 0
    block_probes: int = 0
    solver: str = "auto"
    working_set: int = 64
    projection: bool = True

    def __post_init__(self) -> None:
        try:
            check_int("bank_size", self.bank_size, minimum=1)
            check_step_rule(self)
            check_positive("L_init", self.L_init)
            if not check_positive("L_growth", self.L_growth) > 1:
                raise ConfigError(f"L_growth: expected a number > 1, got {self.L_growth}")
            decay = check_positive("L_decay", self.L_decay)
            if decay > 1:
                raise ConfigError(f"L_decay: expected a number in (0, 1], got {decay}")
            check_positive("L_min", self.L_min)
            check_int("max_tries", self.max_tries, minimum=1)
            check_int("max_backtracks", self.max_backtracks, minimum=0)
            if self.probe_radius is not None:
                check_positive("probe_radius", self.probe_radius)
            check_int("refresh", self.refresh, minimum=0, maximum=self.bank_size)
            check_int("block_probes", self.block_probes, minimum=0, maximum=self.bank_size - 1)
            check_in("solver", self.solver, SOLVERS)
            check_in("L_mode", self.L_mode, L_MODES)
            if self.L_mode != "adaptive":
                if self.certified_radius is None:
                    raise ConfigError(f"certified_radius: expected a positive radius with L_mode={self.L_mode!r}, got None")
                check_positive("certified_radius", self.certified_radius)
                if not self.projection:
                    raise ConfigError(f"L_mode: {self.L_mode!r} needs projection=true")
            elif self.certified_radius is not None:
                check_positive("certified_radius", self.certified_radius)
            check_int("working_set", self.working_set, minimum=8)
            if not isinstance(self.L_fixed, bool) or not isinstance(self.projection, bool):
                raise ConfigError("L_fixed, projection: expected true or false")
        except InvalidInputError as exc:
            raise ConfigError(f"ProjectorConfig.{exc}") from None
