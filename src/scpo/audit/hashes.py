"""Checkpoint hashes (exact): each file's tensor bytes hash to what the chain says it holds.

``θ``'s SHA-256 is recomputed from the stored little-endian float64 bytes of the tensors named in
``config.json`` (in that order) and compared with ``base_certificate.json`` (``θ₀``) or with the
record of the checkpoint's iteration, and with the checkpoint's own metadata. A mismatch says
whether the bytes are another iterate of the chain (a swapped or copied file) or none.
"""

from __future__ import annotations

import numpy as np

from ..evidence import Level
from .reader import Checkpoints, RunFiles, short_hash
from .result import Findings

__all__ = ["check_hashes"]


def _expected(files: RunFiles, it: int, by_it: dict[int, dict]) -> tuple[str, str] | None:
    if it == 0:
        return files.base["theta_sha256"], "base_certificate.json"
    if it in by_it:
        return by_it[it]["theta_sha256"], f"the record of iteration {it}"
    return None  # no record: reported by the chain check


def check_hashes(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> None:
    """Compare every read checkpoint's recomputed hash with the chain and its metadata.

    Parameters
    ----------
    files : RunFiles
    ckpts : Checkpoints
    findings : Findings
        Receives one ``checkpoint_hash`` check per read checkpoint with a record (``exact``) and a
        failing ``checkpoint_finite`` check for any checkpoint with NaN/inf parameters.
    """
    by_it = {r["iteration"]: r for r in files.records}
    hash_to_its: dict[str, list[int]] = {}
    for r in files.records:
        hash_to_its.setdefault(r["theta_sha256"], []).append(r["iteration"])
    hash_to_its.setdefault(files.base["theta_sha256"], []).insert(0, 0)
    for it, h in ckpts.hashes.items():
        expected = _expected(files, it, by_it)
        if expected is None:
            continue
        want, source = expected
        rel = files.relative(files.paths.checkpoint(it))
        meta = ckpts.meta[it]
        problems = []
        if h != want:
            elsewhere = [i for i in hash_to_its.get(h, []) if i != it]
            hint = (f" — these bytes are the iterate of iteration(s) {elsewhere[:5]} (swapped or copied file?)" if elsewhere
                    else " — the file's contents were changed")
            problems.append(f"its tensors hash to {short_hash(h)}, {source} says {short_hash(want)}{hint}")
        if meta.get("theta_sha256") != h:
            problems.append(f"its metadata says θ hash {short_hash(meta.get('theta_sha256'))}, the tensors hash to {short_hash(h)}")
        if meta.get("iteration") != str(it):
            problems.append(f"its metadata says iteration {meta.get('iteration')!r}, the file name says {it}")
        if meta.get("task") not in (None, files.task_name):
            problems.append(f"its metadata says task {meta.get('task')!r}, the run's task is {files.task_name!r}")
        ok = not problems
        findings.add("checkpoint_hash", it, Level.EXACT, ok,
                     f"{rel}: SHA-256 of the tensor bytes equals {source} ({short_hash(h)})" if ok else f"{rel}: " + "; ".join(problems),
                     sha256=h, recorded=want)
        theta = ckpts.theta(it)
        if not np.all(np.isfinite(theta)):
            findings.add("checkpoint_finite", it, Level.EXACT, False, f"{rel}: {int(np.sum(~np.isfinite(theta)))} NaN/inf parameter(s)")
