"""Run the benchmark scripts of the repository's ``benchmarks/`` folder (``scpo bench``).

The scripts are not part of the installed package (they are research tooling with long run
times and their own plots); this module finds them next to the package's source tree, i.e. in
an editable install or a checkout, runs each in a subprocess with the same interpreter and
returns what happened (:class:`BenchResult`). It prints nothing: :mod:`scpo.cli.bench` shows the
output as it arrives (through the ``on_start`` / ``on_line`` callbacks) and picks the exit code.

Scale-out (DESIGN §11). With ``workers`` or ``ray_address`` the scripts of
:data:`PARALLEL_BENCHMARKS` run their independent units (task × method × seed) as Ray tasks
through :func:`scpo.distributed.map_tasks` (``--workers N`` / ``--ray-address A`` are passed on);
their tables are merged in the in-process order, so every number but the wall times is the
in-process run's. The other scripts time their own configurations and run in-process as before
(:attr:`ScriptRun.engine` says which). Ray is checked for before any script starts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._validate import check_in, check_int
from .distributed import Execution, require_ray
from .errors import InvalidInputError

__all__ = ["BENCHMARKS", "PARALLEL_BENCHMARKS", "BenchResult", "ScriptRun", "find_benchmarks_dir", "run_benchmarks"]

logger = logging.getLogger(__name__)

BENCHMARKS: dict[str, str] = {
    "methods": "bench_methods.py",
    "ablations": "bench_ablations.py",
    "scaling": "bench_scaling.py",
}
"""Benchmark name -> script in ``benchmarks/``."""

PARALLEL_BENCHMARKS: tuple[str, ...] = ("methods",)
"""Benchmarks whose scripts take ``--workers`` / ``--ray-address`` (their seeds run as Ray tasks)."""

ENV_VAR = "SCPO_BENCHMARKS_DIR"


@dataclass(frozen=True)
class ScriptRun:
    """One benchmark script that ran.

    Attributes
    ----------
    name : str
        Benchmark name (a key of :data:`BENCHMARKS`).
    command : list of str
        The command line it ran with.
    returncode : int
        Its exit status (0: success).
    output : str
        What it wrote to stdout and stderr, interleaved as it arrived.
    engine : str
        ``"ray"`` when its units ran as Ray tasks, else ``"in-process"``.
    """

    name: str
    command: list[str]
    returncode: int
    output: str
    engine: str = "in-process"

    @property
    def ok(self) -> bool:
        """Whether the script exited with 0."""
        return self.returncode == 0


@dataclass(frozen=True)
class BenchResult:
    """What :func:`run_benchmarks` did.

    Attributes
    ----------
    out : Path
        The folder the scripts wrote their CSV and PNG files to.
    runs : list of ScriptRun
        One entry per script, in the order they ran.
    """

    out: Path
    runs: list[ScriptRun]

    @property
    def ok(self) -> bool:
        """Whether every script exited with 0."""
        return all(r.ok for r in self.runs)

    @property
    def failed(self) -> list[str]:
        """``"name (exit code)"`` of every script that did not exit with 0."""
        return [f"{r.name} (exit {r.returncode})" for r in self.runs if not r.ok]


def find_benchmarks_dir(explicit: Path | None = None) -> Path:
    """The folder holding the benchmark scripts.

    Looked up in this order: ``explicit``; the environment variable ``SCPO_BENCHMARKS_DIR``;
    ``benchmarks/`` at the root of the source tree this package was imported from
    (``src/scpo/`` → the repository root).

    Parameters
    ----------
    explicit : Path, optional
        A folder to use instead of the environment variable and the source tree.

    Returns
    -------
    Path
        A folder holding every script of :data:`BENCHMARKS`.

    Raises
    ------
    InvalidInputError
        When none of these holds every script of :data:`BENCHMARKS` (e.g. the package was
        installed from a wheel, without the repository).
    """
    if explicit is not None:
        candidate = Path(explicit)
    elif os.environ.get(ENV_VAR):
        candidate = Path(os.environ[ENV_VAR])
    else:
        candidate = Path(__file__).resolve().parents[2] / "benchmarks"
    if all((candidate / script).is_file() for script in BENCHMARKS.values()):
        return candidate
    raise InvalidInputError(
        f"benchmarks: no benchmarks/ folder with {', '.join(BENCHMARKS.values())} at {candidate}. "
        "The benchmark scripts live in the scpo repository, not in the installed package: clone the repository and "
        f"install it with `pip install -e .`, or point {ENV_VAR} at its benchmarks/ folder."
    )


def _run_script(cmd: list[str], cwd: Path, on_line: Callable[[str], None] | None) -> tuple[int, str]:
    """Run ``cmd``; pass each output line to ``on_line`` as it arrives; return (exit code, output)."""
    lines: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout or ():  # stdout=PIPE: always a stream
            lines.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
        code = proc.wait()
    return code, "".join(lines)


def run_benchmarks(
    which: str,
    quick: bool,
    out: Path,
    seeds: list[int] | None,
    *,
    benchmarks_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    on_start: Callable[[str, list[str]], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
) -> BenchResult:
    """Run one benchmark script (or all) and return what each did; a failing script does not stop the others.

    Parameters
    ----------
    which : {"methods", "ablations", "scaling", "all"}
        The benchmark to run, or all of :data:`BENCHMARKS` in order.
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
    on_start : callable, optional
        ``(name, command)``, called before each script starts.
    on_line : callable, optional
        Called with each line of a script's output (without the newline) as it arrives.
    workers : int, optional
        Run the units of :data:`PARALLEL_BENCHMARKS` on a local Ray instance with this many CPUs.
    ray_address : str, optional
        ... or on the Ray cluster at this address.

    Returns
    -------
    BenchResult
        Per script: its command line, exit status and output.

    Raises
    ------
    InvalidInputError
        Unknown ``which``, a negative seed, no benchmarks folder, bad ``workers`` or
        ``ray_address``, or Ray asked for but not installed (the message names the extra).
    """
    check_in("which", which, (*BENCHMARKS, "all"))
    execution = Execution(workers=workers, ray_address=ray_address)
    if execution.engine == "ray":
        require_ray("--workers / --ray-address", load=False)
    if seeds is not None:
        seeds = [check_int(f"seeds[{i}]", s, minimum=0) for i, s in enumerate(seeds)]
    folder = find_benchmarks_dir(benchmarks_dir)
    out = Path(out).resolve()  # the scripts run from the repository root
    out.mkdir(parents=True, exist_ok=True)
    names = list(BENCHMARKS) if which == "all" else [which]
    runs = []
    for name in names:
        cmd = [sys.executable, str(folder / BENCHMARKS[name]), "--out", str(out)]
        if quick:
            cmd.append("--quick")
        if seeds:
            cmd += ["--seeds", *map(str, seeds)]
        engine = execution.engine if name in PARALLEL_BENCHMARKS else "in-process"
        if engine == "ray":
            cmd += ["--workers", str(execution.workers)] if execution.workers is not None else []
            cmd += ["--ray-address", execution.ray_address] if execution.ray_address is not None else []
        cmd += list(extra_args)
        logger.info("running %s", " ".join(cmd))
        if on_start is not None:
            on_start(name, cmd)
        code, output = _run_script(cmd, folder.parent, on_line)
        runs.append(ScriptRun(name=name, command=cmd, returncode=code, output=output, engine=engine))
    return BenchResult(out=out, runs=runs)
