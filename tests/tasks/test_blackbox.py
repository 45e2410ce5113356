"""The black-box task protocol, end to end through ``scpo train module:factory``, report and audit,
with the Gymnasium example (skipped when gymnasium is not installed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scpo.cli import app
from scpo.errors import UnsupportedError

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def gym_example(monkeypatch):
    pytest.importorskip("gymnasium", reason="gymnasium is not installed (pip install 'scpo[gym]')")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    torch.set_num_threads(1)
    import gym_pendulum

    return gym_pendulum


def test_rows_come_from_the_environment_and_are_evaluated_only(gym_example):
    task = gym_example.GymPendulumTask(gym_example.GymPendulumConfig(initial_states=6, horizon=10, n_samples=16))
    g0 = task.constraints(task.theta0[None])
    assert g0.shape == (1, 6) and np.all(g0 <= 0)  # the LQR backup keeps the pendulum inside from these states
    # a policy pushing hard leaves the limits in the environment: rows > 0
    theta = task.theta0.copy()
    theta[-1] = 5.0  # the residual's output bias: +5 N·m on top of the backup
    assert np.all(task.constraints(theta[None]) > 0)
    claims = {c.name: c for c in task.base_claims(task.theta0, g0[0])}
    assert claims["constraint_rows_evaluated_only"].level.value == "evaluated"
    assert task.describe()["constraint_source"]["level"] == "evaluated"
    assert task.declared_region() is None if hasattr(task, "declared_region") else True
    with pytest.raises(UnsupportedError):
        task.add_constraint_states(np.zeros((1, 2)))


def test_train_module_factory_then_report_and_audit(gym_example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"task_config": {"initial_states": 8, "horizon": 10, "n_samples": 32}, "train": {"certify": "grid"}}))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "gym_pendulum:GymPendulumTask", "--out", str(run), "--iterations", "12", "--config", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "accepted iterates violating a constraint   0" in res.output
    config = json.loads((run / "config.json").read_text())
    assert config["task"] == "gym_pendulum:GymPendulumTask"
    base = json.loads((run / "base_certificate.json").read_text())
    assert any(c["name"] == "constraint_rows_evaluated_only" and c["level"] == "evaluated" for c in base["claims"])
    assert all(c["level"] != "sound" for c in base["claims"])
    rep = runner.invoke(app, ["report", str(run)])
    assert rep.exit_code == 0, rep.output
    # the report names where the rows come from and their level at the top of the page
    (md,) = run.rglob("report.md")
    text = md.read_text(encoding="utf-8")
    assert "Constraint rows: from " + config["policy"]["constraint_source"]["evaluator"] in text
    assert "**[evaluated]**. Every safety statement about them holds at the rollouts the evaluator ran" in text
    aud = runner.invoke(app, ["audit", str(run)])  # the run names user code: the audit imports it only when asked
    assert aud.exit_code == 2 and "--allow-task-code" in aud.output, aud.output
    aud = runner.invoke(app, ["audit", str(run), "--allow-task-code"])
    assert aud.exit_code == 0, aud.output
