"""Time of the 30-step backward reachable sets of the double integrator, and facets per step.

Run on one core:

    OMP_NUM_THREADS=1 python benchmarks/bench_reachability.py [--horizon 30] [--repeats 3] [--out bench-out]
    python benchmarks/bench_reachability.py --quick      # 10 steps, one repeat (about half a minute)

For the DESIGN §5 double integrator (dt = 0.1, |p|, |v|, |u| ≤ 1, LQR backup) it computes the
polytopic targets around ``X_f`` (inner ``T_in ⊆ X_f`` and outer ``T_out ⊇ X_f``), then for each
target the backup's ``k``-step backward reachable sets (closed-loop ``Pre``: stacked rows + LP
redundancy removal) and the ``k``-step controllable sets (controlled ``Pre``: cddlib projection +
LP redundancy removal), ``k = 1 … N``. It prints the median wall time of each family over the
repeats, the time per step, and the number of facets of every ``R_k``, plus the maximal
positively invariant and control-invariant sets. Writes ``reachability_steps.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path


def _one_core() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--directions", type=int, default=32, help="tangent directions of the targets around X_f")
    ap.add_argument("--quick", action="store_true", help="10 steps, one repeat")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.horizon, args.repeats = 10, 1
    _one_core()

    from scpo.reachability.exact import exact_area
    from scpo.reachability.sets import backup_invariant_set, backward_reachable_sets, maximal_control_invariant
    from scpo.reachability.targets import terminal_targets
    from scpo.tasks.double_integrator import DoubleIntegratorTask

    task = DoubleIntegratorTask()
    s, K = task.system, task.K
    t0 = time.perf_counter()
    inner, outer = terminal_targets(s, K, task.P, task.gamma, directions=args.directions)
    t_targets = time.perf_counter() - t0
    print(f"double integrator, N = {args.horizon}, {args.repeats} repeat(s), targets with {args.directions} directions "
          f"({inner.polytope.n_rows} / {outer.polytope.n_rows} facets, {t_targets:.2f} s)")

    results = {}
    for mode in ("backup", "controlled"):
        for rel, tgt in (("inner", inner), ("outer", outer)):
            times, last = [], None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                last = backward_reachable_sets(tgt.polytope, s, args.horizon, K=K if mode == "backup" else None)
                times.append(time.perf_counter() - t0)
            results[f"{mode}_{rel}"] = (statistics.median(times), last)

    print("\n| family | total (median) | per step | facets R_0 … R_N | area R_N |")
    print("|---|---|---|---|---|")
    for name, (t, fam) in results.items():
        print(f"| {name} | {t:.2f} s | {1e3 * t / args.horizon:.0f} ms | {' '.join(map(str, fam.facets))} | "
              f"{float(exact_area(fam.sets[-1])):.4f} |")

    t0 = time.perf_counter()
    mpi = backup_invariant_set(s, K)
    t_mpi = time.perf_counter() - t0
    t0 = time.perf_counter()
    cinv = maximal_control_invariant(s)
    t_ci = time.perf_counter() - t0
    print(f"\nmaximal positively invariant set (Gilbert–Tan): {mpi.steps} step(s), {mpi.polytope.n_rows} facets, "
          f"area {float(exact_area(mpi.polytope)):.4f}, {t_mpi:.2f} s")
    print(f"maximal control-invariant set: {'terminated' if cinv.converged else 'NOT terminated'} after {cinv.steps} step(s), "
          f"{cinv.polytope.n_rows} facets, area {float(exact_area(cinv.polytope)):.4f}, {t_ci:.2f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "reachability_steps.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "k", "facets", "step_seconds", "area"])
        for name, (_, fam) in results.items():
            for k, (P, sec) in enumerate(zip(fam.sets, fam.seconds)):
                w.writerow([name, k, P.n_rows, f"{sec:.6f}", f"{float(exact_area(P)):.10f}"])
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
