"""The region certificate (DESIGN §6): sound reach-avoid over boxes covering the safety region.

Statement certified on a box ``X_i ⊆ X``. For every ``x_0 ∈ X_i`` the closed loop of ``π_θ``
satisfies ``H_x x_t ≤ h_x`` for ``t = 0..T``, ``H_u u_t ≤ h_u`` for ``t = 0..T−1`` and
``x_Tᵀ P x_T ≤ γ``. The rows for ``t ≥ 1`` are those of the problem's row layout
(:class:`~scpo.systems.RowLayout`), bounded along the rollout; the ``t = 0`` state rows do not
depend on the policy and are not rows of ``g``: they are checked on the box itself
(:func:`initial_state_rows_upper`). Each box is first bounded by interval bound propagation
(cheap, loose); boxes it leaves open are bounded by CROWN (:mod:`scpo.certify.bounds`); boxes
still open are bisected along their widest side (relative to the boxes' median widths) while the
halves are at least ``min_width`` wide. Boxes that stay open at the minimum width are *failed*:
the report names the row with the largest upper bound (which constraint, at which time step) and
whether a projected gradient search found an actual violation inside the box (``violated``) or not
(``inconclusive``: the bounds are too loose there). The *certified fraction* is the area of the
certified boxes divided by the area of the given boxes (e.g. the cover of
:func:`scpo.certify.region_cover.safety_region_cover`).

Value decrease. On every final box that provably lies outside ``X_f`` (a sound lower bound of
``xᵀPx`` over the box exceeds ``γ``), ``V(x⁺) − V(x) < 0`` is checked with the CROWN bound of
:func:`scpo.certify.bounds.bound_rollout`. Reach-avoid does not need it; it is reported.

Both claims are ``sound``: float64 bounds widened outward by the recorded margin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._validate import as_array, check_int, check_positive
from ..errors import InvalidInputError, ShapeError, UnsupportedError
from ..evidence import Claim, Level
from ..numerics import DEFAULT_MARGIN, Margin
from ..policies import MLPStructure
from ..systems import ClosedLoopProblem, constraint_rows, rollout
from .bounds import ClosedLoop, as_boxes, bound_rollout, closed_loop

__all__ = [
    "RegionConfig",
    "RegionResult",
    "require_reach_avoid",
    "initial_state_rows_upper",
    "box_rows_upper",
    "search_rows",
    "search_row_ref",
    "search_counterexamples",
    "certify_boxes",
    "certify_region",
]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, kw_only=True)
class RegionConfig:
    """Settings of the region certificate.

    Attributes
    ----------
    horizon : int or None
        ``T``; ``None`` uses the problem's horizon.
    min_width : float, default 0.002
        Boxes are bisected only while both halves are at least this wide (state units).
    max_boxes : int, default 200_000
        Budget of boxes bounded in total; boxes still open when it is spent fail with that reason.
    batch : int, default 4096
        Boxes bounded per call (CROWN chunks them further to bound memory).
    margin : Margin
        Outward widening of every bound (recorded in the claims).
    search_steps : int, default 30
        Projected-gradient steps of the counterexample search in failed boxes (0: centre and corners only).
    threads : int or None
        ``torch.set_num_threads`` during the run (restored afterwards); ``None`` leaves it.
    """

    horizon: int | None = None
    min_width: float = 0.002
    max_boxes: int = 200_000
    batch: int = 4096
    margin: Margin = field(default_factory=Margin)
    search_steps: int = 30
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.horizon is not None:
            check_int("horizon", self.horizon, minimum=1)
        check_positive("min_width", self.min_width)
        check_int("max_boxes", self.max_boxes, minimum=1)
        check_int("batch", self.batch, minimum=1)
        check_int("search_steps", self.search_steps, minimum=0)
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1)
        if not isinstance(self.margin, Margin):
            raise InvalidInputError(f"margin: expected a Margin, got {type(self.margin).__name__}")


@dataclass
class RegionResult:
    """Outcome of :func:`certify_boxes` / :func:`certify_region`.

    Attributes
    ----------
    claims : list of Claim
        ``region_reach_avoid`` and ``region_value_decrease`` (level ``sound``).
    certified_lower, certified_upper : ndarray, shape (C, n)
        Certified boxes.
    failed_lower, failed_upper : ndarray, shape (F, n)
        Failed boxes (at the minimum width, or when the budget ran out).
    failed : list of dict
        One record per failed box: bounds, worst row, counterexample.
    summary : dict
        Fractions, counts, timings.
    """

    claims: list[Claim]
    certified_lower: np.ndarray
    certified_upper: np.ndarray
    failed_lower: np.ndarray
    failed_upper: np.ndarray
    failed: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def certified_fraction(self) -> float:
        """Certified area over the area of the region."""
        return float(self.summary["certified_fraction"])

    @property
    def all_certified(self) -> bool:
        """Whether every box of the region was certified."""
        return len(self.failed) == 0 and self.summary["cells"] > 0

    def to_dict(self, *, max_failed: int = 500) -> dict[str, Any]:
        """JSON-ready record (failed boxes sorted by their worst bound, at most ``max_failed``).

        Parameters
        ----------
        max_failed : int

        Returns
        -------
        dict
            ``summary``, ``claims``, ``failed_boxes``, ``failed_boxes_listed``, ``certified_boxes``.
        """
        return {
            "summary": self.summary,
            "claims": [c.to_dict() for c in self.claims],
            "failed_boxes": self.failed[:max_failed],
            "failed_boxes_listed": min(len(self.failed), max_failed),
            "certified_boxes": {"lower": self.certified_lower.tolist(), "upper": self.certified_upper.tolist()},
        }


def require_reach_avoid(problem: ClosedLoopProblem) -> None:
    """Refuse a problem the region certificate does not apply to.

    Parameters
    ----------
    problem : ClosedLoopProblem

    Raises
    ------
    UnsupportedError
        A static problem (rows on the policy's output) or one without a terminal set ``X_f``.
    """
    if not isinstance(problem, ClosedLoopProblem):
        raise UnsupportedError(f"problem: expected a ClosedLoopProblem, got {type(problem).__name__}")
    if problem.is_static or not problem.has_terminal:
        raise UnsupportedError(
            f"problem {problem.name!r}: the region certificate needs a closed loop with a state-space safety region and a "
            "terminal set X_f = {xᵀPx ≤ γ}" + (" (this problem is static: its rows constrain the policy's output)" if problem.is_static else "")
        )


# ----------------------------------------------------------------------------- rows over boxes
def initial_state_rows_upper(problem: ClosedLoopProblem, lower: np.ndarray, upper: np.ndarray, margin: Margin = DEFAULT_MARGIN) -> np.ndarray:
    """``max_{x ∈ box} H_x x − h_x``: the ``t = 0`` state rows, evaluated on the box itself.

    ``x_0`` does not depend on the policy, so these rows are not rows of ``g`` (the row layout
    starts at ``t = 1``); the region certificate checks them here, once per box. For a row
    ``±e_i`` the value is ``±bound − h``: one correctly rounded subtraction, whose sign is exact, so
    a box on the boundary of ``X`` is not failed by the margin. Other rows are evaluated as
    ``Σ_i max(a_i l_i, a_i u_i) − h`` and widened by the margin.

    Parameters
    ----------
    problem : ClosedLoopProblem
    lower, upper : ndarray, shape (B, n)
        The boxes.
    margin : Margin

    Returns
    -------
    ndarray, shape (B, p)
    """
    H, h = problem.Hx, problem.hx
    lo, hi = np.asarray(lower), np.asarray(upper)
    out = np.maximum(lo[:, None, :] * H[None], hi[:, None, :] * H[None]).sum(-1) - h
    unit = (np.count_nonzero(H, axis=1) == 1) & (np.abs(H).max(axis=1) == 1.0)
    widened = out + margin.rel * (np.abs(out) + np.abs(h)) + margin.abs
    return np.where(unit[None, :], out, widened)


def box_rows_upper(loop: ClosedLoop, problem: ClosedLoopProblem, lower: np.ndarray, upper: np.ndarray, *, method: str,
                   margin: Margin = DEFAULT_MARGIN) -> dict[str, np.ndarray]:
    """Upper bounds of every reach-avoid row over each box (NaN counts as +inf).

    Parameters
    ----------
    loop : ClosedLoop
    problem : ClosedLoopProblem
        Constraints, terminal set and horizon ``T``.
    lower, upper : ndarray, shape (B, n)
    method : {"ibp", "crown"}
    margin : Margin

    Returns
    -------
    dict
        ``initial`` (B, p): of ``H_x x_0 − h_x`` (:func:`initial_state_rows_upper`);
        ``state`` (B, T, p): of ``H_x x_t − h_x``, ``t = 1..T``; ``input`` (B, T, q): of
        ``H_u u_t − h_u``; ``terminal`` (B,): of ``x_TᵀPx_T − γ``; ``worst`` (B,): the largest of all.
    """
    boxes = as_boxes(lower, upper, n=loop.n)
    rb = bound_rollout(loop, boxes, problem.horizon, method=method, state_rows=problem.Hx, input_rows=problem.Hu,
                       terminal_P=problem.P, margin=margin)
    st = (rb.state_rows.upper[:, 1:] - torch.tensor(problem.hx)).numpy()
    init = initial_state_rows_upper(problem, np.asarray(boxes.lower), np.asarray(boxes.upper), margin)
    inp = (rb.input_rows.upper - torch.tensor(problem.hu)).numpy()
    # γ is subtracted exactly in float64: widen once more so the subtraction cannot round inward.
    term = rb.terminal_upper.numpy() - problem.gamma
    term = term + margin.rel * (np.abs(term) + abs(problem.gamma)) + margin.abs
    init, st, inp, term = (np.where(np.isnan(a), np.inf, a) for a in (init, st, inp, term))
    worst = np.maximum(np.maximum(np.maximum(init.max(1, initial=-np.inf), st.reshape(len(st), -1).max(1, initial=-np.inf)),
                                  inp.reshape(len(inp), -1).max(1, initial=-np.inf)), term)
    return {"initial": init, "state": st, "input": inp, "terminal": term, "worst": worst}


def _worst_row(rows: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    cands = []
    st = np.concatenate([rows["initial"][i][None], rows["state"][i]])  # t = 0 … T
    t, r = np.unravel_index(int(np.argmax(st)), st.shape)
    cands.append((float(st[t, r]), "state", int(t), int(r)))
    inp = rows["input"][i]
    if inp.size:
        t2, r2 = np.unravel_index(int(np.argmax(inp)), inp.shape)
        cands.append((float(inp[t2, r2]), "input", int(t2), int(r2)))
    cands.append((float(rows["terminal"][i]), "terminal", -1, 0))
    v, kind, t, r = max(cands, key=lambda c: c[0])
    return {"kind": kind, "t": t if kind != "terminal" else None, "row": r, "upper_bound": v}


# ----------------------------------------------------------------------------- counterexamples
def search_rows(problem: ClosedLoopProblem, x0: torch.Tensor, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The rows a counterexample search maximises: the ``t = 0`` state rows, then the layout's rows.

    Parameters
    ----------
    problem : ClosedLoopProblem
    x0 : Tensor, shape (S, n)
    states, inputs : Tensor
        The rollout from ``x0``: (1, S, T+1, n) and (1, S, T, m) (:func:`scpo.systems.rollout`).

    Returns
    -------
    Tensor, shape (S, p + R)
        ``H_x x_0 − h_x`` then :func:`scpo.systems.constraint_rows` (``R = problem.layout.n_rows``).
    """
    from ..systems import Rollout

    t = problem.tensors(x0.device, x0.dtype)
    initial = x0 @ t["Hx"].T - t["hx"]
    return torch.cat([initial, constraint_rows(problem, Rollout(states, inputs))[0]], dim=1)


def search_row_ref(problem: ClosedLoopProblem, j: int) -> tuple[str, int | None, int]:
    """``(kind, t, row)`` of column ``j`` of :func:`search_rows` (``t`` is None for the terminal row).

    Parameters
    ----------
    problem : ClosedLoopProblem
    j : int

    Returns
    -------
    (str, int or None, int)
    """
    p = problem.layout.state_rows
    if j < p:
        return "state", 0, j
    ref = problem.layout.locate(j - p)
    if ref.kind == "terminal":
        return "terminal", None, 0
    return ref.kind, ref.t, ref.row


def search_counterexamples(loop: ClosedLoop, problem: ClosedLoopProblem, lower: np.ndarray, upper: np.ndarray, *,
                           steps: int = 30, samples: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look for the worst point of each box: the largest reach-avoid row over ``x_0`` in the box.

    Starts from the centre, the corners and ``samples`` uniform points, then takes ``steps``
    projected signed-gradient ascent steps on the largest row (step ``width/20``, halved every
    ten steps) from the best start. Vectorised over boxes; the rollouts are
    :func:`scpo.systems.rollout` of ``loop.policy()``.

    Parameters
    ----------
    loop : ClosedLoop
    problem : ClosedLoopProblem
        Rows and horizon.
    lower, upper : ndarray, shape (B, n)
    steps : int
        Ascent steps.
    samples : int
        Uniform starts per box.
    seed : int

    Returns
    -------
    x : ndarray, shape (B, n)
        The best point found in each box.
    value : ndarray, shape (B,)
        The largest row at ``x`` (``> 0``: an actual violation, a counterexample).
    row : ndarray of int, shape (B,)
        Its column in :func:`search_rows` (:func:`search_row_ref` says which row it is).
    """
    lo = torch.as_tensor(np.asarray(lower, dtype=float))
    hi = torch.as_tensor(np.asarray(upper, dtype=float))
    B, n = lo.shape
    if B == 0:
        return np.zeros((0, n)), np.zeros(0), np.zeros(0, dtype=int)
    gen = torch.Generator().manual_seed(seed)
    corners = torch.as_tensor(((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)) if n <= 8 else torch.zeros(0, n, dtype=torch.bool)
    starts = [((lo + hi) / 2)[:, None, :], torch.where(corners[None], hi[:, None, :], lo[:, None, :])]
    starts.append(lo[:, None, :] + torch.rand(B, samples, n, generator=gen, dtype=lo.dtype) * (hi - lo)[:, None, :])
    X = torch.cat(starts, dim=1)
    k = X.shape[1]
    policy = loop.policy()

    def value(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = x.reshape(-1, n)
        ro = rollout(loop, policy, x0, problem.horizon)
        v, j = search_rows(problem, x0, ro.states, ro.inputs).max(dim=1)
        return v, j

    with torch.no_grad():
        v, j = value(X)
    v, j = v.reshape(B, k), j.reshape(B, k)
    idx = torch.arange(B)
    best = v.argmax(dim=1)
    x = X[idx, best].clone()
    xbest, bv, bj = x.clone(), v[idx, best].clone(), j[idx, best].clone()
    step = (hi - lo) / 20
    for s in range(steps + 1):
        xg = x.clone().requires_grad_(s < steps)
        val, jj = value(xg)
        with torch.no_grad():
            better = val > bv
            xbest = torch.where(better[:, None], x, xbest)
            bv = torch.where(better, val.detach(), bv)
            bj = torch.where(better, jj, bj)
        if s == steps:
            break
        (g,) = torch.autograd.grad(val.sum(), xg)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + step * torch.sign(g), lo), hi)
        if s % 10 == 9:
            step = step / 2
    return xbest.numpy(), bv.numpy(), bj.numpy()


# ----------------------------------------------------------------------------- refinement
def _split(lo: np.ndarray, hi: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bisect each box along its widest side relative to ``scale``: returns 2B boxes."""
    w = (hi - lo) / scale
    d = np.argmax(w, axis=1)
    idx = np.arange(len(lo))
    mid = (lo[idx, d] + hi[idx, d]) / 2
    hi1 = hi.copy()
    hi1[idx, d] = mid
    lo2 = lo.copy()
    lo2[idx, d] = mid
    return np.concatenate([lo, lo2]), np.concatenate([hi1, hi])


class _Refinement:
    """The state of the IBP → CROWN → bisection loop."""

    def __init__(self, loop, problem, lo0, hi0, cfg: RegionConfig) -> None:
        self.loop, self.problem, self.cfg = loop, problem, cfg
        self.n = lo0.shape[1]
        self.area_total = float(np.prod(hi0 - lo0, axis=1).sum())
        scale = np.median(hi0 - lo0, axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        self.cert_lo, self.cert_hi = [], []
        self.fail_lo, self.fail_hi, self.fail_rows, self.fail_reason = [], [], [], []
        self.counts = {"ibp": 0, "crown": 0, "rounds": 0, "certified_by_ibp": 0, "certified_by_crown": 0}
        self.t_ibp = self.t_crown = 0.0
        self.cert_area = 0.0

    def _keep(self, lo, hi, ok) -> None:
        self.cert_lo.append(lo[ok])
        self.cert_hi.append(hi[ok])
        self.cert_area += float(np.prod(hi[ok] - lo[ok], axis=1).sum())

    def _bound(self, lo, hi, method):
        t0 = time.perf_counter()
        rows = box_rows_upper(self.loop, self.problem, lo, hi, method=method, margin=self.cfg.margin)
        dt = time.perf_counter() - t0
        if method == "ibp":
            self.t_ibp += dt
        else:
            self.t_crown += dt
        self.counts[method] += len(lo)
        ok = rows["worst"] <= 0
        self.counts[f"certified_by_{method}"] += int(ok.sum())
        self._keep(lo, hi, ok)
        return rows, ok

    def batch(self, lo, hi, unprocessed: int, next_lo: list, next_hi: list) -> None:
        """Bound one batch; certified boxes are kept, open ones split (or failed at the minimum width or budget)."""
        cfg = self.cfg
        _, ok = self._bound(lo, hi, "ibp")
        lo, hi = lo[~ok], hi[~ok]
        if not len(lo):
            return
        rows, ok = self._bound(lo, hi, "crown")
        open_idx = np.flatnonzero(~ok)
        w = (hi - lo)[open_idx]
        d = np.argmax(w / self.scale, axis=1)
        can_split = w[np.arange(len(open_idx)), d] / 2 >= cfg.min_width
        budget_left = cfg.max_boxes - self.counts["ibp"] - unprocessed - sum(len(a) for a in next_lo)
        split_idx = open_idx[can_split]
        if 2 * len(split_idx) > budget_left:
            keep = max(0, budget_left // 2)
            over = split_idx[keep:]
            split_idx = split_idx[:keep]
        else:
            over = np.zeros(0, dtype=int)
        leaf_idx = np.concatenate([open_idx[~can_split], over])
        reasons = ["minimum width"] * int((~can_split).sum()) + ["box budget (max_boxes) spent"] * len(over)
        for i, why in zip(leaf_idx, reasons):
            self.fail_lo.append(lo[i])
            self.fail_hi.append(hi[i])
            self.fail_rows.append(_worst_row(rows, int(i)))
            self.fail_reason.append(why)
        if len(split_idx):
            a, b = _split(lo[split_idx], hi[split_idx], self.scale)
            next_lo.append(a)
            next_hi.append(b)

    def run(self, lo0, hi0, progress, t_start: float) -> None:
        pend_lo, pend_hi = lo0, hi0
        batch = self.cfg.batch
        while len(pend_lo):
            self.counts["rounds"] += 1
            next_lo, next_hi = [], []
            for s in range(0, len(pend_lo), batch):
                unprocessed = max(0, len(pend_lo) - s - batch)
                self.batch(pend_lo[s : s + batch], pend_hi[s : s + batch], unprocessed, next_lo, next_hi)
            pend_lo = np.concatenate(next_lo) if next_lo else np.zeros((0, self.n))
            pend_hi = np.concatenate(next_hi) if next_hi else np.zeros((0, self.n))
            frac = self.cert_area / self.area_total
            logger.debug("round %d: %d boxes pending, certified %.5f of the area, %d failed", self.counts["rounds"],
                         len(pend_lo), frac, len(self.fail_lo))
            if progress is not None:
                progress({"round": self.counts["rounds"], "pending": int(len(pend_lo)), "certified_fraction": frac,
                          "failed": len(self.fail_lo), "boxes_bounded": self.counts["ibp"], "elapsed_s": time.perf_counter() - t_start})

    def certified(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate(self.cert_lo) if self.cert_lo else np.zeros((0, self.n))
        hi = np.concatenate(self.cert_hi) if self.cert_hi else np.zeros((0, self.n))
        return lo, hi


def _reason(problem, worst, violated, x, v, kind, t, r) -> str:
    T = problem.horizon
    where = f"at t = {worst['t']}" if worst["kind"] != "terminal" else f"at t = {T}"
    base = (f"{worst['kind']} row {problem.row_label(worst['kind'], worst['row'])} {where}: "
            f"upper bound {worst['upper_bound']:+.3e} > 0")
    if violated:
        tt = f"t = {t}" if kind != "terminal" else f"t = {T}"
        return (base + f"; violated at x0 = ({', '.join(f'{c:+.6f}' for c in x)}): "
                f"{kind} row {problem.row_label(kind, r)} at {tt} exceeds its bound by {v:.3e}")
    return base + f"; no violation found inside the box (largest row found {v:+.3e}): the bounds are inconclusive at this width"


def _failed_records(loop, problem, ref: _Refinement, cfg: RegionConfig):
    """Counterexample search in every failed box; the records sorted by their worst bound."""
    f_lo = np.array(ref.fail_lo).reshape(-1, ref.n)
    f_hi = np.array(ref.fail_hi).reshape(-1, ref.n)
    t0 = time.perf_counter()
    cx, cv, cj = search_counterexamples(loop, problem, f_lo, f_hi, steps=cfg.search_steps)
    t_search = time.perf_counter() - t0
    failed = []
    for i in range(len(f_lo)):
        kind, t, r = search_row_ref(problem, int(cj[i]))
        worst = ref.fail_rows[i]
        violated = bool(cv[i] > 0)
        failed.append({
            "lower": f_lo[i].tolist(),
            "upper": f_hi[i].tolist(),
            "width": float(np.max(f_hi[i] - f_lo[i])),
            "area": float(np.prod(f_hi[i] - f_lo[i])),
            "stopped_by": ref.fail_reason[i],
            "verdict": "violated" if violated else "inconclusive",
            "worst_bound": {**worst, "label": problem.row_label(worst["kind"], worst["row"])},
            "reason": _reason(problem, worst, violated, cx[i], cv[i], kind, t, r),
            "search": {"x0": cx[i].tolist(), "largest_row": float(cv[i]), "kind": kind, "t": t, "row": r,
                       "label": problem.row_label(kind, r)},
        })
    order = np.argsort([-f["worst_bound"]["upper_bound"] for f in failed], kind="stable")
    failed = [failed[i] for i in order]
    f_lo, f_hi = (f_lo[order], f_hi[order]) if len(order) else (f_lo, f_hi)
    return failed, f_lo, f_hi, t_search


def certify_boxes(
    loop: ClosedLoop,
    problem: ClosedLoopProblem,
    lower: np.ndarray,
    upper: np.ndarray,
    config: RegionConfig | None = None,
    *,
    progress: Progress | None = None,
    region_info: dict[str, Any] | None = None,
) -> RegionResult:
    """Certify reach-avoid on every box ``[lower_i, upper_i]``, splitting inconclusive boxes.

    Parameters
    ----------
    loop : ClosedLoop
    problem : ClosedLoopProblem
        Constraints, terminal set ``X_f`` and horizon (``config.horizon`` overrides it).
    lower, upper : array_like, shape (B, n)
        The initial boxes; the certified fraction is by area relative to their total area.
    config : RegionConfig, optional
    progress : callable, optional
        Called after every round with a dict (``round``, ``pending``, ``certified_fraction``,
        ``failed``, ``boxes_bounded``, ``elapsed_s``).
    region_info : dict, optional
        Description of the region the boxes cover (recorded in the claim).

    Returns
    -------
    RegionResult

    Raises
    ------
    UnsupportedError
        A static problem or one without a terminal set.
    ShapeError, NonFiniteError, InvalidInputError
        Malformed boxes (``lower > upper``, NaN/inf, wrong dimension).
    """
    cfg = config or RegionConfig()
    require_reach_avoid(problem)
    if cfg.horizon is not None and cfg.horizon != problem.horizon:
        problem = problem.with_horizon(cfg.horizon)
    if problem.n != loop.n:
        raise ShapeError(f"problem: expected constraints on {loop.n} states, got {problem.n}")
    boxes = as_boxes(lower, upper, n=loop.n)
    lo0, hi0 = (a.numpy().copy() for a in (boxes.lower, boxes.upper))
    if lo0.shape[0] == 0:
        raise InvalidInputError("boxes: expected at least one box, got none")
    if np.any(hi0 - lo0 <= 0):
        raise InvalidInputError("boxes: expected boxes of positive width in every coordinate (the fraction is by area)")
    old_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _certify(loop, problem, lo0, hi0, cfg, progress, region_info or {})
    finally:
        torch.set_num_threads(old_threads)


def _certify(loop, problem, lo0, hi0, cfg: RegionConfig, progress, region_info) -> RegionResult:
    t_start = time.perf_counter()
    ref = _Refinement(loop, problem, lo0, hi0, cfg)
    ref.run(lo0, hi0, progress, t_start)
    cert_lo, cert_hi = ref.certified()
    failed, f_lo, f_hi, t_search = _failed_records(loop, problem, ref, cfg)
    fail_area = float(np.prod(f_hi - f_lo, axis=1).sum()) if len(f_lo) else 0.0
    # Value decrease on every final box that provably lies outside X_f.
    t0 = time.perf_counter()
    vd = _value_decrease(loop, problem, np.concatenate([cert_lo, f_lo]), np.concatenate([cert_hi, f_hi]), cfg)
    t_vd = time.perf_counter() - t0
    frac = ref.cert_area / ref.area_total
    counts = ref.counts
    summary = {
        "horizon": problem.horizon,
        "min_width": cfg.min_width,
        "region": region_info,
        "cells": int(len(lo0)),
        "area_total": ref.area_total,
        "area_certified": ref.cert_area,
        "area_failed": fail_area,
        "certified_fraction": frac,
        "certified_boxes": int(len(cert_lo)),
        "failed_boxes": int(len(f_lo)),
        "failed_violated": int(sum(f["verdict"] == "violated" for f in failed)),
        "failed_inconclusive": int(sum(f["verdict"] == "inconclusive" for f in failed)),
        "boxes_bounded_ibp": counts["ibp"],
        "boxes_bounded_crown": counts["crown"],
        "certified_by_ibp": counts["certified_by_ibp"],
        "certified_by_crown": counts["certified_by_crown"],
        "rounds": counts["rounds"],
        "max_boxes": cfg.max_boxes,
        "time_s": time.perf_counter() - t_start,
        "time_ibp_s": ref.t_ibp,
        "time_crown_s": ref.t_crown,
        "time_counterexample_search_s": t_search,
        "time_value_decrease_s": t_vd,
        "threads": torch.get_num_threads(),
        "margin": cfg.margin.to_dict(),
        "loop": loop.describe(),
    }
    failures_by_row: dict[str, int] = {}
    for f in failed:
        key = f"{f['worst_bound']['kind']}: {f['worst_bound']['label']}"
        failures_by_row[key] = failures_by_row.get(key, 0) + 1
    summary["failures_by_row"] = failures_by_row
    claim = _reach_avoid_claim(problem, cfg, summary, failed, region_info)
    return RegionResult(claims=[claim, vd], certified_lower=cert_lo, certified_upper=cert_hi, failed_lower=f_lo,
                        failed_upper=f_hi, failed=failed, summary=summary)


def _reach_avoid_claim(problem, cfg: RegionConfig, summary: dict, failed: list, region_info: dict) -> Claim:
    frac, T = summary["certified_fraction"], problem.horizon
    region_name = region_info.get("definition", "the union of the given boxes")
    return Claim(
        name="region_reach_avoid",
        statement=(
            f"For every initial state in the certified boxes — {100 * frac:.3f}% by area of R ({region_name}) — the "
            f"closed loop of π_θ satisfies every state constraint at t = 0..{T}, every input constraint at "
            f"t = 0..{T - 1} and ends in X_f = {{xᵀPx ≤ γ}} at t = {T}; holds when all of R is certified"
        ),
        level=Level.SOUND,
        holds=bool(summary["failed_boxes"] == 0 and np.isfinite(frac)),
        details={
            "certified_fraction": frac,
            "area_certified": summary["area_certified"],
            "area_total": summary["area_total"],
            "failed_boxes": summary["failed_boxes"],
            "failed_violated": summary["failed_violated"],
            "failed_inconclusive": summary["failed_inconclusive"],
            "failures_by_row": summary["failures_by_row"],
            "horizon": T,
            "min_width": cfg.min_width,
            "methods": "IBP pre-filter, then CROWN (parallel-chord relaxation); bisection of open boxes",
            "margin": cfg.margin.to_dict(),
            "time_s": summary["time_s"],
            "worst_failed": failed[:10],
        },
    )


def _value_decrease(loop, problem: ClosedLoopProblem, lo: np.ndarray, hi: np.ndarray, cfg: RegionConfig) -> Claim:
    P = problem.P
    gamma = problem.gamma
    if len(lo) == 0:
        return Claim("region_value_decrease", "no boxes", Level.SOUND, False, {"reason": "no boxes", "required": False})
    c = (lo + hi) / 2
    r = (hi - lo) / 2
    # V convex: V(x) ≥ V(c) + ∇V(c)·(x − c) ≥ V(c) − |∇V(c)|·r on the box.
    Vc = np.einsum("bi,ij,bj->b", c, P, c)
    grad = 2 * c @ P
    v_lower = Vc - (np.abs(grad) * r).sum(1)
    v_lower = v_lower - cfg.margin.rel * (np.abs(Vc) + (np.abs(grad) * r).sum(1)) - cfg.margin.abs
    outside = v_lower > gamma
    areas = np.prod(hi - lo, axis=1)
    dv = np.full(len(lo), np.nan)
    idx = np.flatnonzero(outside)
    for s in range(0, len(idx), cfg.batch):
        part = idx[s : s + cfg.batch]
        rb = bound_rollout(loop, as_boxes(lo[part], hi[part]), 1, method="crown", value_change_P=P, margin=cfg.margin)
        dv[part] = rb.value_change_upper.numpy()
    ok = outside & (dv < 0)
    bad = np.flatnonzero(outside & ~(dv < 0))
    area_out = float(areas[outside].sum())
    return Claim(
        name="region_value_decrease",
        statement=(
            "V(x⁺) − V(x) < 0 with V(x) = xᵀPx for every state x of the final boxes that lie outside X_f "
            "(reported; the reach-avoid certificate does not need it)"
        ),
        level=Level.SOUND,
        holds=bool(len(bad) == 0 and len(idx) > 0),
        details={
            "required": False,  # reported only: reach-avoid does not need it
            "boxes_outside_Xf": int(len(idx)),
            "boxes_meeting_Xf_skipped": int(len(lo) - len(idx)),
            "area_outside_Xf": area_out,
            "area_decrease_certified": float(areas[ok].sum()),
            "fraction_decrease_certified": float(areas[ok].sum() / area_out) if area_out > 0 else None,
            "boxes_without_certified_decrease": int(len(bad)),
            "worst_bound": float(np.nanmax(dv)) if len(idx) else None,
            "examples": [{"lower": lo[i].tolist(), "upper": hi[i].tolist(), "dV_upper_bound": float(dv[i])}
                         for i in bad[np.argsort(-dv[bad])][:10]],
            "margin": cfg.margin.to_dict(),
        },
    )


def certify_region(
    problem: ClosedLoopProblem,
    structure: MLPStructure,
    theta: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    config: RegionConfig | None = None,
    *,
    progress: Progress | None = None,
    region_info: dict[str, Any] | None = None,
) -> RegionResult:
    """The region certificate of the closed loop of ``π_θ = K x + φ_θ(x)`` on the boxes ``[lower_i, upper_i]``.

    Parameters
    ----------
    problem : ClosedLoopProblem
        A closed loop with a terminal set.
    structure : MLPStructure
        The residual ``φ`` (a switching policy must be refused by the caller,
        :func:`scpo.certify.bounds.require_unswitched`).
    theta : ndarray, shape (d,)
    lower, upper : ndarray, shape (B, n)
        The cover of the region, e.g. :func:`scpo.certify.region_cover.safety_region_cover`.
    config : RegionConfig, optional
    progress : callable, optional
        See :func:`certify_boxes`.
    region_info : dict, optional
        Description of the region (the cover's ``info``), recorded in the claim.

    Returns
    -------
    RegionResult

    Raises
    ------
    UnsupportedError
        A static problem, one without a terminal set, or an unsupported activation.
    """
    require_reach_avoid(problem)
    theta = as_array("theta", theta, shape=(structure.dim,))
    return certify_boxes(closed_loop(problem, structure, theta), problem, lower, upper, config, progress=progress,
                         region_info=region_info)
