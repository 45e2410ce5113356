import numpy as np
import pytest

from scpo.certify import backup_certificate, is_positive_definite, to_rational_matrix
from scpo.systems import dlqr, terminal_level
from scpo.systems import box_constraints

dt = 0.1
A = np.array([[1.0, dt], [0.0, 1.0]])
B = np.array([[dt * dt / 2], [dt]])
Hx, hx = box_constraints(np.array([1.0, 1.0]))
Hu, hu = box_constraints(np.array([1.0]))


@pytest.fixture(scope="module")
def lqr():
    res = dlqr(A, B, np.eye(2), np.eye(1))
    gamma = terminal_level(res.P, res.K, Hx, hx, Hu, hu) * (1 - 1e-9)
    return res, gamma


def verdicts(claims):
    return {c.name: c.holds for c in claims}


def test_accepts_the_lqr_pair(lqr):
    res, gamma = lqr
    claims = backup_certificate(A, B, res.K, res.P, gamma, Hx, hx, Hu, hu, Q=np.eye(2), R=np.eye(1))
    assert all(verdicts(claims).values()) and all(c.level.value == "exact" for c in claims)
    # Q + KᵀRK ≽ I here, so the certified decrease rate is substantial
    assert claims[1].details["epsilon"] > 0.4


def test_rejects_a_perturbed_P(lqr):
    res, gamma = lqr
    # a valid-looking positive definite P that is not a Lyapunov matrix of A+BK: drop the coupling
    P_bad = np.diag(np.diag(res.P))
    assert is_positive_definite(to_rational_matrix(P_bad))[0]
    Acl = A + B @ res.K
    assert np.linalg.eigvalsh(Acl.T @ P_bad @ Acl - P_bad).max() > 0  # float confirms the increase
    v = verdicts(backup_certificate(A, B, res.K, P_bad, gamma, Hx, hx, Hu, hu))
    assert v["P_positive_definite"] and not v["lyapunov_decrease"]


def test_rejects_an_unstable_K(lqr):
    res, gamma = lqr
    K_bad = -res.K  # positive feedback: A + BK has an eigenvalue outside the unit circle
    assert np.max(np.abs(np.linalg.eigvals(A + B @ K_bad))) > 1
    v = verdicts(backup_certificate(A, B, K_bad, res.P, gamma, Hx, hx, Hu, hu))
    assert not v["lyapunov_decrease"]


def test_rejects_a_terminal_set_that_is_too_large(lqr):
    res, gamma = lqr
    v = verdicts(backup_certificate(A, B, res.K, res.P, gamma * 1.001, Hx, hx, Hu, hu))
    assert not (v["terminal_set_in_state_constraints"] and v["terminal_set_input_feasible"])


def test_an_indefinite_P_and_nan_fail(lqr):
    res, gamma = lqr
    v = verdicts(backup_certificate(A, B, res.K, -res.P, gamma, Hx, hx, Hu, hu))
    assert not v["P_positive_definite"] and not v["terminal_set_in_state_constraints"]
    P_nan = res.P.copy()
    P_nan[0, 0] = np.nan
    assert not any(verdicts(backup_certificate(A, B, res.K, P_nan, gamma, Hx, hx, Hu, hu)).values())


def test_exact_pd_is_exact():
    # [[1, 1], [1, 1 + 2^-52]] is PD in exact arithmetic although float eigvalsh barely sees it
    M = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0**-52]])
    assert is_positive_definite(to_rational_matrix(M))[0]
    assert not is_positive_definite(to_rational_matrix(np.array([[1.0, 1.0], [1.0, 1.0]])))[0]
