"""Start-up time of the command line: ``scpo --help`` and ``python -c "import scpo"``, before and after.

Issue 11 asks for ``scpo --help`` under 1 s: ``import scpo`` is lazy (PEP 562) and every command
module of :mod:`scpo.cli` imports the library inside its command, so neither torch nor cvxpy is
loaded to print the help. Each command runs in a fresh subprocess (so nothing is cached in this
interpreter) several times; the table shows the median wall time.

    python benchmarks/bench_cli_startup.py [--runs 7] [--reference-src DIR]

``before`` is the reference measured at commit dc63379 (before the redesign): ``scpo --help``
4.2 s (measured by the lead), ``import scpo`` 3.2 s (median of 5 runs on the same 2-core machine,
this script's author). ``--reference-src DIR`` re-measures the before column from the ``src/``
folder of a checkout of that commit instead (e.g. ``git worktree add /tmp/old dc63379`` and
``--reference-src /tmp/old/src``). Exits 1 when ``scpo --help`` takes 1 s or more.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_COMMIT = "dc63379"
REFERENCE_S = {"scpo --help": 4.2, "python -c 'import scpo'": 3.2}
TARGET_HELP_S = 1.0


def commands() -> dict[str, list[str]]:
    """The measured command lines (the installed ``scpo`` script when it is on PATH)."""
    exe = shutil.which("scpo", path=str(Path(sys.executable).parent)) or shutil.which("scpo")
    help_cmd = [exe, "--help"] if exe else [sys.executable, "-m", "scpo.cli", "--help"]
    return {"scpo --help": help_cmd, "python -c 'import scpo'": [sys.executable, "-c", "import scpo"]}


def median_wall(cmd: list[str], runs: int, src: Path | None = None) -> float:
    """Median wall time in seconds of ``cmd`` over ``runs`` fresh subprocesses (one warm-up run first).

    With ``src`` the package is imported from that folder (``PYTHONPATH``); the ``scpo`` script is
    then replaced by ``python -m scpo.cli`` so that it does not pick the installed package.
    """
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
        if cmd[0] != sys.executable:
            cmd = [sys.executable, "-m", "scpo.cli", *cmd[1:]]
    times = []
    for k in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit {proc.returncode}:\n{proc.stderr[-2000:]}")
        if k:  # the first run warms the file cache
            times.append(elapsed)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="subprocess runs per command (median)")
    ap.add_argument("--reference-src", type=Path, help=f"src/ of a checkout of {REFERENCE_COMMIT} to re-measure 'before'")
    args = ap.parse_args(argv)
    rows = []
    for name, cmd in commands().items():
        after = median_wall(cmd, args.runs)
        before = median_wall(cmd, args.runs, args.reference_src) if args.reference_src else REFERENCE_S[name]
        rows.append((name, before, after))
    source = "measured now" if args.reference_src else "reference"
    print(f"median wall time of {args.runs} runs each (before: {REFERENCE_COMMIT}, {source}; after: this checkout)")
    print(f"{'command':<26} {'before':>8} {'after':>8} {'speed-up':>9}")
    for name, before, after in rows:
        print(f"{name:<26} {before:>7.2f}s {after:>7.2f}s {before / after:>8.1f}x")
    help_after = rows[0][2]
    verdict = "meets" if help_after < TARGET_HELP_S else "MISSES"
    print(f"scpo --help {help_after:.2f} s {verdict} the target of {TARGET_HELP_S:.0f} s")
    return 0 if help_after < TARGET_HELP_S else 1


if __name__ == "__main__":
    sys.exit(main())
