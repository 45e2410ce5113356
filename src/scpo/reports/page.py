"""The report page: every section of ``index.html`` and ``report.md`` built as one :class:`Doc`.

Sections: verdicts, task and configuration, the induction chain (:mod:`scpo.reports.induction`),
results, iterations, figures, the certificates of the final iterate and the other certificate
files, the independent audit, and the files of the report.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..audit.reader import recorded_number
from .claims import induction, short_hash
from .collect import RunData, selected_rows
from .document import LEVEL_MEANING, Code, Doc, Inline, Lv, Verdict, fmt
from .induction import induction_section, task_section, verdict_of
from .margins import MARGINS_FIGURE

__all__ = ["AUDIT_TEXT", "ReportContent", "build_document"]

AUDIT_TEXT = {
    "chain": "records chain by SHA-256 from θ₀ without gaps; every checkpoint has a record; run.json and final.json agree",
    "checkpoint_hash": "each checkpoint's tensor bytes hash to its record (and its metadata)",
    "checkpoint_finite": "checkpoint parameters are finite",
    "base_case": "θ₀'s final layer is exactly zero (read from the checkpoint tensors)",
    "backup_certificate": "the backup satisfies every constraint (by structure)",
    "backup_recomputed": "K, P and γ agree with a fresh scipy DARE solve and the closed-form γ",
    "backup": "backup certificate re-checked in exact rational arithmetic",
    "recorded_constraint": "every accepted record has a finite recorded max g ≤ 0",
    "constraints": "g re-evaluated at audited checkpoints reproduces the record and is ≤ 0",
    "objective": "f re-evaluated at audited checkpoints reproduces the record",
    "reach_avoid": "reach-avoid re-derived with the audit's own closed-loop rollout at audited checkpoints",
    "certificate_binding": "certificate files certify θs of the chain",
    "checkpoint_coverage": "every accepted iterate that checkpoint_every saves, and the last one, has its checkpoint",
    "step_norm": "each recorded step length equals the distance between its saved iterates (to 1e-12 relative: float norms differ by ulps)",
    "region_certificate": "each audited iterate's region certificate file is the one its record names (SHA-256) and certifies that θ",
    "region_tiling": "the certificate's leaves tile C: prefix-free complete dyadic paths, clipping re-done exactly, leaf volumes summing exactly to C's (n ≤ 2)",
    "region_bounds": "every live leaf re-bounded from the checkpoint (IBP/CROWN with the recorded margin) is ≤ 0",
    "pinned_head": "the chain is the pinned one (--expect-head) or continues it",
}
"""What each audit check name states, for the verdict table."""

_CAPTIONS = {
    "training_curves.png": "Training curves: objective, evaluated max g against the (★) prediction, L per row, accepted and rejected steps.",
    MARGINS_FIGURE: "Final policy: worst constraint row of the T-step rollout from each grid state of S (≤ 0 safe; reach-avoid, evaluated).",
}


@dataclass
class ReportContent:
    """Everything a page shows, computed once.

    Attributes
    ----------
    data : RunData
        The run's files.
    stats : dict
        Statistics of the records (:func:`~scpo.reports.collect.run_stats`).
    rows : list of dict
        Every claim with its source (:func:`~scpo.reports.claims.verdict_rows`).
    quality, quality_backup : dict
        The task's quality figures at the last iterate and at ``θ₀``.
    figures : list of Path
        The PNG files beside the page.
    copied_figures : tuple of str
        Those of them copied from ``RUN/figures`` (drawn by other commands).
    last_iteration : int
        The iteration of the newest checkpoint (where quality is evaluated).
    """

    data: RunData
    stats: dict[str, Any]
    rows: list[dict[str, Any]]
    quality: dict[str, Any]
    quality_backup: dict[str, Any]
    figures: list[Path]
    copied_figures: tuple[str, ...]
    last_iteration: int


def _header(doc: Doc, data: RunData) -> None:
    cfg = data.config
    doc.h(1, f"SCPO certificate report: {cfg.get('task')}")
    doc.p(f"Run {data.root} — status {data.run.status.get('status', 'unknown')}; report generated "
          f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by scpo {__version__} "
          f"(the run was written by scpo {cfg.get('scpo_version')}).")
    doc.p("Every claim below carries its level of evidence: ", Lv("exact"), " ", LEVEL_MEANING["exact"], "; ",
          Lv("sound"), " ", LEVEL_MEANING["sound"], "; ", Lv("evaluated"), " ", LEVEL_MEANING["evaluated"], "; ",
          Lv("estimated"), " ", LEVEL_MEANING["estimated"], ". A conclusion is only as strong as its weakest link.")
    source = (cfg.get("policy") or {}).get("constraint_source")
    if isinstance(source, dict):  # a black-box task (scpo.tasks.blackbox): its rows are evaluated at best
        doc.p("Constraint rows: from ", str(source.get("evaluator", "an external evaluator")), " — ", Lv(str(source.get("level"))),
              ". Every safety statement about them holds at the rollouts the evaluator ran, not between them; no region "
              "certificate applies, so no conclusion of this report is stronger than ", Lv("evaluated"), ".")
    if data.bad_line is not None:
        doc.p(Verdict(False, "Warning"), f": certificates.jsonl line {data.bad_line} is incomplete or not JSON; "
              "only the complete records before it are reported.")


def _verdicts(doc: Doc, data: RunData, rows: list[dict[str, Any]]) -> None:
    doc.h(2, "Verdicts", "verdicts-heading")
    vrows = []
    for r in rows:
        it = r.get("iteration")
        vrows.append([r["name"], Lv(str(r.get("level"))), verdict_of(r), r["source"] + (f" (iteration {it})" if it is not None else ""),
                      str(r.get("statement", ""))])
    a = data.audit
    if a is not None:
        levels = a.levels()
        for name, cnt in a.counts().items():
            vrows.append([f"audit: {name}", Lv(levels[name]), Verdict(cnt["failed"] == 0),
                          f"scpo audit ({cnt['passed']} passed, {cnt['failed']} failed)", AUDIT_TEXT.get(name.split(":")[0], name)])
        if a.input_errors:
            vrows.append(["audit: input", Lv("exact"), Verdict(False, "BAD INPUT"), "scpo audit", "; ".join(a.input_errors[:5])])
    doc.table(["certificate", "level", "verdict", "source", "statement"], vrows, table_id="verdicts")
    ind = induction(rows, sound=data.certify == "sound")
    doc.p("Induction conclusion: ", ind["statement"], " — ", Lv(ind["level"]), " ", Verdict(ind["holds"]), ".")


def _results(doc: Doc, content: ReportContent) -> None:
    st = content.stats
    doc.h(2, "Results", "results")
    items: list[Inline] = [f"objective f: {fmt(st['objective_initial'])} at θ_0 → {fmt(st['objective_final'])} at the last iterate"]
    items += content.data.task.quality_summary(content.quality_backup, content.quality)
    items.append(f"the last iterate θ_{st['iterations']} is the checkpoint of iteration {content.last_iteration} (the newest saved one); "
                 "quality figures are evaluated there")
    doc.ul(items)


def _iteration_row(r: dict[str, Any]) -> list[Inline]:
    acc = bool(r.get("accepted"))
    viol = acc and not recorded_number(r.get("max_constraint")) <= 0
    step = (Verdict(not viol, "VIOLATION" if viol else "accepted") if acc else Verdict(None, f"rejected: {r.get('reason')}"))
    return [
        str(r.get("iteration")), step,
        fmt(r.get("objective")), fmt(r.get("max_constraint")), fmt(r.get("predicted_max_constraint")),
        f"{fmt(r.get('L_min'), 3)} / {fmt(r.get('L_median'), 3)} / {fmt(r.get('L_max'), 3)}",
        fmt(r.get("step_norm"), 3), str(r.get("rejected_tries")), f"{r.get('solver')} {r.get('solver_status')}",
        f"{1e3 * recorded_number(r.get('solve_time_s')):.0f} / {1e3 * recorded_number(r.get('evaluation_time_s')):.0f} / {1e3 * recorded_number(r.get('wall_time_s')):.0f}",
        Code(short_hash(r.get("theta_sha256"))),
    ]


def _iterations(doc: Doc, data: RunData, st: dict[str, Any]) -> None:
    doc.h(2, "Iterations", "iterations")
    stat_rows = [
        ["iterations", str(st["iterations"])], ["accepted", str(st["accepted"])], ["rejected", str(st["rejected"])],
        ["rejection reasons", ", ".join(f"{k}: {v}" for k, v in st["rejection_reasons"].items()) or "—"],
        ["accepted iterates violating a constraint", str(st["violations"])],
        ["worst accepted max g (evaluated)", f"{fmt(st['worst_accepted_max_constraint'])} (iteration {st['worst_accepted_iteration']})"],
        ["accepted iterations with a row above its (★) prediction", str(st["accepted_above_prediction"])],
        ["solver statuses", ", ".join(f"{k}: {v}" for k, v in st["solver_statuses"].items()) or "—"],
        ["accepted iterations whose solve was not optimal (never certifies)", str(st["accepted_non_optimal"])],
        ["L max (last iteration / over the run)", f"{fmt(st['L_max_final'])} / {fmt(st['L_max_overall'])}"],
        ["time: total / solver / constraint evaluations", f"{st['time_total_s']:.2f} s / {st['solve_time_total_s']:.2f} s / {st['evaluation_time_total_s']:.2f} s"],
        ["median per iteration: wall / solve", f"{1e3 * st['wall_time_median_s']:.1f} ms / {1e3 * st['solve_time_median_s']:.1f} ms"],
    ]
    doc.table(["figure", "value"], stat_rows, table_id="iteration-summary")
    sel, summarised = selected_rows(data.records)
    if summarised:
        doc.p(f"Showing {len(sel)} of {len(data.records)} iterations (the first and last ten, every "
              f"{max(1, len(data.records) // 20)}th, and every violation); the full table is in ", Code("iterations.csv"), ".")
    else:
        doc.p("All iterations (also in ", Code("iterations.csv"), "). max g is evaluated; the prediction is the bound (★).")
    doc.table(["it", "step", "objective", "max g (evaluated)", "predicted (★)", "L min / median / max", "‖Δ‖",
               "rejected tries", "solver, status", "solve / eval / wall ms", "θ sha256"], [_iteration_row(r) for r in sel],
              table_id="iterations")


def _caption(p: Path, task_captions: dict[str, str], copied: tuple[str, ...]) -> str:
    if p.name in _CAPTIONS:
        return _CAPTIONS[p.name]
    if p.name in task_captions:
        return task_captions[p.name]
    if p.name not in copied:
        return f"{p.stem}: a figure of the task."
    if m := re.fullmatch(r"region_iter_(\d+)", p.stem):
        return f"Region certificate (level sound) at iteration {int(m.group(1))}: certified and failed boxes (copied from figures/{p.name})"
    return f"{p.stem} (copied from figures/{p.name})"


def _task_captions(task: Any) -> dict[str, str]:
    """Captions of the task's figures by file name, from the protocol hook ``task.figure_captions()``."""
    return dict(task.figure_captions())


def _figures(doc: Doc, content: ReportContent) -> None:
    doc.h(2, "Figures", "figures")
    task_captions = _task_captions(content.data.task)
    for p in content.figures:
        doc.figure(p.name, p.read_bytes(), _caption(p, task_captions, content.copied_figures))


def _claims_table(doc: Doc, claims: list[dict[str, Any]], table_id: str | None) -> None:
    rows = []
    for c in claims:
        det = c.get("details") or {}
        shown = {k: v for k, v in det.items() if isinstance(v, (int, float, str, bool)) or v is None}
        rows.append([c.get("name", "?"), Lv(str(c.get("level"))), verdict_of(c), str(c.get("statement", "")),
                     "; ".join(f"{k} = {_short_value(v)}" for k, v in list(shown.items())[:10])])
    doc.table(["claim", "level", "verdict", "statement", "details"], rows, table_id=table_id)


def _certificates(doc: Doc, data: RunData) -> None:
    if data.final:
        doc.h(2, "Certificates of the final iterate", "final-certificates")
        doc.p(f"certificates/final.json: iteration {data.final.get('iteration')}, θ SHA-256 {short_hash(data.final.get('theta_sha256'))}.")
        _claims_table(doc, data.claims_of("final"), "final-claims")
    if data.other_certs:
        doc.h(2, "Other certificates", "other-certificates")
        doc.table(["file", "iteration", "θ SHA-256", "claims", "summary"], [_cert_row(name, cert) for name, cert in data.other_certs],
                  table_id="other-certificates-table")
        for name, cert in data.other_certs:
            doc.p(Code(f"certificates/{name}"), ":")
            _claims_table(doc, [c for c in cert["claims"] if isinstance(c, dict)], None)


_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CERT_META_SKIP = {"claims", "schema_version", "iteration", "theta_sha256", "kind", "created", "scpo_version"}


def _short_value(v: Any) -> str:
    if isinstance(v, str) and _HEX64.match(v):
        return short_hash(v)
    if isinstance(v, float):
        return fmt(v)
    text = str(v)
    return text if len(text) <= 40 else text[:39] + "…"


def _cert_row(name: str, cert: dict[str, Any]) -> list[Any]:
    """One row of the "Other certificates" table: where, which θ, how many claims hold, six key figures."""
    from .claims import claim_required

    claims = [c for c in cert["claims"] if isinstance(c, dict)]
    held = sum(1 for c in claims if c.get("holds"))
    failing = [c.get("name", "?") + ("" if claim_required(c) else " (not required)") for c in claims if not c.get("holds")]
    verdict = f"{held} of {len(claims)} hold" + (f"; fails: {', '.join(failing)}" if failing else "")
    meta = {k: v for k, v in cert.items() if k not in _CERT_META_SKIP and isinstance(v, (int, float, str, bool))}
    summ = cert.get("summary")
    if isinstance(summ, dict):
        meta |= {k: v for k, v in summ.items() if isinstance(v, (int, float, str, bool))}
    shown = "; ".join(f"{k} {_short_value(v)}" for k, v in list(meta.items())[:6])
    it = cert.get("iteration")
    return [Code(name), "—" if it is None else str(it), short_hash(cert.get("theta_sha256")) if cert.get("theta_sha256") else "—",
            verdict, shown or "—"]


def _audit(doc: Doc, audit: Any) -> None:
    doc.h(2, "Independent audit", "audit")
    doc.p("Re-verified from the files alone by ", Code("scpo audit"), " (its own safetensors reader, hashes recomputed "
          "from tensor bytes, the chain recomputed from θ_0, the backup certificate re-checked in exact arithmetic, "
          "g re-evaluated at checkpoints ", ", ".join(map(str, audit.audited_iterations)) or "none",
          "). Verdict: ", Verdict(audit.ok, "verified" if audit.ok else audit.verdict.upper()), ".")
    fails = [[c.name, str(c.iteration) if c.iteration is not None else "—", Lv(c.level.value), c.message] for c in audit.failures[:50]]
    if fails:
        doc.table(["check", "iteration", "level", "what is wrong"], fails, table_id="audit-failures")
    if audit.input_errors:
        doc.ul([f"bad input: {e}" for e in audit.input_errors])
    if audit.notes:
        doc.ul([f"note: {n}" for n in audit.notes])


def build_document(content: ReportContent) -> Doc:
    """The whole report as a :class:`Doc` (rendered by :meth:`Doc.to_html` and :meth:`Doc.to_markdown`).

    Parameters
    ----------
    content : ReportContent

    Returns
    -------
    Doc
    """
    data, st, rows = content.data, content.stats, content.rows
    doc = Doc()
    _header(doc, data)
    _verdicts(doc, data, rows)
    doc.h(2, "Task and configuration", "task")
    task_section(doc, data)
    doc.h(2, "The induction chain", "induction")
    induction_section(doc, data, st, rows)
    _results(doc, content)
    _iterations(doc, data, st)
    _figures(doc, content)
    _certificates(doc, data)
    if data.audit is not None:
        _audit(doc, data.audit)
    doc.h(2, "Files", "files")
    doc.ul([Code("summary.json"), Code("iterations.csv"), Code("report.md"), *[Code(p.name) for p in content.figures]])
    return doc
