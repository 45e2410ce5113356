"""The report's account of the task and of the induction chain, step by step.

1. base case (``exact``): ``θ₀``'s final layer is zero, so ``π_θ0 = π_safe``;
2. backup certificate (``exact``, plus ``g(θ₀) ≤ 0`` on the grid, ``evaluated``);
3. the induction step (``evaluated``, per iteration) and the record chain (``exact``);
4. region (``sound``) and smoothness certificates where the run has them;
5. the conclusion at the level of its weakest link, and what is *not* claimed;
6. the independent audit, when one was run.

What is particular to the task (its description, what ``g ≤ 0`` means) comes from the task
(:meth:`Task.report_paragraphs`, :meth:`Task.meaning_of_g`); what is particular to the backup
from its :class:`~scpo.systems.ClosedLoopProblem` (a terminal set or a static problem).
"""

from __future__ import annotations

import json
from typing import Any

from ..audit.reader import recorded_number
from .claims import claim_required, induction, short_hash
from .collect import RunData
from .document import Code, Doc, Inline, Lv, Verdict, fmt

__all__ = ["BACKUP_CLAIMS", "induction_section", "task_section", "verdict_of"]

BACKUP_CLAIMS = ("P_positive_definite", "lyapunov_decrease", "terminal_set_in_state_constraints", "terminal_set_input_feasible")
"""The exact claims of the backup certificate with a terminal set (:func:`scpo.certify.backup.backup_certificate`)."""


def verdict_of(c: dict[str, Any]) -> Verdict:
    """The verdict badge of a recorded claim (a claim not required is shown as "report only").

    Parameters
    ----------
    c : dict
        A recorded claim.
    """
    holds = bool(c.get("holds"))
    if not claim_required(c):
        return Verdict(None, "holds (report only)" if holds else "does not hold everywhere (report only)")
    return Verdict(holds)


# ---------------------------------------------------------------------------------------------
# the task


def task_section(doc: Doc, data: RunData) -> None:
    """The task in the task's words, the policy, projector and training settings, the config table.

    Parameters
    ----------
    doc : Doc
    data : RunData
    """
    cfg = data.config
    pol = cfg.get("policy", {})
    res = pol.get("residual", {})
    for paragraph in data.task.report_paragraphs():
        doc.p(paragraph)
    act = res.get("activation")
    items: list[Inline] = [
        f"Residual φ_θ: MLP {res.get('in_dim')} → {res.get('hidden')} → {res.get('out_dim')}, activation {act}, "
        f"d = {pol.get('parameters')} parameters, seed {cfg.get('train', {}).get('seed')}; π_θ = π_safe + φ_θ"
        + (" (switched off inside X_f)" if data.task.policy.switches else "") + "."
    ]
    if act == "relu":
        items.append("ReLU activation: the constraint functions need not be L-smooth in θ, so the smoothness assumption "
                     "behind (★) is not assured (safety of accepted iterates still rests on evaluated g).")
    proj = cfg.get("projector", {})
    items.append(
        f"Projector: bank size {proj.get('bank_size')}, raw step {proj.get('direction')} with lr {proj.get('lr')}, "
        f"L_init {proj.get('L_init')} (growth ×{proj.get('L_growth')}), solver {proj.get('solver')}, "
        f"projection {'on' if proj.get('projection', True) else 'OFF (unconstrained baseline)'}."
    )
    tr = cfg.get("train", {})
    items.append(f"Training: {tr.get('iterations')} iterations, checkpoint every {tr.get('checkpoint_every')}; "
                 f"created {cfg.get('created')} by scpo {cfg.get('scpo_version')}; command: {cfg.get('command')!r}.")
    doc.ul(items)
    doc.table(["section", "settings (config.json)"],
              [[sec, Code(", ".join(f"{k}={json.dumps(v)}" for k, v in (cfg.get(sec) or {}).items()))]
               for sec in ("task_config", "projector", "train")], table_id="config")


# ---------------------------------------------------------------------------------------------
# the induction chain, one list item per step


def _base_case_item(data: RunData, base: dict[str, Any]) -> list[Inline]:
    bd = base.get("details", {})
    return [
        "Base case ", Lv(base.get("level", "exact")), " ", Verdict(bool(base.get("holds"))), ". ",
        f"θ_0 (SHA-256 {short_hash(data.base.get('theta_sha256'))}, {data.base.get('checkpoint')}) has its final layer "
        f"{bd.get('layer')} (weight {bd.get('weight_shape')}, bias {bd.get('bias_shape')}) with "
        f"{bd.get('nonzero_weight_entries', '?')} + {bd.get('nonzero_bias_entries', '?')} non-zero entries and all parameters "
        f"finite = {bd.get('all_parameters_finite')}. Hence φ_θ0(x) = 0·h(x) + 0 = 0 for every x, so π_θ0 = π_safe.",
    ]


def _backup_item(data: RunData, by_name: dict[str, dict[str, Any]]) -> list[Inline]:
    problem = data.task.problem
    if problem.has_terminal:
        parts: list[Inline] = ["Backup certificate ", Lv("exact"), ". For π_safe(x) = Kx and V(x) = xᵀPx, checked in exact "
                               "rational arithmetic on the binary values of the float matrices: "]
        for name in BACKUP_CLAIMS:
            c = by_name.get(name)
            if c is None:
                parts += [f"{name}: ", Verdict(False, "MISSING"), "; "]
            else:
                parts += [c.get("statement", name), " ", Lv(c.get("level", "?")), " ", Verdict(bool(c.get("holds"))), "; "]
        parts.append("together: X_f is positively invariant under the backup, which satisfies every constraint on X_f "
                     "and makes V decrease there. ")
    elif problem.is_static:
        rows = [problem.row_label("input", j) for j in range(problem.Hu.shape[0])]
        rows += [problem.row_label("state", j) for j in range(problem.Hx.shape[0])]
        parts = ["Backup certificate ", Lv("exact"), f". π_safe ≡ 0 and the constraints are {', '.join(rows)}, all with positive "
                 "bounds, so the backup satisfies every row by structure (re-checked by the audit). "]
    else:
        parts = ["Backup certificate ", Lv("exact"), ": ", Verdict(None, "none known"), " for this problem (no terminal set "
                 "X_f, not static); the backup's safety rests on the grid evaluation below. "]
    bf = by_name.get("backup_feasible", {})
    parts += [
        "On the grid: ", bf.get("statement", "backup feasibility"), " ", Lv(bf.get("level", "evaluated")), " ",
        Verdict(bool(bf.get("holds"))), f" (max g(θ_0) = {fmt(data.base.get('max_constraint'))}).",
    ]
    return parts


def _step_text(data: RunData, st: dict[str, Any]) -> str:
    reasons = ", ".join(f"{k}: {v}" for k, v in st["rejection_reasons"].items()) or "none"
    if not data.projection:
        return ("Projection was OFF (an unconstrained baseline): every raw step was taken without a safety check, so the "
                f"induction step does not apply. {st['violations']} accepted iterates violate a constraint. ")
    return (
        f"Assume g(θ_t) ≤ 0. The projector proposes a step Δ = Dc inside the convex inner approximation "
        f"(★) g_i(θ_t + Dc) ≤ g_i(θ_t) + Σ_k c_k h_ik + (L_i/2)(Σ_k |c_k| s_k + ‖Dc‖²), built from evaluated probe "
        f"offsets, and the iteration is accepted only if g(θ_{{t+1}}), evaluated at every row, is ≤ 0; otherwise "
        f"θ_{{t+1}} = θ_t and the iteration is recorded as rejected. So g(θ_{{t+1}}) ≤ 0. The smoothness constants L only "
        f"shape the proposal: acceptance "
        f"uses the evaluated g, not the prediction. In this run: {st['iterations']} iterations, {st['accepted']} "
        f"accepted, each with evaluated max g ≤ 0 unless counted here as a violation ({st['violations']} violations; "
        f"worst accepted max g = {fmt(st['worst_accepted_max_constraint'])} at iteration "
        f"{st['worst_accepted_iteration']}); {st['rejected']} rejected, θ unchanged (reasons: {reasons}). "
        f"Accepted iterations in which some row of an evaluated candidate exceeded its own (★) prediction "
        f"(g_i > (★)_i, row by row): {st['accepted_above_prediction']} "
        f"(L_i below the curvature there; acceptance still rested on the evaluated g). "
    )


def _step_item(data: RunData, st: dict[str, Any], rows: list[dict[str, Any]]) -> list[Inline]:
    step = next(r for r in rows if r["name"] == "steps")
    chain = next(r for r in rows if r["name"] == "record_chain")
    return [
        "Induction step ", Lv("evaluated"), " per iteration ", Verdict(bool(step["holds"])), ". ", _step_text(data, st),
        "Each record names its parent by SHA-256: ", Lv("exact"), " ", Verdict(bool(chain["holds"])),
        f" — θ_0 ({short_hash(data.base.get('theta_sha256'))}) → … → θ_{st['iterations']} "
        f"({short_hash(chain['details']['last_theta_sha256'])})."
        + ("" if chain["holds"] else " Breaks: " + "; ".join(chain["details"]["breaks"][:5]) + "."),
    ]


def _certificate_claims(certs: list[tuple[str, dict[str, Any]]], *, with_verdict_detail: bool = False) -> list[Inline]:
    parts: list[Inline] = []
    for n, d in certs:
        for c in d["claims"]:
            if isinstance(c, dict):
                parts += [f"{n} (iteration {d.get('iteration')}): {c.get('name')} ", Lv(str(c.get("level"))), " ", verdict_of(c)]
                if with_verdict_detail:
                    verdict = (c.get("details") or {}).get("verdict")
                    parts.append(f" ({verdict})" if verdict else "")
                parts.append("; ")
    return parts


def _sound_region_item(rows: list[dict[str, Any]]) -> list[Inline]:
    rc = next(r for r in rows if r["name"] == "region_chain")
    base = next((r for r in rows if r["name"] == "region_reach_avoid" and r["source"] == "base_certificate.json"), None)
    d = rc["details"]
    return [
        "Sound gate: every candidate that passed the evaluated test was accepted only when the region certificate of the "
        "declared region C held on all of C (bound propagation over a dyadic partition of C clipped to C). θ_0: ",
        Lv(base["level"] if base else "sound"), " ", Verdict(bool(base and base.get("holds"))),
        f". Iterates: {d['accepted']} accepted, each with a holding certificate: ", Lv("sound"), " ", Verdict(bool(rc["holds"])),
        f" (smallest certified fraction {fmt(d.get('min_certified_fraction'))}; {d['gate_rejections']} candidates rejected by "
        f"the gate; {d['states_added']} states added to the constraint rows, each recorded with its origin)."
        + (f" Without a certificate: iterations {d['without_certificate']}." if d["without_certificate"] else ""),
    ]


def _region_and_smoothness_items(data: RunData, st: dict[str, Any], rows: list[dict[str, Any]]) -> list[list[Inline]]:
    region = [(n, d) for n, d in data.other_certs if n.startswith("region")]
    lips = [(n, d) for n, d in data.other_certs if n.startswith("lipschitz")]
    if data.certify == "sound":
        item = _sound_region_item(rows)
        if lips:
            smooth = ["Smoothness constants L: ", *_certificate_claims(lips, with_verdict_detail=True),
                      "not relied on: safety rests on the sound gate; L only shapes the prediction (★)."]
        else:
            smooth = [f"Smoothness constants L (final max {fmt(st['L_max_final'])}): ", Verdict(None, "not certified"),
                      " and not relied on — safety rests on the sound gate; L only shapes the prediction (★)."]
        return [item, _per_iteration_L(rows) or smooth]
    if region:
        item = ["Region certificates ", Lv("sound"), " where they hold: ", *_certificate_claims(region),
                "where such a claim holds, safety of that iterate on the covered boxes of S is sound, not only on the grid."]
    else:
        item = ["Region certificates ", Lv("sound"), ": none in certificates/. Safety between grid points is ",
                Verdict(None, "not claimed"), "."]
    if lips:
        smooth = ["Smoothness constants L: ", *_certificate_claims(lips, with_verdict_detail=True)]
    else:
        smooth = ["Smoothness constants L: no smoothness certificate in certificates/; the L values used "
                  f"(final max {fmt(st['L_max_final'])}) are ", Verdict(None, "not certified"),
                  " (they do not carry the safety argument, see step 3)."]
    return [item, _per_iteration_L(rows) or smooth]


def _per_iteration_L(rows: list[dict[str, Any]]) -> list[Inline] | None:
    """The smoothness item of a run trained with certified ``L`` (``smoothness_per_iteration``), else None."""
    c = next((r for r in rows if r["name"] == "smoothness_per_iteration"), None)
    if c is None:
        return None
    d = c["details"]
    return [f"Smoothness constants L (L mode {d['L_mode']}): set at every iteration to a sound bound, ", Lv(c["level"]), " ",
            Verdict(bool(c["holds"])), f" ({d['accepted']} accepted steps; {d['safety_rejections']} candidates rejected for safety, "
            f"{d['prediction_failures']} above (★)), so (★) was a sound bound along every accepted step. "
            "They support, but do not carry, the safety argument (the acceptance test does)."]


def _conclusion_item(data: RunData, st: dict[str, Any], ind: dict[str, Any]) -> list[Inline]:
    if data.certify == "sound":
        concl: list[Inline] = [
            "Conclusion ", Lv(ind["level"]), " ", Verdict(ind["holds"]), f". By induction on t = 0, …, {st['iterations']}: "
            "for every x_0 ∈ C, every rollout of every iterate stays inside the constraints and ends in X_f.",
        ]
        if ind.get("weaker_links"):
            concl.append(f" Links weaker than sound: {', '.join(ind['weaker_links'])}.")
    else:
        concl = [
            "Conclusion ", Lv(ind["level"]), " ", Verdict(ind["holds"]), ". By induction on t, g(θ_t) ≤ 0 for t = 0, …, "
            f"{st['iterations']} on the safety grid.",
        ]
    final = {c.get("name"): c for c in data.claims_of("final")}
    ra = final.get("reach_avoid")
    if ra is not None:
        d = ra.get("details", {})
        concl += [
            f" For the final iterate (iteration {data.final.get('iteration')}): reach-avoid ", Lv(ra.get("level", "?")),
            " ", Verdict(bool(ra.get("holds"))), f" on {d.get('grid_states')} grid states of S "
            f"(failing {d.get('failing_states')}, worst margin {fmt(d.get('worst_margin'))}); with the backup certificate ",
            Lv("exact"), " the switched closed loop (π_θ outside X_f, the backup inside) is safe forever and "
            "asymptotically stable from those grid states — at level ", Lv(ra.get("level", "evaluated")), ".",
        ]
    vd = final.get("value_decrease")
    if vd is not None:
        frac = (vd.get("details") or {}).get("fraction_decreasing")
        concl += [
            " Reported, not required: V(x) = xᵀPx decreases along the grid rollouts outside X_f ", Lv(vd.get("level", "?")),
            " ", verdict_of(vd), f" ({100 * recorded_number(frac):.1f}% of those steps)." if isinstance(frac, (int, float)) else ".",
        ]
    if data.certify == "sound":
        concl.append(" Not claimed: states outside C, certified values of L (not needed), and anything about iterates "
                     "not in this chain.")
    else:
        concl.append(" Not claimed: safety at states between grid points (no sound certificate unless listed above), "
                     "certified values of L, and anything about iterates not in this chain.")
    return concl


def _audit_item(audit: Any) -> list[Inline]:
    return [
        "Independent audit (files only, see below): ",
        Verdict(audit.ok, "verified" if audit.ok else audit.verdict.upper()),
        f" — {len(audit.checks)} checks, {len(audit.failures)} failures; g re-evaluated at checkpoint(s) "
        f"{', '.join(map(str, audit.audited_iterations)) or 'none'}.",
    ]


def induction_section(doc: Doc, data: RunData, st: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The claim, then the numbered steps of the induction (see the module docstring).

    Parameters
    ----------
    doc : Doc
    data : RunData
    st : dict
        :func:`~scpo.reports.collect.run_stats`.
    rows : list of dict
        :func:`~scpo.reports.claims.verdict_rows`.
    """
    by_name = {r["name"]: r for r in rows if r["source"] == "base_certificate.json"}
    ind = induction(rows, sound=data.certify == "sound")
    region = data.task.declared_region() if data.certify == "sound" else None
    meaning = f"C is {region.description}" if region is not None else data.task.meaning_of_g()
    doc.p(
        "Claim: ", ind["statement"], f" — {meaning}. Level of the conclusion: ", Lv(ind["level"]),
        " (the weakest link below). Verdict: ", Verdict(ind["holds"]), "."
    )
    items: list[list[Inline]] = [
        _base_case_item(data, by_name.get("base_case", {})),
        _backup_item(data, by_name),
        _step_item(data, st, rows),
        *_region_and_smoothness_items(data, st, rows),
        _conclusion_item(data, st, ind),
    ]
    if data.audit is not None:
        items.append(_audit_item(data.audit))
    doc.ol(items)
