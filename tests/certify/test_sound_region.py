"""The sound region certificate over a declared region C (issue 12)."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from scpo.certify.declared import backup_region, box_region
from scpo.certify.partition import Partition, check_tiling, clip_box, root_grid
from scpo.certify.sound_region import GateConfig, RegionCertifier
from scpo.reachability.exact import exact_measure
from scpo.reachability.polytope import bounding_box
from scpo.tasks import make_task
from scpo.training import GateSettings, SoundGate

DI = {"grid": 20, "n_samples": 32, "hidden": [8, 8]}


@pytest.fixture(scope="module")
def di():
    task = make_task("double-integrator", DI, seed=0)
    return task, task.declared_region()


def test_backup_region_is_inside_X_and_covers_most_of_the_backup_set(di):
    task, region = di
    assert [c.holds for c in region.claims] == [True, True]  # C ⊆ X and T_in ⊆ X_f, exact
    # reference: the backup's own sets of T_in ⊆ X_f ⊆ T_out bracket its set of X_f
    assert region.details["volume_backup_inner"] <= region.details["volume_backup_outer"] + 1e-12
    assert region.details["share_of_backup_set"] >= 0.95
    assert region.volume_exact == exact_measure(region.polytope)
    with pytest.raises(Exception, match="margin"):
        backup_region(task.problem, margin=5.0)


def test_partition_tiles_C_exactly(di):
    _, region = di
    C = region.polytope
    lo, hi = bounding_box(C)
    part = Partition.over(root_grid(lo, hi, 8), C.H, C.h)
    part = part.split(part.live[::3], C.H, C.h)
    part = part.split(part.live[::5], C.H, C.h)
    assert check_tiling(part.paths_by_root()) == []
    # reference: the exact volume of C by rational arithmetic on its own vertices
    assert part.exact_volume() == exact_measure(C)
    # a removed leaf or an extra overlapping one is detected
    by_root = part.paths_by_root()
    key = next(k for k, v in by_root.items() if len(v) > 1)
    assert check_tiling({key: by_root[key][1:]}) and check_tiling({key: by_root[key] + [by_root[key][0] + "0"]})


def test_clipping_is_exact_on_a_hand_checked_box():
    # C: x + y ≤ 1 over the unit box [0, 1]²: the clipped part is the triangle of area 1/2
    clip = clip_box(np.array([0.0, 0.0]), np.array([1.0, 1.0]), np.array([[1.0, 1.0]]), np.array([1.0]))
    assert clip.status == "partial" and clip.volume_exact == Fraction(1, 2)
    assert sorted(map(tuple, clip.vertices.tolist())) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0)]
    assert clip_box(np.array([2.0, 2.0]), np.array([3.0, 3.0]), np.array([[1.0, 1.0]]), np.array([1.0])).status == "outside"
    assert clip_box(np.array([0.0, 0.0]), np.array([0.25, 0.25]), np.array([[1.0, 1.0]]), np.array([1.0])).status == "inside"


def test_clipping_in_3d_matches_the_closed_form_simplex_and_exact_volumes():
    # C: x + y + z ≤ 1 over the unit cube: the clipped part is the simplex of volume 1/6 (closed form)
    H, h = np.array([[1.0, 1.0, 1.0]]), np.array([1.0])
    clip = clip_box(np.zeros(3), np.ones(3), H, h)
    assert clip.status == "partial" and clip.volume_exact is None  # n ≥ 3: the volume is qhull's float
    assert clip.volume == pytest.approx(1 / 6, rel=1e-12)
    assert sorted(map(tuple, clip.vertices.tolist())) == [(0.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]
    # a cut with no box corner inside C (the LP start) against the exact facet recursion
    H2, h2 = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]), np.array([1.75, -1.25])
    from scpo.reachability.polytope import Polytope

    clip2 = clip_box(np.zeros(3), np.ones(3), H2, h2)
    ref = exact_measure(Polytope(H=np.vstack([np.eye(3), -np.eye(3), H2]), h=np.concatenate([np.ones(3), np.zeros(3), h2])))
    assert clip2.status == "partial" and clip2.volume == pytest.approx(float(ref), rel=1e-12)
    # many cutting rows (the general enumeration path): the same vertices as the reference enumeration
    from scpo.reachability.enumeration import exact_vertices_nd

    rng = np.random.default_rng(7)
    H5 = rng.standard_normal((6, 3))
    h5 = 0.2 + 0.1 * rng.random(6) + H5 @ np.full(3, 0.5)  # six planes through the cube near its centre
    clip5 = clip_box(np.zeros(3), np.ones(3), H5, h5)
    P5 = Polytope(H=np.vstack([np.eye(3), -np.eye(3), H5]), h=np.concatenate([np.ones(3), np.zeros(3), h5]))
    ref5 = {tuple(float(x) for x in v) for v in exact_vertices_nd(P5).vertices}
    assert clip5.status == "partial" and set(map(tuple, clip5.vertices.tolist())) == ref5
    assert clip5.volume == pytest.approx(float(exact_measure(P5)), rel=1e-12)


def test_backup_certifies_on_all_of_C(di):
    task, region = di
    cert = RegionCertifier(task.problem, task.structure, region).certify(task.theta0)
    assert cert.holds and cert.certified_fraction == 1.0
    assert Fraction(cert.certified_volume_exact) == region.volume_exact  # exact, not rounded


def _rows_at(task, theta, x0):
    with torch.no_grad():
        return task.rollout_rows(task.rollout(theta[None], x0))[0].numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_leaves_hold_against_dense_sampling_and_ascent(di, seed):
    task, region = di
    rng = np.random.default_rng(seed)
    theta = task.theta0.copy()
    last = task.structure.offsets()[-1][0]
    theta[last:] = rng.normal(size=theta.size - last) * 0.02  # a small, non-zero final layer
    cert = RegionCertifier(task.problem, task.structure, region, GateConfig(max_depth=8)).certify(theta)
    part, C = cert.partition, region.polytope
    certified = [i for i, s in enumerate(cert.status) if s == "certified"]
    assert len(certified) > 100
    pts, owner = [], []
    for i in certified:
        X = rng.uniform(part.lower[i], part.upper[i], size=(40, 2))
        X = np.concatenate([X[np.all(X @ C.H.T <= C.h, axis=1)], part.clips[i].vertices])
        pts.append(X)
        owner.append(np.full(len(X), i))
    X, owner = np.concatenate(pts), np.concatenate(owner)
    rows = _rows_at(task, theta, X)
    lay = task.problem.layout
    worst = rows[:, : lay.n_rows - 1].max(axis=1)
    # reference: the rollout at sampled points of leaf ∩ C; a certified leaf's bound is above every sample
    assert np.all(worst <= cert.worst[owner] + 1e-12) and np.all(worst <= 0)
    assert np.all(rows[:, -1] <= 0)  # every sampled rollout ends in X_f
    # projected ascent from the best sample of the 50 tightest leaves stays ≤ 0
    tight = np.array(certified)[np.argsort(-cert.worst[certified])[:50]]
    x = torch.as_tensor(np.stack([part.clips[i].vertices.mean(axis=0) for i in tight])).requires_grad_(True)
    lo, hi = torch.as_tensor(part.lower[tight]), torch.as_tensor(part.upper[tight])
    for _ in range(30):
        r = task.rollout_rows(task.rollout(theta[None], x))[0].max(dim=1).values
        (g,) = torch.autograd.grad(r.sum(), x)
        x = torch.minimum(torch.maximum(x + 0.05 * (hi - lo) * g.sign(), lo), hi).detach().requires_grad_(True)
    inside = np.all(x.detach().numpy() @ C.H.T <= C.h, axis=1)
    assert np.all(_rows_at(task, theta, x.detach().numpy()[inside]).max(axis=1) <= 0)


def test_gate_rejects_a_candidate_that_passes_the_grid_but_violates_between_grid_points():
    task = make_task("regression", {"n_grid": 41, "hidden": [2], "n_train": 20}, seed=0)
    x_grid = task.constraint_states[:, 0]
    a, b = x_grid[20], x_grid[21]  # a bump of height 1.2 between two neighbouring grid points
    k = 60.0 / (b - a)
    W1, b1 = np.array([[k], [k]]), np.array([-k * (a + 0.35 * (b - a)), -k * (a + 0.65 * (b - a))])
    W2, b2 = np.array([[0.6, -0.6]]), np.array([0.0])
    theta = task.structure.flatten([(W1, b1), (W2, b2)])
    assert np.all(task.constraints(theta[None]) <= 0)  # the grid sees nothing
    fine = np.linspace(-3, 3, 20001)
    assert np.abs(task.predict(theta[None], fine)).max() > 1.1  # dense sampling sees the violation
    gate = SoundGate(task, GateSettings(max_depth=20))
    verdict = gate(theta, task.theta0)
    assert not verdict.ok and verdict.extension is not None
    added = gate.drain_added()
    assert added and added[0]["verdict"] == "violated" and a < added[0]["x0"][0] < b
    assert gate(task.theta0, task.theta0).ok  # the backup passes


def test_box_region_of_the_static_problem():
    task = make_task("regression", {"n_grid": 50, "hidden": [4], "n_train": 20}, seed=0)
    region = task.declared_region()
    assert region.kind == "box" and region.volume_exact == 6
    assert box_region([0.0], [1.0]).volume == 1.0
    cert = RegionCertifier(task.problem, task.structure, region).certify(task.theta0)
    assert cert.holds and cert.certified_fraction == 1.0


def test_the_certificate_figure_of_a_3d_region_marks_failed_leaves_at_states_of_C():
    # a perturbed residual on the 3-D chain with a small leaf budget: failed leaves, drawn on the 2-D
    # projections of C; reference for "a state of C": membership in C's rows (numpy), not the figure's LP
    from scpo.certify.sound_region import certificate_figure

    torch.set_num_threads(1)
    task = make_task("chain-integrator", {"horizon": 6, "grid": 5, "n_samples": 8, "hidden": [4]}, seed=0)
    region = task.declared_region()
    theta = task.theta0 + 0.3 * np.random.default_rng(0).normal(size=task.theta0.size)
    cert = RegionCertifier(task.problem, task.structure, region, GateConfig(max_depth=3, max_leaves=400)).certify(theta)
    assert cert.failed and not cert.holds
    fig = certificate_figure(task.problem, region, cert)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 and "FAILS" in fig.texts[0].get_text()
    C = region.polytope
    for ax, (i, j) in zip(axes, [(0, 1), (0, 2), (1, 2)]):
        marks = [ln for ln in ax.get_lines() if ln.get_marker() in ("x", "+")]
        assert marks and sum(len(ln.get_xdata()) for ln in marks) > 0
    # every inconclusive mark is the Chebyshev centre of its leaf ∩ C: inside C up to LP tolerance
    orange = [ln for ln in axes[0].get_lines() if ln.get_marker() == "+"][0]
    red = [ln for ln in axes[0].get_lines() if ln.get_marker() == "x"][0]
    assert len(orange.get_xdata()) + len(red.get_xdata()) >= 1
    from scpo.certify import sound_region

    pts = [sound_region._leaf_mark(region, f) for f in cert.failed if f["verdict"] != "violated"][:50]
    assert all(C.residual(p[None])[0] <= 1e-9 for p in pts if p is not None)
