"""Staging directories (``scpo._io.staging_dir``): what a killed run or report left is removed, a live one's kept."""

import os
import subprocess
import sys

from scpo._io import staging_dir
from scpo.training import resolve_config, train


def _dead_pid() -> int:
    # Reference: a child that has exited and been reaped has no process any more (os.kill raises).
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_staging_dirs_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "run"
    dead = tmp_path / f".run.partial-{_dead_pid()}-0123abcd"
    live = tmp_path / f".run.partial-{os.getppid()}-0123abcd"  # the test runner's parent: alive
    other = tmp_path / f".other.partial-{_dead_pid()}-0123abcd"  # another run's name: not ours to remove
    for d in (dead, live, other):
        (d / "checkpoints").mkdir(parents=True)
    fresh = staging_dir(out, "partial")
    assert not dead.exists() and live.is_dir() and other.is_dir()
    assert fresh.name.startswith(f".run.partial-{os.getpid()}-") and not fresh.exists()


def test_a_new_run_removes_what_a_killed_one_left(tmp_path):
    out = tmp_path / "reg"
    left = tmp_path / f".reg.partial-{_dead_pid()}-deadbeef"
    (left / "checkpoints").mkdir(parents=True)
    (left / "checkpoints" / "theta_000000.safetensors").write_bytes(b"half")
    train(resolve_config("regression", task_overrides={"hidden": [4], "n_train": 10, "n_grid": 10},
                         train_overrides={"iterations": 1, "certify": "grid"}), out)
    assert (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg"]
