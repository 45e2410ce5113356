"""``build_report``: write ``RUN/report/`` (HTML, Markdown, summary.json, CSV, figures) atomically.

The folder is built under a temporary name beside the destination and swapped in, so a reader
never sees half a report and an older report is replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json, atomic_write_text, check_output_dir, staging_dir
from ..errors import RunDirectoryError
from ..evidence import _jsonable
from ..plotting import save
from .claims import claim_required, summary, verdict_rows
from .collect import RunData, collect_run, run_stats, write_iterations_csv
from .margins import MARGINS_FIGURE, draws_margins, margins_figure
from .page import ReportContent, build_document

__all__ = ["ReportResult", "build_report"]

_PNG = b"\x89PNG\r\n\x1a\n"
_OWN_FIGURES = {"training_curves.png", MARGINS_FIGURE}
"""Figures the report draws afresh; other PNGs of ``RUN/figures`` are copied in."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    directory : Path
        ``RUN/report`` (or the ``out`` given).
    index_html, markdown, summary_json, iterations_csv : Path
        The files in it.
    figures : tuple of Path
        The PNG figures in it.
    summary : dict
        The content of ``summary.json``.
    ok : bool
        True when every required certificate holds and the included audit (if run) verified.
    """

    directory: Path
    index_html: Path
    markdown: Path
    summary_json: Path
    iterations_csv: Path
    figures: tuple[Path, ...]
    summary: dict[str, Any]
    ok: bool


def _figures(data: RunData, out_dir: Path, theta0: np.ndarray, theta_last: np.ndarray) -> tuple[list[Path], list[str]]:
    """The task's figures, the margins figure where it applies, and the PNGs of ``RUN/figures``
    (their names are returned second)."""
    paths = list(data.task.figures(data.records, {"θ0": theta0, "final": theta_last}, out_dir))
    if draws_margins(data.task.problem):
        paths.append(save(margins_figure(data.task, theta_last), out_dir / MARGINS_FIGURE))
    # figures other commands left in RUN/figures (e.g. region certificates), copied as they are
    fig_dir = data.run.paths.figures
    copied = []
    if fig_dir.is_dir():
        made = {p.name for p in paths} | _OWN_FIGURES
        for p in sorted(fig_dir.glob("*.png")):
            if p.name not in made and p.read_bytes()[:8] == _PNG:
                shutil.copyfile(p, out_dir / p.name)
                paths.append(out_dir / p.name)
                copied.append(p.name)
    return paths, copied


def _write(data: RunData, tmp: Path, final_dir: Path) -> ReportResult:
    st = run_stats(data.records, projection=data.projection)
    ckpts = data.run.checkpoints
    last = max(ckpts)
    theta0, theta_last = data.run.theta(0), data.run.theta(last)
    quality = dict(data.task.quality(theta_last))
    quality_backup = dict(data.task.quality(theta0))
    figures, copied = _figures(data, tmp, theta0, theta_last)
    rows = verdict_rows(data, st)
    summ = summary(data, st, rows, quality, [p.name for p in figures])
    write_iterations_csv(data.records, tmp / "iterations.csv")
    content = ReportContent(data=data, stats=st, rows=rows, quality=quality, quality_backup=quality_backup,
                            figures=figures, copied_figures=tuple(copied), last_iteration=last)
    doc = build_document(content)
    title = f"SCPO certificate report — {data.config.get('task')} — {data.root.name}"
    atomic_write_text(tmp / "index.html", doc.to_html(title))
    atomic_write_text(tmp / "report.md", doc.to_markdown())
    atomic_write_json(tmp / "summary.json", summ)
    required_ok = all(bool(r.get("holds")) for r in rows if claim_required(r))
    audit_ok = data.audit is None or data.audit.ok
    return ReportResult(
        directory=final_dir,
        index_html=final_dir / "index.html",
        markdown=final_dir / "report.md",
        summary_json=final_dir / "summary.json",
        iterations_csv=final_dir / "iterations.csv",
        figures=tuple(final_dir / p.name for p in figures),
        summary=json.loads(json.dumps(_jsonable(summ))),
        ok=required_ok and audit_ok,
    )


def build_report(
    run: str | Path, *, out: str | Path | None = None, audit: bool = True, audit_iterations: str | None = "0,last"
) -> ReportResult:
    """Render the certificate report of the run directory ``run`` into ``RUN/report/``.

    Files: ``index.html`` (self-contained: figures embedded as base64 PNG, no script, nothing that
    touches the network), ``report.md`` (the same content, the PNGs beside it), ``summary.json``
    (figures and verdicts, :func:`scpo.reports.claims.summary`), ``iterations.csv`` (the full
    per-iteration table) and the PNG figures. Nothing is printed.

    Parameters
    ----------
    run : str or Path
        A run directory written by ``scpo train``.
    out : str or Path, optional
        Destination folder (default ``RUN/report``); an existing one is replaced atomically.
    audit : bool, default True
        Include an independent audit (:func:`scpo.audit.audit_run`).
    audit_iterations : str, optional
        Checkpoints the included audit re-evaluates (default ``"0,last"``: ``θ₀`` and the final
        iterate; ``None`` for all). Hashes and the chain are always checked for every file.

    Returns
    -------
    ReportResult
        ``ok`` False when a required certificate fails or the audit does not verify (the report
        is written all the same and says which).

    Raises
    ------
    RunDirectoryError
        ``run`` is not a run directory of a known schema, or the included audit finds bad input
        in it (a damaged run: nothing is written into it).
    InvalidInputError
        A malformed ``audit_iterations``, or an output folder that cannot be written (checked
        before any work).
    """
    data = collect_run(run)
    out = Path(out) if out is not None else data.run.paths.report
    check_output_dir(out, "report folder")
    if audit:
        from ..audit import audit_run

        # the report has rebuilt the run's task already (collect_run), module:factory code included
        data.audit = audit_run(data.root, iterations=audit_iterations, allow_task_code=True)
        if data.audit.verdict == "bad input":  # a damaged run: nothing is written into it
            raise RunDirectoryError(f"run {str(data.root)!r}: the audit finds it damaged ({data.audit.input_errors[0]}); "
                                    "no report written (scpo audit RUN lists every problem)")
    tmp = staging_dir(out, "tmp")  # also removes those a killed report left
    tmp.mkdir(parents=True)
    try:
        result = _write(data, tmp, out)
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
