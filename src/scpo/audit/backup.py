"""The backup certificate, re-derived from the task's closed-loop problem.

* **With a terminal set** ``X_f = {xᵀPx ≤ γ}`` (the problem's ``has_terminal``): when the task
  says which LQR weights its backup was designed with (the protocol hook
  ``task.backup_design() -> (Q, R, gamma_shrink)``, see :func:`backup_design`), ``P`` and ``K``
  are solved afresh with :func:`scipy.linalg.solve_discrete_are` and ``γ`` from its closed form
  ``(1 − s) · min_i b_i² / (a_iᵀ P⁻¹ a_i)`` over the rows of ``Hx x ≤ hx`` and ``(Hu K) x ≤ hu``
  (own code, not :func:`scpo.systems.dlqr`), and compared with the problem's and with the values
  ``config.json`` recorded (check ``backup_recomputed``, ``evaluated``). The backup the policy
  uses (the problem's ``K, P, γ``) is then re-checked in exact rational arithmetic
  (:func:`scpo.certify.backup.backup_certificate`, checks ``backup:<claim>``, ``exact``) and the
  verdicts compared with those ``base_certificate.json`` recorded.
* **A static problem** (``A = 0, B = 0, T = 1``) with ``K = 0``: the backup's output ``u = 0``
  and the next state ``x = 0`` satisfy every row ``−hu ≤ 0``, ``−hx ≤ 0`` by structure when
  every bound is positive (check ``backup_certificate``, ``exact``).
* Otherwise no backup certificate is known to the audit, and a note says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..evidence import Level
from ..systems import ClosedLoopProblem
from .reader import RunFiles
from .result import AuditTolerances, Findings

__all__ = ["backup_design", "check_backup", "fresh_lqr"]


def backup_design(task: Any) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The LQR design of a task's backup, through the protocol hook ``task.backup_design()``.

    The hook returns ``None`` (the backup ``K`` is not an LQR gain, or was given) or
    ``(Q, R, gamma_shrink)``: the weights ``Q`` (n, n) and ``R`` (m, m) from which the problem's
    ``K`` and ``P`` were solved, and the relative shrink ``s ∈ [0, 1)`` of the closed-form terminal
    level, ``γ = (1 − s) · γ_closed_form``. A task without the hook is treated as ``None``.

    Parameters
    ----------
    task : Task

    Returns
    -------
    (ndarray, ndarray, float) or None

    Raises
    ------
    ShapeError
        The hook returned weights of the wrong shape.
    """
    design = task.backup_design()
    if design is None:
        return None
    Q, R, shrink = design
    n, m = task.problem.n, task.problem.m
    Q, R = np.atleast_2d(np.asarray(Q, dtype=float)), np.atleast_2d(np.asarray(R, dtype=float))
    if Q.shape != (n, n) or R.shape != (m, m):
        raise ShapeError(f"task.backup_design(): expected Q of shape {(n, n)} and R of shape {(m, m)}, got {Q.shape} and {R.shape}")
    return Q, R, float(shrink)


def fresh_lqr(problem: ClosedLoopProblem, Q: np.ndarray, R: np.ndarray, gamma_shrink: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``K, P`` from a fresh DARE solve and the closed-form ``γ``, by the audit's own code.

    Solves ``P = AᵀPA − AᵀPB(R + BᵀPB)⁻¹BᵀPA + Q`` with :func:`scipy.linalg.solve_discrete_are`,
    ``K = −(R + BᵀPB)⁻¹BᵀPA``, and ``γ = (1 − s) · min_i b_i² / (a_iᵀ P⁻¹ a_i)`` over the rows
    ``a_iᵀx ≤ b_i`` of ``Hx x ≤ hx`` and ``(Hu K) x ≤ hu``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        ``A, B`` and the constraints.
    Q : ndarray, shape (n, n)
    R : ndarray, shape (m, m)
    gamma_shrink : float
        ``s``.

    Returns
    -------
    K : ndarray, shape (m, n)
    P : ndarray, shape (n, n)
    gamma : float
    """
    import scipy.linalg

    A, B = problem.A, problem.B
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    P = 0.5 * (P + P.T)
    K = -np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    rows = np.vstack([problem.Hx, problem.Hu @ K])
    bnd = np.concatenate([problem.hx, problem.hu])
    denom = np.einsum("pi,ip->p", rows, np.linalg.solve(P, rows.T))
    gamma = float(np.min(bnd**2 / denom)) * (1.0 - float(gamma_shrink))
    return K, P, gamma


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _recorded_backups(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where ``config.json`` recorded the backup: ``policy`` (``K, P, gamma``) and ``policy.problem``."""
    pol = config.get("policy", {})
    sources = []
    if any(k in pol for k in ("K", "P", "gamma")):
        sources.append(("config.json", pol))
    if isinstance(pol.get("problem"), dict):
        sources.append(("config.json problem", pol["problem"]))
    return sources or [("config.json", pol)]


def _check_recomputed(files: RunFiles, problem: ClosedLoopProblem, design: tuple, tol: AuditTolerances, findings: Findings) -> None:
    K, P, gamma = fresh_lqr(problem, *design)
    cmp = {
        "K (task vs fresh DARE)": _rel(problem.K, K),
        "P (task vs fresh DARE)": _rel(problem.P, P),
        "γ (task vs fresh closed form)": _rel(problem.gamma, gamma),
    }
    for where, rec in _recorded_backups(files.config):
        cmp[f"K ({where} vs fresh)"] = _rel(rec.get("K", np.nan), K)
        cmp[f"P ({where} vs fresh)"] = _rel(rec.get("P", np.nan), P)
        cmp[f"γ ({where} vs fresh)"] = _rel(rec.get("gamma", np.nan), gamma)
    bad = {k: v for k, v in cmp.items() if not v <= tol.lqr_rtol}
    findings.add("backup_recomputed", None, Level.EVALUATED, not bad,
                 f"the backup gain K, the Lyapunov matrix P and γ agree with a fresh scipy DARE solve and the closed-form γ "
                 f"to relative {max(cmp.values()):.1e} (tolerance {tol.lqr_rtol:g})"
                 if not bad else f"disagreement beyond relative {tol.lqr_rtol:g}: " + ", ".join(f"{k} {v:.2e}" for k, v in bad.items()),
                 **cmp)


def _check_exact(files: RunFiles, problem: ClosedLoopProblem, design: tuple | None, findings: Findings) -> None:
    from ..certify.backup import backup_certificate

    Q, R = (design[0], design[1]) if design is not None else (None, None)
    claims = backup_certificate(problem.A, problem.B, problem.K, problem.P, problem.gamma, problem.Hx, problem.hx,
                                problem.Hu, problem.hu, Q=Q, R=R)
    recorded = files.recorded_claims()
    for c in claims:
        findings.add(f"backup:{c.name}", None, Level.EXACT, c.holds,
                     f"re-checked in exact rational arithmetic: {c.statement}" + ("" if c.holds else " — DOES NOT HOLD"),
                     **{k: v for k, v in c.details.items() if k != "rows"})
        rc = recorded.get(c.name)
        if rc is not None and bool(rc.get("holds")) != c.holds:
            findings.add(f"backup:{c.name}", None, Level.EXACT, False,
                         f"base_certificate.json records {c.name} holds={rc.get('holds')}, the exact re-check finds {c.holds}")
        elif rc is None:
            findings.note(f"base_certificate.json has no recorded {c.name} claim to compare with")


def _check_static(problem: ClosedLoopProblem, findings: Findings) -> None:
    zero = not np.any(problem.K != 0)  # exactly zero (NaN counts as non-zero)
    positive = bool(np.all(problem.hu > 0) and np.all(problem.hx > 0))
    rows = [problem.row_label("input", j) for j in range(problem.Hu.shape[0])]
    rows += [problem.row_label("state", j) for j in range(problem.Hx.shape[0])]
    ok = zero and positive
    findings.add("backup_certificate", None, Level.EXACT, ok,
                 f"π_safe ≡ 0 (K = 0) and every constraint ({', '.join(rows)}) has a positive bound: the backup's output u = 0 "
                 "satisfies every row by structure"
                 if ok else f"the backup of this static problem is not π_safe ≡ 0 with positive bounds "
                 f"(K = {problem.K.tolist()}, input bounds {problem.hu.tolist()}, state bounds {problem.hx.tolist()})")


def check_backup(files: RunFiles, task: Any, tol: AuditTolerances, findings: Findings) -> None:
    """Re-derive the backup certificate of the task's problem (see the module docstring).

    Parameters
    ----------
    files : RunFiles
        ``config.json``'s recorded backup and ``base_certificate.json``'s claims.
    task : Task
        The task rebuilt from ``config.json``: its ``problem`` and, through :func:`backup_design`,
        the LQR weights of its backup.
    tol : AuditTolerances
        ``lqr_rtol`` applies to the fresh DARE comparison.
    findings : Findings
    """
    problem = task.problem
    if problem.has_terminal:
        design = backup_design(task)
        if design is None:
            findings.note("the task names no LQR design of its backup (task.backup_design() is None or absent): "
                          "K, P and γ were not compared with a fresh DARE solve; the exact certificate below still applies")
        else:
            _check_recomputed(files, problem, design, tol, findings)
        _check_exact(files, problem, design, findings)
    elif problem.is_static:
        _check_static(problem, findings)
    else:
        findings.note(f"problem {problem.name!r} has no terminal set and is not static: no backup certificate known to the audit")
