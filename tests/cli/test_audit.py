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
