"""The chain of records (exact): numbering, parent hashes, checkpoint names, completeness.

Recomputed from ``certificates.jsonl`` alone: iterations ``1, 2, …, n`` without gaps or
repeats; each record's ``parent_sha256`` is the previous iterate's ``theta_sha256`` (``θ₀``'s
from ``base_certificate.json`` for the first); a rejected iteration leaves ``θ`` unchanged; a
record names the checkpoint of its own iteration or none; a finished ``run.json`` and
``certificates/final.json`` agree with the last record; every checkpoint file has a record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..evidence import Level
from .reader import Checkpoints, RunFiles, run_status, short_hash
from .result import Findings

__all__ = ["check_chain"]

_INVALID = object()
"""What :func:`_read_json_file` returns for a file that is not JSON."""


def _read_json_file(path: Path) -> Any:
    """The JSON content of ``path``, ``None`` when there is no such file, :data:`_INVALID` when it is not JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return _INVALID


def _numbering(recs: list[dict[str, Any]], findings: Findings) -> int:
    failures, expected = 0, 1
    for r in recs:
        if r["iteration"] != expected:
            failures += 1
            what = "missing" if r["iteration"] > expected else "repeated or out of order"
            findings.add("chain", r["iteration"], Level.EXACT, False,
                         f"record on line {r['_line']} has iteration {r['iteration']}, expected {expected}: record(s) {what}")
        expected = r["iteration"] + 1
    return failures


def _parents(recs: list[dict[str, Any]], h0: str, findings: Findings) -> int:
    failures, parent = 0, h0
    for r in recs:
        if r["parent_sha256"] != parent:
            failures += 1
            findings.add("chain", r["iteration"], Level.EXACT, False,
                         f"parent_sha256 {short_hash(r['parent_sha256'])} does not equal the previous iterate's hash {short_hash(parent)} "
                         f"({'θ₀' if parent == h0 and r is recs[0] else 'previous record'}): the chain is broken here")
        if not r["accepted"] and r["theta_sha256"] != r["parent_sha256"]:
            failures += 1
            findings.add("chain", r["iteration"], Level.EXACT, False,
                         f"rejected iteration changed θ: theta_sha256 {short_hash(r['theta_sha256'])} ≠ parent {short_hash(r['parent_sha256'])}")
        parent = r["theta_sha256"]
    return failures


def _checkpoint_names(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> int:
    """Every record points at the checkpoint of its own iteration, or at none."""
    failures = 0
    for r in files.records:
        ck = r.get("checkpoint")
        if ck is None:
            continue
        want = files.relative(files.paths.checkpoint(r["iteration"]))
        if ck != want:
            failures += 1
            findings.add("chain", r["iteration"], Level.EXACT, False, f"record names checkpoint {ck!r}, expected {want!r}")
        elif r["iteration"] not in ckpts.files:
            findings.error(f"{want} is missing (the record of iteration {r['iteration']} names it)")
    return failures


def _run_status(files: RunFiles, findings: Findings) -> int:
    """A finished ``run.json`` must count as many iterations as there are complete records."""
    st = _read_json_file(files.paths.status)
    if st is _INVALID:
        findings.note("run.json is not valid JSON; the record count was not compared with it")
    if not isinstance(st, dict):
        return 0
    done = st.get("iterations_done")
    finished = st.get("status") == "finished"
    if not finished and st.get("status") is not None:
        # a crash may stop between an iteration and its record; only a finished run must agree exactly
        findings.note(f"run.json status {st.get('status')!r}: the record count was not compared with it")
    n = len(files.records)
    if finished and isinstance(done, int) and not isinstance(done, bool) and done != n:
        findings.add("chain", None, Level.EXACT, False, f"run.json says {done} iterations were done, certificates.jsonl holds {n} complete records")
        return 1
    return 0


def _final_certificate(files: RunFiles, last_it: int, last_hash: str, findings: Findings) -> int:
    fj = _read_json_file(files.paths.final_certificate)
    if fj is _INVALID:
        findings.error("certificates/final.json is not valid JSON")
    if not (isinstance(fj, dict) and "iteration" in fj):
        return 0
    if fj.get("iteration") != last_it or fj.get("theta_sha256") != last_hash:
        it = fj.get("iteration") if isinstance(fj.get("iteration"), int) else None
        findings.add("chain", it, Level.EXACT, False,
                     f"certificates/final.json certifies iteration {fj.get('iteration')} (θ {short_hash(fj.get('theta_sha256'))}), "
                     f"but the last record is iteration {last_it} (θ {short_hash(last_hash)})")
        return 1
    return 0


def _orphan_checkpoints(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> int:
    recorded = {r["iteration"] for r in files.records}
    after_last = (files.records[-1]["iteration"] if files.records else 0) + 1
    failures = 0
    for it in ckpts.files:
        if it == after_last and run_status(files.paths) != "finished":
            findings.note(f"{files.relative(files.paths.checkpoint(it))} has no record yet: written just before a crash could append "
                          "its record (an unfinished run); not part of the chain, and a resume removes it")
        elif it > 0 and it not in recorded:
            failures += 1
            findings.add("chain", it, Level.EXACT, False,
                         f"{files.relative(files.paths.checkpoint(it))} has no record in certificates.jsonl (record deleted or file added)")
    return failures


def check_chain(files: RunFiles, ckpts: Checkpoints, findings: Findings) -> None:
    """Check the chain of records (see the module docstring); one passing check when all hold.

    Parameters
    ----------
    files : RunFiles
        The run's records and ``θ₀``'s hash in ``base_certificate.json``.
    ckpts : Checkpoints
        The checkpoint files found.
    findings : Findings
        Receives one ``chain`` check per break (``exact``), or one passing ``chain`` check.
    """
    recs = files.records
    h0 = files.base["theta_sha256"]
    last_it = recs[-1]["iteration"] if recs else 0
    last_hash = recs[-1]["theta_sha256"] if recs else h0
    failures = _numbering(recs, findings)
    failures += _parents(recs, h0, findings)
    failures += _checkpoint_names(files, ckpts, findings)
    failures += _run_status(files, findings)
    failures += _final_certificate(files, last_it, last_hash, findings)
    failures += _orphan_checkpoints(files, ckpts, findings)
    if failures == 0:
        findings.add("chain", None, Level.EXACT, True,
                     f"{len(recs)} records link θ₀ ({short_hash(h0)}) to θ_{last_it} ({short_hash(last_hash)}): iterations 1..{last_it} "
                     "without gaps, each parent hash equal to the previous iterate's, rejected iterations leave θ unchanged")
