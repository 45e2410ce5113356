"""``scpo reach``: the plain function and the command of scpo's CLI, in-process."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from scpo.cli import app as scpo_app
from scpo.reachability.command import reach_command
from scpo.reachability.exact import exact_area
from scpo.reachability.polytope import Polytope, equals
from scpo.tasks.double_integrator import DoubleIntegratorConfig, DoubleIntegratorTask

runner = CliRunner()


def small_task(**kw):
    return DoubleIntegratorTask(DoubleIntegratorConfig(horizon=5, grid=15, n_samples=16, hidden=(4,), **kw))


def test_reach_command_writes_json_and_png(tmp_path):
    out, png = tmp_path / "sets.json", tmp_path / "sets.png"
    lines: list[str] = []
    steps: list[dict] = []
    code = reach_command(
        "double-integrator", 3, None, out, png, task_object=small_task(), directions=12, samples=20,
        progress=steps.append, echo=lines.append,
    )
    assert code == 0, "\n".join(lines)
    data = json.loads(out.read_text())
    assert data["horizon"] == 3 and data["task_horizon"] == 5 and data["all_claims_hold"]
    assert {c["level"] for c in data["claims"]} == {"exact", "evaluated"}
    fams = data["families"]
    assert set(fams) == {"backup_inner", "backup_outer", "controlled_inner", "controlled_outer"}
    for name, fam in fams.items():
        assert fam["level"] == "exact" and len(fam["sets"]) == 4 and {"inner": "T_in", "outer": "T_out"}[fam["target"]] in fam["statement"]
        assert ("inner approximations" in fam["relation_to_Xf"]) == (fam["target"] == "inner")
        # the H-representation round-trips and its stated area is the exact area of the stored rows
        for s in fam["sets"]:
            P = Polytope.from_dict(s)
            assert P.n_rows == s["facets"] and s["area"] == pytest.approx(float(exact_area(P)), rel=1e-12)
        assert "task_horizon_set" in fam  # T = 5 > N = 3: the T-step set is written for the comparisons
    # the backup's sets of the inner target are nested with increasing area
    areas = [s["area"] for s in fams["backup_inner"]["sets"]]
    assert areas == sorted(areas)
    assert data["targets"]["inner"]["relation"] == "inner" and data["targets"]["outer"]["relation"] == "outer"
    assert data["maximal_positively_invariant"]["converged"] and data["learned"] is None
    assert data["safety_region"]["S_states_outside_outer_set"] == 0
    # progress was reported for every step of the four families (up to max(N, T) = 5) and the invariant sets
    stages = {s["stage"] for s in steps}
    assert {"backup_inner", "controlled_outer", "control invariant"} <= stages
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    text = "\n".join(lines)
    assert "claims" in text and "FAILS" not in text and f"wrote {out}" in text


def test_a_failed_claim_gives_exit_code_1(tmp_path):
    # γ raised by 50%: X_f no longer lies in X_cl = {x ∈ X : |Kx| ≤ 1}, so the exact inclusion claims fail
    task = small_task()
    task.gamma = 1.5 * task.gamma
    lines: list[str] = []
    code = reach_command("double-integrator", 2, None, tmp_path / "r.json", None, task_object=task, directions=12, samples=10, echo=lines.append)
    assert code == 1
    data = json.loads((tmp_path / "r.json").read_text())
    failed = {c["name"] for c in data["claims"] if not c["holds"]}
    assert {"outer_target_contains_Xf", "mpi_contains_Xf"} <= failed
    assert "FAILS" in "\n".join(lines)


def test_cli_bad_input_exit_code_2(tmp_path):
    app = scpo_app
    res = runner.invoke(app, ["reach", "pendulum", "--horizon", "3"])
    assert res.exit_code == 2 and "task: expected one of 'double-integrator'" in res.output, res.output
    res = runner.invoke(app, ["reach", "double-integrator", "--horizon", "0"])
    assert res.exit_code == 2 and "horizon: expected an integer >= 1" in res.output, res.output
    res = runner.invoke(app, ["reach", "double-integrator", "--run", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "expected a run directory" in res.output, res.output
    res = runner.invoke(app, ["reach", "double-integrator", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--out: expected a file path" in res.output, res.output
    res = runner.invoke(app, ["reach", "double-integrator", "--horizon", "two"])
    assert res.exit_code == 2  # typer's own parsing error


def test_reach_command_refuses_conflicting_sources(tmp_path):
    assert reach_command("double-integrator", 2, tmp_path, None, None, task_object=small_task()) == 2


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
    res = runner.invoke(cli(), ["reach", "double-integrator", "--horizon", "5", "--run", str(run), "--out", str(out), "--plot", str(png), "--quiet"])
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
