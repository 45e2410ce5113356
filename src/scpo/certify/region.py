"""The region certificate (DESIGN §6): sound reach-avoid over boxes covering the safety region.

Region. The safety region ``S`` of a grid task is known at grid states (``task.safety_states``).
The certificate covers

    R = ⋃_{x_j ∈ S} (x_j + [−h_1/2, h_1/2] × ⋯ × [−h_n/2, h_n/2]) ∩ X,

one grid cell (the grid spacing ``h`` per axis) centred on every grid state of ``S``, clipped to
the state box ``X`` (cells of grid states on the boundary of ``X`` are half or quarter cells).
The cells of all grid states tile ``X``, so ``R`` is the part of ``X`` nearest to the states of
``S``; its area is ``|S| × h_1 h_2`` minus the clipped parts. The *certified fraction* is the
area of the certified boxes divided by the area of ``R``.

Statement certified on a box ``X_i ⊆ X``. For every ``x_0 ∈ X_i`` the closed loop of ``π_θ``
satisfies ``H_x x_t ≤ h_x`` for ``t = 0..T``, ``H_u u_t ≤ h_u`` for ``t = 0..T−1`` and
``x_Tᵀ P x_T ≤ γ``. Each box is first bounded by interval bound propagation (cheap, loose); boxes
it leaves open are bounded by CROWN (:mod:`scpo.certify.bounds`); boxes still open are bisected
along their widest side (relative to the grid spacing) while the halves are at least
``min_width`` wide. Boxes that stay open at the minimum width are *failed*: the report names the
row with the largest upper bound (which constraint, at which time step) and whether a projected
gradient search found an actual violation inside the box (``violated``) or not
(``inconclusive``: the bounds are too loose there).

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

from .._validate import as_array, check_finite_scalar, check_int, check_positive
from ..errors import InvalidInputError, ShapeError, UnsupportedError
from ..evidence import Claim, Level
from .bounds import (
    DEFAULT_MARGIN,
    ClosedLoop,
    Margin,
    as_boxes,
    bound_rollout,
    closed_loop_from_task,
    simulate,
)

__all__ = [
    "RegionConfig",
    "ReachAvoidSpec",
    "RegionResult",
    "reach_avoid_spec",
    "safety_region_cover",
    "certify_boxes",
    "certify_region",
    "box_rows_upper",
    "rollout_rows",
    "search_counterexamples",
]

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, kw_only=True)
class RegionConfig:
    """Settings of the region certificate.

    Attributes
    ----------
    horizon : int or None
        ``T``; ``None`` uses the task's horizon.
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


@dataclass(frozen=True, kw_only=True)
class ReachAvoidSpec:
    """The rows certified along a ``T``-step rollout: ``H_x x_t ≤ h_x``, ``H_u u_t ≤ h_u``, ``x_TᵀPx_T ≤ γ``.

    Attributes
    ----------
    Hx, hx, Hu, hu : ndarray
    P : ndarray, shape (n, n), positive definite
    gamma : float
    horizon : int
    state_names, input_names : tuple of str
        Used in failure reasons (``"p ≤ 1"``).
    """

    Hx: np.ndarray
    hx: np.ndarray
    Hu: np.ndarray
    hu: np.ndarray
    P: np.ndarray
    gamma: float
    horizon: int
    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        Hx = as_array("Hx", self.Hx, ndim=2)
        n = Hx.shape[1]
        hx = as_array("hx", self.hx, shape=(Hx.shape[0],))
        Hu = as_array("Hu", self.Hu, ndim=2)
        hu = as_array("hu", self.hu, shape=(Hu.shape[0],))
        P = as_array("P", self.P, shape=(n, n))
        object.__setattr__(self, "gamma", check_finite_scalar("gamma", self.gamma))
        check_int("horizon", self.horizon, minimum=1)
        for name, val in (("Hx", Hx), ("hx", hx), ("Hu", Hu), ("hu", hu), ("P", P)):
            object.__setattr__(self, name, val)
        if not self.state_names:
            object.__setattr__(self, "state_names", tuple(f"x{i}" for i in range(n)))
        if not self.input_names:
            object.__setattr__(self, "input_names", tuple(f"u{i}" for i in range(Hu.shape[1])))

    @property
    def n(self) -> int:
        """State dimension."""
        return int(self.Hx.shape[1])

    def row_label(self, kind: str, row: int) -> str:
        """``"p ≤ 1"`` for a box row, ``"Hx[3]·x ≤ 0.5"`` otherwise, ``"xᵀPx ≤ γ"`` for the terminal row."""
        if kind == "terminal":
            return f"x_TᵀPx_T ≤ γ = {self.gamma:.6g}"
        H, h, names = (self.Hx, self.hx, self.state_names) if kind == "state" else (self.Hu, self.hu, self.input_names)
        a = H[row]
        nz = np.flatnonzero(a)
        if nz.size == 1 and abs(abs(a[nz[0]]) - 1.0) == 0.0:
            name = names[nz[0]]
            return f"{name} ≤ {h[row]:.6g}" if a[nz[0]] > 0 else f"{name} ≥ {-h[row]:.6g}"
        return f"{'Hx' if kind == 'state' else 'Hu'}[{row}]·{'x' if kind == 'state' else 'u'} ≤ {h[row]:.6g}"


def reach_avoid_spec(task: Any, horizon: int | None = None) -> ReachAvoidSpec:
    """The reach-avoid rows of a closed-loop task (the double integrator: ``|p|, |v|, |u| ≤ 1``, ``X_f``)."""
    for attr in ("system", "P", "gamma", "safety_states"):
        if not hasattr(task, attr):
            raise UnsupportedError(
                f"task: the region certificate needs a closed-loop task with a state-space safety region "
                f"(system, P, gamma, safety_states); {getattr(task, 'name', type(task).__name__)!r} has no {attr!r}"
            )
    s = task.system
    T = task.config.horizon if horizon is None else check_int("horizon", horizon, minimum=1)
    names = ("p", "v") if getattr(task, "name", "") == "double-integrator" else ()
    return ReachAvoidSpec(Hx=s.Hx, hx=s.hx, Hu=s.Hu, hu=s.hu, P=task.P, gamma=float(task.gamma), horizon=T,
                          state_names=names, input_names=("u",) if names else ())


def _state_box(Hx: np.ndarray, hx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a box when every row of ``Hx`` is ``±e_i``."""
    n = Hx.shape[1]
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for a, b in zip(Hx, hx):
        nz = np.flatnonzero(a)
        if nz.size != 1:
            raise UnsupportedError("Hx: the cover of S needs box state constraints (rows ±e_i)")
        i = nz[0]
        if a[i] > 0:
            hi[i] = min(hi[i], b / a[i])
        else:
            lo[i] = max(lo[i], b / a[i])
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise UnsupportedError("Hx: the cover of S needs a bounded state box")
    return lo, hi


def safety_region_cover(task: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Boxes covering ``R``: one grid cell around each grid state of ``S``, clipped to ``X``.

    Returns
    -------
    lower, upper : ndarray, shape (|S|, n)
    info : dict
        ``spacing`` (per axis), ``state_box``, ``cells``, ``area`` and the definition of ``R``.
    """
    spec = reach_avoid_spec(task)
    grid = np.asarray(task.grid_states, dtype=float)
    S = np.asarray(task.safety_states, dtype=float)
    spacing = []
    for i in range(grid.shape[1]):
        vals = np.unique(grid[:, i])
        if vals.size < 2:
            raise UnsupportedError(f"grid_states: expected at least two grid values on axis {i}")
        d = np.diff(vals)
        spacing.append(float(np.median(d)))
    h = np.array(spacing)
    xlo, xhi = _state_box(spec.Hx, spec.hx)
    lower = np.maximum(S - h / 2, xlo)
    upper = np.minimum(S + h / 2, xhi)
    keep = np.all(upper > lower, axis=1)
    lower, upper = lower[keep], upper[keep]
    info = {
        "definition": "R = union over grid states x_j of S of (x_j + [-h/2, h/2]^n) ∩ X (grid spacing h per axis, X the state box)",
        "spacing": h.tolist(),
        "state_box": [xlo.tolist(), xhi.tolist()],
        "cells": int(lower.shape[0]),
        "area": float(np.prod(upper - lower, axis=1).sum()),
    }
    return lower, upper, info


# ----------------------------------------------------------------------------- rows over boxes
def box_rows_upper(loop: ClosedLoop, spec: ReachAvoidSpec, lower: np.ndarray, upper: np.ndarray, *, method: str,
                   margin: Margin = DEFAULT_MARGIN) -> dict[str, np.ndarray]:
    """Upper bounds of every reach-avoid row over each box.

    Returns
    -------
    dict
        ``state`` (B, T+1, p): bound of ``H_x x_t − h_x``; ``input`` (B, T, q): of ``H_u u_t − h_u``;
        ``terminal`` (B,): of ``x_TᵀPx_T − γ``; ``worst`` (B,): the largest of all (NaN counts as +inf).
    """
    boxes = as_boxes(lower, upper, n=loop.n)
    rb = bound_rollout(loop, boxes, spec.horizon, method=method, state_rows=spec.Hx, input_rows=spec.Hu,
                       terminal_P=spec.P, margin=margin)
    st = (rb.state_rows.upper - torch.tensor(spec.hx)).numpy()
    st[:, 0, :] = _initial_rows_upper(spec, np.asarray(boxes.lower), np.asarray(boxes.upper), margin)
    inp = (rb.input_rows.upper - torch.tensor(spec.hu)).numpy()
    # γ is subtracted exactly in float64: widen once more so the subtraction cannot round inward.
    term = rb.terminal_upper.numpy() - spec.gamma
    term = term + margin.rel * (np.abs(term) + abs(spec.gamma)) + margin.abs
    st = np.where(np.isnan(st), np.inf, st)
    inp = np.where(np.isnan(inp), np.inf, inp)
    term = np.where(np.isnan(term), np.inf, term)
    worst = np.maximum(np.maximum(st.reshape(len(st), -1).max(1), inp.reshape(len(inp), -1).max(1, initial=-np.inf)), term)
    return {"state": st, "input": inp, "terminal": term, "worst": worst}


def _initial_rows_upper(spec: ReachAvoidSpec, lo: np.ndarray, hi: np.ndarray, margin: Margin) -> np.ndarray:
    """``max_{x ∈ box} H_x x − h_x`` evaluated on the box itself (t = 0 needs no propagation).

    For a row ``±e_i`` the value is ``±bound − h``: one correctly rounded subtraction, whose sign
    is exact, so a box on the boundary of ``X`` is not failed by the margin. Other rows are
    evaluated as ``Σ_i max(a_i l_i, a_i u_i) − h`` and widened by the margin.
    """
    H, h = spec.Hx, spec.hx
    out = np.maximum(lo[:, None, :] * H[None], hi[:, None, :] * H[None]).sum(-1) - h
    unit = (np.count_nonzero(H, axis=1) == 1) & (np.abs(H).max(axis=1) == 1.0)
    widened = out + margin.rel * (np.abs(out) + np.abs(h)) + margin.abs
    return np.where(unit[None, :], out, widened)


def _worst_row(rows: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    cands = []
    st, inp = rows["state"][i], rows["input"][i]
    t, r = np.unravel_index(int(np.argmax(st)), st.shape)
    cands.append((float(st[t, r]), "state", int(t), int(r)))
    if inp.size:
        t2, r2 = np.unravel_index(int(np.argmax(inp)), inp.shape)
        cands.append((float(inp[t2, r2]), "input", int(t2), int(r2)))
    cands.append((float(rows["terminal"][i]), "terminal", -1, 0))
    v, kind, t, r = max(cands, key=lambda c: c[0])
    return {"kind": kind, "t": t if kind != "terminal" else None, "row": r, "upper_bound": v}


def rollout_rows(spec: ReachAvoidSpec, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """All reach-avoid rows of point rollouts (≤ 0 safe): shape (S, (T+1)p + Tq + 1).

    Order: state rows for ``t = 0..T`` (row-major), input rows for ``t = 0..T−1``, terminal row.
    """
    Hx, hx = torch.tensor(spec.Hx), torch.tensor(spec.hx)
    Hu, hu = torch.tensor(spec.Hu), torch.tensor(spec.hu)
    P = torch.tensor(spec.P)
    sx = states @ Hx.T - hx
    su = inputs @ Hu.T - hu
    xT = states[:, -1, :]
    term = torch.einsum("si,ij,sj->s", xT, P, xT) - spec.gamma
    return torch.cat([sx.reshape(len(sx), -1), su.reshape(len(su), -1), term[:, None]], dim=1)


def _row_index(spec: ReachAvoidSpec, j: int) -> tuple[str, int | None, int]:
    T, p, q = spec.horizon, spec.Hx.shape[0], spec.Hu.shape[0]
    if j < (T + 1) * p:
        return "state", j // p, j % p
    j -= (T + 1) * p
    if j < T * q:
        return "input", j // q, j % q
    return "terminal", None, 0


def search_counterexamples(loop: ClosedLoop, spec: ReachAvoidSpec, lower: np.ndarray, upper: np.ndarray, *,
                           steps: int = 30, samples: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Look for the worst point of each box: the largest reach-avoid row over ``x_0`` in the box.

    Starts from the centre, the corners and ``samples`` uniform points, then takes ``steps``
    projected signed-gradient ascent steps on the largest row (step ``width/20``, halved every
    ten steps) from the best start. Vectorised over boxes.

    Returns
    -------
    x : ndarray, shape (B, n)
        The best point found in each box.
    value : ndarray, shape (B,)
        The largest row at ``x`` (``> 0``: an actual violation, a counterexample).
    row : ndarray of int, shape (B,)
        Index of that row in :func:`rollout_rows` order.
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

    def value(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        st, u = simulate(loop, x.reshape(-1, n), spec.horizon)
        rows = rollout_rows(spec, st, u)
        v, j = rows.max(dim=1)
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


# ----------------------------------------------------------------------------- the certificate
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
        """JSON-ready record (failed boxes sorted by their worst bound, at most ``max_failed``)."""
        return {
            "summary": self.summary,
            "claims": [c.to_dict() for c in self.claims],
            "failed_boxes": self.failed[:max_failed],
            "failed_boxes_listed": min(len(self.failed), max_failed),
            "certified_boxes": {"lower": self.certified_lower.tolist(), "upper": self.certified_upper.tolist()},
        }


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


def certify_boxes(
    loop: ClosedLoop,
    spec: ReachAvoidSpec,
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
    spec : ReachAvoidSpec
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
    ShapeError, NonFiniteError, InvalidInputError
        Malformed boxes (``lower > upper``, NaN/inf, wrong dimension).
    """
    cfg = config or RegionConfig()
    if spec.n != loop.n:
        raise ShapeError(f"spec: expected constraints on {loop.n} states, got {spec.n}")
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
        return _certify(loop, spec, lo0, hi0, cfg, progress, region_info or {})
    finally:
        torch.set_num_threads(old_threads)


def _certify(loop, spec, lo0, hi0, cfg: RegionConfig, progress, region_info) -> RegionResult:
    t_start = time.perf_counter()
    area_total = float(np.prod(hi0 - lo0, axis=1).sum())
    scale = np.median(hi0 - lo0, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    pend_lo, pend_hi = lo0, hi0
    cert_lo, cert_hi = [], []
    fail_lo, fail_hi, fail_rows, fail_reason = [], [], [], []
    counts = {"ibp": 0, "crown": 0, "rounds": 0, "certified_by_ibp": 0, "certified_by_crown": 0}
    t_ibp = t_crown = 0.0
    cert_area = 0.0
    while len(pend_lo):
        counts["rounds"] += 1
        next_lo, next_hi = [], []
        for s in range(0, len(pend_lo), cfg.batch):
            lo, hi = pend_lo[s : s + cfg.batch], pend_hi[s : s + cfg.batch]
            t0 = time.perf_counter()
            ibp = box_rows_upper(loop, spec, lo, hi, method="ibp", margin=cfg.margin)
            t_ibp += time.perf_counter() - t0
            counts["ibp"] += len(lo)
            ok = ibp["worst"] <= 0
            counts["certified_by_ibp"] += int(ok.sum())
            cert_lo.append(lo[ok])
            cert_hi.append(hi[ok])
            cert_area += float(np.prod(hi[ok] - lo[ok], axis=1).sum())
            lo, hi = lo[~ok], hi[~ok]
            if len(lo):
                t0 = time.perf_counter()
                rows = box_rows_upper(loop, spec, lo, hi, method="crown", margin=cfg.margin)
                t_crown += time.perf_counter() - t0
                counts["crown"] += len(lo)
                ok = rows["worst"] <= 0
                counts["certified_by_crown"] += int(ok.sum())
                cert_lo.append(lo[ok])
                cert_hi.append(hi[ok])
                cert_area += float(np.prod(hi[ok] - lo[ok], axis=1).sum())
                open_idx = np.flatnonzero(~ok)
                w = (hi - lo)[open_idx]
                d = np.argmax(w / scale, axis=1)
                can_split = w[np.arange(len(open_idx)), d] / 2 >= cfg.min_width
                unprocessed = max(0, len(pend_lo) - s - cfg.batch)
                budget_left = cfg.max_boxes - counts["ibp"] - unprocessed - sum(len(a) for a in next_lo)
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
                    fail_lo.append(lo[i])
                    fail_hi.append(hi[i])
                    fail_rows.append(_worst_row(rows, int(i)))
                    fail_reason.append(why)
                if len(split_idx):
                    a, b = _split(lo[split_idx], hi[split_idx], scale)
                    next_lo.append(a)
                    next_hi.append(b)
        pend_lo = np.concatenate(next_lo) if next_lo else np.zeros((0, lo0.shape[1]))
        pend_hi = np.concatenate(next_hi) if next_hi else np.zeros((0, lo0.shape[1]))
        logger.debug("round %d: %d boxes pending, certified %.5f of the area, %d failed", counts["rounds"],
                     len(pend_lo), cert_area / area_total, len(fail_lo))
        if progress is not None:
            progress({
                "round": counts["rounds"], "pending": int(len(pend_lo)), "certified_fraction": cert_area / area_total,
                "failed": len(fail_lo), "boxes_bounded": counts["ibp"], "elapsed_s": time.perf_counter() - t_start,
            })
    cert_lo_a = np.concatenate(cert_lo) if cert_lo else np.zeros((0, lo0.shape[1]))
    cert_hi_a = np.concatenate(cert_hi) if cert_hi else np.zeros((0, lo0.shape[1]))
    f_lo = np.array(fail_lo).reshape(-1, lo0.shape[1])
    f_hi = np.array(fail_hi).reshape(-1, lo0.shape[1])
    t0 = time.perf_counter()
    cx, cv, cj = search_counterexamples(loop, spec, f_lo, f_hi, steps=cfg.search_steps)
    t_search = time.perf_counter() - t0
    failed = []
    for i in range(len(f_lo)):
        kind, t, r = _row_index(spec, int(cj[i]))
        worst = fail_rows[i]
        violated = bool(cv[i] > 0)
        failed.append({
            "lower": f_lo[i].tolist(),
            "upper": f_hi[i].tolist(),
            "width": float(np.max(f_hi[i] - f_lo[i])),
            "area": float(np.prod(f_hi[i] - f_lo[i])),
            "stopped_by": fail_reason[i],
            "verdict": "violated" if violated else "inconclusive",
            "worst_bound": {**worst, "label": spec.row_label(worst["kind"], worst["row"])},
            "reason": _reason(spec, worst, violated, cx[i], cv[i], kind, t, r),
            "search": {"x0": cx[i].tolist(), "largest_row": float(cv[i]), "kind": kind, "t": t, "row": r,
                       "label": spec.row_label(kind, r)},
        })
    order = np.argsort([-f["worst_bound"]["upper_bound"] for f in failed], kind="stable")
    failed = [failed[i] for i in order]
    f_lo, f_hi = (f_lo[order], f_hi[order]) if len(order) else (f_lo, f_hi)
    fail_area = float(np.prod(f_hi - f_lo, axis=1).sum()) if len(f_lo) else 0.0
    # Value decrease on every final box that provably lies outside X_f.
    t0 = time.perf_counter()
    vd = _value_decrease(loop, spec, np.concatenate([cert_lo_a, f_lo]), np.concatenate([cert_hi_a, f_hi]), cfg)
    t_vd = time.perf_counter() - t0
    elapsed = time.perf_counter() - t_start
    frac = cert_area / area_total
    summary = {
        "horizon": spec.horizon,
        "min_width": cfg.min_width,
        "region": region_info,
        "cells": int(len(lo0)),
        "area_total": area_total,
        "area_certified": cert_area,
        "area_failed": fail_area,
        "certified_fraction": frac,
        "certified_boxes": int(len(cert_lo_a)),
        "failed_boxes": int(len(f_lo)),
        "failed_violated": int(sum(f["verdict"] == "violated" for f in failed)),
        "failed_inconclusive": int(sum(f["verdict"] == "inconclusive" for f in failed)),
        "boxes_bounded_ibp": counts["ibp"],
        "boxes_bounded_crown": counts["crown"],
        "certified_by_ibp": counts["certified_by_ibp"],
        "certified_by_crown": counts["certified_by_crown"],
        "rounds": counts["rounds"],
        "max_boxes": cfg.max_boxes,
        "time_s": elapsed,
        "time_ibp_s": t_ibp,
        "time_crown_s": t_crown,
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
    region_name = region_info.get("definition", "the union of the given boxes")
    claim = Claim(
        name="region_reach_avoid",
        statement=(
            f"For every initial state in the certified boxes — {100 * frac:.3f}% by area of R ({region_name}) — the "
            f"closed loop of π_θ satisfies every state constraint at t = 0..{spec.horizon}, every input constraint at "
            f"t = 0..{spec.horizon - 1} and ends in X_f = {{xᵀPx ≤ γ}} at t = {spec.horizon}; holds when all of R is certified"
        ),
        level=Level.SOUND,
        holds=bool(len(f_lo) == 0 and np.isfinite(frac)),
        details={
            "certified_fraction": frac,
            "area_certified": cert_area,
            "area_total": area_total,
            "failed_boxes": int(len(f_lo)),
            "failed_violated": summary["failed_violated"],
            "failed_inconclusive": summary["failed_inconclusive"],
            "failures_by_row": failures_by_row,
            "horizon": spec.horizon,
            "min_width": cfg.min_width,
            "methods": "IBP pre-filter, then CROWN (parallel-chord relaxation); bisection of open boxes",
            "margin": cfg.margin.to_dict(),
            "time_s": elapsed,
            "worst_failed": failed[:10],
        },
    )
    claims = [claim, vd]
    return RegionResult(claims=claims, certified_lower=cert_lo_a, certified_upper=cert_hi_a, failed_lower=f_lo,
                        failed_upper=f_hi, failed=failed, summary=summary)


def _reason(spec, worst, violated, x, v, kind, t, r) -> str:
    where = f"at t = {worst['t']}" if worst["kind"] != "terminal" else f"at t = {spec.horizon}"
    base = (f"{worst['kind']} row {spec.row_label(worst['kind'], worst['row'])} {where}: "
            f"upper bound {worst['upper_bound']:+.3e} > 0")
    if violated:
        tt = f"t = {t}" if kind != "terminal" else f"t = {spec.horizon}"
        return (base + f"; violated at x0 = ({', '.join(f'{c:+.6f}' for c in x)}): "
                f"{kind} row {spec.row_label(kind, r)} at {tt} exceeds its bound by {v:.3e}")
    return base + f"; no violation found inside the box (largest row found {v:+.3e}): the bounds are inconclusive at this width"


def _value_decrease(loop, spec: ReachAvoidSpec, lo: np.ndarray, hi: np.ndarray, cfg: RegionConfig) -> Claim:
    P = spec.P
    gamma = spec.gamma
    if len(lo) == 0:
        return Claim("region_value_decrease", "no boxes", Level.SOUND, False, {"reason": "no boxes"})
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


def certify_region(task: Any, theta: np.ndarray, config: RegionConfig | None = None, *,
                   progress: Progress | None = None) -> RegionResult:
    """The region certificate of a closed-loop task at parameters ``theta``.

    Parameters
    ----------
    task : DoubleIntegratorTask (or another task with ``system``, ``P``, ``gamma``, ``grid_states``, ``safety_states``)
    theta : ndarray, shape (d,)
    config : RegionConfig, optional
    progress : callable, optional

    Returns
    -------
    RegionResult

    Raises
    ------
    UnsupportedError
        A task without a state-space safety region, a switching policy or an unsupported layer.
    """
    cfg = config or RegionConfig()
    spec = reach_avoid_spec(task, cfg.horizon)
    theta = as_array("theta", theta, shape=(task.dim,))
    loop = closed_loop_from_task(task, theta)
    lo, hi, info = safety_region_cover(task)
    return certify_boxes(loop, spec, lo, hi, cfg, progress=progress, region_info=info)
