"""Double integrator with a malicious expert: SCPO vs plain imitation, rollout cost, demo time.

    python benchmarks/bench_double_integrator.py [--seeds 0 1 2 3 4] [--iterations 150] [--out bench-out]
    python benchmarks/bench_double_integrator.py --part rollout      # rollout timings only
    python benchmarks/bench_double_integrator.py --part demo         # wall time of `scpo demo`

(Per-row vs aggregated constraint rows: ``benchmarks/bench_ablations.py --studies rows``.)

Parts:

* ``compare``: SCPO (task defaults) and plain imitation (same optimiser, ``projection=False``)
  on several seeds: imitation loss of the backup, the final SCPO policy and plain imitation side by
  side, accepted iterates violating on the safety grid (and the first one for plain imitation,
  with the number of grid states that fail there), reach-avoid at the final SCPO iterate.
* ``rollout``: batched rollout time for 2,500 initial states × T = 50 with a 2-64-64-1 tanh
  residual (float64 and float32, 1 and 2 threads).
* ``demo``: wall time of ``scpo demo`` (run as a subprocess).

Writes di_compare.csv, di_rollout.csv and di_compare.png.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[k for k in rows[0] if k != "curve"])
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k != "curve"} for r in rows)


def run(seed: int, iterations: int, projection: bool, task_overrides=None, projector_overrides=None) -> dict:
    from scpo.tasks import make_task
    from scpo.training import build_projector, resolve_config

    proj = {**(projector_overrides or {}), "projection": projection}
    cfg = resolve_config("double-integrator", task_overrides=task_overrides or {}, projector_overrides=proj,
                         train_overrides={"seed": seed})
    task = make_task("double-integrator", cfg.task_config, seed=seed)
    p = build_projector(task, cfg.projector, task.theta0)
    f0 = p.objective_value
    first_violation, failing_at_first, violating, rejected, curve = None, None, 0, 0, []
    solve_times = []
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        rec = p.step()
        curve.append(rec.objective / f0)
        rejected += int(not rec.accepted)
        solve_times.append(rec.solve_time_s + rec.setup_time_s)
        if rec.accepted and not rec.max_constraint <= 0:
            violating += 1
            if first_violation is None:
                first_violation = it
                failing_at_first = int(np.sum(~(p.g <= 0)))
    wall = time.perf_counter() - t0
    ra = task.final_claims(p.theta)[0]
    return {
        "method": "scpo" if projection else "plain imitation",
        "seed": seed,
        "rows": cfg.task_config["rows"],
        "N": p.n_constraints,
        "imitation_loss_backup": f0,
        "imitation_loss_final": p.objective_value,
        "ratio_to_backup": p.objective_value / f0,
        "violating_iterates": violating,
        "first_violation": first_violation,
        "grid_states_failing_at_first_violation": failing_at_first,
        "rejected_iterations": rejected,
        "reach_avoid_final": ra.holds,
        "reach_avoid_failing_states": ra.details["failing_states"],
        "median_projection_ms": 1e3 * statistics.median(solve_times),
        "evaluations": p.evaluations,
        "wall_s": wall,
        "curve": curve,
    }


def part_compare(args) -> None:
    rows = []
    print(f"{'method':>16} {'seed':>4} {'backup':>7} {'final':>7} {'ratio':>6} {'viol.':>5} {'1st viol.':>9} {'failing':>7} {'reach-avoid':>11} {'time':>6}")
    for projection in (True, False):
        for seed in args.seeds:
            r = run(seed, args.iterations, projection)
            rows.append(r)
            print(
                f"{r['method']:>16} {seed:>4} {r['imitation_loss_backup']:7.4f} {r['imitation_loss_final']:7.4f} "
                f"{r['ratio_to_backup']:6.3f} {r['violating_iterates']:>5} {r['first_violation'] or '-':>9} "
                f"{r['grid_states_failing_at_first_violation'] or '-':>7} "
                f"{('holds' if r['reach_avoid_final'] else 'fails (' + str(r['reach_avoid_failing_states']) + ')'):>11} {r['wall_s']:5.0f}s",
                flush=True,
            )
    _write(args.out / "di_compare.csv", rows)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for r in rows:
        ax.plot(r["curve"], color="tab:blue" if r["method"] == "scpo" else "tab:red", alpha=0.6,
                label=r["method"] if r["seed"] == args.seeds[0] else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel("imitation loss / backup's")
    ax.set_title("double integrator: SCPO vs plain imitation (which violates)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "di_compare.png", dpi=120)


def part_rollout(args) -> None:
    import torch

    from scpo.systems import rollout
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask

    task = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(64, 64), horizon=50, n_samples=16), seed=0)
    rng = np.random.default_rng(0)
    theta = task.theta0 + 0.05 * rng.normal(size=task.dim)
    x0 = rng.uniform(-1, 1, size=(2500, 2))
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in (torch.float64, torch.float32):
            th = torch.as_tensor(theta[None], dtype=dtype)
            xs = torch.as_tensor(x0, dtype=dtype)
            K = torch.as_tensor(np.array(task.problem.K), dtype=dtype)  # a copy: the problem's arrays are read-only
            structure = task.structure
            params = structure.unflatten(th)

            def pol(x):
                return x @ K.T + structure.forward_batched(params, x)

            times = []
            with torch.no_grad():
                rollout(task.problem, pol, xs[None], 50)
                for _ in range(7):
                    t0 = time.perf_counter()
                    rollout(task.problem, pol, xs[None], 50)
                    times.append(time.perf_counter() - t0)
            ms = 1e3 * statistics.median(times)
            rows.append({"threads": threads, "dtype": str(dtype).replace("torch.", ""), "states": 2500, "horizon": 50,
                         "residual": "2-64-64-1 tanh", "median_ms": ms})
            print(f"rollout 2500 states × T=50, 2-64-64-1 tanh, {threads} thread(s), {rows[-1]['dtype']}: {ms:.1f} ms", flush=True)
    _write(args.out / "di_rollout.csv", rows)


def part_demo(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "scpo.cli", "demo", "--out", os.path.join(tmp, "demo")],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t0
    print(out.stdout[-2000:])
    print(f"scpo demo: exit {out.returncode}, wall time {wall:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["compare", "rollout", "demo", "all"], default="all")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = ["rollout", "compare", "demo"] if args.part == "all" else [args.part]
    for part in parts:
        print(f"\n== {part}")
        globals()[f"part_{part}"](args)
        torch.set_num_threads(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
