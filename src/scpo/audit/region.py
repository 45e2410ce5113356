"""Re-verification of the sound region certificates of a ``certify="sound"`` run (level sound).

For ``θ_0`` (``base_certificate.json``) and every accepted iterate whose record names a region
certificate, from the files alone:

* the file's bytes hash to the SHA-256 the record names, and the file certifies the chain's ``θ`` of
  that iteration (any edit — a leaf removed, a bound lowered, a leaf shrunk — changes the bytes);
* the declared region ``C`` in the file equals the one rebuilt from the run's task configuration
  (recomputed by the audit, not read);
* the partition tiles ``C``: every leaf's box is recomputed from its root cell and path (the
  recorded floats are not used), the leaves of every root cell are prefix-free and complete
  (:func:`scpo.certify.partition.check_tiling`), the root grid covers ``C`` (exact: every vertex of
  ``C`` lies in it), every leaf the file calls outside ``C`` is outside, and the exact volumes of
  ``leaf ∩ C`` sum to the exact volume of ``C`` (no gap);
* every leaf that meets ``C`` is re-bounded from scratch at the checkpoint's ``θ``
  (:func:`scpo.certify.leaf_bounds.leaf_bounds`, CROWN over ``leaf ∩ C``) and every bound is ``≤ 0``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..certify.bounds import closed_loop
from ..certify.leaf_bounds import leaf_bounds
from ..certify.partition import RootGrid, check_tiling, clip_box, leaf_box
from ..certify.sound_region import region_digest
from ..errors import InvalidInputError
from ..evidence import Level
from ..numerics import Margin
from ..reachability.exact import exact_vertices
from .reader import Checkpoints, RunFiles
from .result import Findings

__all__ = ["RegionUnit", "plan_region_checks", "run_region_unit"]

_CHUNK = 512


def _load(files: RunFiles, name: str, digest: str, findings: Findings, it: int) -> dict[str, Any] | None:
    path = files.paths.root / name
    if not path.is_file() or path.is_symlink():
        findings.add("region_certificate", it, Level.EXACT, False, f"{name}: missing (or a symbolic link), but the record names it")
        return None
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != digest:
        findings.add("region_certificate", it, Level.EXACT, False,
                     f"{name}: its bytes hash to {hashlib.sha256(raw).hexdigest()[:12]}…, the record names {str(digest)[:12]}…: the file was changed")
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        findings.add("region_certificate", it, Level.EXACT, False, f"{name}: not valid JSON ({exc})")
        return None


@functools.lru_cache(maxsize=50_000)
def _clip(lo: bytes, hi: bytes, H: bytes, h: bytes):
    """:func:`scpo.certify.partition.clip_box` of one leaf, remembered: the partitions of consecutive
    iterates share most leaves, and exact clipping dominates the audit of an ``n ≥ 3`` run."""
    n = len(lo) // 8
    return clip_box(np.frombuffer(lo), np.frombuffer(hi), np.frombuffer(H).reshape(-1, n), np.frombuffer(h))


def _tiling(data: dict[str, Any], region, it: int, findings: Findings) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """Recompute the leaves, check the tiling of ``C``; returns the live leaves' boxes and vertices."""
    C = region.polytope
    try:
        part = data["partition"]
        grid = RootGrid.from_dict(part["grid"])
        roots = np.asarray(part["roots"], dtype=np.int64).reshape(-1, grid.n)
        paths = [str(p) for p in part["paths"]]
        status = [str(s) for s in data["leaf_status"]]
    except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
        findings.add("region_tiling", it, Level.EXACT, False, f"malformed partition ({exc})")
        return None
    if not (len(roots) == len(paths) == len(status)) or np.any(roots < 0) or np.any(roots >= grid.counts):
        findings.add("region_tiling", it, Level.EXACT, False, "the partition's leaves, paths and statuses do not match or name cells outside the grid")
        return None
    by_root: dict[tuple[int, ...], list[str]] = {tuple(int(v) for v in r): [] for r in grid.cells()}
    for r, p in zip(roots, paths):
        by_root.setdefault(tuple(int(v) for v in r), []).append(p)
    problems = check_tiling(by_root)
    lo_g, hi_g = grid.lower, grid.upper
    vs = exact_vertices(C)
    if any(float(x) < a or float(x) > b for v in vs for x, a, b in zip(v, lo_g, hi_g)):
        problems.append("the root grid does not cover C")
    lows, highs, verts, total = [], [], [], Fraction(0)
    exact = True
    key_C = (np.ascontiguousarray(C.H, dtype=float).tobytes(), np.ascontiguousarray(C.h, dtype=float).tobytes())
    for r, p, s in zip(roots, paths, status):
        lo, hi = leaf_box(grid, r, p)
        clip = _clip(lo.tobytes(), hi.tobytes(), *key_C)
        if clip.status == "outside":
            continue
        if s == "outside":
            problems.append(f"leaf {list(r)}/{p!r} is called outside C but meets it")
            continue
        if clip.volume_exact is None:
            exact = False
        else:
            total += clip.volume_exact
        lows.append(lo)
        highs.append(hi)
        verts.append(clip.vertices)
    if exact and region.volume_exact is not None and total != region.volume_exact:
        problems.append(f"the leaves cover {float(total):.12g} of C's exact volume {float(region.volume_exact):.12g} (a gap)")
    ok = not problems
    findings.add("region_tiling", it, Level.EXACT, ok,
                 f"{len(paths)} leaves tile the root grid exactly and their intersections with C sum to vol(C)"
                 + (" exactly" if exact else " (volume in float for n ≥ 3)") if ok else "; ".join(problems[:5]),
                 leaves=len(paths), live=len(lows))
    if not ok:
        return None
    n = grid.n
    return np.array(lows).reshape(-1, n), np.array(highs).reshape(-1, n), verts


def _rebound(task: Any, theta: np.ndarray, boxes, margin: Margin, it: int, findings: Findings) -> None:
    lows, highs, verts = boxes
    loop = closed_loop(task.problem, task.structure, theta)
    region = task.declared_region()
    worst = -np.inf
    bad = 0
    for s in range(0, len(lows), _CHUNK):
        b = leaf_bounds(loop, task.problem, lows[s : s + _CHUNK], highs[s : s + _CHUNK], verts[s : s + _CHUNK],
                        method="crown", target=region.terminal_target, margin=margin)
        worst = max(worst, float(np.max(b.worst)) if b.worst.size else -np.inf)
        bad += int(np.sum(~(b.worst <= 0)))
    findings.add("region_bounds", it, Level.SOUND, bad == 0,
                 f"every one of the {len(lows)} leaves meeting C re-bounded from the checkpoint: worst row bound {worst:.3e} ≤ 0"
                 if bad == 0 else f"{bad} of {len(lows)} leaves have a row bound > 0 when re-bounded from the checkpoint (worst {worst:.3e})",
                 worst=worst, leaves=len(lows))


@dataclass(frozen=True)
class RegionUnit:
    """The expensive half of one iteration's region check, as a unit of work (:mod:`scpo.audit.units`).

    Attributes
    ----------
    iteration : int
    data : dict
        The certificate file's content (its bytes already hashed against the record).
    theta : ndarray, shape (d,)
        The checkpoint's flat parameters.
    margin : Margin
        The gate's rounding margin from ``config.json``.
    """

    iteration: int
    data: dict[str, Any]
    theta: np.ndarray
    margin: Margin


def run_region_unit(task: Any, unit: RegionUnit) -> Findings:
    """Recompute the tiling of ``C`` from the file's partition and re-bound every live leaf at ``θ``.

    Parameters
    ----------
    task : Task
        Rebuilt from ``config.json`` (not modified).
    unit : RegionUnit

    Returns
    -------
    Findings
        The ``region_tiling`` check and, when the tiling holds, the ``region_bounds`` check.
    """
    findings = Findings()
    region = task.declared_region()
    boxes = _tiling(unit.data, region, unit.iteration, findings)
    if boxes is not None:
        _rebound(task, unit.theta, boxes, unit.margin, unit.iteration, findings)
    return findings


def plan_region_checks(files: RunFiles, ckpts: Checkpoints, task: Any, iterations: list[int],
                       findings: Findings) -> list[tuple[Findings, RegionUnit | None]]:
    """The cheap half of the region checks (see the module docstring), and the units left to run.

    Reads and hashes each named certificate file and checks that it certifies the chain's ``θ`` on
    the region rebuilt from the task; the tiling and the re-bounding are returned as
    :class:`RegionUnit` s, so that they can run anywhere (:func:`run_region_unit`).

    Parameters
    ----------
    files : RunFiles
    ckpts : Checkpoints
    task : Task
        Rebuilt from ``config.json`` (its declared region is recomputed).
    iterations : list of int
        The audited checkpoints (``0`` included when selected).
    findings : Findings
        Receives the run-level failures (a sound run whose task declares no region).

    Returns
    -------
    list of (Findings, RegionUnit or None)
        Per audited iteration with a region certificate, in order: the checks made here, and the
        unit that completes them (None when a check made here already failed).
    """
    if files.config.get("train", {}).get("certify") != "sound":
        return []
    region = task.declared_region()
    if region is None:
        findings.add("region_certificate", None, Level.EXACT, False, "the run says certify = sound but its task declares no region")
        return []
    gate = files.config.get("gate", {})
    margin = Margin(rel=float(gate.get("margin_rel", 1e-9)), abs=float(gate.get("margin_abs", 1e-10)))
    named = {0: (files.base.get("region_certificate"), files.base.get("region_certificate_sha256"), files.base.get("theta_sha256"))}
    for r in files.records:
        if r.get("accepted"):
            named[r["iteration"]] = (r.get("region_certificate"), r.get("region_certificate_sha256"), r.get("theta_sha256"))
    digest_c = region_digest(region)
    plan: list[tuple[Findings, RegionUnit | None]] = []
    for it in iterations:
        if it not in named or it not in ckpts.tensors:
            continue
        own = Findings()
        plan.append((own, None))
        name, digest, theta_hash = named[it]
        if not isinstance(name, str) or not isinstance(digest, str):
            own.add("region_certificate", it, Level.EXACT, False, "an accepted iterate of a sound run names no region certificate")
            continue
        data = _load(files, name, digest, own, it)
        if data is None:
            continue
        region_ok = data.get("summary", {}).get("region_sha256") == digest_c
        bound = data.get("iteration") == it and data.get("theta_sha256") == theta_hash == ckpts.hashes.get(it)
        own.add("region_certificate", it, Level.EXACT, region_ok and bound,
                f"{name} certifies the chain's θ of iteration {it} on the region rebuilt from the task" if region_ok and bound
                else f"{name}: " + ("it certifies another region than the task's" if not region_ok else
                                    "it names another iteration or θ than the chain's"))
        if region_ok and bound:
            plan[-1] = (own, RegionUnit(iteration=it, data=data, theta=ckpts.theta(it), margin=margin))
    return plan
