"""Steps and saved iterates (exact): which checkpoints must exist, and each step's recorded length.

* **Coverage.** ``scpo train`` saves the checkpoint of every accepted iteration whose number is
  a multiple of ``train.checkpoint_every`` (``K > 0``) and always the last accepted iterate of a
  finished run. A record that should name its checkpoint but does not, or whose file is gone,
  fails: otherwise the newest iterates could be forged with a record alone (its hash is checked
  against nothing).
* **Step lengths.** Where an accepted iteration ``k`` and its parent both have checkpoints, the
  recorded ``step_norm`` must equal ``‖θ_k − θ_parent‖`` (within
  :attr:`~scpo.audit.AuditTolerances.step_rtol`). A forged iterate that is safe and hashed
  consistently still has to match the step the record claims was taken.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..evidence import Level
from .reader import Checkpoints, RunFiles, recorded_number
from .result import AuditTolerances, Findings

__all__ = ["check_checkpoint_coverage", "check_step_norms"]


def _finished(files: RunFiles) -> bool:
    try:
        st = json.loads(files.paths.status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(st, dict) and st.get("status") == "finished"


def check_checkpoint_coverage(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> None:
    """Every accepted iterate the run must have saved has its checkpoint file.

    Parameters
    ----------
    files : RunFiles
    ckpts : Checkpoints
    findings : Findings
        Receives one failing ``checkpoint_coverage`` check per missing checkpoint (``exact``), or
        one passing check; a note when the newest accepted iterate of an unfinished run has none.
    """
    k = files.config["train"].get("checkpoint_every")
    k = k if isinstance(k, int) and not isinstance(k, bool) and k >= 0 else None
    accepted = [r for r in files.records if r["accepted"]]
    failures = 0
    for r in accepted:
        it = r["iteration"]
        due = k is not None and k > 0 and it % k == 0
        if due and (r.get("checkpoint") is None or it not in ckpts.files):
            failures += 1
            what = "names no checkpoint" if r.get("checkpoint") is None else f"names {r['checkpoint']}, which is missing"
            findings.add("checkpoint_coverage", it, Level.EXACT, False,
                         f"accepted iteration {it} {what}, although checkpoint_every = {k} saves it: its θ "
                         f"({r['theta_sha256'][:12]}…) is backed by no file")
    if accepted:
        last = accepted[-1]["iteration"]
        if last not in ckpts.files and not any(c.iteration == last for c in findings.checks if c.name == "checkpoint_coverage"):
            if _finished(files):
                failures += 1
                findings.add("checkpoint_coverage", last, Level.EXACT, False,
                             f"the last accepted iterate (iteration {last}) of a finished run has no checkpoint; scpo always saves it")
            else:
                findings.note(f"the newest accepted iterate (iteration {last}) has no checkpoint (the run did not finish); "
                              "it is bound to the chain by its record only")
    if failures == 0:
        findings.add("checkpoint_coverage", None, Level.EXACT, True,
                     f"every accepted iterate that checkpoint_every = {k} saves, and the last one, has its checkpoint")


def check_step_norms(files: RunFiles, ckpts: Checkpoints, tol: AuditTolerances, findings: Findings) -> None:
    """Compare each recorded ``step_norm`` with the distance between consecutive saved iterates.

    Parameters
    ----------
    files : RunFiles
    ckpts : Checkpoints
    tol : AuditTolerances
    findings : Findings
        Receives a failing ``step_norm`` check per mismatch (``exact`` up to rounding), or one
        passing check naming how many steps were compared.
    """
    by_hash = {h: it for it, h in sorted(ckpts.hashes.items(), reverse=True)}
    compared = failures = 0
    worst = 0.0
    for r in files.records:
        it = r["iteration"]
        if not r["accepted"] or it not in ckpts.hashes or ckpts.hashes[it] != r["theta_sha256"]:
            continue
        parent = by_hash.get(r["parent_sha256"])
        if parent is None or parent >= it:
            continue
        theta = ckpts.theta(it)
        dist = float(np.linalg.norm(theta - ckpts.theta(parent)))
        rec = recorded_number(r.get("step_norm"))
        allowed = tol.step_rtol * (1.0 + float(np.linalg.norm(theta)))
        diff = abs(dist - rec) if math.isfinite(rec) else float("inf")
        compared += 1
        worst = max(worst, diff)
        if not diff <= allowed:
            failures += 1
            findings.add("step_norm", it, Level.EVALUATED, False,
                         f"recorded step_norm {rec:.6g} ≠ ‖θ_{it} − θ_{parent}‖ = {dist:.6g} of the checkpoints (difference {diff:.3g}, "
                         f"tolerance {allowed:.1g}): the iterate is not the step the record claims", recorded=rec, distance=dist)
    if failures == 0 and compared:
        findings.add("step_norm", None, Level.EVALUATED, True,
                     f"{compared} recorded step lengths equal ‖θ_k − θ_parent‖ of the checkpoints (largest difference {worst:.1e})")
    if not compared:
        findings.note("no accepted step has both its checkpoints; step lengths were not compared")
