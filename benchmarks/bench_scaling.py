"""How an SCPO iteration scales with the parameter count d and the constraint count N.

    python benchmarks/bench_scaling.py [--quick] [--iterations 10] [--threads 1] [--out bench-out]

The regression task with SCPO's defaults (block probes, bank 16, Adam), varied in two sweeps:

* parameters ``d`` from about 10³ to 10⁶: residual widths 1-w-w-1 with w ∈ {30, 98, 314, 998}
  (d = w² + 4w + 1), at the default N = 800 rows;
* constraint rows ``N`` from 10² to 10⁵: constraint grids of 50 … 50,000 points (N = 2·grid),
  at the default width 64 (d = 4,353).

The band is tightened to ``|f| ≤ 0.2`` so that the projection SOCP is solved in the timed
iterations (``socp_solved`` counts them); with the default band the first iterations are far
inside the safe set and skip the solve.

Each configuration runs in its own subprocess (so its peak resident memory is its own): a
warm-up until 3 consecutive iterations are accepted (the first SOCP of a shape is compiled, and
the first steps into the active region are rejected while ``L`` adapts; at most 40), then
``--iterations`` timed iterations, whose time is split as the projector records it: constraint evaluation, gradient
(objective and block gradients), projection (SOCP set-up and solve) and the rest (bank
bookkeeping, line search arithmetic). Memory: the process's peak resident set
(``getrusage(RUSAGE_SELF).ru_maxrss``, which includes the interpreter and torch, about 0.3 GB)
and the peak of memory traced by ``tracemalloc`` (Python and numpy allocations, not torch's)
while a fresh projector is built and runs 3 iterations (its bank of 16 is full after 2).

On CUDA (only when ``torch.cuda.is_available()``; never required) the batched constraint
evaluation of the probe batch is also timed on the GPU (``cuda_eval_ms``); the training loop
itself stays on the CPU.

Writes ``scaling.csv`` and ``scaling.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

WIDTHS = (30, 98, 314, 998)
GRIDS = (50, 500, 5000, 50000)
QUICK_WIDTHS = (30, 98)
QUICK_GRIDS = (50, 500)
DEFAULT_WIDTH, DEFAULT_GRID = 64, 400
# The band |f| ≤ 0.2 instead of 1: from the first iterations on the raw step leaves the inner
# approximation, so every timed iteration solves the SOCP (with the default band the first
# iterations are far inside it and skip the solve, which would time nothing).
BOUND = 0.2
# Warm-up: until this many consecutive accepted iterations (the first steps into the active
# region are rejected while L adapts), at most MAX_WARMUP iterations.
WARMUP_STREAK, MAX_WARMUP = 3, 40


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process and return its measurements."""
    import logging
    import resource
    import statistics
    import tracemalloc

    import numpy as np
    import torch

    torch.set_num_threads(spec["threads"])
    logging.disable(logging.WARNING)
    from scpo.tasks import make_task
    from scpo.training import build_projector, resolve_config

    w, n_grid = spec["width"], spec["n_grid"]
    cfg = resolve_config("regression", task_overrides={"hidden": [w, w], "n_grid": n_grid, "bound": BOUND}, train_overrides={"seed": 0})
    task = make_task("regression", cfg.task_config, seed=0)
    p = build_projector(task, cfg.projector, task.theta0)
    streak = warm = 0
    while streak < spec["warmup"] and warm < MAX_WARMUP:
        streak = streak + 1 if p.step().accepted else 0
        warm += 1
    recs = []
    for _ in range(spec["iterations"]):
        recs.append(p.step())
    # Traced memory in a separate pass (tracing would slow the timed iterations): a fresh
    # projector whose bank fills up in its first two iterations (1 raw + 7 block probes each).
    tracemalloc.start()
    p2 = build_projector(task, cfg.projector, task.theta0)
    for _ in range(3):
        p2.step()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del p2

    def med(key):
        return 1e3 * statistics.median([getattr(r, key) for r in recs])

    wall = med("wall_time_s")
    ev, gr = med("evaluation_time_s"), med("gradient_time_s")
    pr = 1e3 * statistics.median([r.solve_time_s + r.setup_time_s for r in recs])
    out = {
        "sweep": spec["sweep"],
        "width": w,
        "d": task.dim,
        "n_grid": n_grid,
        "N": p.n_constraints,
        "threads": spec["threads"],
        "warmup_iterations": warm,
        "iterations": len(recs),
        "accepted": sum(r.accepted for r in recs),
        "ms_per_iteration": wall,
        "evaluation_ms": ev,
        "gradient_ms": gr,
        "projection_ms": pr,
        "other_ms": wall - ev - gr - pr,
        "evaluations_per_iteration": statistics.mean(r.evaluations for r in recs),
        "socp_rows": statistics.median(r.socp_rows for r in recs),
        "socp_solved": sum(r.solver != "none" for r in recs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "tracemalloc_peak_mb": traced_peak / 2**20,
        "cuda_eval_ms": None,
        "cuda_device": None,
    }
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        thetas = torch.as_tensor(task.theta0[None] + 1e-3 * np.random.default_rng(0).standard_normal((8, task.dim)), device=dev)
        x = torch.as_tensor(task.constraint_states, dtype=torch.float64, device=dev)  # the n_grid grid points
        pol = task.policy.to(dev)
        times = []
        with torch.no_grad():
            for k in range(12):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                pol.forward_batched(thetas, x)
                torch.cuda.synchronize()
                if k >= 2:
                    times.append(time.perf_counter() - t0)
        out["cuda_eval_ms"] = 1e3 * statistics.median(times)
        out["cuda_device"] = torch.cuda.get_device_name(0)
    return out


def run_config(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec`` in a fresh interpreter; its last stdout line is the JSON result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"scaling worker failed for {spec}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for j, (sweep, xkey, xlabel) in enumerate((("d", "d", "parameters d (N = 800)"), ("N", "N", "constraint rows N (d = 4,353)"))):
        rs = sorted((r for r in rows if r["sweep"] == sweep), key=lambda r: r[xkey])
        if not rs:
            continue
        x = [r[xkey] for r in rs]
        for key, label, color in (("ms_per_iteration", "iteration", "k"), ("evaluation_ms", "evaluation", "tab:green"),
                                  ("gradient_ms", "gradient", "tab:blue"), ("projection_ms", "projection (SOCP)", "tab:orange")):
            axes[0, j].plot(x, [r[key] for r in rs], marker="o", color=color, label=label)
        if any(r["cuda_eval_ms"] is not None for r in rs):
            axes[0, j].plot(x, [r["cuda_eval_ms"] for r in rs], marker="s", ls="--", color="tab:green", label="evaluation on CUDA")
        axes[0, j].set_xscale("log")
        axes[0, j].set_yscale("log")
        axes[0, j].set_ylabel("ms (median per iteration)")
        axes[0, j].legend(fontsize=8)
        axes[1, j].plot(x, [r["peak_rss_mb"] for r in rs], marker="o", label="peak RSS of the process")
        axes[1, j].plot(x, [r["tracemalloc_peak_mb"] for r in rs], marker="o", label="tracemalloc peak (numpy/Python)")
        axes[1, j].set_xscale("log")
        axes[1, j].set_yscale("log")
        axes[1, j].set_ylabel("MB")
        axes[1, j].set_xlabel(xlabel)
        axes[1, j].legend(fontsize=8)
    fig.suptitle(f"SCPO iteration cost on the regression task ({rows[0]['threads']} CPU thread(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the two smallest sizes of each sweep, 2 iterations")
    ap.add_argument("--iterations", type=int, default=None, help="timed iterations per configuration (default 10; quick 2)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="accepted for a uniform interface; the sweep uses seed 0")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    iterations = args.iterations or (2 if args.quick else 10)
    widths, grids = (QUICK_WIDTHS, QUICK_GRIDS) if args.quick else (WIDTHS, GRIDS)
    specs = [dict(sweep="d", width=w, n_grid=DEFAULT_GRID) for w in widths]
    specs += [dict(sweep="N", width=DEFAULT_WIDTH, n_grid=g) for g in grids]
    rows = []
    print(f"{'sweep':>5} {'d':>9} {'N':>7} {'accepted':>8} {'ms/it':>9} {'eval':>9} {'grad':>9} {'proj.':>9} {'other':>8} {'evals/it':>8} "
          f"{'SOCP rows':>9} {'RSS MB':>8} {'traced MB':>9} {'CUDA eval ms':>12}")
    for spec in specs:
        r = run_config({**spec, "iterations": iterations, "warmup": WARMUP_STREAK, "threads": args.threads})
        rows.append(r)
        cuda = "n/a" if r["cuda_eval_ms"] is None else f"{r['cuda_eval_ms']:.2f}"
        print(f"{r['sweep']:>5} {r['d']:>9} {r['N']:>7} {str(r['accepted']) + '/' + str(r['iterations']):>8} {r['ms_per_iteration']:>9.1f} {r['evaluation_ms']:>9.1f} {r['gradient_ms']:>9.1f} "
              f"{r['projection_ms']:>9.1f} {r['other_ms']:>8.1f} {r['evaluations_per_iteration']:>8.1f} {r['socp_rows']:>9.0f} "
              f"{r['peak_rss_mb']:>8.0f} {r['tracemalloc_peak_mb']:>9.1f} {cuda:>12}", flush=True)
    import bench_methods as bm

    bm.write_csv(args.out / "scaling.csv", rows)
    plot(rows, args.out / "scaling.png")
    print(f"wrote {args.out / 'scaling.csv'} and {args.out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
