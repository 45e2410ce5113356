"""The claims a report states, their verdicts, the induction conclusion and ``summary.json``.

Every claim keeps the level its source recorded; the conclusion "every iterate satisfies
``g ≤ 0``" has the level of its weakest link (the base certificate and the records), never more.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__
from ..evidence import Level, weakest
from ..audit.reader import recorded_number
from .collect import RunData
from .document import LEVEL_MEANING

__all__ = ["SUMMARY_SCHEMA_VERSION", "chain_claim", "claim_required", "induction", "region_chain_claim", "smoothness_chain_claim",
           "step_claim", "summary", "verdict_rows"]

SUMMARY_SCHEMA_VERSION = 1
"""Schema of ``summary.json``."""

_SOURCES_OF_THE_INDUCTION = ("base_certificate.json", "certificates.jsonl")


def short_hash(h: Any) -> str:
    """The first 12 hex digits of a hash and an ellipsis (``—`` for anything else).

    Parameters
    ----------
    h : str or any
    """
    return f"{h[:12]}…" if isinstance(h, str) else "—"


REPORTED_ONLY = ("region_value_decrease",)
"""Claims that are reported but never required, whatever their file says: their own statement
says the safety argument does not rest on them (``region_value_decrease``: "the reach-avoid
certificate does not need it"; stability follows from reach-avoid, DESIGN §6)."""


def claim_required(c: dict[str, Any]) -> bool:
    """Whether a recorded claim is required: ``details.required`` is not ``False`` and the claim is
    not one of :data:`REPORTED_ONLY`.

    Parameters
    ----------
    c : dict
        A claim as recorded (:meth:`scpo.evidence.Claim.to_dict`).
    """
    return (c.get("details") or {}).get("required") is not False and c.get("name") not in REPORTED_ONLY


def step_claim(data: RunData, st: dict[str, Any]) -> dict[str, Any]:
    """The per-iteration step certificates summarised as one claim (level evaluated).

    Parameters
    ----------
    data : RunData
    st : dict
        :func:`~scpo.reports.collect.run_stats` of the records.

    Returns
    -------
    dict
        A claim (``name, statement, level, holds, details``).
    """
    holds = st["violations"] == 0 and data.projection and data.bad_line is None
    return {
        "name": "steps",
        "statement": (
            "every accepted iterate θ_{t+1} has evaluated max_i g_i(θ_{t+1}) ≤ 0 on every grid row; every rejected "
            "iteration keeps θ_{t+1} = θ_t"
        ),
        "level": "evaluated",
        "holds": bool(holds),
        "details": {"iterations": st["iterations"], "accepted": st["accepted"], "rejected": st["rejected"],
                    "violations": st["violations"], "worst_accepted_max_constraint": st["worst_accepted_max_constraint"],
                    "projection": data.projection},
    }


def chain_claim(data: RunData) -> dict[str, Any]:
    """Parent links of the records, recomputed from ``certificates.jsonl`` (exact).

    Parameters
    ----------
    data : RunData

    Returns
    -------
    dict
        A claim; ``details.breaks`` lists up to 20 breaks, ``details.last_theta_sha256`` the chain's end.
    """
    parent = data.base.get("theta_sha256")
    breaks = []
    for i, r in enumerate(data.records, start=1):
        if r.get("iteration") != i:
            breaks.append(f"iteration numbering: record {i} says {r.get('iteration')}")
        if r.get("parent_sha256") != parent:
            breaks.append(f"iteration {r.get('iteration')}: parent hash {short_hash(r.get('parent_sha256'))} ≠ {short_hash(parent)}")
        if not r.get("accepted") and r.get("theta_sha256") != r.get("parent_sha256"):
            breaks.append(f"iteration {r.get('iteration')}: rejected but θ changed")
        parent = r.get("theta_sha256")
    if data.bad_line is not None:
        breaks.append(f"certificates.jsonl line {data.bad_line} is incomplete or not JSON")
    return {
        "name": "record_chain",
        "statement": "the records form one chain from θ₀: iterations 1..T in order, each parent SHA-256 equal to the previous iterate's",
        "level": "exact",
        "holds": not breaks,
        "details": {"breaks": breaks[:20], "last_theta_sha256": parent},
    }


def region_chain_claim(data: RunData) -> dict[str, Any]:
    """Every accepted iterate of a sound run carries a holding region certificate (level sound).

    The records name each certificate file with its SHA-256 (``scpo audit`` re-verifies the files and
    re-bounds every leaf); this claim reads the records and checks that the files are there.

    Parameters
    ----------
    data : RunData

    Returns
    -------
    dict
        A claim; ``details`` counts the certificates and gives the smallest certified fraction.
    """
    accepted = [r for r in data.records if r.get("accepted")]
    missing = [r["iteration"] for r in accepted
               if not (r.get("region_holds") is True and isinstance(r.get("region_certificate"), str)
                       and (data.root / r["region_certificate"]).is_file())]
    fractions = [recorded_number(r.get("region_certified_fraction")) for r in accepted]
    added = sum(len(r.get("added_states") or []) for r in data.records)
    gate_rej = sum(int(r.get("gate_rejections") or 0) for r in data.records)
    return {
        "name": "region_chain",
        "statement": ("every accepted iterate θ_1, …, θ_T was accepted only with a sound region certificate that holds on "
                      "100% of the declared region C (a file per iterate, named with its SHA-256 in the iterate's record)"),
        "level": "sound",
        "holds": bool(data.certify == "sound" and not missing and data.bad_line is None),
        "details": {"accepted": len(accepted), "without_certificate": missing[:20], "min_certified_fraction": min(fractions) if fractions else None,
                    "gate_rejections": gate_rej, "states_added": added},
    }


def smoothness_chain_claim(data: RunData) -> dict[str, Any] | None:
    """With a certified ``L_mode``: every accepted step was projected with sound ``L`` (level sound).

    ``subspace`` runs: each accepted record names the digest of the subspace certificate its ``L``
    came from (the curvature of every row on the bank's span over the ball holding every offset
    and the step, DESIGN §3), so (★) was a sound bound along that step. The claim fails on a record
    without one, or on any candidate rejected for safety or above (★) — which the theorem excludes.
    It supports the safety argument but is not a link of it (the evaluated or sound acceptance
    test carries that): ``details.required`` is ``False``.

    Parameters
    ----------
    data : RunData

    Returns
    -------
    dict or None
        A claim, or None for an adaptive-``L`` run.
    """
    mode = str(data.config.get("projector", {}).get("L_mode", "adaptive"))
    if mode == "adaptive":
        return None
    accepted = [r for r in data.records if r.get("accepted")]
    without = [r.get("iteration") for r in accepted
               if r.get("L_mode") != mode or (mode == "subspace" and not r.get("L_certificates"))]
    safety = sum(int(r.get("safety_rejections") or 0) for r in data.records)
    failed = sum(int(r.get("prediction_failures") or 0) for r in data.records)
    where = ("the bank's span, over a ball holding every bank offset and the step (one certificate digest per iteration "
             "in its record)") if mode == "subspace" else "the full parameter ball around the iterate"
    return {
        "name": "smoothness_per_iteration",
        "statement": (f"every accepted step θ_t → θ_(t+1) was projected with L_i ≥ a sound bound on the curvature of row i on "
                      f"{where}, so (★) was a sound upper bound of g along it; no candidate was rejected for safety"),
        "level": "sound",
        "holds": bool(accepted and not without and safety == 0 and failed == 0 and data.bad_line is None),
        "details": {"L_mode": mode, "accepted": len(accepted), "without_certificate": without[:20], "safety_rejections": safety,
                    "prediction_failures": failed, "required": False, "relied_on": False},
    }


def verdict_rows(data: RunData, st: dict[str, Any]) -> list[dict[str, Any]]:
    """Every claim of the report with its ``source`` file and ``iteration``, in page order.

    Parameters
    ----------
    data : RunData
    st : dict
        :func:`~scpo.reports.collect.run_stats`.

    Returns
    -------
    list of dict
        The base certificate's claims, the record chain, the steps, ``final.json``'s claims, then
        those of the other certificate files.
    """
    rows: list[dict[str, Any]] = [{**c, "source": "base_certificate.json", "iteration": 0} for c in data.claims_of("base")]
    rows.append({**chain_claim(data), "source": "certificates.jsonl", "iteration": None})
    rows.append({**step_claim(data, st), "source": "certificates.jsonl", "iteration": None})
    if data.certify == "sound":
        rows.append({**region_chain_claim(data), "source": "certificates.jsonl", "iteration": None})
    smooth = smoothness_chain_claim(data)
    if smooth is not None:
        rows.append({**smooth, "source": "certificates.jsonl", "iteration": None})
    if data.final:
        rows += [{**c, "source": "certificates/final.json", "iteration": data.final.get("iteration")} for c in data.claims_of("final")]
    for name, cert in data.other_certs:
        for c in cert["claims"]:
            if not isinstance(c, dict):
                continue
            row = {**c, "source": f"certificates/{name}", "iteration": cert.get("iteration")}
            if data.certify == "sound" and name.startswith("lipschitz"):
                # the sound gate carries safety; L only shapes the prediction (★): shown with its level, not required
                row["details"] = {**(c.get("details") or {}), "required": False, "relied_on": False}
            rows.append(row)
    return rows


_SOUND_NOT_LINKS = ("backup_feasible", "steps")
"""Evaluated claims of a sound run that support but do not carry the sound conclusion."""


def induction(rows: list[dict[str, Any]], *, sound: bool = False) -> dict[str, Any]:
    """The conclusion of the chain at the level of its weakest link.

    Grid runs: "every iterate satisfies g ≤ 0 on the safety grid" from the base certificate and the
    records. Sound runs: "for every x_0 ∈ C, every rollout of every iterate stays inside the
    constraints and ends in X_f", whose links are the base case, the region's exact facts, the
    region certificate of ``θ_0``, the record chain and the region chain; the evaluated grid claims
    support it but are not links.

    Parameters
    ----------
    rows : list of dict
        :func:`verdict_rows`.
    sound : bool
        Whether the run was trained with the sound gate.

    Returns
    -------
    dict
        ``statement, level, holds, links, weaker_links``.
    """
    used = [r for r in rows if r["source"] in _SOURCES_OF_THE_INDUCTION and claim_required(r)]
    if sound:
        used = [r for r in used if r["name"] not in _SOUND_NOT_LINKS]
        statement = ("for every x_0 ∈ C, every rollout of every iterate θ_0, …, θ_T stays inside the state and input "
                     "constraints and ends in X_f")
    else:
        statement = "every recorded iterate θ_0, …, θ_T satisfies g(θ_t) ≤ 0 on the safety grid"
    levels = [Level(r["level"]) for r in used if r.get("level") in LEVEL_MEANING]
    lv = weakest(levels) if levels else Level.ESTIMATED
    target = Level.SOUND if sound else Level.EVALUATED
    return {
        "statement": statement,
        "level": lv.value,
        "holds": bool(used) and all(bool(r.get("holds")) for r in used),
        "links": [{"name": r["name"], "level": r["level"], "holds": bool(r.get("holds"))} for r in used],
        "weaker_links": [r["name"] for r in used if r.get("level") in LEVEL_MEANING and Level(r["level"]).strength < target.strength],
    }


def _audit_summary(audit: Any) -> dict[str, Any]:
    return {"verdict": audit.verdict, "ok": audit.ok, "counts": audit.counts(),
            "failures": [c.to_dict() for c in audit.failures][:50], "input_errors": list(audit.input_errors),
            "audited_iterations": list(audit.audited_iterations)}


def summary(data: RunData, st: dict[str, Any], rows: list[dict[str, Any]], quality: dict[str, Any], figures: list[str]) -> dict[str, Any]:
    """The content of ``summary.json``.

    Parameters
    ----------
    data : RunData
    st : dict
        :func:`~scpo.reports.collect.run_stats`.
    rows : list of dict
        :func:`verdict_rows`.
    quality : dict
        The task's quality figures at the last iterate (:meth:`Task.quality`).
    figures : list of str
        File names of the figures.

    Returns
    -------
    dict
        ``schema_version, kind, scpo_version, run_scpo_version, run, task, status, iterations,
        accepted, rejected, violations, objective_initial, objective_final, quality,
        worst_accepted_max_constraint, rejection_reasons, solver_statuses, timing, certificates,
        induction, figures`` (and ``improvement_fraction`` / ``imitation_loss`` when the quality
        figures have them, ``audit`` with the audit's verdict when one was run).
    """
    out: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "kind": "scpo.report.summary",
        "scpo_version": __version__,
        "run_scpo_version": data.config.get("scpo_version"),
        "run": str(data.root),
        "task": data.config.get("task"),
        "status": data.run.status.get("status"),
        "iterations": st["iterations"],
        "accepted": st["accepted"],
        "rejected": st["rejected"],
        "violations": st["violations"],
        "objective_initial": st["objective_initial"],
        "objective_final": st["objective_final"],
        "quality": quality,
        "worst_accepted_max_constraint": st["worst_accepted_max_constraint"],
        "rejection_reasons": st["rejection_reasons"],
        "solver_statuses": st["solver_statuses"],
        "timing": {k: st[k] for k in ("time_total_s", "solve_time_total_s", "evaluation_time_total_s", "solve_time_median_s", "wall_time_median_s")},
        "certificates": [
            {"name": r["name"], "level": r.get("level"), "holds": bool(r.get("holds")), "required": claim_required(r),
             "source": r["source"], "iteration": r.get("iteration")}
            for r in rows
        ],
        "certify": data.certify,
        "induction": induction(rows, sound=data.certify == "sound"),
        "figures": figures,
    }
    for key in ("improvement_fraction", "imitation_loss"):  # headline quality figures, where the task has them
        if key in quality:
            out[key] = quality[key]
    if data.audit is not None:
        out["audit"] = _audit_summary(data.audit)
    return out
