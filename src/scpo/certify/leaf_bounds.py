"""Sound upper bounds of every constraint row over ``box ∩ C``, for many boxes at once.

Two passes (DESIGN §6):

* **IBP** over the whole box (a superset of ``box ∩ C``): cheap and loose, a pre-filter.
* **CROWN** in affine form (:func:`scpo.certify.bounds.crown.crown_row_affine`): for every row ``r``
  and box, ``row_r(x_0) ≤ a_r·x_0 + β_r`` for all ``x_0`` in the box. The maximum of the affine
  bound over ``box ∩ C`` is attained at one of its vertices, so

      max_{x_0 ∈ box ∩ C} row_r(x_0) ≤ max_v a_r·v + β_r .

  The vertices are exact rationals (:func:`scpo.certify.partition.clip_box`) rounded to float
  (error ``≤ u|v|`` per coordinate) and the dot products are float sums of ``n`` terms (error
  ``≤ n u Σ|a_i v_i|``); both are covered by adding ``margin.rel · max_v |a_r|·|v| + margin.abs``
  (``margin.rel = 1e-9 ≫ (n + 1) u``).

The terminal condition ``x_T ∈ X_f`` is certified when either the quadratic bound of
``x_Tᵀ P x_T`` over the box is ``≤ γ``, or every row of the terminal target ``T_in ⊆ X_f`` is
``≤ 0`` over ``box ∩ C``; its reported value is the smaller of the two margins
(``quadratic − γ`` and the largest ``T_in`` row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..numerics import DEFAULT_MARGIN, Margin
from ..systems import ClosedLoopProblem
from .bounds import as_boxes, bound_rollout
from .bounds.crown import crown_row_affine
from .bounds.network import ClosedLoop
from .bounds.types import DT

__all__ = ["LeafBounds", "leaf_bounds"]


@dataclass(frozen=True)
class LeafBounds:
    """Upper bounds of the rows over each ``box ∩ C``.

    Attributes
    ----------
    rows : ndarray, shape (B, T p + T q)
        State rows (``t = 1 … T``) then input rows (``t = 0 … T−1``), right-hand sides subtracted.
    terminal : ndarray, shape (B,)
        The terminal margin (see the module docstring); ``-inf`` when the problem has no ``X_f``.
    worst : ndarray, shape (B,)
        The largest of all; NaN counts as ``+inf``. A box is certified when ``worst ≤ 0``.
    worst_row : ndarray of int, shape (B,)
        Its index in the problem's layout (the terminal row is ``T (p + q)``).
    """

    rows: np.ndarray
    terminal: np.ndarray
    worst: np.ndarray
    worst_row: np.ndarray


def _finish(rows: np.ndarray, terminal: np.ndarray) -> LeafBounds:
    rows = np.where(np.isnan(rows), np.inf, rows)
    terminal = np.where(np.isnan(terminal), np.inf, terminal)
    allr = np.concatenate([rows, terminal[:, None]], axis=1)
    j = np.argmax(allr, axis=1)
    return LeafBounds(rows, terminal, allr[np.arange(len(allr)), j], j)


def _ibp(loop: ClosedLoop, problem: ClosedLoopProblem, lo: np.ndarray, hi: np.ndarray, target, margin: Margin) -> LeafBounds:
    rb = bound_rollout(loop, as_boxes(lo, hi, n=problem.n), problem.horizon, method="ibp", state_rows=problem.Hx,
                       input_rows=problem.Hu, terminal_P=problem.P if problem.has_terminal else None, margin=margin)
    B = lo.shape[0]
    st = (rb.state_rows.upper[:, 1:, :] - torch.tensor(problem.hx)).reshape(B, -1).cpu().numpy()
    inp = (rb.input_rows.upper - torch.tensor(problem.hu)).reshape(B, -1).cpu().numpy()
    rows = np.concatenate([st, inp], axis=1)
    if not problem.has_terminal:
        return _finish(rows, np.full(B, -np.inf))
    quad = rb.terminal_upper.cpu().numpy() - problem.gamma
    quad = quad + margin.rel * (np.abs(quad) + abs(problem.gamma)) + margin.abs
    term = quad
    if target is not None:
        xl, xu = rb.states.lower[:, -1, :].cpu().numpy(), rb.states.upper[:, -1, :].cpu().numpy()
        H, h = target.H, target.h
        tr = np.maximum(xl[:, None, :] * H[None], xu[:, None, :] * H[None]).sum(-1) - h
        tr = tr + margin.rel * (np.abs(xl[:, None, :] * H[None]).sum(-1) + np.abs(xu[:, None, :] * H[None]).sum(-1) + np.abs(h)) + margin.abs
        term = np.minimum(quad, tr.max(axis=1))
    return _finish(rows, term)


def _concretise(coef: torch.Tensor, offset: torch.Tensor, V: torch.Tensor, margin: Margin) -> np.ndarray:
    """``max_v coef·v + offset`` with the rounding allowance; ``V`` (B, K, n) padded by repetition."""
    vals = torch.einsum("brn,bkn->brk", coef, V)
    mag = torch.einsum("brn,bkn->brk", coef.abs(), V.abs())
    up = vals.max(dim=-1).values + offset + margin.rel * mag.max(dim=-1).values + margin.abs
    return up.cpu().numpy()


def _crown(loop: ClosedLoop, problem: ClosedLoopProblem, lo: np.ndarray, hi: np.ndarray, vertices: list[np.ndarray],
           target, margin: Margin) -> LeafBounds:
    B, n = lo.shape
    T, p, q = problem.horizon, problem.layout.state_rows, problem.layout.input_rows
    H = torch.tensor(problem.Hx, dtype=DT)
    Hu = torch.tensor(problem.Hu, dtype=DT)
    HT = torch.tensor(target.H, dtype=DT) if target is not None else None
    hT = torch.tensor(target.h, dtype=DT) if target is not None else None
    P = torch.tensor(problem.P, dtype=DT) if problem.has_terminal else None
    aff = crown_row_affine(loop, as_boxes(lo, hi, n=n), T, H, Hu, HT, hT, margin, P=P)
    K = max(len(v) for v in vertices)
    V = torch.as_tensor(np.stack([np.concatenate([v, np.repeat(v[:1], K - len(v), axis=0)]) for v in vertices]), dtype=DT)
    up = _concretise(aff.coef, aff.offset, V, margin)
    rhs = np.concatenate([np.tile(problem.hx, T), np.tile(problem.hu, T)])
    rows = up[:, : T * (p + q)] - rhs
    if not problem.has_terminal:
        return _finish(rows, np.full(B, -np.inf))
    quad = aff.terminal_quadratic.cpu().numpy() - problem.gamma
    quad = quad + margin.rel * (np.abs(quad) + abs(problem.gamma)) + margin.abs
    term = np.minimum(quad, up[:, T * (p + q):].max(axis=1)) if target is not None else quad
    return _finish(rows, term)


def leaf_bounds(loop: ClosedLoop, problem: ClosedLoopProblem, lower: np.ndarray, upper: np.ndarray,
                vertices: list[np.ndarray], *, method: str, target=None, margin: Margin = DEFAULT_MARGIN) -> LeafBounds:
    """Upper bounds of every row of the ``T``-step rollout over ``box_i ∩ C`` (see the module docstring).

    Parameters
    ----------
    loop : ClosedLoop
        ``x⁺ = Ax + B(Kx + φ_θ(x))``.
    problem : ClosedLoopProblem
        Rows, horizon, terminal set.
    lower, upper : ndarray, shape (B, n)
        The boxes.
    vertices : list of ndarray, shape (V_i, n)
        Vertices of each ``box_i ∩ C`` (the box's corners when it lies inside ``C``); used by CROWN.
    method : {"ibp", "crown"}
        IBP bounds over the whole box; CROWN concretises over ``box ∩ C``.
    target : Polytope, optional
        ``T_in ⊆ X_f`` for the linear terminal check.
    margin : Margin

    Returns
    -------
    LeafBounds
    """
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    if method == "ibp":
        return _ibp(loop, problem, lo, hi, target, margin)
    return _crown(loop, problem, lo, hi, vertices, target, margin)
