"""Time per backward step of the exact reachable sets in 2-D, 3-D and 4-D, and ``scpo reach`` end to end.

Run on one core:

    OMP_NUM_THREADS=1 python benchmarks/bench_reachability.py [--steps 10] [--out bench-out]
    python benchmarks/bench_reachability.py --quick        # 4 steps per family, no end-to-end runs

Part 1, for the double integrator (2-D), the chain of three integrators (3-D) and the linearised
cart-pole (4-D): the polytopic target ``T_in ⊆ X_f`` (:func:`scpo.reachability.targets.terminal_targets`),
then ``--steps`` steps of the backup's backward reachable sets (closed-loop ``Pre``: stacked rows + LP
redundancy removal) and of the controllable sets (controlled ``Pre``: the projection, by cddlib
elimination in 2-D and by the hull of the projected vertices above), with the median time per step,
the facets of the last set and the step at which a fixed point was detected. The 4-D controllable sets
stop after ``--controlled-steps-4d`` (7) steps: their facets grow 200 → 1,864 by step 7, and at step 8
Qhull refuses the nearly degenerate vertices even with option Q12 (cddlib's enumeration, the next
fallback, then takes minutes per step). Part 2: the wall time of ``scpo reach double-integrator
--horizon 300``, ``scpo reach chain-integrator --horizon 2`` and ``scpo reach cart-pole --horizon 30``
(backup's sets only, the default for n ≥ 4; in process, every claim included). Writes
``reachability_steps.csv``.
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


TASKS = {  # name -> (dimension, small task settings: only the problem is used)
    "double-integrator": (2, {"grid": 5, "n_samples": 8, "hidden": [4]}),
    "chain-integrator": (3, {"grid": 5, "n_samples": 8, "hidden": [4]}),
    "cart-pole": (4, {"grid": 3, "safety_samples": 0, "n_samples": 4, "hidden": [4]}),
}


def _families(steps: int, controlled_4d: int = 7) -> list[dict]:
    from scpo.reachability.sets import backward_reachable_sets
    from scpo.reachability.targets import terminal_targets
    from scpo.tasks import make_task

    rows = []
    for name, (n, settings) in TASKS.items():
        pb = make_task(name, settings).problem
        t0 = time.perf_counter()
        inner, _ = terminal_targets(pb.system, pb.K, pb.P, pb.gamma, directions=32)
        t_targets = time.perf_counter() - t0
        for mode, K in (("backup", pb.K), ("controlled", None)):
            k = min(steps, controlled_4d) if (mode == "controlled" and n >= 4) else steps
            fam = backward_reachable_sets(inner.polytope, pb.system, k, K=K)
            per = [s for s in fam.seconds[1:] if s > 0]
            rows.append({
                "task": name, "n": n, "family": mode, "steps": k, "targets_s": round(t_targets, 3),
                "T_in_facets": inner.polytope.n_rows, "median_step_s": round(statistics.median(per), 4) if per else 0.0,
                "max_step_s": round(max(per), 4) if per else 0.0, "last_facets": fam.sets[-1].n_rows,
                "fixed_point": fam.fixed_point,
            })
            print(f"  {name:<18} n={n} {mode:<10} T_in {inner.polytope.n_rows:>3} facets ({t_targets:5.1f} s); "
                  f"per step median {rows[-1]['median_step_s']:.3f} s, max {rows[-1]['max_step_s']:.3f} s; "
                  f"R_{k}: {fam.sets[-1].n_rows} facets; fixed point {fam.fixed_point}", flush=True)
    return rows


def _reach(task: str, horizon: int) -> float:
    from scpo.cli.reach import reach_task
    from scpo.tasks import make_task

    t = make_task(task)
    t0 = time.perf_counter()
    code = reach_task(t, horizon, echo=lambda s: None)
    wall = time.perf_counter() - t0
    print(f"  scpo reach {task} --horizon {horizon}: {wall:.1f} s (exit {code})", flush=True)
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="backward steps per family")
    ap.add_argument("--quick", action="store_true", help="4 steps per family, no end-to-end runs")
    ap.add_argument("--controlled-steps-4d", type=int, default=7, help="steps of the 4-D controllable sets")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    _one_core()
    steps = 4 if args.quick else args.steps
    print(f"bench_reachability: {steps} backward steps per family, one core")
    rows = _families(steps, args.controlled_steps_4d)
    if not args.quick:
        _reach("double-integrator", 300)
        _reach("chain-integrator", 2)
        _reach("cart-pole", 30)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "reachability_steps.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out / 'reachability_steps.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
