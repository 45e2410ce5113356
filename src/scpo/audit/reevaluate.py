"""Re-evaluation at the audited checkpoints (evaluated): ``g``, ``f`` and reach-avoid.

* ``g`` (the task's constraint function, the definition of the safety metric) is evaluated
  afresh in batches of checkpoints; its maximum must reproduce the recorded ``max_constraint``
  within :class:`~scpo.audit.AuditTolerances` and be ``≤ 0`` (check ``constraints``).
* ``f`` must reproduce the recorded objective (check ``objective``).
* When the problem has a terminal set, the closed loop is rolled out by the audit's own
  implementation (:mod:`scpo.audit.rollout`) from every grid state of the safety region and the
  reach-avoid claim (:func:`scpo.certify.reach_avoid.reach_avoid_claim`) is checked on it with no
  tolerance (check ``reach_avoid``).
* Accepted iterates without a checkpoint keep only their recorded ``max_constraint``, which must
  be finite and ``≤ 0`` (check ``recorded_constraint``); a note says they were not re-evaluated.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evidence import Level
from .reader import Checkpoints, RunFiles, recorded_number
from .result import AuditTolerances, Findings
from .rollout import closed_loop, layers_from_tensors, policy_switch

__all__ = ["BlockUnit", "check_recorded_constraints", "plan_blocks", "run_block_unit"]


def check_recorded_constraints(files: RunFiles, findings: Findings) -> None:
    """Every accepted record has a finite recorded ``max g ≤ 0`` and no ``violation`` flag.

    Parameters
    ----------
    files : RunFiles
    findings : Findings
        Receives a failing ``recorded_constraint`` check per unsafe accepted record, or one passing
        check; and a note counting accepted iterates without a checkpoint.
    """
    bad = unaudited = 0
    for r in files.records:
        if not r["accepted"]:
            continue
        g = recorded_number(r["max_constraint"])
        flagged = r.get("violation") is True
        if not g <= 0 or flagged:
            bad += 1
            findings.add("recorded_constraint", r["iteration"], Level.EVALUATED, False,
                         f"accepted iterate with recorded max g = {g:.6g}" + (" (> 0 or NaN)" if not g <= 0 else "")
                         + (" and violation = true" if flagged else "") + ": an unsafe iterate was accepted")
        if r.get("checkpoint") is None:
            unaudited += 1
    if bad == 0:
        acc = sum(1 for r in files.records if r["accepted"])
        findings.add("recorded_constraint", None, Level.EVALUATED, True,
                     f"all {acc} accepted records have a finite recorded max g ≤ 0 (as evaluated at training time)")
    if unaudited:
        findings.note(
            f"{unaudited} accepted iterate(s) have no checkpoint (checkpoint_every = {files.config['train'].get('checkpoint_every')}): "
            "their g is the recorded training-time evaluation, bound to the chain by hash but not re-evaluated"
        )


def _check_g(it: int, g: np.ndarray, rec: float, tol: AuditTolerances, findings: Findings) -> None:
    finite = bool(np.all(np.isfinite(g))) and g.size > 0
    gmax = float(np.max(g)) if g.size else float("nan")
    allowed = tol.g_atol + tol.g_rtol * abs(rec) if math.isfinite(rec) else float("nan")
    diff = abs(gmax - rec) if math.isfinite(rec) else float("inf")
    reproduced = finite and diff <= allowed
    safe = finite and gmax <= 0
    src = "base_certificate.json" if it == 0 else "its record"
    if reproduced and safe:
        msg = f"re-evaluated max g = {gmax:.6g} ≤ 0 over {g.size} rows; reproduces {src} ({rec:.6g}) to {diff:.1e}"
    else:
        parts = []
        if not finite:
            parts.append(f"g has {int(np.sum(~np.isfinite(g)))} NaN/inf row(s)")
        if finite and not safe:
            parts.append(f"re-evaluated max g = {gmax:.6g} > 0: constraint row {int(np.argmax(g))} is violated")
        if not reproduced:
            parts.append(f"re-evaluated max g = {gmax:.10g} differs from {src}'s max_constraint {rec:.10g} by {diff:.3g} "
                         f"(tolerance {tol.g_atol:g} + {tol.g_rtol:g}·|recorded|)")
        msg = "; ".join(parts)
    findings.add("constraints", it, Level.EVALUATED, reproduced and safe, msg, max_constraint=gmax, recorded=rec,
                 difference=diff, rows=int(g.size))


def _check_objective(it: int, f: float, rec: float, tol: AuditTolerances, findings: Findings) -> None:
    allowed = tol.objective_rtol * max(1.0, abs(rec))
    ok = math.isfinite(f) and abs(f - rec) <= allowed
    findings.add("objective", it, Level.EVALUATED, ok,
                 f"re-evaluated f = {f:.10g} reproduces the recorded {rec:.10g}" if ok
                 else f"re-evaluated f = {f:.10g} differs from the recorded {rec:.10g} by {abs(f - rec):.3g} (tolerance {allowed:.1g})",
                 objective=f, recorded=rec)


def _check_reach_avoid(its: tuple[int, ...], tensors: tuple[dict[str, np.ndarray], ...], names: tuple[str, ...], task: Any,
                       findings: Findings) -> None:
    from ..certify.reach_avoid import reach_avoid_claim

    problem = task.problem
    x0 = np.asarray(task.safety_states, dtype=float)
    layers = layers_from_tensors(list(tensors), list(names))
    states, inputs = closed_loop(problem, layers, x0, activation=task.structure.activation, switch=policy_switch(task.policy))
    for k, it in enumerate(its):
        c = reach_avoid_claim(problem, x0, states[k], inputs[k], iteration=it)
        d = c.details
        msg = (
            f"all {d['grid_states']} grid states of S reach X_f within T = {d['horizon']} steps inside the constraints "
            f"(worst margin {d['worst_margin']:.3g}; the audit's own closed loop from the checkpoint tensors)"
            if c.holds
            else f"{d['failing_states']} of {d['grid_states']} grid states of S fail reach-avoid (worst margin "
            f"{d['worst_margin']:.3g}; e.g. x0 = {d['failing_examples'][0]['x0'] if d['failing_examples'] else '?'})"
        )
        findings.add("reach_avoid", it, Level.EVALUATED, c.holds, msg, worst_margin=d["worst_margin"],
                     failing_states=d["failing_states"], grid_states=d["grid_states"])


def _recorded(files: RunFiles) -> tuple[dict[int, float], dict[int, float]]:
    """Recorded ``max g`` and ``f`` by iteration (``θ₀``'s from the base certificate and the first record)."""
    recorded_g = {0: recorded_number(files.base.get("max_constraint"))}
    recorded_f: dict[int, float] = {}
    for r in files.records:
        recorded_g[r["iteration"]] = recorded_number(r["max_constraint"])
        recorded_f[r["iteration"]] = recorded_number(r.get("objective"))
    if files.records:
        recorded_f.setdefault(0, recorded_number(files.records[0].get("objective_before")))
    return recorded_g, recorded_f


def _blocks(its: list[int], added_at: list[int], chunk: int) -> list[list[int]]:
    """Consecutive iterations with the same rows of ``g`` (no state added between them), ``chunk`` at most."""
    out: list[list[int]] = []
    for it in its:
        count = sum(1 for a in added_at if a <= it)
        if out and len(out[-1]) < chunk and sum(1 for a in added_at if a <= out[-1][0]) == count:
            out[-1].append(it)
        else:
            out.append([it])
    return out


@dataclass(frozen=True)
class BlockUnit:
    """Consecutive audited checkpoints with the same rows of ``g``, as a unit of work (:mod:`scpo.audit.units`).

    Attributes
    ----------
    iterations : tuple of int
    thetas : ndarray, shape (k, d)
        Their flat parameters, in order.
    tensors : tuple of dict
        Their tensors by name (the audit's own closed loop reads them by name).
    names : tuple of str
        The tensor order of ``θ``.
    added_x0 : ndarray, shape (m, n)
        Every state the gate added to the rows of ``g`` up to the first of these iterations.
    added_margins : ndarray, shape (m,)
        Their row margins.
    recorded_g : tuple of float
        The recorded ``max g`` of each iteration (NaN when none).
    recorded_f : tuple of float
        The recorded objective of each iteration (NaN when none).
    tolerances : AuditTolerances
    """

    iterations: tuple[int, ...]
    thetas: np.ndarray
    tensors: tuple[dict[str, np.ndarray], ...]
    names: tuple[str, ...]
    added_x0: np.ndarray
    added_margins: np.ndarray
    recorded_g: tuple[float, ...]
    recorded_f: tuple[float, ...]
    tolerances: AuditTolerances


def plan_blocks(files: RunFiles, ckpts: Checkpoints, task: Any, iterations: list[int], tol: AuditTolerances,
                chunk: int) -> list[BlockUnit]:
    """The re-evaluation of the selected checkpoints, cut into blocks of at most ``chunk``.

    Parameters
    ----------
    files : RunFiles
        The recorded values.
    ckpts : Checkpoints
        The read checkpoints.
    task : Task
        Rebuilt from ``config.json``; ``row_margin`` is the default margin of an added state.
    iterations : list of int
        The selected checkpoints (see :func:`scpo.audit.parse_iterations`); those unreadable or
        without a record are left out.
    tol : AuditTolerances
    chunk : int
        Checkpoints per block (the same blocks whatever runs them, so the same numbers).

    Returns
    -------
    list of BlockUnit
        In iteration order.
    """
    recorded_g, recorded_f = _recorded(files)
    by_it = {r["iteration"] for r in files.records}
    its = sorted(i for i in iterations if i in ckpts.tensors and (i == 0 or i in by_it))
    added = [(r["iteration"], s) for r in files.records for s in (r.get("added_states") or [])]
    n = task.problem.n
    units = []
    for block in _blocks(its, [a for a, _ in added], chunk):
        upto = [s for a, s in added if a <= block[0]]
        units.append(BlockUnit(
            iterations=tuple(block),
            thetas=np.stack([ckpts.theta(i) for i in block]),
            tensors=tuple(ckpts.tensors[i] for i in block),
            names=tuple(ckpts.names),
            added_x0=np.asarray([s["x0"] for s in upto], dtype=float).reshape(len(upto), n),
            added_margins=np.asarray([s.get("margin", task.row_margin) for s in upto], dtype=float).reshape(len(upto)),
            recorded_g=tuple(recorded_g.get(i, float("nan")) for i in block),
            recorded_f=tuple(recorded_f.get(i, float("nan")) for i in block),
            tolerances=tol,
        ))
    return units


def run_block_unit(task: Any, unit: BlockUnit) -> Findings:
    """Re-evaluate ``g``, ``f`` and (with a terminal set) reach-avoid at the checkpoints of one block.

    Parameters
    ----------
    task : Task
        Rebuilt from ``config.json``: ``constraints``, ``objective``, ``problem``,
        ``safety_states``, ``structure`` and ``policy`` (its switching set) are used. When the
        block carries added states, a copy of the task receives them (``task`` itself is not
        modified).
    unit : BlockUnit

    Returns
    -------
    Findings
        ``constraints``, ``objective`` and ``reach_avoid`` checks, in iteration order.
    """
    findings = Findings()
    if len(unit.added_x0):  # the rows of g at these iterates include the states the gate added until then
        task = copy.deepcopy(task)
        task.add_constraint_states(unit.added_x0, unit.added_margins)
    tol = unit.tolerances
    g = np.asarray(task.constraints(unit.thetas), dtype=float)
    for k, it in enumerate(unit.iterations):
        _check_g(it, g[k], unit.recorded_g[k], tol, findings)
        if math.isfinite(unit.recorded_f[k]):
            _check_objective(it, float(task.objective(unit.thetas[k])), unit.recorded_f[k], tol, findings)
    if task.problem.has_terminal:
        _check_reach_avoid(unit.iterations, unit.tensors, unit.names, task, findings)
    return findings
