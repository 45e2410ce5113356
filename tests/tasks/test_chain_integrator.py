"""The third task, defined only in scpo/tasks/ (plus its registry entry), runs through every command.

Proof that the task protocol is complete: nothing outside ``tasks/`` knows the chain of three
integrators, yet train, certify, audit, report and reach work on its runs.
"""

import json

import numpy as np
import pytest
import scipy.linalg
from typer.testing import CliRunner

from scpo.cli import app
from scpo.runs import load_run
from scpo.tasks import make_task

SMALL = {"horizon": 4, "grid": 7, "n_samples": 32, "hidden": [8]}
TRAIN = {"certify": "grid"}  # the protocol check; sound training in 3-D is exercised by the benchmarks


def test_model_is_the_zero_order_hold_of_the_triple_integrator():
    task = make_task("chain-integrator", {"dt": 0.3})
    dt = 0.3
    Ac = np.array([[0.0, 1, 0], [0, 0, 1], [0, 0, 0]])
    Bc = np.array([[0.0], [0], [1]])
    # reference: exact ZOH by the matrix exponential of [[Ac, Bc], [0, 0]] (Van Loan)
    M = scipy.linalg.expm(np.block([[Ac, Bc], [np.zeros((1, 4))]]) * dt)
    np.testing.assert_allclose(task.system.A, M[:3, :3], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(task.system.B, M[:3, 3:], rtol=1e-12, atol=1e-14)
    assert task.problem.n == 3 and task.problem.state_names == ("p", "v", "a")


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain") / "run"
    cfg = tmp_path_factory.mktemp("chain-cfg") / "cfg.json"
    cfg.write_text(json.dumps({"task_config": SMALL, "train": TRAIN}))
    res = CliRunner().invoke(app, ["train", "chain-integrator", "--out", str(out), "--iterations", "12", "--config", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    return out


def test_train_certify_audit_report_on_the_chain(chain_run):
    run = load_run(chain_run)
    recs = run.records
    assert len(recs) == 12 and all(r["max_constraint"] <= 0 for r in recs if r["accepted"])
    q = run.task.quality(run.theta())
    assert q["imitation_loss"] < q["imitation_loss_backup"]  # imitation improved on the backup's
    runner = CliRunner()
    res = runner.invoke(app, ["certify", str(chain_run), "--iteration", "0", "--quiet"])
    assert res.exit_code == 0, res.output  # the backup certifies on all of its declared region C (3-D polytope)
    region = json.loads(run.paths.region_certificate(0).read_text())
    assert len(region["partition"]["grid"]["counts"]) == 3 and region["holds"] and region["certified_fraction"] == 1.0
    res = runner.invoke(app, ["audit", str(chain_run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(chain_run)])
    assert res.exit_code == 0, res.output
    summary = json.loads((run.paths.report / "summary.json").read_text())
    assert summary["task"] == "chain-integrator"


@pytest.mark.slow
def test_reach_on_the_chain(chain_run, tmp_path):
    out = tmp_path / "sets.json"
    res = CliRunner().invoke(app, ["reach", "chain-integrator", "--run", str(chain_run), "--horizon", "2", "--samples", "5",
                                   "--grid", "8", "--out", str(out), "--quiet"])
    data = json.loads(out.read_text())
    claims = {c["name"]: c for c in data["claims"]}
    # every claim holds; with the 64-facet 3-D inner target X_f ⊆ R_k(T_in) is proved from k = 1 on
    # (k₀ in the claim's details; the 26-facet target of an earlier version needed k ≥ 2)
    assert res.exit_code == 0 and all(c["holds"] for c in claims.values()), res.output
    assert claims["backup_sets_contain_Xf"]["details"]["from_k"] == 1 and claims["backup_sets_contain_Xf"]["details"]["failing_k"] == []
