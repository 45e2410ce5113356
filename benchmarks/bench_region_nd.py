"""The sound region certificate in 2, 3 and 4 dimensions, and its leaves on local Ray workers.

    OMP_NUM_THREADS=1 python benchmarks/bench_region_nd.py [--workers 2] [--scale 0.005] [--max-leaves 5000] [--out bench-out]

For each task (double integrator n = 2, chain of integrators n = 3, cart-pole n = 4): the time to
build the declared region ``C`` (backup BRS of ``T_in`` under constraints tightened by ε, exact
vertices and volume), then region certificates (:class:`scpo.certify.sound_region.RegionCertifier`,
the settings the training gate uses for that dimension) of the backup ``θ₀`` and of a perturbed
residual ``θ₀ + scale·N(0, I)`` (seed 0; a leaf budget of ``--max-leaves``, after which open leaves
fail): leaves, refinement rounds, certified fraction of ``C`` by
volume, time, and leaves bounded per second. Part ``ray`` (needs the Ray extra): the perturbed
certificate again with ``task_leaves = 64`` in this process and on ``--workers`` local Ray workers;
the certificates must be identical apart from their timings, and the speed-up is printed.

Writes ``region_nd.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from scpo.distributed import Execution, ray_available, shutdown
from scpo.tasks import make_task
from scpo.training import GateSettings, SoundGate

TASKS = {"double-integrator": {}, "chain-integrator": {}, "cart-pole": {}}


def _strip(v):
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if "time" not in k}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scale", type=float, default=0.005)
    ap.add_argument("--max-leaves", type=int, default=5000, help="leaf budget of each certificate (GateSettings.max_leaves)")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.tasks:
        t0 = time.perf_counter()
        task = make_task(name, TASKS[name])
        region = task.declared_region()
        t_region = time.perf_counter() - t0
        print(f"{name}: n = {task.problem.n}, C has {region.polytope.n_rows} facets, volume {region.volume:.4g}, "
              f"built in {t_region:.1f} s (with the task)", flush=True)
        theta_bad = task.theta0 + args.scale * np.random.default_rng(0).standard_normal(task.dim)
        for label, theta in (("backup θ0", task.theta0), (f"θ0 + {args.scale:g}·N(0, I)", theta_bad)):
            gate = SoundGate(task, GateSettings(max_leaves=args.max_leaves))
            t1 = time.perf_counter()
            cert = gate.certify(theta)
            dt = time.perf_counter() - t1
            s = cert.summary
            bounded = s["crown"] + s["ibp"]
            row = {"task": name, "n": task.problem.n, "theta": label, "engine": "in-process", "region_s": t_region,
                   "facets": region.polytope.n_rows, "volume": region.volume, "live_leaves": s["live_leaves"],
                   "rounds": s["rounds"], "splits": s["splits"], "leaves_bounded": bounded,
                   "certified_fraction": cert.certified_fraction, "holds": cert.holds, "certificate_s": dt,
                   "leaves_per_s": bounded / dt if dt > 0 else float("nan")}
            rows.append(row)
            print(f"  {label}: {s['live_leaves']} live leaves, {s['rounds']} rounds, {bounded} leaves bounded, "
                  f"certified {100 * cert.certified_fraction:.2f} % of C, {'holds' if cert.holds else 'FAILS'}, "
                  f"{dt:.1f} s ({row['leaves_per_s']:.0f} leaves/s)", flush=True)
        if args.no_ray or not ray_available():
            print("  ray part skipped (" + ("--no-ray" if args.no_ray else "Ray not installed: pip install -e \".[ray]\"") + ")")
            continue
        certs = {}
        for engine, execution in (("in-process", None), (f"ray x{args.workers}", Execution(workers=args.workers))):
            gate = SoundGate(task, GateSettings(task_leaves=64, max_leaves=args.max_leaves), execution)
            if execution is not None:
                gate.certify(task.theta0)  # warm-up: start the instance and import scpo on the workers
            t1 = time.perf_counter()
            cert = gate.certify(theta_bad)
            dt = time.perf_counter() - t1
            certs[engine] = json.dumps(_strip(cert.to_dict()), sort_keys=True)
            bounded = cert.summary["crown"] + cert.summary["ibp"]
            rows.append({"task": name, "n": task.problem.n, "theta": "perturbed, task_leaves 64", "engine": engine, "region_s": t_region,
                         "facets": region.polytope.n_rows, "volume": region.volume, "live_leaves": cert.summary["live_leaves"],
                         "rounds": cert.summary["rounds"], "splits": cert.summary["splits"], "leaves_bounded": bounded,
                         "certified_fraction": cert.certified_fraction, "holds": cert.holds, "certificate_s": dt,
                         "leaves_per_s": bounded / dt if dt > 0 else float("nan")})
        a, b = list(certs)
        same = certs[a] == certs[b]
        here, there = rows[-2], rows[-1]
        print(f"  task_leaves 64: in-process {here['certificate_s']:.1f} s ({here['leaves_per_s']:.0f} leaves/s), "
              f"{b} {there['certificate_s']:.1f} s ({there['leaves_per_s']:.0f} leaves/s), speed-up "
              f"{here['certificate_s'] / there['certificate_s']:.2f}×, certificates identical: {same}", flush=True)
        if not same:
            print("  ERROR: the Ray certificate differs from the in-process one", file=sys.stderr)
            return 1
    shutdown()
    with open(args.out / "region_nd.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"), "load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
