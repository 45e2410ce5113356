"""What an audit returns: its tolerances, one :class:`AuditCheck` per verified statement, the
:class:`AuditResult` with its verdict, and the :class:`Findings` the checks append to.

The verdict is a word (``"verified"``, ``"failed"``, ``"bad input"``); mapping it to an exit code
is the command line's business (:mod:`scpo.cli.exit_codes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .._validate import check_nonnegative
from ..evidence import Level, _jsonable

__all__ = ["AuditCheck", "AuditResult", "AuditTolerances", "Findings", "AUDIT_VERDICTS"]

AUDIT_VERDICTS = ("verified", "failed", "bad input")
"""The possible values of :attr:`AuditResult.verdict`."""

_TOLERANCE_FIELDS = ("g_atol", "g_rtol", "objective_rtol", "lqr_rtol", "step_rtol")


@dataclass(frozen=True, kw_only=True)
class AuditTolerances:
    """Tolerances of the numerical comparisons (the exact checks have none).

    Attributes
    ----------
    g_atol, g_rtol : float
        Re-evaluated ``max g`` must satisfy ``|g_new − g_recorded| ≤ g_atol + g_rtol·|g_recorded|``
        (the same code in float64 reproduces it to a few ulps; the margin allows a different
        BLAS or batch size, and catches any edit of a recorded value beyond ~1e-9).
    objective_rtol : float
        Same for the recorded objective ``f`` (relative to ``max(1, |f|)``).
    lqr_rtol : float
        Relative agreement (Frobenius norm) of the fresh DARE solution ``P, K`` and of ``γ`` with
        the task's and the recorded values.
    step_rtol : float
        A record's ``step_norm`` must equal ``‖θ_k − θ_parent‖`` of its checkpoints within
        ``step_rtol·(1 + ‖θ_k‖)``. Training computes ``‖Δ‖`` before ``θ_k = θ_parent + Δ`` is
        rounded, so the two differ by at most about ``u·‖θ_k‖`` (measured: a few 1e-17); the
        default ``1e-12`` is thousands of ulps and still catches any edited step.

    Raises
    ------
    InvalidInputError
        A negative or non-finite tolerance.
    """

    g_atol: float = 1e-9
    g_rtol: float = 1e-9
    objective_rtol: float = 1e-9
    lqr_rtol: float = 1e-8
    step_rtol: float = 1e-12

    def __post_init__(self) -> None:
        for name in _TOLERANCE_FIELDS:
            check_nonnegative(f"AuditTolerances.{name}", getattr(self, name))

    def to_dict(self) -> dict[str, float]:
        """The tolerances by name."""
        return {k: getattr(self, k) for k in _TOLERANCE_FIELDS}


@dataclass(frozen=True)
class AuditCheck:
    """One verified statement.

    Attributes
    ----------
    name : str
        Which check, e.g. ``"checkpoint_hash"`` or ``"constraints"``.
    iteration : int or None
        The iteration it concerns (``None``: the whole run).
    level : Level
        How it was established (``exact`` for hashes, the chain, the base case and the backup
        certificate; ``evaluated`` for re-evaluated constraints and reach-avoid on the grid).
    ok : bool
        Whether the statement holds.
    message : str
        What was checked and, on failure, what is wrong.
    details : dict
        Numbers behind the verdict.
    """

    name: str
    iteration: int | None
    level: Level
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (non-finite floats become strings)."""
        return {**asdict(self), "level": self.level.value, "ok": bool(self.ok), "details": _jsonable(self.details)}


@dataclass(frozen=True)
class AuditResult:
    """The outcome of :func:`scpo.audit.audit_run`.

    Attributes
    ----------
    run : str
        The audited directory.
    task : str or None
        The task named in ``config.json`` (``None`` when it could not be read).
    checks : tuple of AuditCheck
        Every check made, in order.
    input_errors : tuple of str
        Bad input found (missing or malformed files, unknown schema); any makes the verdict
        ``"bad input"``.
    audited_iterations : tuple of int
        Checkpoints at which ``g`` (and reach-avoid) were re-evaluated.
    tolerances : AuditTolerances
        The tolerances applied.
    notes : tuple of str
        What was not checked and why (e.g. accepted iterates without a checkpoint).
    head : str or None
        The chain's head digest (:mod:`scpo.audit.head`); pin it with ``expect_head``.
    head_iteration : int or None
        The iteration the head belongs to (the last well-formed record).
    specification : tuple of str
        The constraint specification ``g`` was re-evaluated against (:mod:`scpo.audit.specification`).
    scpo_version : str
        The version of scpo that audited.
    wall_time_s : float
        Duration of the audit.
    """

    run: str
    task: str | None
    checks: tuple[AuditCheck, ...]
    input_errors: tuple[str, ...]
    audited_iterations: tuple[int, ...]
    tolerances: AuditTolerances
    notes: tuple[str, ...] = ()
    head: str | None = None
    head_iteration: int | None = None
    specification: tuple[str, ...] = ()
    scpo_version: str = ""
    wall_time_s: float = 0.0

    @property
    def failures(self) -> list[AuditCheck]:
        """The checks that did not pass."""
        return [c for c in self.checks if not c.ok]

    @property
    def verdict(self) -> str:
        """``"bad input"`` (an input error, or nothing could be checked), ``"failed"`` (a check
        failed) or ``"verified"`` (every check passed)."""
        if self.input_errors or not self.checks:
            return "bad input"
        return "failed" if self.failures else "verified"

    @property
    def ok(self) -> bool:
        """True when there is no bad input and every check passed."""
        return self.verdict == "verified"

    def counts(self) -> dict[str, dict[str, int]]:
        """Passed and failed checks per check name, in the order the names first occur."""
        out: dict[str, dict[str, int]] = {}
        for c in self.checks:
            entry = out.setdefault(c.name, {"passed": 0, "failed": 0})
            entry["passed" if c.ok else "failed"] += 1
        return out

    def levels(self) -> dict[str, str]:
        """The level of each check name (that of its first check)."""
        out: dict[str, str] = {}
        for c in self.checks:
            out.setdefault(c.name, c.level.value)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (what ``scpo audit --json`` prints, with the exit code added there)."""
        return {
            "schema_version": 1,
            "kind": "scpo.audit",
            "run": self.run,
            "task": self.task,
            "verdict": self.verdict,
            "ok": self.ok,
            "input_errors": list(self.input_errors),
            "failures": [c.to_dict() for c in self.failures],
            "counts": self.counts(),
            "audited_iterations": list(self.audited_iterations),
            "tolerances": self.tolerances.to_dict(),
            "notes": list(self.notes),
            "head": self.head,
            "head_iteration": self.head_iteration,
            "specification": list(self.specification),
            "checks": [c.to_dict() for c in self.checks],
            "scpo_version": self.scpo_version,
            "wall_time_s": self.wall_time_s,
        }

    def render_text(self, *, max_failures: int = 50, exit_code: int | None = None) -> str:
        """A readable summary: one line per check name, then each failure and input error.

        Parameters
        ----------
        max_failures : int
            Failures listed one by one; the rest are counted.
        exit_code : int, optional
            Shown beside the verdict when given (the command line passes the code it exits with).

        Returns
        -------
        str
            Lines separated by ``\\n``, the verdict last.
        """
        its = list(self.audited_iterations)
        shown = ", ".join(map(str, its[:8])) + (f", … ({len(its)} in all)" if len(its) > 8 else "")
        lines = [f"scpo audit {self.run}: task {self.task or '?'}; g re-evaluated at checkpoint(s) {shown or 'none'}"]
        lines += [f"  {s}" for s in self.specification]
        levels = self.levels()
        for name, cnt in self.counts().items():
            tag = "FAIL" if cnt["failed"] else "pass"
            lines.append(f"  {tag} [{levels[name]:>9}] {name:<28} {cnt['passed']} passed, {cnt['failed']} failed")
        for error in self.input_errors:
            lines.append(f"  BAD INPUT: {error}")
        fails = self.failures
        for c in fails[:max_failures]:
            where = f"iteration {c.iteration}" if c.iteration is not None else "run"
            lines.append(f"  FAILED {c.name} ({where}, {c.level.value}): {c.message}")
        if len(fails) > max_failures:
            lines.append(f"  … and {len(fails) - max_failures} more failures (use --json for all)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.head is not None:
            lines.append(f"  head {self.head} (iteration {self.head_iteration}; pin it with --expect-head)")
        code = "" if exit_code is None else f" (exit {exit_code})"
        lines.append(f"verdict: {self.verdict.upper()}{code}; {len(self.checks)} checks in {self.wall_time_s:.1f} s")
        return "\n".join(lines)


class Findings:
    """What the checks of one audit found so far: checks, input errors and notes (appended in order)."""

    def __init__(self) -> None:
        self.checks: list[AuditCheck] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def add(self, name: str, iteration: int | None, level: Level, ok: bool, message: str, **details: Any) -> None:
        """Record one check.

        Parameters
        ----------
        name : str
        iteration : int or None
        level : Level
        ok : bool
        message : str
        **details
            Numbers behind the verdict.
        """
        self.checks.append(AuditCheck(name, iteration, level, bool(ok), message, details))

    def extend(self, other: "Findings") -> None:
        """Append the checks, errors and notes of ``other`` (a unit's findings), in order.

        Parameters
        ----------
        other : Findings
        """
        self.checks.extend(other.checks)
        self.errors.extend(other.errors)
        self.notes.extend(other.notes)

    def error(self, message: str) -> None:
        """Record bad input.

        Parameters
        ----------
        message : str
        """
        self.errors.append(message)

    def note(self, message: str) -> None:
        """Record what was not checked and why.

        Parameters
        ----------
        message : str
        """
        self.notes.append(message)
