"""Certificate reports of a run: ``scpo report RUN`` writes ``RUN/report/`` (DESIGN §2, §6, §8).

The report states the induction chain so that a reviewer can follow it from the page alone:

1. base case (``exact``): ``θ₀``'s final layer is zero, so ``π_θ0 = π_safe``;
2. backup certificate (``exact``, plus ``g(θ₀) ≤ 0`` on the grid, ``evaluated``);
3. the induction step (``evaluated``, per iteration): an iterate is accepted only with its
   evaluated ``max g ≤ 0``, a rejected iteration keeps ``θ``; records chain by SHA-256;
4. region (``sound``) and smoothness certificates where the run has them;
5. the conclusion at the level of its weakest link, and what is *not* claimed.

Every claim is shown with its level; the summary of a chain is never stronger than its weakest
link. Files written (atomically, by building a new folder and swapping it in):

``index.html``
    Self-contained: the figures are embedded as base64 PNG, there is no script, no external
    style sheet or font, nothing that touches the network.
``report.md``
    The same content in Markdown, with the PNG figures beside it.
``summary.json``
    Machine-readable figures and verdicts (schema in :func:`RunReport.summary`).
``iterations.csv``
    The full per-iteration table (the pages show a summary of long runs).
``*.png``
    Training curves and the task's figures.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import logging
import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..evidence import Level, _jsonable

__all__ = ["ReportResult", "RunReport", "build_report"]

logger = logging.getLogger(__name__)

SUMMARY_SCHEMA_VERSION = 1
FULL_TABLE_ROWS = 60
"""Runs with more records than this get a summarised iteration table on the pages."""

LEVEL_MEANING = {
    "exact": "proved in exact rational arithmetic (sympy) or by structure",
    "sound": "floating-point bounds that over-approximate with an outward margin",
    "evaluated": "computed at finitely many points (a grid, a batch of rollouts)",
    "estimated": "a statistical or sampled estimate",
}

CSV_COLUMNS = [
    "iteration", "accepted", "reason", "objective_before", "objective", "max_constraint", "predicted_max_constraint",
    "candidate_max_constraint", "violation", "step_norm", "raw_step_norm", "alpha", "rejected_tries",
    "prediction_failures", "L_min", "L_median", "L_max", "L_raised_rows", "bank_size", "evaluations", "solver",
    "solver_status", "solve_time_s", "setup_time_s", "evaluation_time_s", "gradient_time_s", "wall_time_s",
    "theta_sha256", "parent_sha256", "checkpoint",
]


# ---------------------------------------------------------------------------------------------
# a tiny document model rendered to both HTML and Markdown


@dataclass(frozen=True)
class _Lv:
    level: str


@dataclass(frozen=True)
class _Verdict:
    holds: bool | None  # None: reported, not required
    text: str = ""


@dataclass(frozen=True)
class _Code:
    text: str


Inline = str | _Lv | _Verdict | _Code | list


def _verdict_text(v: _Verdict) -> str:
    if v.text:
        return v.text
    return "holds" if v.holds else ("FAILS" if v.holds is False else "report only")


def _html_inline(x: Inline) -> str:
    if isinstance(x, list):
        return "".join(_html_inline(y) for y in x)
    if isinstance(x, _Lv):
        return f'<span class="lv lv-{html.escape(x.level)}" title="{html.escape(LEVEL_MEANING.get(x.level, ""))}">{html.escape(x.level)}</span>'
    if isinstance(x, _Verdict):
        cls = "ok" if x.holds else ("fail" if x.holds is False else "info")
        return f'<span class="verdict {cls}">{html.escape(_verdict_text(x))}</span>'
    if isinstance(x, _Code):
        return f"<code>{html.escape(x.text)}</code>"
    return html.escape(str(x))


def _md_inline(x: Inline, *, cell: bool = False) -> str:
    if isinstance(x, list):
        return "".join(_md_inline(y, cell=cell) for y in x)
    if isinstance(x, _Lv):
        return f"**[{x.level}]**"
    if isinstance(x, _Verdict):
        t = _verdict_text(x)
        return f"**{t}**" if x.holds is not True else t
    if isinstance(x, _Code):
        return f"`{x.text}`"
    s = str(x)
    if cell:
        s = s.replace("|", "\\|").replace("\n", " ")
    return s


class _Doc:
    """Blocks of a page: headings, paragraphs, lists, tables and figures."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        self.blocks.append(("h", level, text, anchor))

    def p(self, *parts: Inline) -> None:
        self.blocks.append(("p", list(parts)))

    def ol(self, items: list[Inline]) -> None:
        self.blocks.append(("ol", items))

    def ul(self, items: list[Inline]) -> None:
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[Inline]], *, table_id: str | None = None) -> None:
        self.blocks.append(("table", header, rows, table_id))

    def figure(self, name: str, png: bytes, caption: str) -> None:
        self.blocks.append(("figure", name, png, caption))

    def to_markdown(self) -> str:
        out: list[str] = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(_md_inline(b[1]))
            elif kind in ("ol", "ul"):
                out.append("\n".join((f"{i + 1}. " if kind == "ol" else "- ") + _md_inline(item) for i, item in enumerate(b[1])))
            elif kind == "table":
                header, rows = b[1], b[2]
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(_md_inline(c, cell=True) for c in row) + " |" for row in rows]
                out.append("\n".join(lines))
            elif kind == "figure":
                out.append(f"![{b[3]}]({b[1]})\n\n*{b[3]}*")
        return "\n\n".join(out) + "\n"

    def to_html(self, title: str) -> str:
        body: list[str] = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                anchor = f' id="{html.escape(b[3])}"' if b[3] else ""
                body.append(f"<h{b[1]}{anchor}>{html.escape(b[2])}</h{b[1]}>")
            elif kind == "p":
                body.append(f"<p>{_html_inline(b[1])}</p>")
            elif kind in ("ol", "ul"):
                items = "".join(f"<li>{_html_inline(item)}</li>" for item in b[1])
                body.append(f"<{kind}>{items}</{kind}>")
            elif kind == "table":
                header, rows, tid = b[1], b[2], b[3]
                idattr = f' id="{html.escape(tid)}"' if tid else ""
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>" for row in rows)
                body.append(f"<table{idattr}><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "figure":
                data = base64.b64encode(b[2]).decode("ascii")
                stem = html.escape(Path(b[1]).stem)
                body.append(
                    f'<figure id="fig-{stem}"><img src="data:image/png;base64,{data}" alt="{html.escape(b[3])}" '
                    f'data-file="{html.escape(b[1])}"><figcaption>{html.escape(b[3])} '
                    f'(<a href="{html.escape(b[1])}">{html.escape(b[1])}</a>)</figcaption></figure>'
                )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#1d2330;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ccd;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ccd;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#eef0f6}code{background:#f2f3f7;padding:0 .2em;font-size:.92em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #dde}figcaption{font-size:.85em;color:#555}
.lv{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.82em;font-weight:600;color:#fff}
.lv-exact{background:#1b5e20}.lv-sound{background:#2e7d32}.lv-evaluated{background:#b26a00}.lv-estimated{background:#6d6d6d}
.verdict{font-weight:600}.verdict.ok{color:#1b5e20}.verdict.fail{color:#b00020}.verdict.info{color:#555}
ol>li{margin-bottom:.6em}
"""


# ---------------------------------------------------------------------------------------------
# helpers


def _num(v: Any) -> float:
    if isinstance(v, bool):
        return float("nan")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    return float("nan")


def _fmt(v: Any, digits: int = 4) -> str:
    x = _num(v)
    if math.isnan(x):
        return "—" if v is None else str(v)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _short(h: Any) -> str:
    return f"{h[:12]}…" if isinstance(h, str) else "—"


def _claim_required(c: dict[str, Any]) -> bool:
    return (c.get("details") or {}).get("required") is not False


def _verdict_of(c: dict[str, Any]) -> _Verdict:
    holds = bool(c.get("holds"))
    if not _claim_required(c):
        return _Verdict(None, "holds (report only)" if holds else "does not hold everywhere (report only)")
    return _Verdict(holds)


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    directory : Path
        ``RUN/report``.
    index_html, markdown, summary_json, iterations_csv : Path
    figures : tuple of Path
    summary : dict
        The content of ``summary.json``.
    exit_code : int
        0 when every required certificate holds (and the audit, if run, verified), 1 otherwise.
    """

    directory: Path
    index_html: Path
    markdown: Path
    summary_json: Path
    iterations_csv: Path
    figures: tuple[Path, ...]
    summary: dict[str, Any]
    exit_code: int


class RunReport:
    """Collects a run directory's files and renders its report (state: the loaded run and task).

    Parameters
    ----------
    run : str or Path
        A run directory written by ``scpo train``.
    audit : bool, default True
        Also run :func:`scpo.audit.audit` and include its verdicts (an independent re-check
        from the files).
    audit_iterations : str, optional
        Checkpoints the audit re-evaluates (see :func:`scpo.audit.parse_iterations`); default
        ``"0,last"``: ``θ₀`` and the final iterate (hashes and the chain are always checked for
        every file).

    Raises
    ------
    RunDirectoryError
        If ``run`` is not a run directory of a known schema.
    """

    def __init__(self, run: str | Path, *, audit: bool = True, audit_iterations: str | None = "0,last") -> None:
        from ..runs import load_run
        from ..runs.files import read_jsonl

        self.run = load_run(run)
        self.root = self.run.path
        self.config = self.run.config
        self.records = self.run.records
        self.bad_line = read_jsonl(self.run.paths.records)[1] if self.run.paths.records.is_file() else None
        self.base = self.run.base_certificate
        self.final = self._read_cert(self.run.paths.certificates / "final.json")
        self.other_certs = self._other_certificates()
        self.task = self.run.task
        self._audit = audit
        self._audit_iterations = audit_iterations
        self.audit_result = None

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _read_cert(path: Path) -> dict[str, Any] | None:
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("report: %s is not valid JSON (%s); left out", path, exc)
            return None
        return data if isinstance(data, dict) else None

    def _other_certificates(self) -> list[tuple[str, dict[str, Any]]]:
        cdir = self.run.paths.certificates
        out = []
        if cdir.is_dir():
            for p in sorted(cdir.glob("*.json")):
                if p.name == "final.json":
                    continue
                data = self._read_cert(p)
                if data is not None and isinstance(data.get("claims"), list):
                    out.append((p.name, data))
        return out

    # ------------------------------------------------------------------ numbers
    def stats(self) -> dict[str, Any]:
        """Counts, objective and constraint figures, timings over the records."""
        recs = self.records
        acc = [r for r in recs if r.get("accepted")]
        rej = [r for r in recs if not r.get("accepted")]
        mc = np.array([_num(r.get("max_constraint")) for r in acc]) if acc else np.zeros(0)
        reasons: dict[str, int] = {}
        for r in rej:
            reasons[str(r.get("reason"))] = reasons.get(str(r.get("reason")), 0) + 1
        statuses: dict[str, int] = {}
        for r in recs:
            statuses[str(r.get("solver_status"))] = statuses.get(str(r.get("solver_status")), 0) + 1
        worst_i = int(np.nanargmax(mc)) if mc.size and np.any(np.isfinite(mc)) else None

        def tsum(key: str) -> float:
            return float(np.nansum([_num(r.get(key)) for r in recs])) if recs else 0.0

        def tmed(key: str) -> float:
            vals = [_num(r.get(key)) for r in recs]
            vals = [v for v in vals if math.isfinite(v)]
            return float(np.median(vals)) if vals else float("nan")

        pred_fail = sum(1 for r in acc if _num(r.get("max_constraint")) > _num(r.get("predicted_max_constraint")))
        return {
            "iterations": len(recs),
            "accepted": len(acc),
            "rejected": len(rej),
            "violations": sum(1 for r in acc if r.get("violation") or not _num(r.get("max_constraint")) <= 0),
            "rejection_reasons": reasons,
            "solver_statuses": statuses,
            "accepted_non_optimal": sum(1 for r in acc if self._projection and r.get("solver_status") != "optimal"),
            "worst_accepted_max_constraint": float(mc[worst_i]) if worst_i is not None else None,
            "worst_accepted_iteration": int(acc[worst_i]["iteration"]) if worst_i is not None else None,
            "accepted_above_prediction": pred_fail,
            "objective_initial": _num(recs[0].get("objective_before")) if recs else None,
            "objective_final": _num(recs[-1].get("objective")) if recs else None,
            "L_max_final": _num(recs[-1].get("L_max")) if recs else None,
            "L_max_overall": float(np.nanmax([_num(r.get("L_max")) for r in recs])) if recs else None,
            "time_total_s": tsum("wall_time_s"),
            "solve_time_total_s": tsum("solve_time_s"),
            "evaluation_time_total_s": tsum("evaluation_time_s"),
            "solve_time_median_s": tmed("solve_time_s"),
            "wall_time_median_s": tmed("wall_time_s"),
        }

    @property
    def _projection(self) -> bool:
        return bool(self.config.get("projector", {}).get("projection", True))

    def _thetas(self) -> tuple[np.ndarray, np.ndarray, int]:
        ckpts = self.run.checkpoints
        last = max(ckpts)
        return self.run.theta(0), self.run.theta(last), last

    # ------------------------------------------------------------------ claims
    def base_claims(self) -> list[dict[str, Any]]:
        return [c for c in self.base.get("claims", []) if isinstance(c, dict)]

    def step_claim(self, st: dict[str, Any]) -> dict[str, Any]:
        """The per-iteration step certificates summarised as one claim (level evaluated)."""
        worst = st["worst_accepted_max_constraint"]
        holds = st["violations"] == 0 and self._projection and self.bad_line is None
        return {
            "name": "steps",
            "statement": (
                "every accepted iterate θ_{t+1} has evaluated max_i g_i(θ_{t+1}) ≤ 0 on every grid row; every rejected "
                "iteration keeps θ_{t+1} = θ_t"
            ),
            "level": "evaluated",
            "holds": bool(holds),
            "details": {"iterations": st["iterations"], "accepted": st["accepted"], "rejected": st["rejected"],
                        "violations": st["violations"], "worst_accepted_max_constraint": worst,
                        "projection": self._projection},
        }

    def chain_claim(self) -> dict[str, Any]:
        """Parent links of the records, recomputed from ``certificates.jsonl`` (exact)."""
        parent = self.base.get("theta_sha256")
        breaks = []
        for i, r in enumerate(self.records, start=1):
            if r.get("iteration") != i:
                breaks.append(f"iteration numbering: record {i} says {r.get('iteration')}")
            if r.get("parent_sha256") != parent:
                breaks.append(f"iteration {r.get('iteration')}: parent hash {_short(r.get('parent_sha256'))} ≠ {_short(parent)}")
            if not r.get("accepted") and r.get("theta_sha256") != r.get("parent_sha256"):
                breaks.append(f"iteration {r.get('iteration')}: rejected but θ changed")
            parent = r.get("theta_sha256")
        if self.bad_line is not None:
            breaks.append(f"certificates.jsonl line {self.bad_line} is incomplete or not JSON")
        return {
            "name": "record_chain",
            "statement": "the records form one chain from θ₀: iterations 1..T in order, each parent SHA-256 equal to the previous iterate's",
            "level": "exact",
            "holds": not breaks,
            "details": {"breaks": breaks[:20], "last_theta_sha256": parent},
        }

    def verdict_rows(self, st: dict[str, Any]) -> list[dict[str, Any]]:
        """Every claim of the report with its source, for the verdict table and summary.json."""
        rows: list[dict[str, Any]] = []
        for c in self.base_claims():
            rows.append({**c, "source": "base_certificate.json", "iteration": 0})
        rows.append({**self.chain_claim(), "source": "certificates.jsonl", "iteration": None})
        rows.append({**self.step_claim(st), "source": "certificates.jsonl", "iteration": None})
        if self.final:
            for c in self.final.get("claims", []):
                if isinstance(c, dict):
                    rows.append({**c, "source": "certificates/final.json", "iteration": self.final.get("iteration")})
        for name, data in self.other_certs:
            for c in data["claims"]:
                if isinstance(c, dict):
                    rows.append({**c, "source": f"certificates/{name}", "iteration": data.get("iteration")})
        return rows

    def induction(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The conclusion "every iterate satisfies g ≤ 0 on the grid" and its weakest level."""
        used = [r for r in rows if r["source"] in ("base_certificate.json", "certificates.jsonl")]
        levels = [Level(r["level"]) for r in used if r.get("level") in LEVEL_MEANING]
        from ..evidence import weakest

        lv = weakest(levels) if levels else Level.ESTIMATED
        return {
            "statement": "every recorded iterate θ_0, …, θ_T satisfies g(θ_t) ≤ 0 on the safety grid",
            "level": lv.value,
            "holds": bool(used) and all(bool(r.get("holds")) for r in used),
            "links": [{"name": r["name"], "level": r["level"], "holds": bool(r.get("holds"))} for r in used],
        }

    # ------------------------------------------------------------------ build
    def summary(self, st: dict[str, Any], rows: list[dict[str, Any]], quality: dict[str, Any], figures: list[str]) -> dict[str, Any]:
        from .. import __version__

        ind = self.induction(rows)
        out: dict[str, Any] = {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "kind": "scpo.report.summary",
            "scpo_version": __version__,
            "run_scpo_version": self.config.get("scpo_version"),
            "run": str(self.root),
            "task": self.config.get("task"),
            "status": self.run.status.get("status"),
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
                {"name": r["name"], "level": r.get("level"), "holds": bool(r.get("holds")), "required": _claim_required(r),
                 "source": r["source"], "iteration": r.get("iteration")}
                for r in rows
            ],
            "induction": ind,
            "figures": figures,
        }
        if "improvement_fraction" in quality:
            out["improvement_fraction"] = quality["improvement_fraction"]
        if "imitation_loss" in quality:
            out["imitation_loss"] = quality["imitation_loss"]
        if self.audit_result is not None:
            a = self.audit_result
            out["audit"] = {"verdict": a.to_dict()["verdict"], "exit_code": a.exit_code, "counts": a.counts(),
                            "failures": [c.to_dict() for c in a.failures][:50], "input_errors": list(a.input_errors),
                            "audited_iterations": list(a.audited_iterations)}
        return out

    def build(self, out: str | Path | None = None) -> ReportResult:
        """Write the report into ``out`` (default ``RUN/report``), replacing an older one atomically."""
        out = Path(out) if out is not None else self.root / "report"
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            result = self._write(tmp, out)
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(out, old)
            os.replace(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return result

    def _write(self, tmp: Path, final_dir: Path) -> ReportResult:
        from ..runs.files import atomic_write_json, atomic_write_text

        if self._audit:
            from ..audit import audit

            self.audit_result = audit(self.root, iterations=self._audit_iterations)
        st = self.stats()
        theta0, theta_last, last_it = self._thetas()
        quality = dict(self.task.quality(theta_last))
        quality_backup = dict(self.task.quality(theta0))
        figures = self._figures(tmp, theta0, theta_last)
        rows = self.verdict_rows(st)
        summary = self.summary(st, rows, quality, [p.name for p in figures])
        self._write_csv(tmp / "iterations.csv")
        doc = self._document(st, rows, quality, quality_backup, figures, last_it)
        title = f"SCPO certificate report — {self.config.get('task')} — {self.root.name}"
        atomic_write_text(tmp / "index.html", doc.to_html(title))
        atomic_write_text(tmp / "report.md", doc.to_markdown())
        atomic_write_json(tmp / "summary.json", summary)
        required_ok = all(bool(r.get("holds")) for r in rows if _claim_required(r))
        audit_ok = self.audit_result is None or self.audit_result.exit_code == 0
        return ReportResult(
            directory=final_dir,
            index_html=final_dir / "index.html",
            markdown=final_dir / "report.md",
            summary_json=final_dir / "summary.json",
            iterations_csv=final_dir / "iterations.csv",
            figures=tuple(final_dir / p.name for p in figures),
            summary=json.loads(json.dumps(_jsonable(summary))),
            exit_code=0 if (required_ok and audit_ok) else 1,
        )

    # ------------------------------------------------------------------ figures and table
    def _figures(self, out_dir: Path, theta0: np.ndarray, theta_last: np.ndarray) -> list[Path]:
        paths = list(self.task.figures(self.records, {"θ0": theta0, "final": theta_last}, out_dir))
        if hasattr(self.task, "safety_states") and hasattr(self.task, "system"):
            from .figures import save

            paths.append(save(self._reach_avoid_figure(theta_last), out_dir / "reach_avoid_margins.png"))
        # figures other commands left in RUN/figures (e.g. region certificates), copied as they are
        fig_dir = self.run.paths.figures
        if fig_dir.is_dir():
            made = {p.name for p in paths}
            for p in sorted(fig_dir.glob("*.png")):
                if p.name not in made and p.name not in _REGENERATED and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
                    shutil.copyfile(p, out_dir / p.name)
                    paths.append(out_dir / p.name)
        return paths

    def _reach_avoid_figure(self, theta: np.ndarray):
        """Worst constraint margin of the final policy's rollout from each grid state of ``S``."""
        import torch
        from matplotlib.figure import Figure

        from .figures import _ellipse

        task = self.task
        with torch.no_grad():
            rows = task.rollout_rows(task.rollout(theta[None], task.safety_states))[0].numpy()
        worst = np.max(rows, axis=-1)
        s = task.safety_states
        fig = Figure(figsize=(7, 5.6))
        ax = fig.subplots()
        vmax = float(np.max(np.abs(worst))) if worst.size else 1.0
        sc = ax.scatter(s[:, 0], s[:, 1], c=worst, cmap="RdYlGn_r", vmin=-vmax, vmax=vmax, s=14, marker="s")
        bad = worst > 0
        if np.any(bad):
            ax.plot(s[bad, 0], s[bad, 1], "kx", ms=6, label=f"fails reach-avoid ({int(bad.sum())})")
        ax.add_patch(_ellipse(task.P, task.gamma, fill=False, color="tab:purple", lw=2, label="X_f"))
        cfg = task.config
        ax.set_xlim(-1.1 * cfg.p_max, 1.1 * cfg.p_max)
        ax.set_ylim(-1.1 * cfg.v_max, 1.1 * cfg.v_max)
        fig.colorbar(sc, ax=ax, label="worst rollout row (≤ 0 safe)")
        verdict = "holds" if not np.any(bad) and np.all(np.isfinite(worst)) else "FAILS"
        ax.set_title(f"final policy: reach-avoid [evaluated] on {len(s)} grid states of S: {verdict}")
        ax.set_xlabel("position p")
        ax.set_ylabel("velocity v")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return fig

    def _write_csv(self, path: Path) -> None:
        from ..runs.files import atomic_write_text

        extra = sorted({k for r in self.records for k, v in r.items() if k not in CSV_COLUMNS and isinstance(v, (int, float, str, bool)) and k != "time"})
        cols = CSV_COLUMNS + extra
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for r in self.records:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
        atomic_write_text(path, buf.getvalue())

    def _selected_rows(self) -> tuple[list[dict[str, Any]], bool]:
        recs = self.records
        n = len(recs)
        if n <= FULL_TABLE_ROWS:
            return recs, False
        idx = set(range(10)) | set(range(n - 10, n))
        step = max(1, n // 20)
        idx |= set(range(0, n, step))
        viol = [i for i, r in enumerate(recs) if r.get("accepted") and not _num(r.get("max_constraint")) <= 0]
        idx |= set(viol[:20])
        return [recs[i] for i in sorted(idx)], True

    # ------------------------------------------------------------------ the page
    def _task_paragraphs(self, doc: _Doc) -> None:
        cfg = self.config
        tc = cfg.get("task_config", {})
        pol = cfg.get("policy", {})
        res = pol.get("residual", {})
        task = self.task
        if cfg.get("task") == "regression":
            doc.p(
                f"Regression with harmful supervision: fit y = {tc.get('amplitude')}·sin({tc.get('frequency')}x) on "
                f"{tc.get('n_train')} evenly spaced points of [{tc.get('x_min')}, {tc.get('x_max')}] while keeping "
                f"|f_θ(x_j)| ≤ {tc.get('bound')} at {tc.get('n_grid')} evenly spaced grid points "
                f"(N = {2 * int(tc.get('n_grid', 0))} constraint rows g ≤ 0). The backup is π_safe ≡ 0; the target leaves "
                "the safe band, so plain fitting is unsafe."
            )
        else:
            s = task.system
            doc.p(
                f"Double integrator x = (p, v), x⁺ = Ax + Bu with dt = {tc.get('dt')}: A = {np.round(s.A, 6).tolist()}, "
                f"B = {np.round(s.B, 6).tolist()}; constraints |p| ≤ {tc.get('p_max')}, |v| ≤ {tc.get('v_max')}, "
                f"|u| ≤ {tc.get('u_max')}. Backup π_safe(x) = Kx from discrete LQR (Q = diag{tuple(tc.get('q_diag', []))}, "
                f"R = {tc.get('r')}): K = {np.round(task.K, 6).tolist()}. Terminal set X_f = {{xᵀPx ≤ γ}}, γ = {task.gamma:.6g}. "
                f"Safety region S: the {len(task.safety_states)} of {len(task.grid_states)} grid states "
                f"({tc.get('grid')}×{tc.get('grid')}) from which the backup reaches X_f within T = {tc.get('horizon')} steps inside "
                f"the constraints. The expert is malicious: a PD law tracking p* = {tc.get('expert_target')}, outside |p| ≤ "
                f"{tc.get('p_max')}. Constraint rows: the closed-loop rollout rows from each grid state of S "
                f"(aggregated per state: {tc.get('rows')!r}), {pol.get('constraints')} rows in all."
            )
        act = res.get("activation")
        items: list[Inline] = [
            f"Residual φ_θ: MLP {res.get('in_dim')} → {res.get('hidden')} → {res.get('out_dim')}, activation {act}, "
            f"d = {pol.get('parameters')} parameters, seed {cfg.get('train', {}).get('seed')}; π_θ = π_safe + φ_θ"
            + (" (switched off inside X_f)" if tc.get("switching") else "") + "."
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
                  [[sec, _Code(", ".join(f"{k}={json.dumps(v)}" for k, v in (cfg.get(sec) or {}).items()))]
                   for sec in ("task_config", "projector", "train")], table_id="config")

    def _meaning_of_g(self) -> str:
        """What ``g(θ) ≤ 0`` means for this run's task, in words."""
        tc = self.config.get("task_config", {})
        pol = self.config.get("policy", {})
        if self.config.get("task") == "regression":
            return f"i.e. |f_θt(x_j)| ≤ {tc.get('bound')} at each of the {tc.get('n_grid')} grid points x_j"
        rows = tc.get("rows")
        how = {
            "max": "the largest of its rollout rows is ≤ 0",
            "per-row": "every rollout row is ≤ 0",
            "lse": f"the log-sum-exp of its rollout rows (temperature {tc.get('lse_temperature')}, an upper bound of their maximum) is ≤ 0",
        }.get(rows, f"its rows (aggregated as {rows!r}) are ≤ 0")
        return (
            f"i.e. from each of the {pol.get('training_grid_states', '?')} grid states of S used as constraint rows, the "
            f"T = {tc.get('horizon')}-step closed-loop rollout of π_θt keeps |p| ≤ {tc.get('p_max')}, |v| ≤ {tc.get('v_max')}, "
            f"|u| ≤ {tc.get('u_max')} and ends in X_f ({how})"
        )

    def _induction_section(self, doc: _Doc, st: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        by_name = {r["name"]: r for r in rows if r["source"] == "base_certificate.json"}
        base = by_name.get("base_case", {})
        bd = base.get("details", {})
        ind = self.induction(rows)
        control = self.config.get("task") != "regression"
        doc.p(
            "Claim: ", ind["statement"], f" — {self._meaning_of_g()}. Level of the conclusion: ", _Lv(ind["level"]),
            " (the weakest link below). Verdict: ", _Verdict(ind["holds"]), "."
        )
        items: list[Inline] = []
        items.append([
            "Base case ", _Lv(base.get("level", "exact")), " ", _Verdict(bool(base.get("holds"))), ". ",
            f"θ_0 (SHA-256 {_short(self.base.get('theta_sha256'))}, {self.base.get('checkpoint')}) has its final layer "
            f"{bd.get('layer')} (weight {bd.get('weight_shape')}, bias {bd.get('bias_shape')}) with "
            f"{bd.get('nonzero_weight_entries', '?')} + {bd.get('nonzero_bias_entries', '?')} non-zero entries and all parameters "
            f"finite = {bd.get('all_parameters_finite')}. Hence φ_θ0(x) = 0·h(x) + 0 = 0 for every x, so π_θ0 = π_safe.",
        ])
        bf = by_name.get("backup_feasible", {})
        if control:
            parts: list[Inline] = ["Backup certificate ", _Lv("exact"), ". For π_safe(x) = Kx and V(x) = xᵀPx, checked in exact "
                                   "rational arithmetic on the binary values of the float matrices: "]
            for name in ("P_positive_definite", "lyapunov_decrease", "terminal_set_in_state_constraints", "terminal_set_input_feasible"):
                c = by_name.get(name)
                if c is None:
                    parts += [f"{name}: ", _Verdict(False, "MISSING"), "; "]
                else:
                    parts += [c.get("statement", name), " ", _Lv(c.get("level", "?")), " ", _Verdict(bool(c.get("holds"))), "; "]
            parts.append("together: X_f is positively invariant under the backup, which satisfies every constraint on X_f "
                         "and makes V decrease there. ")
        else:
            bound = self.config.get("task_config", {}).get("bound")
            parts = ["Backup certificate ", _Lv("exact"), f". π_safe ≡ 0 and the constraint is |f(x)| ≤ {bound} with {bound} > 0, "
                     "so the backup satisfies every row by structure (re-checked by the audit). "]
        parts += [
            "On the grid: ", bf.get("statement", "backup feasibility"), " ", _Lv(bf.get("level", "evaluated")), " ",
            _Verdict(bool(bf.get("holds"))), f" (max g(θ_0) = {_fmt(self.base.get('max_constraint'))}).",
        ]
        items.append(parts)
        step = next(r for r in rows if r["name"] == "steps")
        chain = next(r for r in rows if r["name"] == "record_chain")
        reasons = ", ".join(f"{k}: {v}" for k, v in st["rejection_reasons"].items()) or "none"
        if self._projection:
            step_text = (
                f"Assume g(θ_t) ≤ 0. The projector proposes a step Δ = Dc inside the convex inner approximation "
                f"(★) g_i(θ_t + Dc) ≤ g_i(θ_t) + Σ_k c_k h_ik + (L_i/2)(Σ_k |c_k| s_k + ‖Dc‖²), built from evaluated probe "
                f"offsets, and the iteration is accepted only if g(θ_{{t+1}}), evaluated at every row, is ≤ 0; otherwise "
                f"θ_{{t+1}} = θ_t and the iteration is recorded as rejected. So g(θ_{{t+1}}) ≤ 0. The smoothness constants L only "
                f"shape the proposal: acceptance "
                f"uses the evaluated g, not the prediction. In this run: {st['iterations']} iterations, {st['accepted']} "
                f"accepted, each with evaluated max g ≤ 0 unless counted here as a violation ({st['violations']} violations; "
                f"worst accepted max g = {_fmt(st['worst_accepted_max_constraint'])} at iteration "
                f"{st['worst_accepted_iteration']}); {st['rejected']} rejected, θ unchanged (reasons: {reasons}). "
                f"Accepted steps whose evaluated max g exceeded the (★) prediction: {st['accepted_above_prediction']} "
                f"(L misestimated there; acceptance still rested on the evaluated g). "
            )
        else:
            step_text = (
                "Projection was OFF (an unconstrained baseline): every raw step was taken without a safety check, so the "
                f"induction step does not apply. {st['violations']} accepted iterates violate a constraint. "
            )
        items.append([
            "Induction step ", _Lv("evaluated"), " per iteration ", _Verdict(bool(step["holds"])), ". ", step_text,
            "Each record names its parent by SHA-256: ", _Lv("exact"), " ", _Verdict(bool(chain["holds"])),
            f" — θ_0 ({_short(self.base.get('theta_sha256'))}) → … → θ_{st['iterations']} "
            f"({_short(chain['details']['last_theta_sha256'])})."
            + ("" if chain["holds"] else " Breaks: " + "; ".join(chain["details"]["breaks"][:5]) + "."),
        ])
        region = [(n, d) for n, d in self.other_certs if n.startswith("region")]
        lips = [(n, d) for n, d in self.other_certs if n.startswith("lipschitz")]
        if region:
            parts = ["Region certificates ", _Lv("sound"), " where they hold: "]
            for n, d in region:
                for c in d["claims"]:
                    if isinstance(c, dict):
                        parts += [f"{n} (iteration {d.get('iteration')}): {c.get('name')} ", _Lv(str(c.get("level"))), " ",
                                  _verdict_of(c), "; "]
            parts.append("where such a claim holds, safety of that iterate on the covered boxes of S is sound, not only on the grid.")
            items.append(parts)
        else:
            items.append(["Region certificates ", _Lv("sound"), ": none in certificates/. Safety between grid points is ",
                          _Verdict(None, "not claimed"), "."])
        if lips:
            parts = ["Smoothness constants L: "]
            for n, d in lips:
                for c in d["claims"]:
                    if isinstance(c, dict):
                        verdict = (c.get("details") or {}).get("verdict")
                        parts += [f"{n} (iteration {d.get('iteration')}): {c.get('name')} ", _Lv(str(c.get("level"))), " ",
                                  _verdict_of(c), f" ({verdict})" if verdict else "", "; "]
            items.append(parts)
        else:
            items.append(["Smoothness constants L: no smoothness certificate in certificates/; the L values used "
                          f"(final max {_fmt(st['L_max_final'])}) are ", _Verdict(None, "not certified"),
                          " (they do not carry the safety argument, see step 3)."])
        concl: list[Inline] = [
            "Conclusion ", _Lv(ind["level"]), " ", _Verdict(ind["holds"]), ". By induction on t, g(θ_t) ≤ 0 for t = 0, …, "
            f"{st['iterations']} on the safety grid.",
        ]
        if self.final:
            ra = next((c for c in self.final.get("claims", []) if isinstance(c, dict) and c.get("name") == "reach_avoid"), None)
            if ra is not None:
                d = ra.get("details", {})
                concl += [
                    f" For the final iterate (iteration {self.final.get('iteration')}): reach-avoid ", _Lv(ra.get("level", "?")),
                    " ", _Verdict(bool(ra.get("holds"))), f" on {d.get('grid_states')} grid states of S "
                    f"(failing {d.get('failing_states')}, worst margin {_fmt(d.get('worst_margin'))}); with the backup certificate ",
                    _Lv("exact"), " the switched closed loop (π_θ outside X_f, the backup inside) is safe forever and "
                    "asymptotically stable from those grid states — at level ", _Lv(ra.get("level", "evaluated")), ".",
                ]
            vd = next((c for c in self.final.get("claims", []) if isinstance(c, dict) and c.get("name") == "value_decrease"), None)
            if vd is not None:
                frac = (vd.get("details") or {}).get("fraction_decreasing")
                concl += [
                    " Reported, not required: V(x) = xᵀPx decreases along the grid rollouts outside X_f ", _Lv(vd.get("level", "?")),
                    " ", _verdict_of(vd), f" ({100 * _num(frac):.1f}% of those steps)." if isinstance(frac, (int, float)) else ".",
                ]
        concl.append(" Not claimed: safety at states between grid points (no sound certificate unless listed above), "
                     "certified values of L, and anything about iterates not in this chain.")
        items.append(concl)
        if self.audit_result is not None:
            a = self.audit_result
            items.append([
                "Independent audit (files only, see below): ",
                _Verdict(a.exit_code == 0, {0: "verified", 1: "FAILED", 2: "BAD INPUT"}[a.exit_code]),
                f" — {len(a.checks)} checks, {len(a.failures)} failures; g re-evaluated at checkpoint(s) "
                f"{', '.join(map(str, a.audited_iterations)) or 'none'}.",
            ])
        doc.ol(items)

    def _document(self, st, rows, quality, quality_backup, figures, last_it) -> _Doc:
        from .. import __version__

        doc = _Doc()
        cfg = self.config
        doc.h(1, f"SCPO certificate report: {cfg.get('task')}")
        doc.p(f"Run {self.root} — status {self.run.status.get('status', 'unknown')}; report generated "
              f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} by scpo {__version__} "
              f"(the run was written by scpo {cfg.get('scpo_version')}).")
        doc.p("Every claim below carries its level of evidence: ", _Lv("exact"), " ", LEVEL_MEANING["exact"], "; ",
              _Lv("sound"), " ", LEVEL_MEANING["sound"], "; ", _Lv("evaluated"), " ", LEVEL_MEANING["evaluated"], "; ",
              _Lv("estimated"), " ", LEVEL_MEANING["estimated"], ". A conclusion is only as strong as its weakest link.")
        if self.bad_line is not None:
            doc.p(_Verdict(False, "Warning"), f": certificates.jsonl line {self.bad_line} is incomplete or not JSON; "
                  "only the complete records before it are reported.")

        doc.h(2, "Verdicts", "verdicts-heading")
        vrows = []
        for r in rows:
            it = r.get("iteration")
            vrows.append([r["name"], _Lv(str(r.get("level"))), _verdict_of(r), r["source"] + (f" (iteration {it})" if it is not None else ""),
                          str(r.get("statement", ""))])
        if self.audit_result is not None:
            counts = self.audit_result.counts()
            levels: dict[str, str] = {}
            for c in self.audit_result.checks:
                levels.setdefault(c.name, c.level.value)
            for name, cnt in counts.items():
                vrows.append([f"audit: {name}", _Lv(levels[name]), _Verdict(cnt["failed"] == 0),
                              f"scpo audit ({cnt['passed']} passed, {cnt['failed']} failed)", _AUDIT_TEXT.get(name.split(":")[0], name)])
            if self.audit_result.input_errors:
                vrows.append(["audit: input", _Lv("exact"), _Verdict(False, "BAD INPUT"), "scpo audit",
                              "; ".join(self.audit_result.input_errors[:5])])
        doc.table(["certificate", "level", "verdict", "source", "statement"], vrows, table_id="verdicts")
        ind = self.induction(rows)
        doc.p("Induction conclusion: ", ind["statement"], " — ", _Lv(ind["level"]), " ", _Verdict(ind["holds"]), ".")

        doc.h(2, "Task and configuration", "task")
        self._task_paragraphs(doc)

        doc.h(2, "The induction chain", "induction")
        self._induction_section(doc, st, rows)

        doc.h(2, "Results", "results")
        q_items: list[Inline] = [f"objective f: {_fmt(st['objective_initial'])} at θ_0 → {_fmt(st['objective_final'])} at the last iterate"]
        if "improvement_fraction" in quality:
            q_items.append(f"fraction of the achievable improvement closed: {100 * quality['improvement_fraction']:.1f}% "
                           f"((f(θ_0) − f(θ_T)) / (f(θ_0) − f*), f* = {_fmt(quality.get('f_star'))} the best feasible loss, "
                           f"f(θ_0) = {_fmt(quality.get('f0'))})")
        if "imitation_loss" in quality:
            q_items.append(f"imitation loss against the malicious expert: backup {_fmt(quality_backup.get('imitation_loss'))} → "
                           f"final policy {_fmt(quality['imitation_loss'])} ({100 * _num(quality.get('imitation_loss_ratio')):.1f}% "
                           "of the backup's)")
        q_items.append(f"the last iterate θ_{st['iterations']} is the checkpoint of iteration {last_it} (the newest saved one); "
                       "quality figures are evaluated there")
        doc.ul(q_items)

        doc.h(2, "Iterations", "iterations")
        stat_rows = [
            ["iterations", str(st["iterations"])], ["accepted", str(st["accepted"])], ["rejected", str(st["rejected"])],
            ["rejection reasons", ", ".join(f"{k}: {v}" for k, v in st["rejection_reasons"].items()) or "—"],
            ["accepted iterates violating a constraint", str(st["violations"])],
            ["worst accepted max g (evaluated)", f"{_fmt(st['worst_accepted_max_constraint'])} (iteration {st['worst_accepted_iteration']})"],
            ["accepted steps with evaluated max g above the (★) prediction", str(st["accepted_above_prediction"])],
            ["solver statuses", ", ".join(f"{k}: {v}" for k, v in st["solver_statuses"].items()) or "—"],
            ["accepted iterations whose solve was not optimal (never certifies)", str(st["accepted_non_optimal"])],
            ["L max (last iteration / over the run)", f"{_fmt(st['L_max_final'])} / {_fmt(st['L_max_overall'])}"],
            ["time: total / solver / constraint evaluations", f"{st['time_total_s']:.2f} s / {st['solve_time_total_s']:.2f} s / {st['evaluation_time_total_s']:.2f} s"],
            ["median per iteration: wall / solve", f"{1e3 * st['wall_time_median_s']:.1f} ms / {1e3 * st['solve_time_median_s']:.1f} ms"],
        ]
        doc.table(["figure", "value"], [[a, b] for a, b in stat_rows], table_id="iteration-summary")
        sel, summarised = self._selected_rows()
        if summarised:
            doc.p(f"Showing {len(sel)} of {len(self.records)} iterations (the first and last ten, every "
                  f"{max(1, len(self.records) // 20)}th, and every violation); the full table is in ", _Code("iterations.csv"), ".")
        else:
            doc.p("All iterations (also in ", _Code("iterations.csv"), "). max g is evaluated; the prediction is the bound (★).")
        trows = []
        for r in sel:
            acc = bool(r.get("accepted"))
            viol = acc and not _num(r.get("max_constraint")) <= 0
            trows.append([
                str(r.get("iteration")),
                _Verdict(not viol, "VIOLATION" if viol else ("accepted" if acc else f"rejected: {r.get('reason')}")) if (acc or viol) else _Verdict(None, f"rejected: {r.get('reason')}"),
                _fmt(r.get("objective")), _fmt(r.get("max_constraint")), _fmt(r.get("predicted_max_constraint")),
                f"{_fmt(r.get('L_min'), 3)} / {_fmt(r.get('L_median'), 3)} / {_fmt(r.get('L_max'), 3)}",
                _fmt(r.get("step_norm"), 3), str(r.get("rejected_tries")), f"{r.get('solver')} {r.get('solver_status')}",
                f"{1e3 * _num(r.get('solve_time_s')):.0f} / {1e3 * _num(r.get('evaluation_time_s')):.0f} / {1e3 * _num(r.get('wall_time_s')):.0f}",
                _Code(_short(r.get("theta_sha256"))),
            ])
        doc.table(["it", "step", "objective", "max g (evaluated)", "predicted (★)", "L min / median / max", "‖Δ‖",
                   "rejected tries", "solver, status", "solve / eval / wall ms", "θ sha256"], trows, table_id="iterations")

        doc.h(2, "Figures", "figures")
        captions = {
            "training_curves.png": "Training curves: objective, evaluated max g against the (★) prediction, L per row, accepted and rejected steps.",
            "state_box.png": "The state box X, the grid, the safety region S, the terminal set X_f, and trajectories of the backup, the malicious expert and the final policy.",
            "reach_avoid_margins.png": "Final policy: worst constraint row of the T-step rollout from each grid state of S (≤ 0 safe; reach-avoid, evaluated).",
            "regression_fit.png": "f_θ at θ_0 (the backup, f ≡ 0) and at the final iterate, with the target and the safe band.",
        }
        for p in figures:
            if p.name in captions:
                cap = captions[p.name]
            elif m := re.fullmatch(r"region_iter_(\d+)", p.stem):
                cap = (f"Region certificate (level sound) at iteration {int(m.group(1))}: certified and failed "
                       f"boxes (copied from figures/{p.name})")
            else:
                cap = f"{p.stem} (copied from figures/{p.name})"
            doc.figure(p.name, p.read_bytes(), cap)

        if self.final:
            doc.h(2, "Certificates of the final iterate", "final-certificates")
            doc.p(f"certificates/final.json: iteration {self.final.get('iteration')}, θ SHA-256 {_short(self.final.get('theta_sha256'))}.")
            self._claims_table(doc, [c for c in self.final.get("claims", []) if isinstance(c, dict)], "final-claims")
        if self.other_certs:
            doc.h(2, "Other certificates", "other-certificates")
            for name, data in self.other_certs:
                meta = {k: v for k, v in data.items() if k != "claims" and isinstance(v, (int, float, str, bool))}
                summ = data.get("summary")
                if isinstance(summ, dict):
                    meta |= {k: v for k, v in summ.items() if isinstance(v, (int, float, str, bool))}
                doc.p(f"certificates/{name}: " + ", ".join(f"{k} = {_fmt(v) if isinstance(v, float) else v}" for k, v in list(meta.items())[:20]))
                self._claims_table(doc, [c for c in data["claims"] if isinstance(c, dict)], None)

        if self.audit_result is not None:
            a = self.audit_result
            doc.h(2, "Independent audit", "audit")
            doc.p("Re-verified from the files alone by ", _Code("scpo audit"), " (its own safetensors reader, hashes recomputed "
                  "from tensor bytes, the chain recomputed from θ_0, the backup certificate re-checked in exact arithmetic, "
                  "g re-evaluated at checkpoints ", ", ".join(map(str, a.audited_iterations)) or "none",
                  "). Verdict: ", _Verdict(a.exit_code == 0, {0: "verified", 1: "FAILED", 2: "BAD INPUT"}[a.exit_code]), ".")
            fails = [[c.name, str(c.iteration) if c.iteration is not None else "—", _Lv(c.level.value), c.message] for c in a.failures[:50]]
            if fails:
                doc.table(["check", "iteration", "level", "what is wrong"], fails, table_id="audit-failures")
            if a.input_errors:
                doc.ul([f"bad input: {e}" for e in a.input_errors])
            if a.notes:
                doc.ul([f"note: {n}" for n in a.notes])

        doc.h(2, "Files", "files")
        doc.ul([_Code("summary.json"), _Code("iterations.csv"), _Code("report.md"), *[_Code(p.name) for p in figures]])
        return doc

    @staticmethod
    def _claims_table(doc: _Doc, claims: list[dict[str, Any]], table_id: str | None) -> None:
        rows = []
        for c in claims:
            det = c.get("details") or {}
            shown = {k: v for k, v in det.items() if isinstance(v, (int, float, str, bool)) or v is None}
            rows.append([c.get("name", "?"), _Lv(str(c.get("level"))), _verdict_of(c), str(c.get("statement", "")),
                         "; ".join(f"{k} = {_fmt(v) if isinstance(v, float) else v}" for k, v in list(shown.items())[:10])])
        doc.table(["claim", "level", "verdict", "statement", "details"], rows, table_id=table_id)


_REGENERATED = {"training_curves.png", "state_box.png", "regression_fit.png", "reach_avoid_margins.png"}
"""Figures the report draws afresh; other PNGs of ``RUN/figures`` are copied in."""

_AUDIT_TEXT = {
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
}


def build_report(
    run: str | Path, *, out: str | Path | None = None, audit: bool = True, audit_iterations: str | None = "0,last"
) -> ReportResult:
    """Render the certificate report of the run directory ``run`` into ``RUN/report/``.

    Parameters
    ----------
    run : str or Path
    out : str or Path, optional
        Destination folder (default ``RUN/report``); an existing one is replaced atomically.
    audit : bool, default True
        Include an independent audit (:func:`scpo.audit.audit`).
    audit_iterations : str, optional
        Checkpoints the included audit re-evaluates (default ``"0,last"``; ``None`` for all).

    Returns
    -------
    ReportResult
    """
    return RunReport(run, audit=audit, audit_iterations=audit_iterations).build(out)
