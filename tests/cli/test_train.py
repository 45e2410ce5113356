"""The CLI, run in-process."""

import json

from typer.testing import CliRunner

from scpo import load_run
from scpo.cli import app

runner = CliRunner()


def _config(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"task_config": {"hidden": [8], "n_train": 40, "n_grid": 60}, "projector": {"lr": 0.05}}))
    return p


def test_train_and_resume(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "regression", "--out", str(out), "--iterations", "3", "--config", str(_config(tmp_path)), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert "accepted iterates violating a constraint   0" in res.output and "achievable improvement closed" in res.output
    assert load_run(out).config["train"]["seed"] == 2
    res = runner.invoke(app, ["train", "regression", "--resume", str(out), "--iterations", "5"])
    assert res.exit_code == 0, res.output
    assert len(load_run(out).records) == 5


def test_bad_input_exit_code_2(tmp_path):
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--solver", "gurobi"])
    assert res.exit_code == 2 and "solver: expected one of" in res.output, res.output
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--bank-size", "0"])
    assert res.exit_code == 2 and "bank_size" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"projector": {"lr": 0.1, "momentum": 0.9}}')
    res = runner.invoke(app, ["train", "regression", "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert res.exit_code == 2 and "unknown key(s) 'momentum'" in res.output and "valid keys are" in res.output
    res = runner.invoke(app, ["train", "pendulum", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "task: expected one of" in res.output
    res = runner.invoke(app, ["train", "regression"])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["train", "regression", "--resume", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "expected a run directory" in res.output
    assert not (tmp_path / "r").exists()


def test_demo_runs_and_reports(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out", str(out), "--iterations", "2"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and "objective" in res.output and "accepted" in res.output
