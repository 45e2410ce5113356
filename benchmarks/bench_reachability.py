"""Time of the 30-step backward reachable sets of the double integrator, and facets per step.

Run on one core:

    OMP_NUM_THREADS=1 python benchmarks/bench_reachability.py [--task double-integrator] [--horizon 30] [--repeats 3] [--out bench-out]
    python benchmarks/bench_reachability.py --quick      # 10 steps, one repeat (about half a minute)

For the closed-loop problem of a task (default the DESIGN §5 double integrator: dt = 0.1, |p|, |v|,
|u| ≤ 1, LQR backup; computed by :mod:`scpo.reachability.report`, as ``scpo reach`` does) it computes the
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
    ap.add_argument("--task", default="double-integrator", help="a registered task whose problem has a terminal set")
    ap.add_argument("--horizon", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--directions", type=int, default=32, help="tangent directions of the targets around X_f")
    ap.add_argument("--quick", action="store_true", help="10 steps, one repeat")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.horizon, args.repeats = 10, 1
    _one_core()

    from scpo.reachability.claims import FAMILY_NAMES
    from scpo.reachability.exact import exact_area_or_nan
    from scpo.reachability.report import compute_targets, invariant_sets, reachable_families
    from scpo.tasks import make_task

    problem = make_task(args.task).problem
    if not problem.has_terminal:
        ap.error(f"--task: {args.task!r} has no terminal set X_f")
    t0 = time.perf_counter()
    targets = compute_targets(problem, directions=args.directions)
    t_targets = time.perf_counter() - t0
    print(f"{args.task}, N = {args.horizon}, {args.repeats} repeat(s), targets with {args.directions} directions "
          f"({targets['inner'].polytope.n_rows} / {targets['outer'].polytope.n_rows} facets, {t_targets:.2f} s)")

    times: dict[str, list[float]] = {name: [] for name in FAMILY_NAMES}
    for _ in range(args.repeats):
        seconds: dict[str, float] = {}
        families = reachable_families(problem, targets, args.horizon, seconds=seconds)
        for name in FAMILY_NAMES:
            times[name].append(seconds[name])
    results = {name: (statistics.median(times[name]), families[name]) for name in FAMILY_NAMES}

    print("\n| family | total (median) | per step | facets R_0 … R_N | area R_N |")
    print("|---|---|---|---|---|")
    for name, (t, fam) in results.items():
        print(f"| {name} | {t:.2f} s | {1e3 * t / args.horizon:.0f} ms | {' '.join(map(str, fam.facets))} | "
              f"{exact_area_or_nan(fam.sets[-1]):.4f} |")

    seconds = {}
    mpi, cinv = invariant_sets(problem, seconds=seconds)
    print(f"\nmaximal positively invariant set (Gilbert–Tan): {mpi.steps} step(s), {mpi.polytope.n_rows} facets, "
          f"area {exact_area_or_nan(mpi.polytope):.4f}, {seconds['mpi']:.2f} s")
    print(f"maximal control-invariant set: {'terminated' if cinv.converged else 'NOT terminated'} after {cinv.steps} step(s), "
          f"{cinv.polytope.n_rows} facets, area {exact_area_or_nan(cinv.polytope):.4f}, {seconds['control_invariant']:.2f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "reachability_steps.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "k", "facets", "step_seconds", "area"])
        for name, (_, fam) in results.items():
            for k, (P, sec) in enumerate(zip(fam.sets, fam.seconds)):
                w.writerow([name, k, P.n_rows, f"{sec:.6f}", f"{exact_area_or_nan(P):.10f}"])
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
