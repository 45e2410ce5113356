"""``scpo audit`` in-process: exit codes 0 / 1 / 2, text and JSON output."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from scpo.cli import app
from scpo.runs import load_run
from scpo.training import resolve_config, train

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}


@pytest.fixture(scope="module")
def reg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-audit") / "reg"
    train(resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05}, train_overrides={"iterations": 6}), out)
    return out


def invoke(*args: str):
    return CliRunner().invoke(app, ["audit", *map(str, args)])


def test_audit_command_exit_codes_and_json(reg_run, tmp_path):
    res = invoke(reg_run, "--iterations", "0,last")
    assert res.exit_code == 0, res.output
    assert "verdict: VERIFIED (exit 0)" in res.output
    saved = sorted(load_run(reg_run).checkpoints)
    res = invoke(reg_run, "--json", "--iterations", f"{saved[1]}-{saved[2]}")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["exit_code"] == 0 and data["verdict"] == "verified" and data["audited_iterations"] == saved[1:3]
    assert list(data).index("exit_code") == list(data).index("ok") + 1
    res = invoke(reg_run, "--iterations", "99")
    assert res.exit_code == 2
    assert "no checkpoint saved for iteration 99" in res.stderr
    res = invoke(reg_run, "--json", "--iterations", "99")
    assert res.exit_code == 2 and json.loads(res.stdout)["verdict"] == "bad input"
    run = tmp_path / "run"
    shutil.copytree(reg_run, run)
    lines = (run / "certificates.jsonl").read_text().splitlines(keepends=True)
    (run / "certificates.jsonl").write_text("".join(lines[:2] + lines[3:]))
    res = invoke(run, "--json")
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["verdict"] == "failed" and data["exit_code"] == 1
    assert any(f["name"] == "chain" and f["iteration"] == 4 for f in data["failures"])


def test_audit_of_a_missing_directory_is_bad_input(tmp_path):
    res = invoke(tmp_path / "nothing")
    assert res.exit_code == 2, res.output
    assert "expected a run directory" in res.stdout and "verdict: BAD INPUT (exit 2)" in res.stdout


def test_audit_prints_the_constraints_and_a_head_that_pins_the_chain(reg_run, tmp_path):
    res = invoke(reg_run, "--iterations", "0")
    assert res.exit_code == 0, res.output
    assert "input rows (t = 0…0): f ≤ 1, f ≥ -1" in res.stdout and "specification sha256" in res.stdout
    head = res.stdout.split("  head ", 1)[1].split()[0]
    assert len(head) == 64
    assert invoke(reg_run, "--iterations", "0", "--expect-head", head).exit_code == 0
    run = tmp_path / "run"
    shutil.copytree(reg_run, run)
    lines = (run / "certificates.jsonl").read_text().splitlines(keepends=True)
    rec = json.loads(lines[-1])
    rec["solve_time_s"] = 0.001  # an edit no other check looks at
    (run / "certificates.jsonl").write_text("".join(lines[:-1]) + json.dumps(rec) + "\n")
    assert invoke(run, "--iterations", "0").exit_code == 0
    res = invoke(run, "--iterations", "0", "--expect-head", head)
    assert res.exit_code == 1 and "FAILED pinned_head" in res.stdout, res.output
    res = invoke(run, "--expect-head", "xyz")
    assert res.exit_code == 2 and res.stderr.strip().count("\n") == 0 and "expect_head: expected 16 to 64" in res.stderr


def _without_wall_time(stdout: str) -> dict:
    data = json.loads(stdout)
    data.pop("wall_time_s")
    return data


def test_audit_on_two_ray_workers_prints_the_in_process_result(reg_run):
    # Reference: the same audit in this process with the same --chunk (the units fix the numbers).
    from scpo.distributed import ray_available, shutdown

    if not ray_available():
        pytest.skip('Ray is not installed (optional extra: pip install -e ".[ray]"); the Ray engine is not exercised here')
    here = invoke(reg_run, "--json", "--chunk", 2)
    try:
        there = invoke(reg_run, "--json", "--chunk", 2, "--workers", 2)
    finally:
        shutdown()
    assert here.exit_code == there.exit_code == 0, there.output
    assert _without_wall_time(here.stdout) == _without_wall_time(there.stdout)


def test_audit_progress_and_engine_flags(reg_run, monkeypatch):
    res = invoke(reg_run, "--chunk", 2)
    assert res.exit_code == 0, res.output
    saved = len(load_run(reg_run).checkpoints)
    assert json.loads((reg_run / "config.json").read_text())["train"]["certify"] == "sound"
    units = saved + -(-saved // 2)  # a region certificate per saved iterate of a sound run, and blocks of 2
    assert f"audit: {units}/{units} units re-verified" in res.stderr
    assert "units re-verified" not in invoke(reg_run, "--chunk", 2, "--quiet").stderr
    for args, message in ((("--workers", 0), "workers: expected"), (("--chunk", 0), "chunk: expected"),
                          (("--ray-address", " "), "ray_address: expected")):
        res = invoke(reg_run, *args)
        assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.output, res.output
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if the extra were not installed
    res = invoke(reg_run, "--workers", 2)
    assert res.exit_code == 2 and 'pip install -e ".[ray]"' in res.stderr, res.output
