"""The base case of the induction (exact), read from ``θ₀``'s checkpoint tensors.

``θ₀``'s final layer is the pair of tensors ``policy.final_layer`` of ``config.json`` (checked to
be the last layer of the architecture the task rebuilds). Every entry must be exactly ``0`` (no
tolerance; NaN counts as non-zero) and every parameter finite: then ``φ_θ0 ≡ 0`` and
``π_θ0 = π_safe`` for every input.
"""

from __future__ import annotations

import numpy as np

from ..evidence import Level
from .reader import Checkpoints, RunFiles
from .result import Findings

__all__ = ["check_base_case"]


def check_base_case(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> None:
    """Check that ``θ₀``'s final layer is exactly zero and compare with the recorded claim.

    Parameters
    ----------
    files : RunFiles
    ckpts : Checkpoints
        Nothing is checked when ``θ₀`` could not be read (already an input error).
    findings : Findings
        Receives a ``base_case`` check (``exact``), and a failing one when
        ``base_certificate.json`` recorded another verdict.
    """
    tensors0 = ckpts.tensors.get(0)
    if tensors0 is None:
        return
    wn, bn = files.names[-2], files.names[-1]
    W, b = tensors0[wn], tensors0[bn]
    nz = int(np.count_nonzero(W != 0) + np.count_nonzero(b != 0))  # NaN != 0 counts as non-zero
    finite = all(bool(np.all(np.isfinite(a))) for a in tensors0.values())
    ok = nz == 0 and finite
    with np.errstate(invalid="ignore"):
        mx = float(np.max(np.abs(np.concatenate([W.ravel(), b.ravel()]))))
    msg = (
        f"θ₀'s final layer ({wn} {list(W.shape)}, {bn} {list(b.shape)}) is exactly zero and every parameter is finite, "
        "so φ_θ0 ≡ 0 and π_θ0 = π_safe"
        if ok
        else f"θ₀'s final layer ({wn}, {bn}) has {nz} non-zero entr{'y' if nz == 1 else 'ies'} (max |entry| {mx:.3g})"
        + ("" if finite else " and θ₀ has NaN/inf parameters")
        + ": φ_θ0 is not identically zero, the induction has no base case"
    )
    findings.add("base_case", 0, Level.EXACT, ok, msg, nonzero_entries=nz, max_abs_entry=mx, all_finite=finite)
    rc = files.recorded_claims().get("base_case")
    if rc is not None and bool(rc.get("holds")) != ok:
        findings.add("base_case", 0, Level.EXACT, False, f"base_certificate.json records base_case holds={rc.get('holds')}, the audit finds {ok}")
