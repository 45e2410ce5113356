"""Pre-sets, N-step sets and invariant sets: hand references, the DESIGN §5 double integrator,
independent LP / simulation checks, and bad input."""

from fractions import Fraction

import numpy as np
import pytest

from scpo.errors import InvalidInputError, NonFiniteError, ShapeError
from scpo.reachability.checks import membership_agreement, simulation_margin, simulation_margins, steering_margin
from scpo.reachability.exact import ellipsoid_in_polytope, exact_area, polytope_in_polytope
from scpo.reachability.polytope import Polytope, bounding_box, box, equals
from scpo.reachability.sets import (
    backup_invariant_set,
    backward_reachable_sets,
    closed_loop_pre,
    controlled_pre,
    maximal_control_invariant,
    maximal_positively_invariant,
)
from scpo.reachability.targets import terminal_targets
from scpo.systems import LinearSystem
from scpo.tasks.double_integrator import DoubleIntegratorTask


def interval(P):
    lo, hi = bounding_box(P)
    return float(lo[0]), float(hi[0])


@pytest.fixture(scope="module")
def scalar():
    # x⁺ = 2x + u, |x| ≤ 10, |u| ≤ 1 (unstable, so the sets are non-trivial)
    return LinearSystem.with_box_constraints([[2.0]], [[1.0]], [10.0], [1.0])


@pytest.fixture(scope="module")
def textbook_di():
    # the discrete double integrator x⁺ = [[1,1],[0,1]] x + [0;1] u with |x_i| ≤ 5, |u| ≤ 1: the
    # setting of the double-integrator examples of Borrelli, Bemporad & Morari, "Predictive Control
    # for Linear and Hybrid Systems", CUP 2017 (ch. 10-12). The reference sets below are derived by
    # hand in each test (the book's figures are not needed to check them).
    return LinearSystem.with_box_constraints([[1.0, 1.0], [0.0, 1.0]], [[0.0], [1.0]], [5.0, 5.0], [1.0])


# ----------------------------------------------------------------------------- 1-D, by hand
def test_scalar_controllable_sets_are_the_hand_intervals(scalar):
    # R_k = [−r_k, r_k]: x ∈ R_k iff some |u| ≤ 1 gives |2x + u| ≤ r_{k−1}, i.e. r_k = (r_{k−1} + 1)/2,
    # r_0 = 1/2, so r_k = 1 − 2^{−(k+1)} (hand).
    R = backward_reachable_sets(box([-0.5], [0.5]), scalar, 6)
    for k, P in enumerate(R.sets):
        r = 1 - 0.5 ** (k + 1)
        assert interval(P) == pytest.approx((-r, r), abs=1e-12)
        assert P.n_rows == 2
    # one Pre step directly
    assert interval(controlled_pre(box([-0.5], [0.5]), scalar)) == pytest.approx((-0.75, 0.75), abs=1e-12)


def test_scalar_backup_sets_and_mpi_by_hand(scalar):
    # K = −1.5: x⁺ = 0.5x, X_cl = {|x| ≤ 10, |1.5x| ≤ 1} = [−2/3, 2/3]. From T = [−0.1, 0.1]:
    # R_k = [−min(2/3, 0.1·2^k), …] (hand); O_∞ = X_cl, found at t* = 0.
    K = np.array([[-1.5]])
    R = backward_reachable_sets(box([-0.1], [0.1]), scalar, 5, K=K)
    for k, P in enumerate(R.sets):
        r = min(2 / 3, 0.1 * 2**k)
        assert interval(P) == pytest.approx((-r, r), abs=1e-12)
    assert interval(closed_loop_pre(box([-0.1], [0.1]), scalar, K)) == pytest.approx((-0.2, 0.2), abs=1e-12)
    O = backup_invariant_set(scalar, K)
    assert O.converged and O.steps == 0 and interval(O.polytope) == pytest.approx((-2 / 3, 2 / 3), abs=1e-12)


def test_non_terminating_iterations_stop_at_the_bound_and_say_so(scalar):
    # Control invariance: Ω_k = [−ω_k, ω_k] with ω_k = (ω_{k−1} + 1)/2, ω_0 = 10, so ω_k = 1 + 9·2^{−k}
    # → 1 only in the limit: no finite termination (hand).
    C = maximal_control_invariant(scalar, max_steps=20)
    assert not C.converged and C.steps == 20 and "did not terminate within max_steps = 20" in C.message
    w = 1 + 9 * 0.5**20
    assert interval(C.polytope) == pytest.approx((-w, w), rel=1e-12)
    # An unstable closed loop (K = −0.5: x⁺ = 1.5x) has O_∞ = {0}, which Gilbert–Tan never reaches:
    # O_t = [−2/1.5^t, 2/1.5^t] inside X_cl = [−2, 2] (hand).
    O = backup_invariant_set(scalar, np.array([[-0.5]]), max_steps=15)
    assert not O.converged and O.steps == 15 and "outer approximation" in O.message
    assert interval(O.polytope) == pytest.approx((-2 / 1.5**15, 2 / 1.5**15), rel=1e-9)


# ----------------------------------------------------------------------------- 2-D references
def test_mpi_of_a_stable_second_order_system_by_hand():
    # x⁺ = [[0.5, 0], [1, −0.5]] x, |x_i| ≤ 10 (a stable second-order system of the kind used for O_∞
    # in BBM 2017, ch. 10; the reference values are derived here by hand, not read from the book).
    # Hand: x⁺ = (0.5x₁, x₁ − 0.5x₂) adds |x₁ − 0.5x₂| ≤ 10; x⁺⁺ = (0.25x₁, 0.25x₂) adds nothing,
    # so O_∞ = O_1 = {|x_i| ≤ 10, |x₁ − 0.5x₂| ≤ 10}: the square minus two corner triangles of
    # area 25 each (vertices (5,−10), (10,−10), (10,0) and the mirror image): area 350.
    O = maximal_positively_invariant(np.array([[0.5, 0.0], [1.0, -0.5]]), box([-10, -10], [10, 10]))
    ref = Polytope(H=[[1, 0], [-1, 0], [0, 1], [0, -1], [1, -0.5], [-1, 0.5]], h=[10.0] * 6)
    assert O.converged and O.steps == 1
    assert equals(O.polytope, ref)
    assert float(exact_area(O.polytope)) == pytest.approx(350.0, rel=1e-12)


def test_mpi_of_the_deadbeat_double_integrator_by_hand(textbook_di):
    # K = [−1, −2] makes A + BK = [[1, 1], [−1, −1]] nilpotent (deadbeat control of the double
    # integrator, a textbook case, e.g. Åström & Wittenmark, Computer-Controlled Systems). Hand: t = 0 adds |p + 2v| ≤ 1 (the input), t = 1 adds
    # |p + v| ≤ 1 (the input K x₁ = p + v), t = 2 gives x₂ = 0. O_∞ = {|p + 2v| ≤ 1, |p + v| ≤ 1}, the
    # parallelogram with vertices (1,0), (−3,2), (−1,0), (3,−2), area 4 (|det [[1,2],[1,1]]| = 1).
    O = backup_invariant_set(textbook_di, np.array([[-1.0, -2.0]]))
    assert O.converged and O.steps == 1
    assert equals(O.polytope, Polytope(H=[[1, 2], [-1, -2], [1, 1], [-1, -1]], h=[1.0] * 4))
    assert exact_area(O.polytope) == Fraction(4)


def test_maximal_control_invariant_set_of_the_textbook_double_integrator(textbook_di):
    # Hand (braking argument): from (p, v) with v ≥ 0, u = −1 until v ≤ 1 and then u = −v minimises every
    # future position at once (p_t = p + t v + Σ (t−1−j) u_j has non-negative weights), and the largest
    # one is p + Σ_{j≥0} max(v − j, 0) = max_J [p + (J+1) v − J(J+1)/2]. Hence C_∞ = box ∩
    # {±(p + (J+1)v) ≤ 5 + J(J+1)/2, J = 0…3}: the decagon below (J = 4 only touches a vertex).
    C = maximal_control_invariant(textbook_di, max_steps=50)
    V = [(5, 0), (4, 1), (2, 2), (-1, 3), (-5, 4), (-5, 0), (-4, -1), (-2, -2), (1, -3), (5, -4)]
    rows = [[1, 0], [-1, 0]] + [[s, s * (J + 1)] for J in range(4) for s in (1, -1)]
    rhs = [5, 5] + [5 + J * (J + 1) / 2 for J in range(4) for _ in (1, -1)]
    ref = Polytope(H=np.array(rows, float), h=np.array(rhs, float))
    assert C.converged
    assert equals(C.polytope, ref)
    shoelace = sum(Fraction(x0 * y1 - x1 * y0) for (x0, y0), (x1, y1) in zip(V, V[1:] + V[:1])) / 2
    assert shoelace == 50
    assert float(exact_area(C.polytope)) == pytest.approx(50.0, rel=1e-12)
    # the deadbeat closed loop's O_∞ is a control-invariant set, so it lies inside C_∞
    assert polytope_in_polytope(backup_invariant_set(textbook_di, np.array([[-1.0, -2.0]])).polytope, C.polytope, 1e-9)[0]


# ----------------------------------------------------------------------------- DESIGN §5
@pytest.fixture(scope="module")
def di():
    problem = DoubleIntegratorTask().problem
    inner, outer = terminal_targets(problem.system, problem.K, problem.P, problem.gamma, directions=16)
    N = 10
    return {
        "problem": problem,
        "inner": inner,
        "outer": outer,
        "N": N,
        "backup": backward_reachable_sets(inner.polytope, problem.system, N, K=problem.K),
        "controlled": backward_reachable_sets(inner.polytope, problem.system, N),
        "mpi": backup_invariant_set(problem.system, problem.K),
    }


def test_double_integrator_sets_nested_contain_Xf_and_inside_controllable(di):
    problem, N = di["problem"], di["N"]
    assert all(c.holds for c in di["inner"].claims + di["outer"].claims), [c.to_dict() for c in di["inner"].claims]
    B, C = di["backup"].sets, di["controlled"].sets
    assert len(B) == len(C) == N + 1
    for k in range(1, N + 1):
        assert polytope_in_polytope(B[k - 1], B[k], 1e-8)[0], k  # nested (exact)
        assert polytope_in_polytope(C[k - 1], C[k], 1e-8)[0], k
        assert ellipsoid_in_polytope(problem.P, problem.gamma, B[k])[0], k  # X_f inside (exact)
    for k in range(N + 1):
        assert polytope_in_polytope(B[k], C[k], 1e-8)[0], k  # backup ⊆ controllable (exact)
        assert polytope_in_polytope(B[k], di["mpi"].polytope, 1e-8)[0], k
    # strictly growing at first: the areas increase
    areas = [float(exact_area(P)) for P in B]
    assert all(b > a for a, b in zip(areas[:5], areas[1:6]))


def test_double_integrator_mpi_contains_Xf(di):
    mpi = di["mpi"]
    problem = di["problem"]
    assert mpi.converged
    ok, worst = ellipsoid_in_polytope(problem.P, problem.gamma, mpi.polytope)
    assert ok and worst < 0
    # X_f touches X_cl (γ is the largest level inside it, shrunk by 1e-9): the margin is tiny but positive
    assert worst > -1e-6


def test_independent_check_of_pre_and_n_step_sets(di):
    # membership in the computed sets vs an LP over the input sequence (controlled) and a forward
    # simulation (backup), for random states; the LP / simulation do not use the set recursion.
    problem = di["problem"]
    T = di["inner"].polytope
    s = problem.system
    pre_ctrl = controlled_pre(T, s)
    pre_cl = closed_loop_pre(T, s, problem.K)
    for computed, k, K in ((pre_ctrl, 1, None), (pre_cl, 1, problem.K), (di["controlled"].sets[6], 6, None), (di["backup"].sets[6], 6, problem.K)):
        claim = membership_agreement(computed, s, T, k, K=K, samples=40, seed=k)
        d = claim.details
        assert claim.holds, d
        assert d["inside"] >= 5 and d["outside"] >= 5  # both sides are exercised
    # and point by point: the controlled 6-step set agrees with the LP on a line through it
    xs = np.stack([np.linspace(-1, 1, 21), np.full(21, 0.6)], axis=1)
    res = di["controlled"].sets[6].residual(xs)
    for x, r in zip(xs, res):
        if abs(r) > 1e-6:
            assert (steering_margin(x, s, T, 6) >= 0) == (r < 0), (x, r)


def test_steering_and_simulation_margins_by_hand(scalar):
    # x⁺ = 2x + u, T = [−0.5, 0.5]: in one step, x is steerable iff |2x| ≤ 1.5
    T = box([-0.5], [0.5])
    assert steering_margin(np.array([0.74]), scalar, T, 1) > 0
    assert steering_margin(np.array([0.76]), scalar, T, 1) < 0
    # backup x⁺ = 0.5x from 0.4 reaches 0.1 after 2 steps: margin min(0.1 − 0.1, …) = 0 at the target
    K = np.array([[-1.5]])
    assert simulation_margin(np.array([0.4]), scalar, K, box([-0.1], [0.1]), 2) == pytest.approx(0.0, abs=1e-15)
    assert simulation_margin(np.array([0.5]), scalar, K, box([-0.1], [0.1]), 2) == pytest.approx(-0.025)


def test_batched_simulation_margins_match_the_hand_values(scalar):
    # the batched margins (one rollout by scpo.systems.rollout) are the one-state ones, state by state:
    # from x₀ the backup x⁺ = 0.5x gives x₂ = x₀/4, so the target row |x₂| ≤ 0.1 has slack 0.1 − |x₀|/4;
    # the state rows |x_t| ≤ 10 (slack ≥ 9.4) and the input rows |u_t| = |1.5 x_t| ≤ 1 (slack ≥ 0.1) are
    # slacker for |x₀| ≤ 0.6 (hand). A non-finite state is refused.
    K = np.array([[-1.5]])
    T = box([-0.1], [0.1])
    x0 = np.array([[0.4], [-0.2], [0.6], [0.5]])
    m = simulation_margins(x0, scalar, K, T, 2)
    np.testing.assert_allclose(m, 0.1 - np.abs(x0[:, 0]) / 4, atol=1e-15)
    assert [simulation_margin(x, scalar, K, T, 2) for x in x0] == pytest.approx(m.tolist(), abs=0)
    # zero steps: the margin of x₀ ∈ T, capped at 1 far inside
    assert simulation_margins(np.array([[0.0]]), scalar, K, box([-5.0], [5.0]), 0)[0] == 1.0
    with pytest.raises(NonFiniteError):
        simulation_margins(np.array([[np.nan]]), scalar, K, T, 2)


# ----------------------------------------------------------------------------- 3-D
def test_triple_integrator_sets_agree_with_the_steering_lp():
    dt = 0.5
    A = np.array([[1, dt, dt * dt / 2], [0, 1, dt], [0, 0, 1.0]])
    B = np.array([[dt**3 / 6], [dt * dt / 2], [dt]])
    s = LinearSystem.with_box_constraints(A, B, [1, 1, 1], [1])
    T = box([-0.2] * 3, [0.2] * 3)
    R = backward_reachable_sets(T, s, 4)
    claim = membership_agreement(R.sets[4], s, T, 4, samples=60, seed=4)
    assert claim.holds and claim.details["inside"] >= 10 and claim.details["outside"] >= 10, claim.details
    # Hand: from x₀ = (1, 1, 1), one step, the binding rows are p₁ ≤ 0.2 (p₁ = 1.625 + u/48) and
    # |u| ≤ 1 − s: s = −1.425 − (s − 1)/48, i.e. s = −67.4/49 (beyond −1: the LP must not cap s below)
    assert steering_margin(np.ones(3), s, T, 1) == pytest.approx(-67.4 / 49, rel=1e-9)
    # a stabilising gain: Gilbert–Tan terminates and O_∞ is invariant (exact 3-D vertices, rational A+BK)
    from scpo.reachability.exact import exact_closed_loop

    K = np.array([[-1.0, -1.5, -1.2]])
    O = backup_invariant_set(s, K)
    assert O.converged
    ok, worst = polytope_in_polytope(O.polytope, O.polytope, 1e-9, M=exact_closed_loop(A, B, K))
    assert ok and worst < 1e-12


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_refused(scalar):
    T = box([-0.5], [0.5])
    unbounded = LinearSystem(A=[[1.0]], B=[[1.0]], Hx=[[1.0]], hx=[1.0], Hu=[[1.0], [-1.0]], hu=[1.0, 1.0])
    with pytest.raises(InvalidInputError, match="bounded state constraint set"):
        backward_reachable_sets(T, unbounded, 3)
    unbounded_u = LinearSystem(A=[[1.0]], B=[[1.0]], Hx=[[1.0], [-1.0]], hx=[1.0, 1.0], Hu=[[1.0]], hu=[1.0])
    with pytest.raises(InvalidInputError, match="bounded input constraint set"):
        maximal_control_invariant(unbounded_u)
    with pytest.raises(InvalidInputError, match="empty"):
        LinearSystem(A=[[1.0]], B=[[1.0]], Hx=[[1.0], [-1.0]], hx=[0.0, -1.0], Hu=[[1.0], [-1.0]], hu=[1.0, 1.0])
    with pytest.raises(InvalidInputError, match="target: expected a non-empty polytope"):
        backward_reachable_sets(Polytope(H=[[1.0], [-1.0]], h=[0.0, -1.0]), scalar, 3)
    with pytest.raises(ShapeError, match="target: expected a polytope in R\\^1"):
        backward_reachable_sets(box([0, 0], [1, 1]), scalar, 3)
    with pytest.raises(ShapeError, match="K: expected shape"):
        backward_reachable_sets(T, scalar, 3, K=np.zeros((2, 1)))
    with pytest.raises(NonFiniteError, match="K: expected finite"):
        backward_reachable_sets(T, scalar, 3, K=[[np.nan]])
    with pytest.raises(InvalidInputError, match="steps: expected an integer >= 0"):
        backward_reachable_sets(T, scalar, -1)
    with pytest.raises(InvalidInputError, match="steps: expected an integer"):
        backward_reachable_sets(T, scalar, 2.5)
    with pytest.raises(InvalidInputError, match="system: expected a scpo.systems.LinearSystem"):
        backward_reachable_sets(T, object(), 2)
    with pytest.raises(ShapeError, match="A_cl: expected a square matrix"):
        maximal_positively_invariant(np.zeros((2, 3)), box([0, 0], [1, 1]))
    with pytest.raises(InvalidInputError, match="max_steps"):
        maximal_control_invariant(scalar, max_steps=0)
