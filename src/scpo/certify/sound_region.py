"""The sound region certificate over a declared region ``C`` and the gate that runs it every iteration.

Statement certified for ``θ`` (level ``sound``): for every ``x_0 ∈ C`` the closed loop of
``π_θ = K x + φ_θ(x)`` satisfies every state row ``Hx x_t ≤ hx`` (``t = 1 … T``; ``t = 0`` holds by
``C ⊆ X``, an exact claim of the region), every input row ``Hu u_t ≤ hu`` (``t = 0 … T−1``) and ends
in ``X_f`` (``x_Tᵀ P x_T ≤ γ``, or ``x_T ∈ T_in ⊆ X_f``) — when every leaf of a dyadic partition of
``C`` (:mod:`scpo.certify.partition`) has all its row bounds over ``leaf ∩ C`` at most 0
(:mod:`scpo.certify.leaf_bounds`).

Refinement. Leaves are bounded by IBP, the rest by CROWN; a leaf still open is bisected while its
path is shorter than ``max_depth`` (and the leaf budget lasts); a leaf open at the maximum depth
fails. A failed leaf is searched for its worst point in ``leaf ∩ C`` (vertices, centre, random
points, then projected ascent that stays in ``C``): a positive row there is a counterexample
(``violated``), otherwise the bounds are ``inconclusive`` at that width; either way the point is
the leaf's most dangerous known state and is what the training gate adds to ``g``.

Incremental use. :class:`RegionCertifier` keeps its partition between calls: the next iterate
starts from the leaves the last one needed (split where its bounds were loose), so in training
most leaves are certified at once and only a few are split further.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .._validate import check_int
from ..distributed import Execution
from ..errors import InvalidInputError, SolverError
from ..evidence import Claim, Level, _jsonable
from ..numerics import DEFAULT_MARGIN, Margin
from ..policies import MLPStructure
from ..systems import ClosedLoopProblem, constraint_rows, rollout
from .bounds import closed_loop
from .bounds.network import ClosedLoop
from .declared import DeclaredRegion
from .leaf_bounds import leaf_bounds
from .parallel import parallel_leaf_bounds
from .partition import Partition, root_grid

__all__ = ["GateConfig", "RegionCertificate", "RegionCertifier", "REGION_CERTIFICATE_KIND", "region_digest", "canonical_json",
           "certificate_figure"]

REGION_CERTIFICATE_KIND = "scpo.sound_region_certificate"


def region_digest(region: DeclaredRegion) -> str:
    """SHA-256 of ``C``'s stored rows and terminal target (little-endian float64 bytes).

    Parameters
    ----------
    region : DeclaredRegion

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    for a in (region.polytope.H, region.polytope.h):
        h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    if region.terminal_target is not None:
        for a in (region.terminal_target.H, region.terminal_target.h):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
    return h.hexdigest()


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """Settings of the region certificate and of the training gate.

    Attributes
    ----------
    cells_per_axis : int
        Root cells per axis over ``C``'s bounding box.
    max_depth : int
        Longest leaf path (bisections of a root cell); a leaf open at this depth fails.
    max_leaves : int
        Budget of live leaves; leaves still open when it is spent fail.
    margin : Margin
        Outward widening of every bound (recorded).
    search_samples : int
        Random starts per failed leaf of the worst-point search.
    search_steps : int
        Projected ascent steps of that search.
    use_ibp : bool
        Bound with IBP before CROWN (IBP is cheap but loose over long horizons).
    merge_slack : float or None
        At the start of each call, merge sibling leaves that the previous call certified with
        every bound ``≤ −merge_slack`` (keeps the partition small across iterates; None: never).
    max_searched : int
        Failed leaves searched for their worst point (the worst bounds first).
    threads : int or None
        ``torch.set_num_threads`` while certifying (restored afterwards); the work per operation is
        small, so one thread avoids oversubscription.
    task_leaves : int or None
        Leaves per task when the bounding runs through :mod:`scpo.distributed` (None: one call per
        round and method). The batching, not the engine, fixes the bits of the bounds, so the
        certificate's bytes are the same in this process and on Ray for the same value (recorded).
    device : str
        ``"cpu"`` or ``"cuda[:K]"``: where the leaf bounds are computed (the margin is applied to the
        float64 result, as on the CPU).
    """

    cells_per_axis: int = 16
    max_depth: int = 12
    max_leaves: int = 20_000
    margin: Margin = field(default_factory=Margin)
    search_samples: int = 8
    search_steps: int = 20
    use_ibp: bool = False
    merge_slack: float | None = 1e-3
    max_searched: int = 64
    threads: int | None = 1
    task_leaves: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        from ..distributed import check_device

        if self.task_leaves is not None:
            check_int("task_leaves", self.task_leaves, minimum=1)
        if not isinstance(self.device, str):
            raise InvalidInputError(f"device: expected 'cpu', 'cuda' or 'cuda:K', got {self.device!r}")
        if self.device != "cpu":
            check_device(self.device)
        check_int("cells_per_axis", self.cells_per_axis, minimum=1)
        check_int("max_depth", self.max_depth, minimum=0, maximum=60)
        check_int("max_leaves", self.max_leaves, minimum=1)
        check_int("search_samples", self.search_samples, minimum=0)
        check_int("search_steps", self.search_steps, minimum=0)
        check_int("max_searched", self.max_searched, minimum=0)
        if self.merge_slack is not None and not self.merge_slack >= 0:
            raise InvalidInputError(f"merge_slack: expected a non-negative number or None, got {self.merge_slack!r}")
        if self.threads is not None:
            check_int("threads", self.threads, minimum=1)
        if not isinstance(self.margin, Margin):
            raise InvalidInputError(f"margin: expected a Margin, got {type(self.margin).__name__}")


@dataclass(frozen=True)
class RegionCertificate:
    """The region certificate of one ``θ``: the partition, every leaf's bound and the verdict.

    Attributes
    ----------
    holds : bool
        Every leaf meeting ``C`` is certified.
    partition : Partition
        The leaves (including those outside ``C``).
    status : list of str
        Per leaf: ``"certified"``, ``"failed"`` or ``"outside"``.
    worst : ndarray, shape (L,)
        Per leaf: the largest row bound over ``leaf ∩ C`` (NaN outside ``C``).
    worst_row : ndarray of int, shape (L,)
        Its row in the problem's layout (-1 outside ``C``).
    failed : list of dict
        Per failed leaf: its box, the worst row, the point found and its verdict.
    certified_volume, volume : float
        ``Σ vol(leaf ∩ C)`` over the certified leaves, and ``vol(C)``.
    certified_volume_exact : str or None
        The same in exact rationals when every clipped volume is exact.
    summary : dict
        Counts, times, the margin.
    """

    holds: bool
    partition: Partition
    status: list[str]
    worst: np.ndarray
    worst_row: np.ndarray
    failed: list[dict[str, Any]]
    certified_volume: float
    volume: float
    certified_volume_exact: str | None
    summary: dict[str, Any]

    @property
    def certified_fraction(self) -> float:
        """``certified_volume / volume`` (from the exact volumes when both are known, so that 100 % is exactly 1).

        Without exact leaf volumes (partial leaves in ``n ≥ 3``) the denominator is the float sum of
        the live leaves' volumes, so that a certificate whose every live leaf holds reads exactly 1
        (the leaves tile ``C``: proved by their paths, not by the volumes)."""
        exact_c = self.summary.get("region_volume_exact")
        if self.certified_volume_exact is not None and exact_c is not None and Fraction(exact_c) > 0:
            return float(Fraction(self.certified_volume_exact) / Fraction(exact_c))
        live = float(sum(c.volume for c, s in zip(self.partition.clips, self.status) if s != "outside"))
        return self.certified_volume / live if live > 0 else float("nan")

    @property
    def worst_points(self) -> np.ndarray:
        """The worst point found in each failed leaf, shape (F, n)."""
        n = self.partition.grid.n
        return np.array([f["search"]["x0"] for f in self.failed if "search" in f], dtype=float).reshape(-1, n)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON form (the file the training loop writes per accepted iterate)."""
        return {
            "kind": REGION_CERTIFICATE_KIND,
            "holds": bool(self.holds),
            "certified_fraction": self.certified_fraction,
            "certified_volume": self.certified_volume,
            "certified_volume_exact": self.certified_volume_exact,
            "volume": self.volume,
            "partition": self.partition.to_dict(),
            "leaf_status": list(self.status),
            "leaf_worst": _jsonable(self.worst),
            "leaf_worst_row": self.worst_row.tolist(),
            "failed": _jsonable(self.failed),
            "summary": _jsonable(self.summary),
        }

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (what a certificate record names)."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()

    def claim(self, region: DeclaredRegion) -> Claim:
        """The certificate as a claim (level ``sound``).

        Parameters
        ----------
        region : DeclaredRegion

        Returns
        -------
        Claim
        """
        s = self.summary
        exact_volume = self.certified_volume_exact is not None
        return Claim(
            name="region_reach_avoid",
            statement=(f"For every initial state x_0 in C — {region.description} — the closed loop of π_θ satisfies every "
                       f"state constraint at t = 0..{s['horizon']}, every input constraint at t = 0..{s['horizon'] - 1} and "
                       f"ends in X_f at t = {s['horizon']} (certified on {100 * self.certified_fraction:.4f}% of C by volume"
                       + ("" if exact_volume else "; leaf volumes in floating point, the tiling proved by the leaf paths") + ")"),
            level=Level.SOUND,
            holds=bool(self.holds),
            details={"certified_fraction": self.certified_fraction, "volume_arithmetic": "exact" if exact_volume else "floating point (qhull)",
                     "leaves": int(len(self.status)),
                     "failed_leaves": len(self.failed), "margin": s["margin"], "time_s": s["time_s"]},
        )


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, strict floats) for hashing.

    Parameters
    ----------
    data : JSON-ready data

    Returns
    -------
    bytes
    """
    return json.dumps(_jsonable(data), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _box_label(lo: np.ndarray, hi: np.ndarray) -> str:
    return " × ".join(f"[{a:+.4f}, {b:+.4f}]" for a, b in zip(lo, hi))


class RegionCertifier:
    """Certifies ``θ`` on all of ``C``, keeping the partition from one call to the next.

    Parameters
    ----------
    problem : ClosedLoopProblem
    structure : MLPStructure
        The residual's layout (``θ`` is flat in it).
    region : DeclaredRegion
        ``C`` (and ``T_in`` for the terminal check).
    config : GateConfig, optional
    execution : Execution, optional
        Where the leaves are bounded (:mod:`scpo.distributed`); default: in this process. With an
        engine or ``config.task_leaves`` set, each round's leaves go out in batches of
        ``task_leaves`` and come back in order.
    """

    def __init__(self, problem: ClosedLoopProblem, structure: MLPStructure, region: DeclaredRegion,
                 config: GateConfig | None = None, execution: Execution | None = None) -> None:
        if execution is not None and not isinstance(execution, Execution):
            raise InvalidInputError(f"execution: expected a scpo.distributed.Execution, got {type(execution).__name__}")
        self.execution = execution
        if region.n != problem.n:
            raise InvalidInputError(f"region: expected a region of dimension {problem.n}, got {region.n}")
        self.problem = problem
        self.structure = structure
        self.region = region
        self.config = config or GateConfig()
        C = region.polytope
        from ..reachability.polytope import bounding_box

        lo, hi = bounding_box(C)
        self.partition = Partition.over(root_grid(lo, hi, self.config.cells_per_axis), C.H, C.h)
        self.volume = region.volume
        self._last_worst: np.ndarray | None = None

    # ---------------------------------------------------------------- one θ
    def certify(self, theta: np.ndarray, progress: Callable[[dict[str, Any]], None] | None = None) -> RegionCertificate:
        """Certify ``θ`` on ``C``, refining the kept partition where needed.

        Parameters
        ----------
        theta : ndarray, shape (d,)
        progress : callable, optional
            Called with a dict during the work: ``event`` ``"batch"`` after every finished batch of
            leaves (with an engine or ``task_leaves``; counts over all workers: ``leaves_done``,
            ``leaves_total`` of the current ``round`` and ``method``) and ``"round"`` after every
            refinement round (``round``, ``certified_fraction`` of ``C``'s volume so far,
            ``splitting``: leaves split for the next round, ``failed``, ``leaves_bounded``); both carry
            ``engine``, ``workers`` and ``elapsed_s``. It does not change the certificate.

        Returns
        -------
        RegionCertificate
        """
        old = torch.get_num_threads()
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        try:
            return self._certify(np.asarray(theta, dtype=float), progress)
        finally:
            torch.set_num_threads(old)

    def _where(self) -> dict[str, Any]:
        ex = self.execution
        return {"engine": "in-process" if ex is None else ex.engine, "workers": None if ex is None else ex.workers}

    def _bound(self, loop: ClosedLoop, part: Partition, idx: np.ndarray, method: str, progress=None, context=None):
        lo, hi = part.lower[idx], part.upper[idx]
        V = [part.clips[i].vertices for i in idx]
        cfg = self.config
        if self.execution is not None or cfg.task_leaves is not None or cfg.device != "cpu":
            relay = None
            if progress is not None:
                def relay(info: dict[str, Any]) -> None:
                    progress({**context, "event": "batch", "method": method, "leaves_done": int(info["weight_done"]),
                              "leaves_total": int(info["weight_total"]), **self._where(),
                              "elapsed_s": time.perf_counter() - context["t0"]})
            return parallel_leaf_bounds(loop, self.problem, lo, hi, V, method=method, target=self.region.terminal_target,
                                        margin=cfg.margin, execution=self.execution, task_leaves=cfg.task_leaves,
                                        threads=cfg.threads, device=cfg.device, progress=relay)
        return leaf_bounds(loop, self.problem, lo, hi, V, method=method, target=self.region.terminal_target,
                           margin=self.config.margin)

    def _certify(self, theta: np.ndarray, progress: Callable[[dict[str, Any]], None] | None = None) -> RegionCertificate:
        cfg = self.config
        t0 = time.perf_counter()
        loop = closed_loop(self.problem, self.structure, theta)
        C = self.region.polytope
        part = self.partition
        merged_count = 0
        if cfg.merge_slack is not None and self._last_worst is not None and len(self._last_worst) == len(part):
            part, _, merged = part.merge_siblings(self._last_worst <= -cfg.merge_slack, C.H, C.h)
            merged_count = int(merged.sum())
        L = len(part)
        state = np.array(["outside" if c.status == "outside" else "pending" for c in part.clips], dtype=object)
        worst = np.full(L, np.nan)
        worst_row = np.full(L, -1, dtype=np.int64)
        counts = {"ibp": 0, "crown": 0, "rounds": 0, "splits": 0, "merges": merged_count, "certified_by_ibp": 0, "certified_by_crown": 0}
        times = {"ibp": 0.0, "crown": 0.0, "split": 0.0, "search": 0.0}
        while True:
            pending = np.flatnonzero(state == "pending")
            if pending.size == 0:
                break
            counts["rounds"] += 1
            todo = pending
            context = {"round": counts["rounds"], "t0": t0}
            if cfg.use_ibp:
                t1 = time.perf_counter()
                b = self._bound(loop, part, todo, "ibp", progress, context)
                times["ibp"] += time.perf_counter() - t1
                counts["ibp"] += todo.size
                ok = b.worst <= 0
                state[todo[ok]] = "certified"
                worst[todo[ok]], worst_row[todo[ok]] = b.worst[ok], b.worst_row[ok]
                counts["certified_by_ibp"] += int(ok.sum())
                todo = todo[~ok]
            if todo.size:
                t1 = time.perf_counter()
                b = self._bound(loop, part, todo, "crown", progress, context)
                times["crown"] += time.perf_counter() - t1
                counts["crown"] += todo.size
                ok = b.worst <= 0
                state[todo] = np.where(ok, "certified", "open")
                worst[todo], worst_row[todo] = b.worst, b.worst_row
                counts["certified_by_crown"] += int(ok.sum())
            open_idx = np.flatnonzero(state == "open")
            live = int(np.sum(state != "outside"))
            can = np.array([len(part.paths[i]) < cfg.max_depth for i in open_idx], dtype=bool)
            budget = max(0, (cfg.max_leaves - live) // 1)
            split_idx = open_idx[can][:budget]
            for i in np.setdiff1d(open_idx, split_idx):
                state[i] = "failed"
            if progress is not None:
                done_vol = sum(part.clips[i].volume for i in np.flatnonzero(state == "certified"))
                progress({"event": "round", "round": counts["rounds"], "certified_fraction": float(done_vol / self.volume),
                          "splitting": int(split_idx.size), "failed": int(np.sum(state == "failed")),
                          "leaves_bounded": counts["ibp"] + counts["crown"], **self._where(), "elapsed_s": time.perf_counter() - t0})
            if split_idx.size == 0:
                continue
            t1 = time.perf_counter()
            part, origin, child = part.split_with_origin(split_idx, C.H, C.h)
            times["split"] += time.perf_counter() - t1
            counts["splits"] += int(split_idx.size)
            state = np.where(child, np.array(["outside" if c.status == "outside" else "pending" for c in part.clips], dtype=object),
                             state[origin])
            worst = np.where(child, np.nan, worst[origin])
            worst_row = np.where(child, -1, worst_row[origin])
        self.partition = part
        self._last_worst = np.where(state == "certified", worst, np.inf)
        t1 = time.perf_counter()
        failed_idx = np.flatnonzero(state == "failed")
        failed_idx = failed_idx[np.argsort(-worst[failed_idx], kind="stable")]
        failed = self._failed_records(loop, part, failed_idx, worst, worst_row)
        times["search"] = time.perf_counter() - t1
        status = [str(s) for s in state]
        cert_vol = float(sum(c.volume for c, s in zip(part.clips, status) if s == "certified"))
        exact = None
        if all(c.volume_exact is not None for c, s in zip(part.clips, status) if s == "certified"):
            exact = str(sum((c.volume_exact for c, s in zip(part.clips, status) if s == "certified"), Fraction(0)))
        summary = {
            "horizon": self.problem.horizon, "leaves": len(status), "live_leaves": int(sum(s != "outside" for s in status)),
            "certified_leaves": int(sum(s == "certified" for s in status)), "failed_leaves": len(failed),
            **counts, "time_s": time.perf_counter() - t0, **{f"time_{k}_s": v for k, v in times.items()},
            "margin": cfg.margin.to_dict(), "max_depth": cfg.max_depth, "cells_per_axis": cfg.cells_per_axis,
            "task_leaves": cfg.task_leaves, "device": cfg.device,  # the engine is not recorded: it does not change the bytes
            "region_sha256": region_digest(self.region), "region_volume_exact": None if self.region.volume_exact is None else str(self.region.volume_exact),
        }
        holds = not failed and all(s in ("certified", "outside") for s in status)
        return RegionCertificate(holds, part, status, worst, worst_row, failed, cert_vol, self.volume, exact, summary)

    # ---------------------------------------------------------------- failures
    def _rows_at(self, loop: ClosedLoop, x0: torch.Tensor) -> torch.Tensor:
        ro = rollout(self.problem, loop.policy(), x0, self.problem.horizon)
        return constraint_rows(self.problem, ro)[0]

    def _search(self, loop: ClosedLoop, part: Partition, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The worst points of ``leaf_i ∩ C`` for the leaves ``idx``: sampling, then ascent that stays in ``C``.

        Vectorised over the leaves: the starts are each leaf's vertices of ``leaf ∩ C``, its vertex
        mean and uniform samples of the leaf kept when they lie in ``C``; the best start is moved by
        signed-gradient steps clipped to the leaf, a move being kept only when it stays in ``C`` and
        raises the largest row (the step halves otherwise).
        """
        cfg = self.config
        C = self.region.polytope
        rng = np.random.default_rng(0)
        F, n = idx.size, self.problem.n
        starts, owner = [], []
        for k, i in enumerate(idx):
            lo, hi = part.lower[i], part.upper[i]
            V = part.clips[i].vertices
            R = rng.uniform(lo, hi, size=(4 * cfg.search_samples, n)) if cfg.search_samples else np.zeros((0, n))
            pts = np.concatenate([V, V.mean(axis=0, keepdims=True), R[np.all(R @ C.H.T <= C.h, axis=1)][: cfg.search_samples]])
            starts.append(pts)
            owner.append(np.full(len(pts), k))
        X, own = np.concatenate(starts), np.concatenate(owner)
        with torch.no_grad():
            vals, js = self._rows_at(loop, torch.as_tensor(X)).max(dim=1)
        vals, js = vals.numpy(), js.numpy()
        best = np.array([np.flatnonzero(own == k)[np.argmax(vals[own == k])] for k in range(F)])
        x, v, j = X[best].copy(), vals[best].copy(), js[best].copy()
        lo, hi = part.lower[idx], part.upper[idx]
        step = (hi - lo) / 10
        for _ in range(cfg.search_steps):
            xt = torch.as_tensor(x).requires_grad_(True)
            r = self._rows_at(loop, xt)
            (grad,) = torch.autograd.grad(r.max(dim=1).values.sum(), xt)
            y = np.clip(x + step * np.sign(grad.numpy()), lo, hi)
            with torch.no_grad():
                ry, jy = self._rows_at(loop, torch.as_tensor(y)).max(dim=1)
            ry, jy = ry.numpy(), jy.numpy()
            better = np.all(y @ C.H.T <= C.h, axis=1) & (ry > v)
            x[better], v[better], j[better] = y[better], ry[better], jy[better]
            step[~better] /= 2
        return x, v, j

    def _failed_records(self, loop: ClosedLoop, part: Partition, idx: np.ndarray, worst: np.ndarray,
                        worst_row: np.ndarray) -> list[dict[str, Any]]:
        """One record per failed leaf; the worst ``max_searched`` (by bound) are searched for their worst point."""
        searched = idx[: self.config.max_searched]
        found = self._search(loop, part, searched) if searched.size else (np.zeros((0, self.problem.n)), np.zeros(0), np.zeros(0, dtype=int))
        out = []
        R = self.problem.layout.n_rows
        for k, i in enumerate(idx):
            wref = self.problem.layout.locate(int(min(worst_row[i], R - 1)))
            rec = {
                "leaf": int(i), "lower": part.lower[i].tolist(), "upper": part.upper[i].tolist(),
                "box": _box_label(part.lower[i], part.upper[i]),
                "worst_bound": {"value": float(worst[i]), "kind": wref.kind, "t": wref.t,
                                "label": self.problem.row_label(wref.kind, wref.row)},
                "verdict": "not searched",
            }
            if k < searched.size:
                x, v, j = found[0][k], float(found[1][k]), int(found[2][k])
                ref = self.problem.layout.locate(j)
                rec["verdict"] = "violated" if v > 0 else "inconclusive"
                rec["search"] = {"x0": x.tolist(), "largest_row": v, "kind": ref.kind, "t": ref.t,
                                 "label": self.problem.row_label(ref.kind, ref.row)}
            out.append(rec)
        return out


def certificate_figure(problem: ClosedLoopProblem, region: DeclaredRegion, cert: RegionCertificate, *, title: str = ""):
    """The partition of ``C``: certified leaves green, failed red (violation) or orange, ``C`` and ``X_f``.

    Two states: the leaves themselves. ``n ≥ 3``: the 2-D projections and sections of ``C`` through
    the origin (:func:`scpo.reachability.plot.projections_figure`) with the failed leaves: red ``×``
    at the violating state found, orange ``+`` at a state of leaf ∩ ``C`` where the bound was
    inconclusive.

    Parameters
    ----------
    problem : ClosedLoopProblem
        At least two states.
    region : DeclaredRegion
    cert : RegionCertificate
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    InvalidInputError
        A problem with one state.
    """
    if problem.n < 2:
        raise InvalidInputError(f"problem: the certificate figure draws at least two states, this problem has {problem.n}")
    if problem.n != 2:
        return _certificate_projections(problem, region, cert, title=title)
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon, Rectangle

    from ..plotting import ellipse_patch
    from ..reachability.exact import exact_vertices

    fig = Figure(figsize=(7.2, 6.4))
    ax = fig.subplots()
    part = cert.partition
    violated = {f["leaf"] for f in cert.failed if f["verdict"] == "violated"}
    for status, face, label in (("certified", "tab:green", "certified"), ("failed", "tab:orange", "failed")):
        rects = [Rectangle(tuple(part.lower[i]), *(part.upper[i] - part.lower[i])) for i, s in enumerate(cert.status)
                 if s == status and i not in violated]
        if rects:
            ax.add_collection(PatchCollection(rects, facecolor=face, edgecolor="k", linewidth=0.1, alpha=0.45))
    red = [Rectangle(tuple(part.lower[i]), *(part.upper[i] - part.lower[i])) for i in violated]
    if red:
        ax.add_collection(PatchCollection(red, facecolor="tab:red", edgecolor="none", alpha=0.9))
    if cert.failed:  # failed leaves are small: mark them so that they are seen
        centres = np.array([(np.array(f["lower"]) + np.array(f["upper"])) / 2 for f in cert.failed])
        kinds = np.array([f["leaf"] in violated for f in cert.failed])
        ax.plot(centres[kinds, 0], centres[kinds, 1], "x", color="tab:red", ms=5)
        ax.plot(centres[~kinds, 0], centres[~kinds, 1], "+", color="tab:orange", ms=5)
    V = np.array([[float(x) for x in v] for v in exact_vertices(region.polytope)])
    ax.add_patch(Polygon(V, closed=True, fill=False, color="k", lw=1.4))
    if problem.has_terminal:
        ax.add_patch(ellipse_patch(problem.P, problem.gamma, fill=False, color="tab:purple", lw=1.6))
    handles = [Rectangle((0, 0), 1, 1, facecolor="tab:green", alpha=0.45, label=f"certified ({cert.summary['certified_leaves']} leaves, "
                                                                             f"{100 * cert.certified_fraction:.3f}% of C)"),
               Rectangle((0, 0), 1, 1, facecolor="tab:red", label=f"failed, violation found ({len(violated)})"),
               Rectangle((0, 0), 1, 1, facecolor="tab:orange", alpha=0.45, label=f"failed, inconclusive ({len(cert.failed) - len(violated)})"),
               Polygon([[0, 0]], fill=False, color="k", label="C")]
    ax.legend(handles=handles, fontsize=7, loc="lower left")
    lo, hi = V.min(axis=0), V.max(axis=0)
    pad = 0.08 * (hi - lo)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_xlabel(problem.state_names[0])
    ax.set_ylabel(problem.state_names[1])
    ax.set_title(title or f"region certificate (sound) over C, T = {problem.horizon}: "
                          f"{'holds' if cert.holds else 'FAILS'}", fontsize=10)
    ax.grid(alpha=0.3)
    return fig


def _certificate_projections(problem: ClosedLoopProblem, region: DeclaredRegion, cert: RegionCertificate, *, title: str = ""):
    """:func:`certificate_figure` for ``n ≥ 3``: projections and sections of ``C`` with the failed leaves.

    A leaf with a violation is drawn at its violating state; an inconclusive one at the Chebyshev
    centre of the leaf's box clipped to ``C`` (an LP each, at most :data:`_FIGURE_LEAVES` of them,
    evenly spaced), so that every mark is a state of ``C``.
    """
    from ..reachability.plot import projections_figure
    from ..reachability.polytope import Polytope

    bad = [np.asarray(f["search"]["x0"], dtype=float) for f in cert.failed
           if f["verdict"] == "violated" and isinstance(f.get("search"), dict) and f["search"].get("x0") is not None]
    other = [f for f in cert.failed if f["verdict"] != "violated"]
    shown = other if len(other) <= _FIGURE_LEAVES else [other[k] for k in np.linspace(0, len(other) - 1, _FIGURE_LEAVES).astype(int)]
    marks = [m for m in (_leaf_mark(region, f) for f in shown) if m is not None]
    V = np.array(bad).reshape(-1, problem.n)
    M = np.array(marks).reshape(-1, problem.n)
    n_bad = sum(1 for f in cert.failed if f["verdict"] == "violated")
    verdict = "holds" if cert.holds else "FAILS"

    def marks_on(ax: Any, i: int, j: int) -> None:
        ax.plot(V[:, i], V[:, j], "x", ls="", color="tab:red", ms=6, label="violating state found in a failed leaf")
        ax.plot(M[:, i], M[:, j], "+", ls="", color="tab:orange", ms=4, alpha=0.7, label="failed leaf, inconclusive (a state of it in C)")

    return projections_figure(
        [("C", region.polytope)], state_box=Polytope(H=problem.Hx, h=problem.hx), state_names=problem.state_names,
        title=title or (f"region certificate (sound) over C, T = {problem.horizon}: {verdict}; "
                        f"{100 * cert.certified_fraction:.3f}% of C certified; failed leaves: {n_bad} with a violation, "
                        f"{len(other)} inconclusive" + (f" ({len(shown)} drawn)" if len(shown) < len(other) else "")),
        overlay=marks_on,
    )


def _leaf_mark(region: DeclaredRegion, failed: dict[str, Any]) -> np.ndarray | None:
    """The Chebyshev centre of a failed leaf's box clipped to ``C`` (an LP), or None if the LP finds none."""
    from ..reachability.polytope import box, chebyshev_center, intersect

    try:
        centre, radius = chebyshev_center(intersect(box(failed["lower"], failed["upper"]), region.polytope))
    except SolverError:  # a mark left out; the title still counts the leaf
        return None
    return centre if np.all(np.isfinite(centre)) and radius >= 0 else None


_FIGURE_LEAVES = 2000
"""Inconclusive leaves drawn at most by the ``n ≥ 3`` certificate figure (each costs an LP)."""
