"""Region-certificate box bounding in-process vs on local Ray workers: throughput, speed-up, overheads.

    python benchmarks/bench_distributed.py [--workers 2] [--repeats 3] [--quick] [--out bench-out]

Needs the Ray extra (``pip install -e ".[ray]"``). Regions: the double integrator's current cover
(one grid cell around each grid state of ``S``, :func:`scpo.certify.safety_region_cover`) and, when
a task with four states is registered, its cover too (a note says when there is none). The policy
is ``θ = θ₀ + 0.02·N(0, I)`` (seed 0), a perturbed residual, so both bounding methods have work.

Parts:

* ``overheads``: first the machine's parallel capacity right now (serial over parallel time of
  the same pure-Python loops in ``--workers`` plain processes: the best speed-up any engine can
  reach; other processes on the machine lower it), then what the engine costs on top of the work:
  startup (``ray.init`` of a local instance and its first tasks), the first batch on each worker
  (importing torch and scpo there, receiving the function), the round trip of an empty task, and
  the serialised sizes and times of what travels (the shared job once per call through
  ``ray.put``, then per task a batch of boxes and its rows).
* ``throughput``: boxes per second of :func:`scpo.certify.region.box_rows_upper` over the whole
  cover, per method (IBP, CROWN): one in-process call with one torch thread (what the certificate
  does today) and with two threads, the in-process engine with the task partition
  (:data:`scpo.certify.parallel.DEFAULT_TASK_BOXES`), and ``--workers`` Ray workers with the same
  partition (their rows are checked to be the in-process engine's, bit for bit). Speed-up is
  against the one-thread call.
* ``certificate``: the double integrator's whole region certificate
  (:func:`scpo.certify.certify_boxes`, ``min_width`` 0.002 as ``scpo certify``) with its bounding
  delegated to the engine (:func:`scpo.certify.parallel.rows_bounder` standing in for
  ``box_rows_upper``: the wiring the certify command gets), in-process and on the workers; the two
  certificates must be equal except for their timings.

Medians over ``--repeats``. Writes ``distributed.csv`` and prints the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def noop(x):
    return x


def burn(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i
    return s


def parallel_capacity(workers: int, n: int = 4_000_000) -> float:
    """How many cores this machine gives ``workers`` plain processes right now: serial time / parallel time
    of the same pure-Python loops (2.0 on an idle 2-core machine; less while other processes run)."""
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    for _ in range(workers):
        burn(n)
    serial = time.perf_counter() - t0
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(burn, [1] * workers))
        t0 = time.perf_counter()
        list(pool.map(burn, [n] * workers))
        parallel = time.perf_counter() - t0
    return serial / parallel


def region_setup(task_name: str, noise: float = 0.02) -> dict[str, Any]:
    """The task's cover, closed loop and problem."""
    from scpo.certify import closed_loop, safety_region_cover
    from scpo.tasks import make_task

    task = make_task(task_name)
    grid, _ = task.safety_grid()
    lo, hi, info = safety_region_cover(task.problem, grid, task.safety_states)
    theta = task.theta0 + noise * np.random.default_rng(0).standard_normal(task.dim)
    return {"name": task_name, "task": task, "problem": task.problem, "loop": closed_loop(task.problem, task.structure, theta),
            "lower": lo, "upper": hi, "info": info}


def find_4d_task() -> str | None:
    """The first registered closed-loop task with four states and a terminal set (None if there is none)."""
    from scpo.tasks import make_task, task_names

    for name in task_names():
        try:
            task = make_task(name)
        except Exception:  # a task that needs a spec file, or is being written: not one to time
            continue
        p = task.problem
        if p.n == 4 and not p.is_static and p.has_terminal:
            return name
    return None


def timed(fn, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def part_overheads(args, region: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from scpo.certify.parallel import DEFAULT_TASK_BOXES, BoxBoundJob, bound_box_batch, split_batches
    from scpo.distributed import map_tasks

    W = args.workers
    rows = [{"overhead": f"parallel capacity of the machine for {W} plain processes (no Ray; ideal {W}.00)",
             "value": parallel_capacity(W), "unit": "×"}]
    t0 = time.perf_counter()
    map_tasks(noop, list(range(W)), workers=W)
    rows.append({"overhead": "startup: ray.init (local, loopback) + first empty tasks", "value": time.perf_counter() - t0, "unit": "s"})
    job = BoxBoundJob(region["loop"], region["problem"], "crown")
    few = split_batches(region["lower"][: 2 * W], region["upper"][: 2 * W], size=2)
    t0 = time.perf_counter()
    map_tasks(bound_box_batch, few, shared=job, workers=W)
    first = time.perf_counter() - t0
    again, _ = timed(lambda: map_tasks(bound_box_batch, few, shared=job, workers=W), 3)
    rows.append({"overhead": "first batch per worker: import torch + scpo, receive the function (minus a warm call)",
                 "value": first - again, "unit": "s"})
    n = 400
    dt, _ = timed(lambda: map_tasks(noop, list(range(n)), workers=W), 3)
    rows.append({"overhead": f"empty task round trip ({n} tasks on {W} workers, per task)", "value": 1e3 * dt / n, "unit": "ms"})
    import ray
    import ray.cloudpickle as cp

    blob = cp.dumps(job)
    t_ser, _ = timed(lambda: cp.loads(cp.dumps(job)), 5)
    t_put, _ = timed(lambda: ray.put(job), 5)
    rows.append({"overhead": "shared job (closed loop + problem): pickled size", "value": len(blob) / 1024, "unit": "KiB"})
    rows.append({"overhead": "shared job: pickle + unpickle", "value": 1e3 * t_ser, "unit": "ms"})
    rows.append({"overhead": "shared job: ray.put (once per bounding call)", "value": 1e3 * t_put, "unit": "ms"})
    size = DEFAULT_TASK_BOXES["crown"]
    batch = split_batches(region["lower"], region["upper"], size=size)[0]
    torch.set_num_threads(1)
    result = bound_box_batch(job, batch)
    for what, obj in ((f"a batch of {size} boxes (argument)", batch), (f"its CROWN rows (result, T = {region['problem'].horizon})", result)):
        t_ser, _ = timed(lambda: pickle.loads(pickle.dumps(obj, protocol=5)), 5)
        rows.append({"overhead": f"{what}: pickled size", "value": len(pickle.dumps(obj, protocol=5)) / 1024, "unit": "KiB"})
        rows.append({"overhead": f"{what}: pickle + unpickle", "value": 1e3 * t_ser, "unit": "ms"})
    return rows


def part_throughput(args, region: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from scpo.certify.parallel import DEFAULT_TASK_BOXES, parallel_box_rows
    from scpo.certify.region import box_rows_upper
    from scpo.distributed import Execution

    loop, problem, lo, hi = region["loop"], region["problem"], region["lower"], region["upper"]
    B = len(lo)
    out = []
    for method in ("ibp", "crown"):
        configs = [
            ("in-process, one call, 1 thread", 1, lambda: box_rows_upper(loop, problem, lo, hi, method=method)),
            ("in-process, one call, 2 threads", 2, lambda: box_rows_upper(loop, problem, lo, hi, method=method)),
            (f"in-process engine, tasks of {DEFAULT_TASK_BOXES[method]}", 1, lambda: parallel_box_rows(loop, problem, lo, hi, method=method)),
            (f"Ray, {args.workers} workers × 1 thread, tasks of {DEFAULT_TASK_BOXES[method]}", 1,
             lambda: parallel_box_rows(loop, problem, lo, hi, method=method, execution=Execution(workers=args.workers))),
        ]
        results = {}
        base = None
        for label, threads, fn in configs:
            torch.set_num_threads(threads)
            fn()  # warm-up (and, on Ray, the workers' first batch)
            dt, results[label] = timed(fn, args.repeats)
            base = base or dt
            out.append({"region": region["name"], "n": problem.n, "boxes": B, "method": method, "config": label, "seconds": dt,
                        "boxes_per_s": B / dt, "speedup": base / dt})
        torch.set_num_threads(1)
        here, there = results[configs[2][0]], results[configs[3][0]]
        if not all(np.array_equal(here[k], there[k]) for k in here):
            raise SystemExit(f"{region['name']} {method}: the Ray rows differ from the in-process engine's")
    return out


def _record(res) -> str:
    from scpo.certify import region_record

    rec = region_record(res, schema_version=1, run="-", task="-", iteration=0, theta_sha256="-", min_width=0.002)
    del rec["created"]
    rec["summary"] = {k: v for k, v in rec["summary"].items() if not k.startswith("time")}
    for c in rec["claims"]:
        c["details"] = {k: v for k, v in c["details"].items() if k != "time_s"}
    return json.dumps(rec, sort_keys=True)


def part_certificate(args, region: dict[str, Any]) -> list[dict[str, Any]]:
    import torch

    from scpo.certify import RegionConfig, certify_boxes
    from scpo.certify import region as region_module
    from scpo.certify.parallel import rows_bounder
    from scpo.distributed import Execution

    cfg = RegionConfig(min_width=0.002, threads=1)
    original = region_module.box_rows_upper
    out, records, base = [], {}, None
    torch.set_num_threads(1)
    for label, execution in (("today: one call per refinement batch, in-process", None), ("in-process engine", Execution()),
                             (f"Ray, {args.workers} workers", Execution(workers=args.workers))):
        region_module.box_rows_upper = original if execution is None else rows_bounder(execution)
        try:
            def run():
                return certify_boxes(region["loop"], region["problem"], region["lower"], region["upper"], cfg, region_info=region["info"])

            dt, res = timed(run, args.repeats)  # the workers are warm from the throughput part
        finally:
            region_module.box_rows_upper = original
        s = res.summary
        bounded = s["boxes_bounded_ibp"] + s["boxes_bounded_crown"]
        base = base or dt
        records[label] = _record(res)
        out.append({"region": region["name"], "config": label, "seconds": dt, "bounded": bounded, "boxes_per_s": bounded / dt,
                    "speedup": base / dt, "certified_fraction": s["certified_fraction"], "failed_boxes": s["failed_boxes"],
                    "rounds": s["rounds"], "search_s": s["time_counterexample_search_s"], "value_decrease_s": s["time_value_decrease_s"]})
    labels = list(records)
    if records[labels[1]] != records[labels[2]]:
        raise SystemExit("the region certificate on Ray differs from the in-process engine's")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one repeat, the double integrator only")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 1
    import torch

    from scpo.distributed import ray_available, shutdown

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    if not ray_available():
        print('Ray is not installed: pip install -e ".[ray]" (this benchmark compares in-process with Ray workers)')
        return 2
    load0 = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPU cores; load average {load0:.2f} at the start (other processes on the machine slow every figure)")
    regions = [region_setup("double-integrator")]
    four = None if args.quick else find_4d_task()
    if four is not None:
        regions.append(region_setup(four))
    print(f"== overheads ({args.workers} local workers)")
    over = part_overheads(args, regions[0])
    for r in over:
        print(f"  {r['overhead']:<96} {r['value']:9.2f} {r['unit']}")
    print("\n== throughput of the box bounding (boxes per second over the cover)")
    rows = []
    for region in regions:
        rows += part_throughput(args, region)
    print(f"  {'region':<18} {'n':>2} {'boxes':>6} {'method':>6}  {'configuration':<48} {'time s':>7} {'boxes/s':>8} {'speed-up':>8}")
    for r in rows:
        print(f"  {r['region']:<18} {r['n']:>2} {r['boxes']:>6} {r['method']:>6}  {r['config']:<48} {r['seconds']:7.3f} "
              f"{r['boxes_per_s']:8.0f} {r['speedup']:7.2f}×")
    if four is None:
        print("  (no task with four states is registered: the 4-D region is not measured)")
    print("\n== the double integrator's region certificate (min_width 0.002), bounding through the engine")
    cert = part_certificate(args, regions[0])
    print(f"  {'configuration':<52} {'time s':>7} {'bounded':>8} {'boxes/s':>8} {'speed-up':>8} {'certified':>9} {'failed':>6} "
          f"{'search s':>8}")
    for r in cert:
        print(f"  {r['config']:<52} {r['seconds']:7.2f} {r['bounded']:>8} {r['boxes_per_s']:8.0f} {r['speedup']:7.2f}× "
              f"{100 * r['certified_fraction']:8.3f}% {r['failed_boxes']:>6} {r['search_s']:8.2f}")
    print("  (the certificates on Ray and in-process are equal except for their timings)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    shutdown()
    path = args.out / "distributed.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["part", "region", "method", "configuration", "value", "unit"])
        for r in over:
            w.writerow(["overheads", regions[0]["name"], "", r["overhead"], r["value"], r["unit"]])
        for r in rows:
            w.writerow(["throughput", r["region"], r["method"], r["config"], r["boxes_per_s"], "boxes/s"])
        for r in cert:
            w.writerow(["certificate", r["region"], "", r["config"], r["seconds"], "s"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
