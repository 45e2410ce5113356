"""The constraint specification the audit checked against, printed so that a reader can see it.

The audit re-evaluates ``g`` with the constraints rebuilt from ``config.json``; a run whose
configuration widens a constraint (and whose records were rewritten to match) verifies against
the widened constraint. The specification is therefore part of the audit's output: every state
and input row in readable form, the terminal row, the horizon, how many constraint states the
rows are evaluated from, and a digest over all of it (``problem.to_dict()``, the constraint
states and the row margin) to compare with the specification one expects.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

__all__ = ["constraint_specification"]


def _rows(problem: Any, kind: str, count: int) -> str:
    return ", ".join(problem.row_label(kind, i) for i in range(count)) or "none"


def constraint_specification(task: Any) -> tuple[tuple[str, ...], str]:
    """Readable lines and the SHA-256 of the constraints ``g`` is built from.

    Parameters
    ----------
    task : Task
        Rebuilt from ``config.json``: its ``problem`` (a ClosedLoopProblem), ``constraint_states``,
        ``rows`` and ``row_margin``.

    Returns
    -------
    lines : tuple of str
    digest : str
        64 hexadecimal digits.
    """
    p = task.problem
    states = np.ascontiguousarray(task.constraint_states, dtype="<f8")
    h = hashlib.sha256(json.dumps(p.to_dict(), sort_keys=True, separators=(",", ":")).encode())
    h.update(states.tobytes())
    h.update(repr(float(task.row_margin)).encode())
    digest = h.hexdigest()
    T = p.horizon
    lines = (
        f"g(θ): {p.name}, horizon T = {T}, rows from {states.shape[0]} constraint states ({task.rows}), row margin {task.row_margin:g}",
        f"  state rows (t = 1…{T}): {_rows(p, 'state', len(p.hx))}",
        f"  input rows (t = 0…{T - 1}): {_rows(p, 'input', len(p.hu))}",
        f"  terminal row: {p.row_label('terminal') if p.has_terminal else 'none'}",
        f"  specification sha256 {digest[:16]}… (problem, constraint states, margin)",
    )
    return lines, digest
