"""Ablations of SCPO: bank size, grid size, fixed vs adaptive L, per-row vs aggregated rows.

    python benchmarks/bench_ablations.py [--quick] [--seeds 0 1 2] [--out bench-out]
        [--studies bank grid L rows] [--tasks regression double-integrator]

Every run of a study has the same budget of constraint evaluations as ``bench_methods.py``
(regression 3,000, double integrator 450; quick: 90 and 27). Each run reports the final objective, accepted
iterates violating on the training grid and on a finer grid, rejected iterations, prediction
failures of (★), the final largest ``L`` and the time per iteration.

Studies:

* ``bank``: bank size m ∈ {4, 8, 16, 32}, for SCPO (block probes min(7, m − 1), since the
  probes live in the bank) and for the paper's plain bank of raw steps; both tasks.
* ``grid``: double-integrator training grid 20×20, 50×50, 100×100. Safety between grid points
  is checked on one common 197×197 grid (4× finer than 50×50) for all three, evaluating every
  accepted iterate there.
* ``L``: adaptive ``L`` from the default ``L₀ = 1``, ``L`` fixed at 1, and both started 100×
  too small (``L₀ = 0.01``); both tasks.
* ``rows``: double-integrator constraint rows one by one (``per-row``, the default), their max
  per grid state, and their log-sum-exp (τ = 0.02).

Writes ``ablation_<study>.csv`` and ``ablation_<study>.png`` per study and prints a table each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_methods as bm  # noqa: E402  (sibling script)

STUDIES = ("bank", "grid", "L", "rows")
BUDGETS = {"regression": 3000, "double-integrator": 450}
QUICK_BUDGETS = {"regression": 90, "double-integrator": 27}
FINE_GRID = 197  # 4 × (50 − 1) + 1: nested with the default 50×50 grid


def configs(study: str, tasks: list[str]) -> list[dict[str, Any]]:
    """The runs of a study: label, task, method and overrides."""
    out: list[dict[str, Any]] = []
    if study == "bank":
        for task in tasks:
            for m in (4, 8, 16, 32):
                out.append(dict(task=task, method="scpo", label=f"scpo m={m}", value=m,
                                projector_overrides={"bank_size": m, "block_probes": min(7, m - 1)}))
                out.append(dict(task=task, method="plain-bank", label=f"plain-bank m={m}", value=m,
                                projector_overrides={"bank_size": m}))
    elif study == "grid":
        for g in (20, 50, 100):
            out.append(dict(task="double-integrator", method="scpo", label=f"grid {g}×{g}", value=g, task_overrides={"grid": g}))
    elif study == "L":
        variants = [("adaptive, L0=1", {"L_init": 1.0, "L_fixed": False}), ("fixed L=1", {"L_init": 1.0, "L_fixed": True}),
                    ("adaptive, L0=0.01", {"L_init": 0.01, "L_fixed": False}), ("fixed L=0.01", {"L_init": 0.01, "L_fixed": True})]
        for task in tasks:
            for label, ov in variants:
                out.append(dict(task=task, method="scpo", label=label, value=label, projector_overrides=ov))
    elif study == "rows":
        for label, ov in (("per-row", {"rows": "per-row"}), ("max", {"rows": "max"}), ("lse τ=0.02", {"rows": "lse", "lse_temperature": 0.02})):
            out.append(dict(task="double-integrator", method="scpo", label=label, value=label, task_overrides=ov))
    else:
        raise ValueError(f"study: expected one of {', '.join(STUDIES)}, got {study!r}")
    return out


def checker_for(study: str, task: str):
    from scpo.training import resolve_config

    base = resolve_config(task).task_config
    if study == "grid":
        cfg = {**base, "grid": FINE_GRID, "rows": "max"}
        return bm.fine_checker(task, base, config=cfg, nested=False)
    return bm.fine_checker(task, base)


def run_study(study: str, tasks: list[str], seeds: list[int], budgets: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for c in configs(study, tasks):
        checker = checker_for(study, c["task"])
        for seed in seeds:
            r = bm.run_method(c["task"], c["method"], seed, budgets[c["task"]], max_iterations=bm.MAX_ITERATIONS[c["task"]],
                              checker=checker, task_overrides=c.get("task_overrides"),
                              projector_overrides=c.get("projector_overrides"), label=c["label"])
            r["study"], r["value"] = study, c["value"]
            r["ms_per_iteration"] = 1e3 * r["wall_s"] / max(r["iterations"], 1)
            r["projection_ms_per_iteration"] = 1e3 * r["projection_s"] / max(r["iterations"], 1)
            r["evaluation_ms_per_iteration"] = 1e3 * r["evaluation_s"] / max(r["iterations"], 1)
            rows.append(r)
            print(f"  {study:>5} {c['task']:>17} {c['label']:>20} seed {seed}: f {r['objective_final']:.4f}  q {r['quality']:.3f}  "
                  f"viol. train {r['violating_iterates_train']}  fine {r['violating_iterates_fine']}  rejected {r['rejected']}  "
                  f"pred. fail {r['prediction_failures']}  L_max {r['L_max_final']:.3g}  {r['ms_per_iteration']:.0f} ms/it", flush=True)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    print(f"{'task':>17} {'variant':>20} {'N':>8} {'final objective':>28} {'quality':>22} {'viol. train':>11} {'viol. fine':>10} "
          f"{'rejected':>9} {'L_max':>9} {'ms/it':>7} {'proj. ms/it':>11}")
    for (task, label), rs in groups.items():
        f = bm.spread([r["objective_final"] for r in rs])
        q = bm.spread([r["quality"] for r in rs])
        print(f"{task:>17} {label:>20} {rs[0]['N']:>8} {bm.fmt(*f):>28} {bm.fmt(*q, '.3f'):>22} "
              f"{sum(r['violating_iterates_train'] for r in rs):>11} {sum(r['violating_iterates_fine'] or 0 for r in rs):>10} "
              f"{bm.spread([r['rejected'] for r in rs])[0]:>9.0f} {bm.spread([r['L_max_final'] for r in rs])[0]:>9.3g} "
              f"{bm.spread([r['ms_per_iteration'] for r in rs])[0]:>7.0f} {bm.spread([r['projection_ms_per_iteration'] for r in rs])[0]:>11.1f}",
              flush=True)


def plot_study(study: str, rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig = Figure(figsize=(6 * len(tasks), 4.2 * 2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        rs = [r for r in rows if r["task"] == task]
        if study == "bank":
            for method, color in (("scpo", "tab:blue"), ("plain-bank", "tab:orange")):
                ms = sorted({r["value"] for r in rs if r["method"].startswith(method)})
                med = [bm.spread([r["objective_final"] for r in rs if r["method"].startswith(method) and r["value"] == m]) for m in ms]
                axes[0, j].errorbar(ms, [x[0] for x in med], yerr=[[x[0] - x[1] for x in med], [x[2] - x[0] for x in med]],
                                    marker="o", color=color, label=method, capsize=3)
                tm = [bm.spread([r["ms_per_iteration"] for r in rs if r["method"].startswith(method) and r["value"] == m])[0] for m in ms]
                axes[1, j].plot(ms, tm, marker="o", color=color, label=method)
            for ax in axes[:, j]:
                ax.set_xscale("log", base=2)
                ax.set_xlabel("bank size m")
            axes[0, j].legend()
        else:
            labels = list(dict.fromkeys(r["method"] for r in rs))
            x = range(len(labels))
            med = [bm.spread([r["objective_final"] for r in rs if r["method"] == lab]) for lab in labels]
            axes[0, j].bar(x, [m[0] for m in med], yerr=[[m[0] - m[1] for m in med], [m[2] - m[0] for m in med]], capsize=3,
                           color="tab:blue", alpha=0.8)
            fine = [sum(r["violating_iterates_fine"] or 0 for r in rs if r["method"] == lab) for lab in labels]
            for k, v in enumerate(fine):
                axes[0, j].annotate(f"fine-grid viol. {v}", (k, med[k][0]), ha="center", va="bottom", fontsize=7)
            tm = [bm.spread([r["ms_per_iteration"] for r in rs if r["method"] == lab])[0] for lab in labels]
            tp = [bm.spread([r["projection_ms_per_iteration"] for r in rs if r["method"] == lab])[0] for lab in labels]
            axes[1, j].bar(x, tm, color="tab:gray", label="iteration")
            axes[1, j].bar(x, tp, color="tab:orange", label="projection (SOCP)")
            axes[1, j].legend(fontsize=7)
            for ax in axes[:, j]:
                ax.set_xticks(list(x))
                ax.set_xticklabels(labels, fontsize=8)
        axes[0, j].set_ylabel("final objective (median, [min, max])")
        axes[0, j].set_title(f"{task}: {study}")
        axes[1, j].set_ylabel("ms per iteration (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets and one seed (a smoke test, not results)")
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="default: 0 1 2 (quick: 0)")
    ap.add_argument("--studies", nargs="*", default=list(STUDIES), choices=STUDIES)
    ap.add_argument("--tasks", nargs="*", default=None, choices=bm.TASKS,
                    help="tasks of the bank and L studies (default: both; quick: regression)")
    ap.add_argument("--budget-regression", type=int, default=None)
    ap.add_argument("--budget-double-integrator", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    bm.setup(args.out)
    seeds = args.seeds if args.seeds else ([0] if args.quick else [0, 1, 2])
    tasks = args.tasks or (["regression"] if args.quick else list(bm.TASKS))
    budgets = dict(QUICK_BUDGETS if args.quick else BUDGETS)
    if args.budget_regression:
        budgets["regression"] = args.budget_regression
    if args.budget_double_integrator:
        budgets["double-integrator"] = args.budget_double_integrator
    for study in args.studies:
        print(f"\n== {study} (budgets {budgets}, seeds {seeds})", flush=True)
        rows = run_study(study, tasks, seeds, budgets)
        print()
        print_table(rows)
        bm.write_csv(args.out / f"ablation_{study}.csv", rows)
        plot_study(study, rows, args.out / f"ablation_{study}.png")
        print(f"wrote {args.out / f'ablation_{study}.csv'} and {args.out / f'ablation_{study}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
