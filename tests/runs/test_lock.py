"""The run lock: one writer per run directory, checked with real concurrent processes.

References: the kernel's ``flock`` semantics (released when the holder dies, whatever the
cause); the independent audit for the chain that two writers leave behind.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scpo.audit import audit_run
from scpo.errors import RunLockedError
from scpo.runs import RunPaths, load_run
from scpo.runs.lock import RunLock
from scpo.training import resolve_config, resume, train

SMALL = {"hidden": [8], "n_train": 40, "n_grid": 60}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(tmp_path: Path, iterations: int = 3) -> Path:
    out = tmp_path / "run"
    train(resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": iterations}), out)
    return out


def _scpo(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scpo.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_is_exclusive_across_processes_and_names_the_holder(tmp_path):
    path = tmp_path / ".lock"
    lock = RunLock(path).acquire()
    try:
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["started"]
        code = ("import sys; from scpo.runs.lock import RunLock\n"
                "try:\n    RunLock(sys.argv[1]).acquire()\nexcept Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
        res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=ENV, timeout=120)
        assert res.returncode == 3, res.stdout + res.stderr
        assert res.stdout.startswith("RunLockedError") and f"pid {os.getpid()}, started {holder['started']}" in res.stdout
    finally:
        lock.release()
    assert path.read_bytes() == b""  # a clean release empties the file
    with RunLock(path) as again:  # and the lock can be taken again
        assert again.held and again.stale is None


def test_a_lock_left_by_a_dead_process_is_taken_over_and_reported(tmp_path):
    run = _run(tmp_path, 2)
    pid = _dead_pid()
    RunPaths(run).lock.write_text(json.dumps({"pid": pid, "started": "2026-01-01T00:00:00+00:00", "host": "h"}) + "\n")
    resume(run, iterations=3)
    event = [e for e in load_run(run).status["events"] if e["event"] == "resume"][-1]
    assert f"pid {pid}, started 2026-01-01T00:00:00+00:00" in event["lock"] and "no longer running" in event["lock"]
    assert RunPaths(run).lock.read_bytes() == b""
    assert audit_run(run).verdict == "verified"


def test_a_second_writer_in_this_process_is_refused(tmp_path):
    run = _run(tmp_path, 2)
    with RunLock(RunPaths(run).lock):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            resume(run, iterations=4)
    assert len(load_run(run).records) == 2


def test_two_concurrent_resumes_one_proceeds_the_other_exits_2(tmp_path):
    run = _run(tmp_path, 3)
    procs = [_scpo("train", "--resume", str(run), "--iterations", "80", "--quiet") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], (codes, outs)
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    err = outs[loser][1].strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in outs[loser][1], err
    assert f"pid {procs[winner].pid}, started" in err and "another scpo process is writing to it" in err
    recs = load_run(run).records
    assert [r["iteration"] for r in recs] == list(range(1, 81))
    res = audit_run(run)
    assert res.verdict == "verified", res.render_text()


def test_a_second_writer_during_a_long_resume_exits_2_and_the_first_finishes(tmp_path):
    run = _run(tmp_path, 3)
    first = _scpo("train", "--resume", str(run), "--iterations", "150", "--quiet")
    lock = RunPaths(run).lock
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and str(first.pid) not in lock.read_text():
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "scpo.cli", "train", "regression", "--resume", str(run), "--iterations", "200"],
                            capture_output=True, text=True, env=ENV, timeout=600)
    still_running = first.poll() is None
    out, errs = first.communicate(timeout=600)
    assert first.returncode == 0, errs
    assert still_running, "the first writer ended before the second tried; the test proves nothing"
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert len(load_run(run).records) == 150 and audit_run(run).verdict == "verified"
