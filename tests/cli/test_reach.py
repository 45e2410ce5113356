"""``scpo reach``: the command of scpo's CLI, in-process (typer's CliRunner).

The two end-to-end runs (JSON and PNG written; a failed claim gives exit 1) have a fast twin in the
default run (``[fast]``: task horizon T = 3, N ≤ 2, 12 directions, 5 samples) and their long form
under ``slow`` (``[long]``: T = 5, the settings of the tests before the redesign).
The fast twins drive the real command; only the task loader is replaced by one that returns a small
task (the built-in double integrator has T = 30).
"""

import dataclasses
import json
import types

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scpo.cli import app
from scpo.cli import reach as reach_cli
from scpo.reachability.exact import exact_area
from scpo.reachability.polytope import Polytope, equals
from scpo.runs import SCHEMA_VERSION
from scpo.systems import ClosedLoopProblem, LinearSystem, dlqr, terminal_level
from scpo.tasks.double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask

runner = CliRunner()


def small_task(horizon=5):
    torch.set_num_threads(1)
    return DoubleIntegratorTask(DoubleIntegratorConfig(horizon=horizon, grid=15, n_samples=16, hidden=(4,)))


def with_gamma_raised(task, factor=1.5):
    # γ raised: X_f no longer lies in X_cl = {x ∈ X : |Kx| ≤ 1}, so the exact inclusion claims fail
    task.problem = dataclasses.replace(task.problem, gamma=factor * task.problem.gamma)
    return task


def use_task(monkeypatch, task):
    """``scpo reach double-integrator …`` builds ``task`` instead of the built-in default."""
    monkeypatch.setattr(reach_cli, "load_reach_task", lambda name, run: (task, None))


def invoke(*args):
    return runner.invoke(app, ["reach", *map(str, args)])


def check_json_and_png(out, png, output, *, N, T):
    data = json.loads(out.read_text())
    assert data["horizon"] == N and data["task_horizon"] == T and data["all_claims_hold"] and data["run"] is None
    assert {c["level"] for c in data["claims"]} == {"exact", "evaluated"}
    fams = data["families"]
    assert set(fams) == {"backup_inner", "backup_outer", "controlled_inner", "controlled_outer"}
    for fam in fams.values():
        assert fam["level"] == "exact" and len(fam["sets"]) == N + 1 and {"inner": "T_in", "outer": "T_out"}[fam["target"]] in fam["statement"]
        assert ("inner approximations" in fam["relation_to_Xf"]) == (fam["target"] == "inner")
        # the H-representation round-trips and its stated area is the exact area of the stored rows
        for s in fam["sets"]:
            P = Polytope.from_dict(s)
            assert P.n_rows == s["facets"] and s["area"] == pytest.approx(float(exact_area(P)), rel=1e-12)
        assert "task_horizon_set" in fam  # T > N: the T-step set is written for the comparisons
    # the backup's sets of the inner target are nested with increasing area
    areas = [s["area"] for s in fams["backup_inner"]["sets"]]
    assert areas == sorted(areas)
    assert data["targets"]["inner"]["relation"] == "inner" and data["targets"]["outer"]["relation"] == "outer"
    assert data["maximal_positively_invariant"]["converged"] and data["learned"] is None
    assert data["safety_region"]["S_states_outside_outer_set"] == 0
    # progress was reported (on stderr) for the steps of the four families (up to max(N, T)) and the invariant sets
    assert f"backup_inner           step    {T}/{T}" in output and "controlled_outer" in output and "control invariant" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "claims" in output and "FAILS" not in output and f"wrote {out}" in output


@pytest.mark.parametrize(
    "T, N, samples", [pytest.param(3, 2, 5, id="fast"), pytest.param(5, 3, 20, id="long", marks=pytest.mark.slow)]
)
def test_reach_command_writes_json_and_png(tmp_path, monkeypatch, T, N, samples):
    use_task(monkeypatch, small_task(horizon=T))
    out, png = tmp_path / "sets.json", tmp_path / "sets.png"
    res = invoke("double-integrator", "--horizon", N, "--directions", 12, "--samples", samples, "--out", out, "--plot", png)
    assert res.exit_code == 0, res.output
    check_json_and_png(out, png, res.output, N=N, T=T)


@pytest.mark.parametrize(
    "T, N, samples", [pytest.param(3, 1, 5, id="fast"), pytest.param(5, 2, 10, id="long", marks=pytest.mark.slow)]
)
def test_a_failed_claim_gives_exit_code_1(tmp_path, monkeypatch, T, N, samples):
    use_task(monkeypatch, with_gamma_raised(small_task(horizon=T)))
    res = invoke("double-integrator", "--horizon", N, "--directions", 12, "--samples", samples, "--out", tmp_path / "r.json", "--quiet")
    assert res.exit_code == 1, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    failed = {c["name"] for c in data["claims"] if not c["holds"]}
    assert {"outer_target_contains_Xf", "mpi_contains_Xf"} <= failed and not data["all_claims_hold"]
    assert "FAILS" in res.output and " ms)" not in res.output  # --quiet: no progress lines


def test_cli_bad_input_exit_code_2(tmp_path):
    res = invoke("pendulum", "--horizon", 3)
    assert res.exit_code == 2 and "task: expected one of cart-pole, chain-integrator, double-integrator, linear, regression" in res.output, res.output
    res = invoke("regression", "--horizon", 3)
    assert res.exit_code == 2 and "terminal set" in res.output and "'regression'" in res.output, res.output
    res = invoke("double-integrator", "--horizon", 0)
    assert res.exit_code == 2 and "horizon: expected an integer >= 1" in res.output, res.output
    res = invoke("double-integrator", "--directions", 0)
    assert res.exit_code == 2 and "directions: expected an integer >= 1" in res.output, res.output
    res = invoke("double-integrator", "--run", tmp_path / "missing")
    assert res.exit_code == 2 and "expected a run directory" in res.output, res.output
    res = invoke("double-integrator", "--out", tmp_path)
    assert res.exit_code == 2 and "--out: expected a file path" in res.output, res.output
    res = invoke("double-integrator", "--sets", "some")
    assert res.exit_code == 2 and "--sets: expected one of auto, all, backup, got 'some'" in res.output, res.output
    res = invoke("double-integrator", "--horizon", "two")
    assert res.exit_code == 2  # typer's own parsing error


def test_backup_sets_only(tmp_path, monkeypatch):
    # --sets backup on the small double integrator: the backup's families, O_∞ and their claims only
    use_task(monkeypatch, small_task(horizon=3))
    out = tmp_path / "r.json"
    res = invoke("double-integrator", "--horizon", 2, "--directions", 12, "--samples", 5, "--sets", "backup", "--out", out)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["sets"] == "backup" and set(data["families"]) == {"backup_inner", "backup_outer"}
    assert data["maximal_control_invariant"] is None and data["all_claims_hold"]
    assert not any("controll" in c["name"] for c in data["claims"])
    assert "controllable sets and C_∞: not computed" in res.output and "controlled_inner" not in res.output
    # a learned policy is compared with the controllable sets: with --sets backup that is bad input, before any set
    task = small_task(horizon=3)
    lines = []
    code = reach_cli.reach_task(task, 2, theta=np.zeros(task.dim), sets="backup", out=tmp_path / "none.json", echo=lines.append)
    assert code == 2 and not lines and not (tmp_path / "none.json").exists()


@pytest.mark.slow
def test_reach_of_the_4d_cart_pole_finishes_with_the_backup_sets():
    # `scpo reach cart-pole` (n = 4, sets auto → backup): every claim holds (each with its own
    # reference, see scpo.reachability.claims); the Gilbert–Tan iteration terminates and S lies in R_T(T_out)
    res = invoke("cart-pole", "--horizon", 30, "--quiet")
    assert res.exit_code == 0, res.output
    assert "controllable sets and C_∞: not computed" in res.output and "O_∞ of the backup (Gilbert–Tan): terminated" in res.output
    assert "outside R_T(T_out): 0" in res.output and "FAILS" not in res.output


def test_a_run_of_another_task_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "task": "regression", "task_config": {}, "projector": {},
                                                 "train": {"seed": 0}, "policy": {"parameter_names": ["w"], "parameter_shapes": {"w": [1]}}}))
    res = invoke("double-integrator", "--run", run)
    assert res.exit_code == 2 and "--run: expected a run of task 'double-integrator', got a run of task 'regression'" in res.output, res.output


@pytest.mark.slow
def test_plot_of_a_three_state_task_shows_projections_and_sections(tmp_path):
    # a chain of three integrators: the sets are computed in 3-D and drawn as 2-D projections and sections
    dt = 0.2
    A = np.array([[1, dt, dt * dt / 2], [0, 1, dt], [0, 0, 1.0]])
    B = np.array([[dt**3 / 6], [dt * dt / 2], [dt]])
    s = LinearSystem.with_box_constraints(A, B, [1, 1, 1], [1])
    lqr = dlqr(A, B, np.eye(3), np.eye(1))
    gamma = terminal_level(lqr.P, lqr.K, s.Hx, s.hx, s.Hu, s.hu)
    problem = ClosedLoopProblem(system=s, K=lqr.K, horizon=3, P=lqr.P, gamma=gamma)
    # one grid state at a corner of the box, outside S and outside every set (the comparisons hold trivially)
    task = types.SimpleNamespace(name="chain", problem=problem, device=torch.device("cpu"),
                                 safety_grid=lambda: (np.array([[0.99, 0.99, 0.99]]), np.array([False])))
    lines = []
    png = tmp_path / "x.png"
    code = reach_cli.reach_task(task, 2, plot=png, directions=12, samples=5, sets="backup", echo=lines.append)
    assert code == 0, lines
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000 and f"  wrote {png}" in lines


@pytest.mark.slow
def test_cli_with_a_trained_run(tmp_path):
    # a tiny double-integrator run (T = 5), then `reach --run`: the learned grid set is compared
    from scpo.training import resolve_config, train

    run = tmp_path / "run"
    cfg = resolve_config(
        "double-integrator",
        task_overrides={"horizon": 5, "grid": 15, "n_samples": 32, "hidden": [4]},
        train_overrides={"iterations": 3},
    )
    train(cfg, run)
    out, png = tmp_path / "reach.json", tmp_path / "reach.png"
    res = invoke("double-integrator", "--horizon", 5, "--run", run, "--out", out, "--plot", png, "--quiet")
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    L = data["learned"]
    assert L["level"] == "evaluated" and L["grid_points"] == 100 * 100
    assert L["areas"]["learned_grid_estimate"] <= L["areas"]["controllable_exact_outer"] + 0.05
    names = {c["name"]: c for c in data["claims"]}
    assert names["learned_set_inside_controllable_set"]["holds"]
    assert data["run"] == str(run)
    # the sets in the JSON are those of the run's task (T = 5): the backup's 5-step set of T_in is the last one
    last = Polytope.from_dict(data["families"]["backup_inner"]["sets"][-1])
    assert equals(last, last) and np.isfinite(data["families"]["backup_inner"]["sets"][-1]["area"])
