"""Certificate files (exact): every file in ``certificates/`` certifies a ``θ`` of the chain.

A certificate file (a region or smoothness certificate, …) names the iteration and the SHA-256
of the ``θ`` it speaks about; that pair must be an iterate of the chain, or the certificate is
about another ``θ``. ``final.json`` is compared with the last record by the chain check.
"""

from __future__ import annotations

import json

from ..evidence import Level
from .reader import RunFiles, outside_run, run_status, short_hash
from .result import Findings

__all__ = ["check_certificate_files"]


def check_certificate_files(files: RunFiles, findings: Findings) -> None:
    """Bind every certificate file to the chain.

    Parameters
    ----------
    files : RunFiles
    findings : Findings
        Receives one ``certificate_binding`` check (``exact``) per file that names an iteration
        and a hash; unreadable files are bad input; files naming neither get a note.
    """
    folder = files.paths.certificates
    if not folder.is_dir():
        return
    chain = {0: files.base["theta_sha256"], **{r["iteration"]: r["theta_sha256"] for r in files.records}}
    for p in sorted(folder.glob("*.json")):
        if p == files.paths.final_certificate:
            continue  # compared with the last record by the chain check
        rel = files.relative(p)
        target = outside_run(files.root, p)
        if target is not None:
            findings.error(f"{rel} leads outside the run directory (to {target!r}); not read")
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            findings.error(f"{rel} is not valid JSON ({exc})")
            continue
        if not isinstance(data, dict):
            findings.error(f"{rel}: expected a JSON object")
            continue
        it, h = data.get("iteration"), data.get("theta_sha256")
        if not isinstance(it, int) or isinstance(it, bool) or not isinstance(h, str):
            findings.note(f"{rel} names no iteration and θ hash; its claims are not bound to the chain")
            continue
        if it not in chain and it == max(chain) + 1 and run_status(files.paths) != "finished":
            findings.note(f"{rel} certifies iteration {it}, which has no record yet: written just before a crash could append the "
                          "record (an unfinished run); not bound to the chain, and a resume removes it")
            continue
        ok = chain.get(it) == h
        findings.add("certificate_binding", it, Level.EXACT, ok,
                     f"{rel} certifies θ {short_hash(h)}, the chain's iterate of iteration {it}" if ok
                     else f"{rel} certifies θ {short_hash(h)} at iteration {it}, but the chain's iterate there is "
                     f"{short_hash(chain.get(it)) if it in chain else 'absent'}: the certificate is about another θ")
