"""``scpo bench``: run the benchmark scripts of the repository's ``benchmarks/`` folder.

The scripts are not part of the installed package (they are research tooling with long run
times and their own plots); this module finds them next to the package's source tree, i.e. in
an editable install or a checkout, and runs each in a subprocess with the same interpreter.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ._validate import check_in, check_int
from .errors import InvalidInputError

__all__ = ["BENCHMARKS", "bench_command", "find_benchmarks_dir"]

logger = logging.getLogger(__name__)

BENCHMARKS: dict[str, str] = {
    "methods": "bench_methods.py",
    "ablations": "bench_ablations.py",
    "scaling": "bench_scaling.py",
}
"""Benchmark name -> script in ``benchmarks/``."""

ENV_VAR = "SCPO_BENCHMARKS_DIR"


def find_benchmarks_dir(explicit: Path | None = None) -> Path:
    """The folder holding the benchmark scripts.

    Looked up in this order: ``explicit``; the environment variable ``SCPO_BENCHMARKS_DIR``;
    ``benchmarks/`` at the root of the source tree this package was imported from
    (``src/scpo/`` → the repository root).

    Raises
    ------
    InvalidInputError
        When none of these holds every script of :data:`BENCHMARKS` (e.g. the package was
        installed from a wheel, without the repository).
    """
    tried: list[Path] = []
    candidates = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    else:
        candidates.append(Path(__file__).resolve().parents[2] / "benchmarks")
    for c in candidates:
        tried.append(c)
        if all((c / script).is_file() for script in BENCHMARKS.values()):
            return c
    raise InvalidInputError(
        f"benchmarks: no benchmarks/ folder with {', '.join(BENCHMARKS.values())} at {', '.join(map(str, tried))}. "
        "The benchmark scripts live in the scpo repository, not in the installed package: clone the repository and "
        f"install it with `pip install -e .`, or point {ENV_VAR} at its benchmarks/ folder."
    )


def bench_command(which: str, quick: bool, out: Path, seeds: list[int] | None, *,
                  benchmarks_dir: Path | None = None, extra_args: Sequence[str] = ()) -> int:
    """Run one benchmark script (or all) and return an exit code.

    Parameters
    ----------
    which : {"methods", "ablations", "scaling", "all"}
    quick : bool
        Pass ``--quick`` (tiny budgets, one seed: a smoke test, not results).
    out : Path
        Output folder for the CSV and PNG files (created if missing).
    seeds : list of int or None
        Seeds to pass with ``--seeds``; None keeps each script's default.
    benchmarks_dir : Path, optional
        Where the scripts are (see :func:`find_benchmarks_dir`).
    extra_args : sequence of str
        Further arguments for the script(s), passed through unchanged.

    Returns
    -------
    int
        0 when every script exited with 0, else 1.

    Raises
    ------
    InvalidInputError
        Unknown ``which``, a negative seed, or no benchmarks folder.
    """
    check_in("which", which, (*BENCHMARKS, "all"))
    if seeds is not None:
        seeds = [check_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    folder = find_benchmarks_dir(benchmarks_dir)
    out = Path(out).resolve()  # the scripts run from the repository root
    out.mkdir(parents=True, exist_ok=True)
    names = list(BENCHMARKS) if which == "all" else [which]
    failed = []
    for name in names:
        cmd = [sys.executable, str(folder / BENCHMARKS[name]), "--out", str(out)]
        if quick:
            cmd.append("--quick")
        if seeds:
            cmd += ["--seeds", *map(str, seeds)]
        cmd += list(extra_args)
        logger.info("running %s", " ".join(cmd))
        print(f"== scpo bench {name}: {' '.join(cmd)}", flush=True)
        code = subprocess.call(cmd, cwd=folder.parent)
        if code != 0:
            failed.append(f"{name} (exit {code})")
    if failed:
        print(f"scpo bench: failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0
