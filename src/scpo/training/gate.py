"""The sound gate of a training run: the region certificate on every candidate (``certify="sound"``).

A candidate ``θ'`` that passed the evaluated acceptance test is accepted only when the sound region
certificate of the task's declared region ``C`` holds on all of ``C``
(:class:`scpo.certify.sound_region.RegionCertifier`, which keeps its partition from one call to the
next). When it does not, the worst points found in the failed leaves — counterexamples where a row
is actually violated, else the points where the search got closest — join the constraint rows of
``g`` (the adaptive validation set), each recorded with its origin, and the projector re-projects
within its try budget. The certificate of every accepted iterate is written to the run and named,
with its SHA-256, in the iterate's record: the chain's links are then sound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..certify.sound_region import GateConfig, RegionCertificate, RegionCertifier, canonical_json
from ..distributed import Execution
from ..errors import UnsafeStartError
from ..numerics import Margin
from ..projector import GateVerdict, RowExtension
from ..runs.files import SCHEMA_VERSION, theta_sha256
from ..runs.run import RunPaths
from ..tasks import Task
from .._io import atomic_write_bytes
from .config import GateSettings, default_max_leaves

__all__ = ["SoundGate", "write_region_certificate", "restore_added_states"]


def write_region_certificate(paths: RunPaths, iteration: int, theta: np.ndarray, cert: RegionCertificate,
                             region_dict: dict[str, Any], target: Path | None = None) -> dict[str, Any]:
    """Write ``certificates/region_iter_NNNNNN.json`` (or ``target``) and return the record fields naming it.

    Parameters
    ----------
    paths : RunPaths
    iteration : int
    theta : ndarray, shape (d,)
        The certified iterate.
    cert : RegionCertificate
    region_dict : dict
        The declared region (:meth:`scpo.certify.declared.DeclaredRegion.to_dict`).
    target : Path, optional
        Another file in the run (default :meth:`RunPaths.region_certificate`).

    Returns
    -------
    dict
        ``region_certificate`` (path relative to the run), ``region_certificate_sha256`` (of the
        file's bytes), ``region_certified_fraction``, ``region_leaves``, ``region_holds``.
    """
    data = {"schema_version": SCHEMA_VERSION, "iteration": int(iteration), "theta_sha256": theta_sha256(theta),
            "region": region_dict, **cert.to_dict()}
    raw = canonical_json(data) + b"\n"
    target = paths.region_certificate(iteration) if target is None else Path(target)
    atomic_write_bytes(target, raw)
    import hashlib

    return {
        "region_certificate": str(target.relative_to(paths.root)),
        "region_certificate_sha256": hashlib.sha256(raw).hexdigest(),
        "region_certified_fraction": cert.certified_fraction,
        "region_leaves": int(cert.summary["live_leaves"]),
        "region_holds": bool(cert.holds),
    }


class SoundGate:
    """The gate callable handed to the projector (state: the certifier's partition, the added states).

    Parameters
    ----------
    task : Task
        Its :meth:`~scpo.tasks.Task.declared_region` is certified; its constraint states grow.
    settings : GateSettings
    execution : Execution, optional
        Where the certifier bounds its leaves (:mod:`scpo.distributed`); default: in this process.
    """

    def __init__(self, task: Task, settings: GateSettings, execution: Execution | None = None) -> None:
        region = task.declared_region()
        if region is None:
            raise UnsafeStartError(f"certify: task {task.name!r} declares no region C, so no sound certificate exists; "
                                   "train with --certify grid")
        self.task = task
        self.region = region
        self.region_dict = region.to_dict()
        self.settings = settings
        n = task.problem.n
        cells = settings.cells_per_axis if settings.cells_per_axis is not None else {1: 16, 2: 16, 3: 8}.get(n, 4)
        cfg = GateConfig(cells_per_axis=cells, max_depth=settings.max_depth * max(1, n // 2), max_leaves=settings.max_leaves if settings.max_leaves is not None else default_max_leaves(n),
                         margin=Margin(rel=settings.margin_rel, abs=settings.margin_abs),
                         merge_slack=settings.merge_slack if settings.merge_slack > 0 else None,
                         max_searched=max(settings.max_new_states, 1) * 4, search_steps=settings.search_steps,
                         task_leaves=settings.task_leaves, device=settings.device)
        self.certifier = RegionCertifier(task.problem, task.structure, region, cfg, execution)
        self.added: list[dict[str, Any]] = []
        self.calls = 0

    def certify(self, theta: np.ndarray, progress: Callable[[dict[str, Any]], None] | None = None) -> RegionCertificate:
        """The region certificate of ``θ`` (no rows are added).

        Parameters
        ----------
        theta : ndarray, shape (d,)
        progress : callable, optional
            See :meth:`scpo.certify.sound_region.RegionCertifier.certify`.

        Returns
        -------
        RegionCertificate
        """
        return self.certifier.certify(theta, progress)

    def _choose(self, cert: RegionCertificate) -> list[dict[str, Any]]:
        """Up to ``max_new_states`` worst points of failed leaves, violations first, not already rows."""
        found = [f for f in cert.failed if "search" in f]
        found.sort(key=lambda f: (f["verdict"] != "violated", -f["search"]["largest_row"]))
        existing = self.task.constraint_states
        out: list[dict[str, Any]] = []
        for f in found:
            x = np.asarray(f["search"]["x0"], dtype=float)
            scale = 1e-9 * (1.0 + np.abs(x).max())
            if np.any(np.all(np.abs(existing - x) <= scale, axis=1)) or any(np.allclose(x, o["x0"], atol=scale, rtol=0) for o in out):
                continue
            out.append({"x0": x.tolist(), "verdict": f["verdict"], "value": f["search"]["largest_row"],
                        "row": f["search"]["label"], "t": f["search"]["t"], "leaf_box": f["box"]})
            if len(out) >= self.settings.max_new_states:
                break
        return out

    def __call__(self, theta: np.ndarray, current: np.ndarray | None = None) -> GateVerdict:
        """Certify a candidate; on failure extend ``g`` with the worst points found.

        Parameters
        ----------
        theta : ndarray, shape (d,)
            The candidate.
        current : ndarray, shape (d,), optional
            The current (certified) iterate: the new rows' margins are capped by its slack there.

        Returns
        -------
        GateVerdict
        """
        t0 = time.perf_counter()
        self.calls += 1
        cert = self.certifier.certify(theta)
        if cert.holds:
            return GateVerdict(True, certificate=cert, time_s=time.perf_counter() - t0)
        chosen = self._choose(cert)
        ext = None
        if chosen:
            pts = np.array([c["x0"] for c in chosen])
            margins = None
            if current is not None:
                slack = -self._state_max_rows(current, pts)
                margins = np.clip(np.minimum(self.task.row_margin, 0.5 * slack), 0.0, None)  # half: round-off room
                for c, m in zip(chosen, margins):
                    c["margin"] = float(m)
            evaluate, like = self.task.add_constraint_states(pts, margins)
            ext = RowExtension(evaluate=evaluate, like=like)
            self.added.extend(chosen)
        n_viol = sum(1 for f in cert.failed if f["verdict"] == "violated")
        reason = (f"region certificate failed on {len(cert.failed)} leaves ({100 * (1 - cert.certified_fraction):.4f}% of C; "
                  f"{n_viol} with a counterexample)")
        return GateVerdict(False, reason=reason, certificate=cert, extension=ext, time_s=time.perf_counter() - t0)

    def _state_max_rows(self, theta: np.ndarray, states: np.ndarray) -> np.ndarray:
        """The largest entry of ``g`` (without margin) that each state contributes at ``θ``, shape (k,)."""
        import torch

        from ..systems import aggregate_rows

        t = self.task
        with torch.no_grad():
            rows = t.rollout_rows(t.rollout(theta[None], states))
            g = aggregate_rows(rows, t.rows, t.lse_temperature)[0]
        return g.reshape(len(states), -1).max(dim=-1).values.cpu().numpy()

    def drain_added(self) -> list[dict[str, Any]]:
        """The states added since the last call (for the iteration's record)."""
        out, self.added = self.added, []
        return out


def restore_added_states(task: Task, records: list[dict[str, Any]]) -> int:
    """Re-add the adaptive validation states recorded in ``records`` (resume, audit), in order.

    Parameters
    ----------
    task : Task
    records : list of dict
        Certificate records; each may carry ``added_states`` (list of dicts with ``x0``).

    Returns
    -------
    int
        States added.
    """
    added = [s for r in records for s in (r.get("added_states") or [])]
    if added:
        margins = np.array([s.get("margin", task.row_margin) for s in added], dtype=float)
        task.add_constraint_states(np.asarray([s["x0"] for s in added], dtype=float), margins)
    return len(added)
