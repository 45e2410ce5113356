"""Behaviour-unchanged check: the ``theta_sha256`` sequence of two seeded runs against a reference.

The references in ``benchmarks/reference/`` were recorded before the redesign of issue 11 (commit
dc63379): ``scpo demo`` (double integrator, 100 SCPO iterations, seed 0, grid acceptance) and
``scpo train regression --iterations 200 --seed 0``. Both are re-run with ``--certify grid`` (the
acceptance of those runs; the sound gate, the default since issue 12, trains differently). A refactor that keeps these sequences
bit-identical has not changed what training computes.

    python benchmarks/check_theta_sequence.py [--only demo|regression] [--keep DIR] [--threads 2]

Prints, per run, the number of iterations compared and the first iteration that differs (if any);
exits 1 when a sequence differs.

Threads. The references were recorded with torch's default on a 2-core machine, i.e. 2 intra-op
threads, and the demo's sequence depends on it (its rollouts' reductions are split across
threads): with ``OMP_NUM_THREADS=1`` even commit dc63379 itself differs from its reference at the
first iteration. The runs therefore get ``OMP_NUM_THREADS`` = ``--threads`` (default 2), whatever
the calling shell set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {
    "regression": (["train", "regression", "--iterations", "200", "--seed", "0", "--quiet", "--certify", "grid"],
                   "theta_sha256_regression_200.txt"),
    "demo": (["demo", "--certify", "grid"], "theta_sha256_demo_grid.txt"),
}


def sequence(run_dir: Path) -> list[str]:
    out = []
    for line in (run_dir / "certificates.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(f"{r['iteration']} {r['accepted']} {r['theta_sha256']}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(RUNS))
    ap.add_argument("--keep", type=Path, help="write the runs here instead of a temporary folder")
    ap.add_argument("--extra", nargs="*", default=[], help="extra arguments for every command (e.g. --certify grid)")
    ap.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the runs (the references used 2)")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    base = args.keep or Path(tempfile.mkdtemp(prefix="scpo-theta-"))
    base.mkdir(parents=True, exist_ok=True)
    failed = False
    for name, (cmd, ref_name) in RUNS.items():
        if args.only and name != args.only:
            continue
        out = base / name
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scpo.cli", *cmd, *args.extra, "--out", str(out)], capture_output=True, text=True, env=env)
        if proc.returncode not in (0, 1):
            print(f"{name}: command failed with exit {proc.returncode}\n{proc.stderr[-2000:]}")
            failed = True
            continue
        got = sequence(out)
        ref = (HERE / "reference" / ref_name).read_text().splitlines()
        first = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)
        if first is None and len(got) == len(ref):
            print(f"{name}: identical theta_sha256 sequence ({len(ref)} iterations, {time.perf_counter() - t0:.0f} s)")
        else:
            failed = True
            where = f"first difference at line {first + 1}: {got[first]!r} vs reference {ref[first]!r}" if first is not None \
                else f"{len(got)} iterations against {len(ref)} in the reference"
            print(f"{name}: DIFFERS — {where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
