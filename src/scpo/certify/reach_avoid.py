"""Reach-avoid and value-decrease certificates evaluated on a grid (DESIGN §6).

Statement. For every grid state ``x₀`` of the safety region ``S``, the closed loop of ``π_θ``
satisfies ``Hx x_t ≤ hx`` for ``t = 1..T``, ``Hu u_t ≤ hu`` for ``t = 0..T−1`` and ends in
``X_f = {xᵀPx ≤ γ}`` at ``t = T``. With the exact backup certificate (``X_f`` positively
invariant under the backup, which satisfies every constraint on it and makes ``V(x) = xᵀPx``
decrease), the switched policy "``π_θ`` outside ``X_f``, the backup inside" is then safe forever
and asymptotically stable from every such grid state. The level is ``evaluated``: it is checked at
the grid states only (the region certificate of :mod:`scpo.certify.bounds` covers the boxes
between them soundly).

The value decrease ``V(x_{t+1}) − V(x_t)`` along the rollouts is reported with its worst case and
the states where it fails; reach-avoid does not need it outside ``X_f``, so it is information,
not part of the verdict.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidInputError
from ..evidence import Claim, Level
from ..systems import ClosedLoopProblem, Rollout, constraint_rows

__all__ = ["reach_avoid_claim", "value_decrease_claim"]


def reach_avoid_claim(
    problem: ClosedLoopProblem,
    initial_states: np.ndarray,
    states: np.ndarray,
    inputs: np.ndarray,
    *,
    iteration: int | None = None,
) -> Claim:
    """Check reach-avoid on rollouts from grid states (rows of :func:`scpo.systems.constraint_rows`).

    Parameters
    ----------
    problem : ClosedLoopProblem
        With a terminal set ``X_f``.
    initial_states : ndarray, shape (S, n)
    states : ndarray, shape (S, T+1, n)
        Closed-loop states, ``states[:, 0] == initial_states``.
    inputs : ndarray, shape (S, T, m)
    iteration : int, optional
        For the record.

    Returns
    -------
    Claim
        Level ``evaluated``. Fails on any violated row and on any NaN/inf in the rollouts.
    """
    if not problem.has_terminal:
        raise InvalidInputError("problem: reach-avoid needs a terminal set X_f = {xᵀPx ≤ γ}; this problem has none")
    P, gamma = problem.P, problem.gamma
    rows = constraint_rows(problem, Rollout(torch.as_tensor(np.asarray(states, dtype=float))[None],
                                            torch.as_tensor(np.asarray(inputs, dtype=float))[None]))[0].numpy()
    lay = problem.layout
    T, p, q = lay.horizon, lay.state_rows, lay.input_rows
    sx, su, term = rows[:, : T * p], rows[:, T * p : T * (p + q)], rows[:, -1]
    finite = np.all(np.isfinite(states), axis=(1, 2)) & np.all(np.isfinite(inputs), axis=(1, 2))
    worst_state = np.max(sx.reshape(sx.shape[0], -1), axis=1) if sx.size else np.full(states.shape[0], -np.inf)
    worst_input = np.max(su.reshape(su.shape[0], -1), axis=1) if su.size else np.full(states.shape[0], -np.inf)
    ok = finite & (worst_state <= 0) & (worst_input <= 0) & (term <= 0)
    entered = np.einsum("sti,ij,stj->st", states, P, states) <= gamma
    first_entry = np.where(entered.any(axis=1), entered.argmax(axis=1), -1)
    failing = np.flatnonzero(~ok)
    worst = np.maximum.reduce([worst_state, worst_input, term])
    worst = np.where(finite, worst, np.inf)
    return Claim(
        name="reach_avoid",
        statement=(
            "Every grid state of S reaches X_f within T steps under π_θ without violating a state or input "
            "constraint (x_T ∈ X_f); with the backup on the invariant X_f, the switched closed loop is safe "
            "forever and asymptotically stable from these states"
        ),
        level=Level.EVALUATED,
        holds=bool(failing.size == 0 and initial_states.shape[0] > 0),
        details={
            "iteration": iteration,
            "grid_states": int(initial_states.shape[0]),
            "horizon": int(inputs.shape[1]),
            "failing_states": int(failing.size),
            "worst_margin": float(np.max(worst)) if worst.size else None,
            "max_first_entry_step": int(first_entry.max()) if first_entry.size else None,
            "median_first_entry_step": float(np.median(first_entry[first_entry >= 0])) if np.any(first_entry >= 0) else None,
            "failing_examples": [
                {"x0": initial_states[i].tolist(), "worst_row": float(worst[i]),
                 "state_rows": float(worst_state[i]), "input_rows": float(worst_input[i]), "terminal": float(term[i])}
                for i in failing[np.argsort(-worst[failing])][:10]
            ],
        },
    )


def value_decrease_claim(initial_states: np.ndarray, states: np.ndarray, P: np.ndarray, gamma: float) -> Claim:
    """Report ``ΔV_t = V(x_{t+1}) − V(x_t)`` along rollouts, before each trajectory enters ``X_f``.

    Parameters
    ----------
    initial_states : ndarray, shape (S, n)
    states : ndarray, shape (S, T+1, n)
        The closed-loop rollouts from ``initial_states``.
    P : ndarray, shape (n, n)
        ``V(x) = xᵀPx``.
    gamma : float
        ``X_f = {V ≤ γ}``.

    Returns
    -------
    Claim
        ``holds`` when ``ΔV < 0`` at every evaluated step outside ``X_f`` (level ``evaluated``);
        the details give the worst case and the initial states where it fails.
    """
    V = np.einsum("sti,ij,stj->st", states, P, states)
    dV = V[:, 1:] - V[:, :-1]
    outside = V[:, :-1] > gamma
    considered = np.where(outside, dV, -np.inf)
    worst_per_state = considered.max(axis=1)
    bad = np.flatnonzero(~(worst_per_state < 0) & outside.any(axis=1))
    n_steps = int(outside.sum())
    n_bad_steps = int(np.sum(~(dV < 0) & outside))
    worst = float(np.max(considered)) if n_steps else None
    return Claim(
        name="value_decrease",
        statement="V(x) = xᵀPx decreases at every step of every grid rollout outside X_f (reported; not needed for reach-avoid)",
        level=Level.EVALUATED,
        holds=bool(n_bad_steps == 0 and np.all(np.isfinite(V))),
        details={
            "required": False,
            "steps_outside_Xf": n_steps,
            "steps_without_decrease": n_bad_steps,
            "fraction_decreasing": 1.0 - n_bad_steps / n_steps if n_steps else 1.0,
            "worst_increase": worst,
            "states_with_an_increase": int(bad.size),
            "examples": [initial_states[i].tolist() for i in bad[np.argsort(-worst_per_state[bad])][:10]],
        },
    )
