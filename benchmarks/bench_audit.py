"""How long ``scpo audit`` takes on a long run (target: a 1,000-iteration run in under a minute on 2 cores).

    python benchmarks/bench_audit.py            # full: train a 1,000-iteration regression run, audit it
    python benchmarks/bench_audit.py --quick    # 30 iterations of the same task, and an extrapolation
    python benchmarks/bench_audit.py --run RUN  # audit an existing run directory
    python benchmarks/bench_audit.py --run RUN --workers 2 [--chunk 8]   # also on 2 local Ray workers

The run uses the regression task at its default size (1-64-64-1 residual, 400 grid points,
N = 800 rows) with a checkpoint after every accepted iteration, so a 1,000-iteration run has up
to 1,001 checkpoints to hash and re-evaluate. Printed: the time to create the run, the time of
the audit of every checkpoint, the time of an audit that re-evaluates only ``θ₀`` (file reading,
hashing, the chain, the base case and the backup), and the re-evaluation cost per checkpoint.
With ``--workers N`` the full audit is repeated with its units (region certificates, blocks of
``--chunk`` checkpoints) as Ray tasks on a local instance; printed: its time, the speed-up over
this process, and whether the two results are identical (they must be, apart from the wall time).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 iterations instead of 1,000")
    ap.add_argument("--iterations", type=int, default=None, help="iterations of the run to create (default 1000, quick 30)")
    ap.add_argument("--run", type=Path, default=None, help="audit this existing run instead of creating one")
    ap.add_argument("--out", type=Path, default=None, help="keep the created run here (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2: the 2-core target)")
    ap.add_argument("--workers", type=int, default=None, help="also audit on a local Ray instance with N CPUs")
    ap.add_argument("--chunk", type=int, default=64, help="checkpoints per re-evaluation unit (default 64)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(args.threads)
    from scpo.audit import audit_run
    from scpo.training import resolve_config, train

    tmp = None
    if args.run is not None:
        run = args.run
        created_s = None
    else:
        iterations = args.iterations or (30 if args.quick else 1000)
        if args.out is None:
            tmp = tempfile.TemporaryDirectory(prefix="bench-audit-")
            run = Path(tmp.name) / "run"
        else:
            run = args.out
        cfg = resolve_config("regression", train_overrides={"iterations": iterations, "log_every": 100, "checkpoint_every": 1})
        print(f"creating a {iterations}-iteration regression run (default task size) in {run} …", flush=True)
        t0 = time.perf_counter()
        res = train(cfg, run)
        created_s = time.perf_counter() - t0
        print(f"  created in {created_s:.1f} s: {res.accepted} accepted, {res.rejected} rejected", flush=True)

    t0 = time.perf_counter()
    base = audit_run(run, iterations="0")
    base_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = audit_run(run, chunk=args.chunk)
    full_s = time.perf_counter() - t0
    n_ck = len(full.audited_iterations)
    per = (full_s - base_s) / max(n_ck - 1, 1)
    print(f"run                       {run}")
    print(f"torch threads             {args.threads} (CPU cores visible: {os.cpu_count()})")
    if created_s is not None:
        print(f"creating the run          {created_s:.1f} s")
    print(f"records / checkpoints     {sum(1 for c in full.checks if c.name == 'checkpoint_hash')} checkpoints hashed, "
          f"{n_ck} re-evaluated")
    print(f"audit, every checkpoint   {full_s:.2f} s  (verdict {full.verdict}, {len(full.checks)} checks)")
    print(f"audit, θ₀ only            {base_s:.2f} s  (files, hashes, chain, base case, backup)")
    print(f"re-evaluation per ckpt    {1e3 * per:.1f} ms  (g, f and, for control tasks, reach-avoid)")
    if n_ck < 1000:
        print(f"extrapolated to 1,001 checkpoints: {base_s + 1000 * per:.1f} s (target < 60 s)")
    identical = True
    if args.workers is not None:
        from scpo.distributed import Execution, map_tasks, shutdown

        t0 = time.perf_counter()
        map_tasks(abs, [0], workers=args.workers)
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        there = audit_run(run, chunk=args.chunk, execution=Execution(workers=args.workers))
        ray_s = time.perf_counter() - t0
        shutdown()
        a, b = full.to_dict(), there.to_dict()
        a.pop("wall_time_s"), b.pop("wall_time_s")
        identical = a == b
        print(f"Ray, {args.workers} workers           {ray_s:.2f} s after a {start_s:.1f} s start  (speed-up {full_s / ray_s:.2f}×; "
              f"{'identical to' if identical else 'DIFFERS from'} the in-process result; chunk {args.chunk})")
    if not full.ok:
        print(full.render_text(), file=sys.stderr)
    if tmp is not None:
        tmp.cleanup()
    return 0 if full.ok and identical else 1


if __name__ == "__main__":
    sys.exit(main())
