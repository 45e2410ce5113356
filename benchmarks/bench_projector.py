"""Projection SOCP cost by bank size m and constraint count N, and the projector's share of an iteration.

Run on one core:

    OMP_NUM_THREADS=1 python benchmarks/bench_projector.py [--repeats 15] [--out bench-out]

Part 1 builds synthetic instances shaped like training (d = 2000, m − 1 probes of radius 1e-3 plus
the raw step, N sine constraints whose margins are spread over [0.001, 1], true L), and reports the
set-up time (first solve of a shape: cvxpy canonicalisation + solve) and the median wall time of a
re-solve with new Parameter values (cvxpy + Clarabel), plus Clarabel's own time.
Part 2 trains the regression task with its defaults and splits the iteration time into constraint
evaluation, gradient (objective + block gradients) and projection (SOCP set-up + solve).
Writes projector_socp.csv and projector_regression.csv.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _one_core() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def socp_instance(rng, d, m, N):
    from scpo.projector.bank import Bank

    W = rng.normal(size=(N, d)) / np.sqrt(d)
    margin = rng.uniform(1e-3, 1.0, N)
    gfun = lambda t: np.sin(W @ t) - margin  # noqa: E731  (g(0) = −margin)
    L = np.sum(W**2, axis=1)
    raw = rng.normal(size=d) * 0.02
    bank = Bank(m, d, N)
    for _ in range(m - 1):
        p = rng.normal(size=d)
        bank.add(1e-3 * p / np.linalg.norm(p), gfun(1e-3 * p / np.linalg.norm(p)))
    bank.add(raw, gfun(raw))
    g = gfun(np.zeros(d))
    norms, gram, q = bank.geometry(raw)
    return gram, q, norms, g, bank.difference_quotients(g), L


def bench_socp(ms, Ns, repeats, d=2000, seed=0):
    from scpo.projector.socp import ProjectionSOCP

    rows = []
    rng = np.random.default_rng(seed)
    for m in ms:
        for N in Ns:
            solver = ProjectionSOCP("clarabel")
            inst = [socp_instance(rng, d, m, N) for _ in range(repeats + 1)]
            t0 = time.perf_counter()
            first = solver.solve(*inst[0])
            setup = time.perf_counter() - t0
            walls, clar, rows_used, rounds = [], [], [], []
            for data in inst[1:]:
                t0 = time.perf_counter()
                res = solver.solve(*data)
                walls.append(time.perf_counter() - t0)
                clar.append(res.solve_time_s)
                rows_used.append(res.rows)
                rounds.append(res.rounds)
            rows.append(
                {
                    "m": m,
                    "N": N,
                    "setup_s": setup,
                    "median_solve_ms": 1e3 * statistics.median(walls),
                    "median_solver_ms": 1e3 * statistics.median(clar),
                    "median_rows": statistics.median(rows_used),
                    "max_rounds": max(rounds),
                    "first_status": first.status,
                }
            )
            r = rows[-1]
            print(
                f"m={m:>3} N={N:>7}  set-up {r['setup_s']:.3f} s  median solve {r['median_solve_ms']:7.2f} ms "
                f"(solver calls {r['median_solver_ms']:6.2f} ms, {r['median_rows']:.0f} rows, ≤{r['max_rounds']} rounds)",
                flush=True,
            )
    return rows


def bench_regression(iterations, seed=0):
    from scpo.projector import Projector
    from scpo.training import build_projector, resolve_config
    from scpo.tasks import make_task

    cfg = resolve_config("regression", train_overrides={"iterations": iterations, "seed": seed})
    task = make_task("regression", cfg.task_config, seed=seed)
    proj: Projector = build_projector(task, cfg.projector, task.theta0)
    recs = [proj.step() for _ in range(iterations)]
    wall = np.array([r.wall_time_s for r in recs])
    ev = np.array([r.evaluation_time_s for r in recs])
    gr = np.array([r.gradient_time_s for r in recs])
    pr = np.array([r.solve_time_s + r.setup_time_s for r in recs])
    other = wall - ev - gr - pr
    return {
        "iterations": iterations,
        "median_iteration_ms": 1e3 * float(np.median(wall)),
        "evaluation_share": float(ev.sum() / wall.sum()),
        "gradient_share": float(gr.sum() / wall.sum()),
        "projection_share": float(pr.sum() / wall.sum()),
        "other_share": float(other.sum() / wall.sum()),
        "final_improvement_fraction": task.quality(proj.theta)["improvement_fraction"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--ms", type=int, nargs="*", default=[4, 8, 16, 32])
    ap.add_argument("--Ns", type=int, nargs="*", default=[100, 1000, 10_000, 100_000])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    _one_core()
    logging.disable(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = bench_socp(args.ms, args.Ns, args.repeats)
    with open(args.out / "projector_socp.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    reg = bench_regression(args.iterations)
    with open(args.out / "projector_regression.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(reg))
        w.writeheader()
        w.writerow(reg)
    print("\n| m \\ N | " + " | ".join(f"{N:,}" for N in args.Ns) + " |")
    print("|---|" + "---|" * len(args.Ns))
    for m in args.ms:
        cells = [next(r for r in rows if r["m"] == m and r["N"] == N) for N in args.Ns]
        print(f"| {m} | " + " | ".join(f"{c['median_solve_ms']:.1f} ms (set-up {c['setup_s']:.2f} s)" for c in cells) + " |")
    print(
        f"\nregression task, {reg['iterations']} iterations: median iteration {reg['median_iteration_ms']:.1f} ms; "
        f"projection {100 * reg['projection_share']:.1f}%, evaluation {100 * reg['evaluation_share']:.1f}%, "
        f"gradient {100 * reg['gradient_share']:.1f}%, other {100 * reg['other_share']:.1f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
