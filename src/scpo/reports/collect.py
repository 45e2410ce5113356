"""What a report is made of, read from the run directory: records, certificates, statistics.

Nothing here renders; :mod:`scpo.reports.page` turns these numbers into a document.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..audit.reader import recorded_number

__all__ = [
    "CSV_COLUMNS",
    "FULL_TABLE_ROWS",
    "RunData",
    "collect_run",
    "read_certificate",
    "run_stats",
    "selected_rows",
    "write_iterations_csv",
]

logger = logging.getLogger(__name__)

FULL_TABLE_ROWS = 60
"""Runs with more records than this get a summarised iteration table on the pages."""

CSV_COLUMNS = [
    "iteration", "accepted", "reason", "objective_before", "objective", "max_constraint", "predicted_max_constraint",
    "candidate_max_constraint", "violation", "step_norm", "raw_step_norm", "alpha", "rejected_tries",
    "prediction_failures", "L_min", "L_median", "L_max", "L_raised_rows", "bank_size", "evaluations", "solver",
    "solver_status", "solve_time_s", "setup_time_s", "evaluation_time_s", "gradient_time_s", "wall_time_s",
    "theta_sha256", "parent_sha256", "checkpoint",
]
"""The first columns of ``iterations.csv`` (other scalar record fields follow, sorted)."""


def read_certificate(path: Path) -> dict[str, Any] | None:
    """A certificate file as a dict; ``None`` (with a logged warning) when missing or not a JSON object.

    Parameters
    ----------
    path : Path
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("report: %s is not valid JSON (%s); left out", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _other_certificates(paths: Any) -> list[tuple[str, dict[str, Any]]]:
    """Certificate files with claims besides ``final.json``, by file name: the region certificates
    (:meth:`~scpo.runs.RunPaths.region_certificates`) and any other JSON in ``certificates/``."""
    files = {p.name: p for p in paths.region_certificates().values()}
    if paths.certificates.is_dir():
        for p in paths.certificates.glob("*.json"):
            if p != paths.final_certificate:
                files.setdefault(p.name, p)
    out = []
    for name in sorted(files):
        data = read_certificate(files[name])
        if data is not None and isinstance(data.get("claims"), list) and data.get("kind") != SOUND_REGION_KIND:
            out.append((name, data))
    return out


SOUND_REGION_KIND = "scpo.sound_region_certificate"
"""The ``kind`` of the per-iterate region certificates of a sound run (the chain's links, not extra claims)."""


@dataclass
class RunData:
    """The inputs of a report, read once.

    Attributes
    ----------
    run : Run
        The run (:func:`scpo.runs.load_run`).
    records : list of dict
        The complete records of ``certificates.jsonl``.
    bad_line : int or None
        The first incomplete or malformed line of ``certificates.jsonl``.
    base : dict
        ``base_certificate.json``.
    final : dict or None
        ``certificates/final.json``.
    other_certs : list of (str, dict)
        Other certificate files with claims, by file name.
    task : Task
        The task rebuilt from ``config.json``.
    audit : AuditResult or None
        The included independent audit.
    """

    run: Any
    records: list[dict[str, Any]]
    bad_line: int | None
    base: dict[str, Any]
    final: dict[str, Any] | None
    other_certs: list[tuple[str, dict[str, Any]]]
    task: Any
    audit: Any = None

    @property
    def root(self) -> Path:
        """The run directory."""
        return self.run.path

    @property
    def config(self) -> dict[str, Any]:
        """``config.json``."""
        return self.run.config

    @property
    def certify(self) -> str:
        """How candidates were accepted: ``"sound"`` (region certificate on every iterate) or ``"grid"``."""
        return str(self.config.get("train", {}).get("certify", "grid"))

    @property
    def projection(self) -> bool:
        """Whether the projector was on (off: an unconstrained baseline)."""
        return bool(self.config.get("projector", {}).get("projection", True))

    def claims_of(self, name: str) -> list[dict[str, Any]]:
        """The claims of one certificate file with claims (e.g. ``"final"`` for ``final.json``).

        Parameters
        ----------
        name : str
            ``"base"``, ``"final"``.
        """
        data = {"base": self.base, "final": self.final}.get(name) or {}
        return [c for c in data.get("claims", []) if isinstance(c, dict)]


def collect_run(run: str | Path) -> RunData:
    """Read a run directory for its report.

    Parameters
    ----------
    run : str or Path

    Returns
    -------
    RunData
        Without an audit (see :func:`scpo.reports.build_report`).

    Raises
    ------
    RunDirectoryError
        ``run`` is not a run directory of a known schema, or its base certificate is unreadable.
    """
    from ..runs import load_run, read_jsonl

    loaded = load_run(run)
    paths = loaded.paths
    bad_line = read_jsonl(paths.records)[1] if paths.records.is_file() else None
    return RunData(run=loaded, records=loaded.records, bad_line=bad_line, base=loaded.base_certificate,
                   final=read_certificate(paths.final_certificate), other_certs=_other_certificates(paths), task=loaded.task)


def _timing(recs: list[dict[str, Any]]) -> dict[str, float]:
    def tsum(key: str) -> float:
        return float(np.nansum([recorded_number(r.get(key)) for r in recs])) if recs else 0.0

    def tmed(key: str) -> float:
        vals = [v for v in (recorded_number(r.get(key)) for r in recs) if math.isfinite(v)]
        return float(np.median(vals)) if vals else float("nan")

    return {"time_total_s": tsum("wall_time_s"), "solve_time_total_s": tsum("solve_time_s"),
            "evaluation_time_total_s": tsum("evaluation_time_s"), "solve_time_median_s": tmed("solve_time_s"),
            "wall_time_median_s": tmed("wall_time_s")}


def _counts(values: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def run_stats(records: list[dict[str, Any]], *, projection: bool) -> dict[str, Any]:
    """Counts, objective and constraint figures and timings over the records.

    Parameters
    ----------
    records : list of dict
    projection : bool
        Whether the projector was on (an accepted non-optimal solve only counts then).

    Returns
    -------
    dict
        ``iterations, accepted, rejected, violations, rejection_reasons, solver_statuses,
        accepted_non_optimal, worst_accepted_max_constraint, worst_accepted_iteration,
        accepted_above_prediction, objective_initial, objective_final, L_max_final, L_max_overall``
        and the timings ``time_total_s, solve_time_total_s, evaluation_time_total_s,
        solve_time_median_s, wall_time_median_s``.
    """
    recs = records
    acc = [r for r in recs if r.get("accepted")]
    rej = [r for r in recs if not r.get("accepted")]
    mc = np.array([recorded_number(r.get("max_constraint")) for r in acc]) if acc else np.zeros(0)
    worst_i = int(np.nanargmax(mc)) if mc.size and np.any(np.isfinite(mc)) else None
    # row by row: some row g_i of an evaluated candidate above its own (★)_i (prediction_excess > 0, and NaN
    # counts as a failure); runs written before prediction_excess existed fall back to comparing the row maxima
    pred_fail = sum(1 for r in acc if (not recorded_number(r["prediction_excess"]) <= 0 if "prediction_excess" in r else
                                        not recorded_number(r.get("max_constraint")) <= recorded_number(r.get("predicted_max_constraint"))))
    return {
        "iterations": len(recs),
        "accepted": len(acc),
        "rejected": len(rej),
        "violations": sum(1 for r in acc if r.get("violation") or not recorded_number(r.get("max_constraint")) <= 0),
        "rejection_reasons": _counts([r.get("reason") for r in rej]),
        "solver_statuses": _counts([r.get("solver_status") for r in recs]),
        "accepted_non_optimal": sum(1 for r in acc if projection and r.get("solver_status") != "optimal"),
        "worst_accepted_max_constraint": float(mc[worst_i]) if worst_i is not None else None,
        "worst_accepted_iteration": int(acc[worst_i]["iteration"]) if worst_i is not None else None,
        "accepted_above_prediction": pred_fail,
        "objective_initial": recorded_number(recs[0].get("objective_before")) if recs else None,
        "objective_final": recorded_number(recs[-1].get("objective")) if recs else None,
        "L_max_final": recorded_number(recs[-1].get("L_max")) if recs else None,
        "L_max_overall": float(np.nanmax([recorded_number(r.get("L_max")) for r in recs])) if recs else None,
        **_timing(recs),
    }


def selected_rows(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The records the pages show: all of a short run; of a long one the first and last ten, every
    ``n // 20``-th and up to 20 violations.

    Parameters
    ----------
    records : list of dict

    Returns
    -------
    rows : list of dict
        In iteration order.
    summarised : bool
        Whether rows were left out.
    """
    n = len(records)
    if n <= FULL_TABLE_ROWS:
        return records, False
    idx = set(range(10)) | set(range(n - 10, n))
    step = max(1, n // 20)
    idx |= set(range(0, n, step))
    viol = [i for i, r in enumerate(records) if r.get("accepted") and not recorded_number(r.get("max_constraint")) <= 0]
    idx |= set(viol[:20])
    return [records[i] for i in sorted(idx)], True


def write_iterations_csv(records: list[dict[str, Any]], path: Path) -> None:
    """Write the full per-iteration table: :data:`CSV_COLUMNS`, then every other scalar field.

    Parameters
    ----------
    records : list of dict
    path : Path
    """
    extra = sorted({k for r in records for k, v in r.items() if k not in CSV_COLUMNS and isinstance(v, (int, float, str, bool)) and k != "time"})
    cols = CSV_COLUMNS + extra
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in records:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
    atomic_write_text(path, buf.getvalue())
