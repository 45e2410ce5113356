"""State-Lipschitz bounds (naive, LipSDP with re-check, local interval Jacobians) and
``scpo verify-lipschitz`` on small trained runs."""

import json
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

from scpo.certify.lipschitz import (
    lipsdp,
    local_lipschitz,
    naive_lipschitz,
    network_weights,
    sampled_jacobian_norm,
    state_lipschitz,
)
from scpo.certify.lipschitz_command import record_region_radius, verify_lipschitz_command
from scpo.errors import InvalidInputError, NonFiniteError, UnsupportedError
from scpo.evidence import Level
from scpo.projector.solvers import mosek_status
from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask
from scpo.training import resolve_config, train

A = np.array([[1.0, 0.1], [0.0, 1.0]])
B = np.array([[0.005], [0.1]])
K = np.array([[-0.9, -1.4]])


def random_net(seed, hidden, scale=1.5, activation="tanh"):
    rng = np.random.default_rng(seed)
    widths = [2, *hidden, 1]
    Ws = [rng.normal(size=(o, i)) * scale / np.sqrt(i) for i, o in zip(widths[:-1], widths[1:])]
    bs = [rng.normal(size=o) * 0.5 for o in widths[1:]]
    return Ws, bs


def torch_map(Ws, bs, C, O, activation="tanh"):
    """y(x) = C x + O φ(x), written independently of the module under test."""
    Wt = [torch.as_tensor(W) for W in Ws]
    bt = [torch.as_tensor(b) for b in bs]
    Ct, Ot = torch.as_tensor(C), torch.as_tensor(O)
    act = torch.tanh if activation == "tanh" else torch.relu

    def y(x):
        h = x
        for W, b in zip(Wt[:-1], bt[:-1]):
            h = act(W @ h + b)
        return Ct @ x + Ot @ (Wt[-1] @ h + bt[-1])

    return y


def sampled_max_jacobian(Ws, bs, C, O, rng, n=4000, box=3.0, steps=15):
    """Largest ‖J(x)‖₂ over dense samples plus gradient ascent (an estimated lower bound of Lip)."""
    y = torch_map(Ws, bs, C, O)
    X = torch.as_tensor(rng.uniform(-box, box, size=(n, 2)))
    jn = torch.linalg.matrix_norm(vmap(jacrev(y))(X), ord=2)
    best = float(jn.max())
    x = X[torch.argsort(jn, descending=True)[:32]].clone()

    def norm_at(z):
        return torch.linalg.matrix_norm(jacrev(y)(z), ord=2)

    for k in range(steps):
        g = vmap(jacrev(norm_at))(x)
        x = (x + 0.1 / (k + 1) * g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)).clamp(-box, box)
        best = max(best, float(vmap(norm_at)(x).max()))
    return best


MAPS = {"residual": (np.zeros((1, 2)), np.eye(1)), "policy": (K, np.eye(1)), "closed-loop": (A + B @ K, B)}


@pytest.mark.parametrize("seed,hidden", [(0, (8, 8)), (1, (6,)), (2, (5, 5, 5))])
@pytest.mark.parametrize("map_name", list(MAPS))
def test_lipsdp_lies_between_the_sampled_jacobian_and_the_naive_product(seed, hidden, map_name):
    Ws, bs = random_net(seed, hidden)
    C, O = MAPS[map_name]
    res = lipsdp(Ws, C, O, label=map_name)
    assert res.method == "lipsdp", res.details.get("fallback")
    assert res.level == Level.SOUND
    assert res.details["status"] == cp.OPTIMAL
    # MOSEK when licensed, otherwise Clarabel for LMIs this small (scpo.projector.solvers.mosek_status)
    assert res.details["solver"] == (cp.MOSEK if mosek_status()[0] else cp.CLARABEL)
    assert any(c["passed"] for c in res.details["recheck"])
    sampled = sampled_max_jacobian(Ws, bs, C, O, np.random.default_rng(seed))
    naive = naive_lipschitz(Ws, C, O)
    assert sampled <= res.value <= naive


def test_lipsdp_reaches_the_slope_bound_where_the_naive_product_is_twice_too_large():
    # φ(x) = tanh(x₁) − tanh(x₁ + 3): any M(ρ, λ) ⪰ 0 implies ρ ≥ sup_{s ∈ [0,1]²} ‖W₂ diag(s) W₁‖² = 1
    # (closed form, s = (1, 0)), while the naive product is ‖W₂‖‖W₁‖ = 2.
    W1, W2 = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, -1.0]])
    res = lipsdp([W1, W2])
    assert res.method == "lipsdp"
    assert 1.0 <= res.value <= 1.0 + 1e-5
    assert naive_lipschitz([W1, W2]) == pytest.approx(2.0)
    # one neuron: LipSDP and the naive product coincide with |w₂| ‖w₁‖ (closed form); the smaller is reported
    w1, w2 = np.array([[0.6, -1.7]]), np.array([[-2.5]])
    one = lipsdp([w1, w2])
    exact = 2.5 * np.linalg.norm(w1)
    assert exact <= one.value <= exact * (1 + 1e-6)


def test_naive_product_closed_form():
    W1, W2 = np.diag([2.0, 3.0]), np.array([[1.0, 1.0]])
    assert naive_lipschitz([W1, W2]) == pytest.approx(np.sqrt(2) * 3.0, rel=1e-8)
    # an affine map (no hidden layer) is exact: ‖C + O W₁‖
    C = np.array([[1.0, 0.0]])
    assert naive_lipschitz([np.array([[0.0, 2.0]])], C, np.eye(1)) == pytest.approx(np.sqrt(5.0), rel=1e-8)


def test_lipsdp_falls_back_when_the_solver_is_not_optimal(monkeypatch):
    Ws, _ = random_net(3, (4,))

    def inaccurate(self, *a, **k):
        for v in self.variables():
            v.value = np.ones(v.shape)
        self._status = cp.OPTIMAL_INACCURATE
        return 0.0

    monkeypatch.setattr(cp.Problem, "solve", inaccurate)
    res = lipsdp(Ws)
    assert res.method == "naive" and res.level == Level.SOUND
    assert "not optimal" in res.details["fallback"]
    assert res.value == pytest.approx(naive_lipschitz(Ws))


def test_lipsdp_recheck_rejects_multipliers_that_do_not_certify(monkeypatch):
    Ws, _ = random_net(4, (4,))

    def zeros(self, *a, **k):  # "optimal" but ρ = 0, λ = 0: M = −ĈᵀĈ is not PSD
        for v in self.variables():
            v.value = np.zeros(v.shape)
        self._status = cp.OPTIMAL
        return 0.0

    monkeypatch.setattr(cp.Problem, "solve", zeros)
    res = lipsdp(Ws)
    assert res.method == "naive"
    assert "re-check failed" in res.details["fallback"]
    assert not any(c["passed"] for c in res.details["recheck"])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_local_bounds_hold_on_thousands_of_cells(activation):
    rng = np.random.default_rng(7)
    Ws, bs = random_net(5, (6, 6))
    C, O = MAPS["closed-loop"]
    n = 2000
    lo = rng.uniform(-2, 2, size=(n, 2))
    hi = lo + 10 ** rng.uniform(-3, -0.5, size=(n, 2))
    bound = local_lipschitz(Ws, bs, lo, hi, C, O, activation=activation)
    y = torch_map(Ws, bs, C, O, activation)
    m = 8
    P = torch.as_tensor(lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(n, m, 2)))
    Q = torch.as_tensor(lo[:, None] + (hi - lo)[:, None] * rng.uniform(size=(n, m, 2)))
    yv = vmap(vmap(y))
    quot = ((yv(P) - yv(Q)).norm(dim=-1) / (P - Q).norm(dim=-1)).amax(-1).numpy()
    assert np.all(quot <= bound), f"difference quotient above the bound in {np.sum(quot > bound)} cells"
    if activation == "tanh":  # the Jacobian exists everywhere: its norm is a lower bound too
        jn = torch.linalg.matrix_norm(vmap(vmap(jacrev(y)))(P), ord=2).amax(-1).numpy()
        assert np.all(jn <= bound)


def test_local_and_global_agree_with_sampled_jacobians_on_the_task():
    task = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(6, 6), grid=8, n_samples=8, horizon=5))
    theta = task.theta0 + 0.4 * np.random.default_rng(0).normal(size=task.dim)
    rep = state_lipschitz(task, theta, cells_per_axis=6, n_samples=3000)
    for claim in rep.claims():
        assert claim.holds, claim.details
    for m in ("residual", "policy", "closed-loop"):
        nv = [b for b in rep.bounds if b.map == m and b.method == "naive"][0]
        sd = [b for b in rep.bounds if b.map == m and b.method == "sampled"][0]
        assert sd.value <= rep.best(m).value <= nv.value
        assert rep.local[m].shape == (36,) and np.all(np.isfinite(rep.local[m]))
    # local bounds dominate the Jacobian norm sampled inside each cell
    Ws, bs, act = network_weights(task.policy_at(theta).residual)
    rng = np.random.default_rng(1)
    for i in range(36):
        pts = rng.uniform(rep.cells_lower[i], rep.cells_upper[i], size=(50, 2))
        Ccl = task.system.A + task.system.B @ task.K
        assert sampled_jacobian_norm(Ws, bs, pts, Ccl, task.system.B).max() <= rep.local["closed-loop"][i]


def test_bad_input_names_the_problem():
    Ws, bs = random_net(0, (3,))
    with pytest.raises(InvalidInputError, match="lower <= upper"):
        local_lipschitz(Ws, bs, np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    with pytest.raises(NonFiniteError, match="lower"):
        local_lipschitz(Ws, bs, np.array([[np.nan, 0.0]]), np.array([[1.0, 1.0]]))
    with pytest.raises(UnsupportedError, match="Dropout"):
        network_weights(nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 1)))
    with pytest.raises(InvalidInputError, match="solver"):
        lipsdp(Ws, solver="cplex")


# ------------------------------------------------------------------ scpo verify-lipschitz
TINY = {"hidden": [8], "n_grid": 60, "n_train": 40}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lip")
    adaptive = train(resolve_config("regression", task_overrides=TINY, train_overrides={"iterations": 10}), root / "adaptive").run
    fixed = train(resolve_config("regression", task_overrides=TINY, projector_overrides={"L_fixed": True, "L_init": 50.0},
                                 train_overrides={"iterations": 10}), root / "fixed").run
    return adaptive, fixed


def _json(path):
    return json.loads(Path(path).read_text())


def test_adaptive_run_is_not_certified_and_says_which_rows(runs, capsys):
    run = runs[0]
    rc = verify_lipschitz_command(run.path, None, None, False)
    out = capsys.readouterr().out
    assert rc == 1, out
    cert = _json(run.paths.certificates / "lipschitz_iter_000010.json")
    assert cert["rows"] == 120 and not cert["all_certified"]
    pr = cert["per_row"]
    L, sound, lower = (np.array(pr[k], dtype=float) for k in ("L_used_min", "sound", "lower"))
    verdict = np.array(pr["verdict"])
    # verdicts follow their definitions row by row
    assert np.all((verdict == "certified") == (L >= sound))
    assert np.all((verdict == "violated") == (L < lower))
    assert cert["counts"]["certified"] + cert["counts"]["plausible"] + cert["counts"]["violated"] == 120
    assert np.all(lower <= sound)
    assert "verdicts" in out and "plausible" in out
    claims = {c["name"]: c for c in cert["claims"]}
    assert claims["smoothness_certified"]["level"] == "sound" and not claims["smoothness_certified"]["holds"]


def test_run_with_L_above_the_certified_bound_is_certified_with_zero_rejections(runs, capsys):
    run = runs[1]
    assert all(r["rejected_tries"] == 0 and r["prediction_failures"] == 0 for r in run.records)
    rc = verify_lipschitz_command(run.path, None, None, True)
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["all_certified"] and out["counts"]["certified"] == 120
    assert max(out["per_row"]["sound"]) <= 50.0


def test_an_iteration_without_state_uses_the_recorded_L_range_and_record_radius(runs, capsys):
    run = runs[0]
    rc = verify_lipschitz_command(run.path, 5, None, True)
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert "L_min" in out["L_used_source"]
    R, how = record_region_radius(run.records, 5, bank_size=16, probe_radius=1e-3)
    assert out["region"]["radius"] == pytest.approx(R)
    # the record bound covers at least the distance between consecutive iterates
    assert R >= np.linalg.norm(run.theta(5) - run.theta(4))
    assert R >= np.linalg.norm(run.theta(6) - run.theta(5))


def test_bad_input_exits_2(runs, tmp_path, capsys):
    run = runs[0]
    assert verify_lipschitz_command(run.path, None, 0.0, False) == 2
    assert "radius" in capsys.readouterr().err
    assert verify_lipschitz_command(run.path, None, float("nan"), False) == 2
    assert verify_lipschitz_command(tmp_path / "missing", None, None, False) == 2
    assert verify_lipschitz_command(run.path, 999, None, False) == 2
    assert "999" in capsys.readouterr().err


def test_relu_run_is_refused(tmp_path, capsys):
    tc = {**TINY, "activation": "relu"}
    run = train(resolve_config("regression", task_overrides=tc, train_overrides={"iterations": 2}), tmp_path / "relu").run
    assert verify_lipschitz_command(run.path, None, 0.01, False) == 2
    assert "ReLU" in capsys.readouterr().err
