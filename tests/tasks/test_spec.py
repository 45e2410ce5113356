"""The ``linear`` task from a TOML spec, from Python and from python-control; bad specs give exit 2."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scpo.cli import app
from scpo.config import from_mapping
from scpo.errors import ConfigError, UnsupportedError
from scpo.runs import task_from_config
from scpo.tasks import make_task
from scpo.tasks.chain_integrator import ChainIntegratorConfig, ChainIntegratorTask
from scpo.tasks.spec import LinearSpecConfig, linear_task, load_spec, spec_from_statespace

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chain3.toml"

SMALL = """
[safety]
grid = 5
horizon = 4
[residual]
hidden = [4]
"""

BASE = """
[system]
A = [[0.0, 1.0], [0.0, 0.0]]
B = [[0.0], [1.0]]
continuous = true
dt = 0.1
[constraints]
x_max = [1.0, 1.0]
u_max = [1.0]
[objective]
expert = "pd"
kp = 4.0
kd = 3.0
expert_target = [1.5, 0.0]
n_samples = 16
""" + SMALL


def write(tmp_path, text, name="sys.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_the_example_spec_is_the_builtin_chain_of_integrators():
    # the ZOH of the continuous triple integrator is the closed form of scpo.tasks.chain_integrator
    spec = make_task("linear", {**load_spec(EXAMPLE), "grid": 5, "horizon": 4, "n_samples": 8, "hidden": [4]})
    chain = ChainIntegratorTask(ChainIntegratorConfig(grid=5, horizon=4, n_samples=8, hidden=(4,)))
    np.testing.assert_allclose(spec.system.A, chain.system.A, rtol=0, atol=1e-15)
    np.testing.assert_allclose(spec.system.B, chain.system.B, rtol=0, atol=1e-15)
    np.testing.assert_allclose(spec.K, chain.K, rtol=1e-12)
    np.testing.assert_array_equal(spec.grid_states, chain.grid_states)
    np.testing.assert_array_equal(spec.in_safety_region, chain.in_safety_region)
    # the same expert law (the chain's saturated feedback written as K_e (x − x*))
    x = np.random.default_rng(0).uniform(-1, 1, (50, 3))
    np.testing.assert_allclose(spec.expert(x), chain.expert(x), atol=1e-12)


def test_python_call_and_toml_build_the_same_task_and_the_run_config_rebuilds_it(tmp_path):
    from_file = make_task("linear", load_spec(write(tmp_path, BASE)))
    from_python = linear_task([[0.0, 1.0], [0.0, 0.0]], [[0.0], [1.0]], continuous=True, dt=0.1, x_max=[1.0, 1.0], u_max=[1.0],
                              expert="pd", expert_kp=4.0, expert_kd=3.0, expert_target=[1.5, 0.0], n_samples=16,
                              grid=5, horizon=4, hidden=(4,))
    np.testing.assert_array_equal(from_file.K, from_python.K)
    np.testing.assert_array_equal(from_file.sample_states, from_python.sample_states)
    cfg = {"task": "linear", "task_config": json.loads(json.dumps(load_spec(write(tmp_path, BASE)))), "train": {"seed": 0}}
    rebuilt = task_from_config(cfg)
    np.testing.assert_array_equal(rebuilt.K, from_file.K)
    np.testing.assert_array_equal(rebuilt.grid_states, from_file.grid_states)


def test_python_control_statespace_and_dlqr_agree():
    control = pytest.importorskip("control", reason="python-control is not installed (pip install 'scpo[control]')")
    A = np.array([[1.0, 0.1], [0.0, 1.0]])
    B = np.array([[0.005], [0.1]])
    sys = control.ss(A, B, np.eye(2), np.zeros((2, 1)), 0.1)
    task = linear_task(**spec_from_statespace(sys), x_max=[1.0, 1.0], u_max=[1.0], expert="pd", expert_kp=4.0, expert_kd=3.0,
                       q_diag=[1.0, 2.0], r_diag=[0.5], grid=5, horizon=4, n_samples=8, hidden=(4,))
    K, S, _ = control.dlqr(sys, np.diag([1.0, 2.0]), np.array([[0.5]]))
    np.testing.assert_allclose(task.K, -np.asarray(K), rtol=0, atol=1e-9)  # python-control uses u = −Kx
    np.testing.assert_allclose(task.P, np.asarray(S), rtol=0, atol=1e-9)
    with pytest.raises(Exception, match="dt"):
        spec_from_statespace(control.ss(A, B, np.eye(2), np.zeros((2, 1))))  # continuous: dt = 0


def test_a_given_gain_and_a_dataset_expert(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(-0.5, 0.5, (40, 2))
    U = np.clip(-X @ np.array([[2.0], [1.5]]), -1, 1)
    np.savez(tmp_path / "expert.npz", states=X, actions=U)
    text = BASE.replace('expert = "pd"', 'dataset = "expert.npz"') + "\n"
    text = text.replace("[constraints]", "[backup]\nK = [[-2.0, -2.5]]\n[constraints]")
    task = make_task("linear", load_spec(write(tmp_path, text)))
    np.testing.assert_array_equal(task.K, [[-2.0, -2.5]])
    Acl = task.system.A + task.system.B @ task.K
    np.testing.assert_allclose(Acl.T @ task.P @ Acl - task.P, -(np.eye(2) + task.K.T @ task.K), atol=1e-10)
    np.testing.assert_array_equal(task.sample_states, X)
    f = task.objective(task.theta0)
    assert f == pytest.approx(np.mean(np.sum((X @ task.K.T - U) ** 2, axis=1)), rel=1e-12)
    with pytest.raises(UnsupportedError):
        task.expert(X)
    assert task.backup_design() is None  # no LQR design to re-derive


def test_the_tracking_objective_gradient_matches_finite_differences(tmp_path):
    text = BASE.replace('[objective]\nexpert = "pd"', '[objective]\nkind = "tracking"\nreference = [1.5, 0.0]\nr_track_diag = [0.1]\nexpert = "pd"')
    task = make_task("linear", load_spec(write(tmp_path, text)))
    theta = task.theta0 + 0.05 * np.random.default_rng(2).standard_normal(task.dim)
    f, g = task.objective_and_grad(theta)
    d = np.random.default_rng(3).standard_normal(task.dim)
    h = 1e-6
    fd = (task.objective(theta + h * d) - task.objective(theta - h * d)) / (2 * h)
    assert g @ d == pytest.approx(fd, rel=1e-5)
    assert task.block_gradients(theta, 3).sum(axis=0) == pytest.approx(-g, rel=1e-8, abs=1e-12)


BAD = {
    "non-square A": (BASE.replace("A = [[0.0, 1.0], [0.0, 0.0]]", "A = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]"), "[system] A"),
    "mismatched B": (BASE.replace("B = [[0.0], [1.0]]", "B = [[0.0], [1.0], [2.0]]"), "[system] B"),
    "NaN": (BASE.replace("x_max = [1.0, 1.0]", "x_max = [1.0, nan]"), "[constraints] x_max"),
    "unknown key": (BASE.replace("dt = 0.1", "dt = 0.1\nsample_time = 0.1"), "sample_time"),
    "empty constraint set": (BASE.replace("x_max = [1.0, 1.0]", "x_max = [1.0, 1.0]\nHx = [[1.0, 0.0]]\nhx = [-2.0]"), "Hx"),
    "unbounded constraint set": (BASE.replace("x_max = [1.0, 1.0]", "Hx = [[1.0, 0.0], [-1.0, 0.0]]\nhx = [1.0, 1.0]"), "unbounded"),
    "unstabilisable pair": (BASE.replace("B = [[0.0], [1.0]]", "B = [[1.0], [0.0]]").replace("A = [[0.0, 1.0], [0.0, 0.0]]", "A = [[0.0, 0.0], [0.0, 1.0]]"),
                            "[system] A, B"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_files_give_exit_2_naming_the_key_and_write_nothing(tmp_path, case):
    text, key = BAD[case]
    spec = write(tmp_path, text)
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task-file", str(spec), "--out", str(out), "--iterations", "1", "--quiet"])
    assert res.exit_code == 2, res.output
    assert key in res.output, res.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sys.toml"]


def test_an_unknown_key_lists_the_valid_ones_and_a_bad_dataset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[objective\] unknown key 'gain'; valid keys are .*expert_gain"):
        load_spec(write(tmp_path, BASE.replace("kp = 4.0", "gain = 4.0")))
    with pytest.raises(ConfigError, match=r"unknown section \[solver\]"):
        load_spec(write(tmp_path, BASE + "\n[solver]\nname = 'x'\n"))
    np.savez(tmp_path / "bad.npz", states=np.zeros((10, 3)), actions=np.zeros((10, 1)))
    spec = write(tmp_path, BASE.replace('expert = "pd"', 'dataset = "bad.npz"'))
    res = runner.invoke(app, ["train", "--task-file", str(spec), "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 2 and "dataset" in res.output and "states" in res.output, res.output
    assert not (tmp_path / "run").exists()


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="expert_gain"):
        from_mapping(LinearSpecConfig, {"A": [[1.0]], "B": [[1.0]], "x_max": [1.0], "u_max": [1.0], "expert": "linear"})
