"""SIGKILL at chosen and random points of training and resuming: nothing acknowledged is lost.

Each point runs ``scpo train --resume`` in a child process that kills itself with SIGKILL at a
point of its write sequence (inside an atomic write, with its temporary file written but not
renamed; half-way through appending a record; right after a checkpoint, before its record;
inside the resume's verification) or is killed from outside after a random delay. After every
kill the independent audit must verify the run as it is (a crash leaves only what the audit
recognises as crash residue), and the next resume continues it. At the end: a contiguous chain,
the audit verifies, no temporary file is left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scpo.audit import audit_run
from scpo.runs import load_run
from scpo.training import resolve_config, resume, train

SMALL = {"hidden": [8], "n_train": 40, "n_grid": 60}
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

HARNESS = r'''
import json, os, signal, sys
kind, count = json.loads(os.environ["SCPO_KILL"])
calls = [0]
def hit():
    calls[0] += 1
    return calls[0] == count
def die():
    os.kill(os.getpid(), signal.SIGKILL)
import scpo._io as io
import scpo.runs.files as files
import scpo.training.run as tr
import scpo.runs.integrity as integrity
if kind.endswith("_tmp"):
    match = {"checkpoint_tmp": "theta_", "state_tmp": "projector_", "json_tmp": ".json"}[kind]
    orig = io.atomic_write_bytes_via
    def patched(path, write):
        if match in path.name and hit():
            def w(p):
                write(p)
                die()
            return orig(path, w)
        return orig(path, write)
    io.atomic_write_bytes_via = patched
    files.atomic_write_bytes_via = patched
elif kind == "torn_record":
    orig_append = tr.append_jsonl
    def append(path, record):
        if hit():
            line = json.dumps(record) + "\n"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line[: len(line) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            die()
        return orig_append(path, record)
    tr.append_jsonl = append
elif kind == "after_checkpoint":
    orig_ckpt = tr.write_checkpoint
    def ckpt(*a, **k):
        out = orig_ckpt(*a, **k)
        if hit():
            die()
        return out
    tr.write_checkpoint = ckpt
elif kind == "during_verification":
    orig_verify = integrity.verify_resumable
    def verify(*a, **k):
        out = orig_verify(*a, **k)
        die()
    integrity.verify_resumable = verify
from scpo.cli import main
sys.argv = ["scpo", *sys.argv[1:]]
main()
'''

KINDS = ("checkpoint_tmp", "state_tmp", "json_tmp", "torn_record", "after_checkpoint", "during_verification", "random_time")


def _start(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    train(resolve_config("regression", task_overrides=SMALL, projector_overrides={"lr": 0.05}, train_overrides={"iterations": 3}), run)
    (tmp_path / "harness.py").write_text(HARNESS)
    return run


def _kill_once(tmp_path: Path, run: Path, kind: str, count: int, target: int, rng: random.Random) -> int:
    args = [sys.executable, str(tmp_path / "harness.py"), "train", "--resume", str(run), "--iterations", str(target), "--quiet"]
    env = {**ENV, "SCPO_KILL": json.dumps([kind, count])}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kind == "random_time":
        lock = run / ".lock"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and str(proc.pid) not in lock.read_text():
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, -signal.SIGKILL), (kind, count, proc.returncode, err)
    return proc.returncode


def _check_after_kill(run: Path, what: str) -> None:
    res = audit_run(run, iterations="0,last")
    assert res.verdict == "verified", (what, res.render_text())


def _points(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    first = [("checkpoint_tmp", rng.randint(1, 4)), ("torn_record", rng.randint(1, 4))]
    rest = [(rng.choice(KINDS), rng.randint(1, 5)) for _ in range(max(0, n - 2))]
    return (first + rest)[:n]


def _sigkill_sequence(tmp_path: Path, n: int, seed: int) -> None:
    run = _start(tmp_path)
    rng = random.Random(seed + 1)
    target = 3
    killed = 0
    for i, (kind, count) in enumerate(_points(n, seed)):
        target += 5
        code = _kill_once(tmp_path, run, kind, count, target, rng)
        killed += code == -signal.SIGKILL
        _check_after_kill(run, f"point {i}: {kind} #{count} (exit {code})")
    assert killed >= max(1, n - 2), killed  # the kills happened (a late one may find the run already done)
    resume(run, iterations=target + 2)
    recs = load_run(run).records
    assert [r["iteration"] for r in recs] == list(range(1, target + 3))
    res = audit_run(run)
    assert res.verdict == "verified", res.render_text()
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert load_run(run).status["status"] == "finished"


def test_sigkill_at_two_write_points_then_resume(tmp_path):
    _sigkill_sequence(tmp_path, 2, seed=15)


@pytest.mark.slow
def test_sigkill_at_ten_random_points_then_resume(tmp_path):
    _sigkill_sequence(tmp_path, 10, seed=1515)
