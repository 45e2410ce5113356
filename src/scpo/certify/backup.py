"""The backup certificate (DESIGN §6), checked in exact rational arithmetic.

For ``u = Kx``, ``A_cl = A + BK`` and ``V(x) = xᵀPx``:

1. ``P ≻ 0``;
2. ``A_clᵀ P A_cl − P ≼ −εI`` (``V`` decreases by at least ``ε‖x‖²`` per step);
3. ``X_f = {xᵀPx ≤ γ}`` lies inside ``Hx x ≤ hx``: ``γ a_iᵀP⁻¹a_i ≤ b_i²`` for every row;
4. ``Hu K x ≤ hu`` on ``X_f``: the same test for the rows ``(Hu K)_j``.

Together: ``X_f`` is positively invariant under the backup, and every trajectory of the backup
that starts in ``X_f`` satisfies all constraints forever and converges to 0.
All four are decided on the exact binary values of the float matrices (``sympy.Rational``).
"""

from __future__ import annotations

import numpy as np
import sympy

from ..evidence import Claim, Level
from ..systems import dare_residual
from .exact import is_positive_definite, rational_float, to_rational_matrix

__all__ = ["backup_certificate"]


def _support_checks(Pinv: sympy.Matrix, gamma: sympy.Rational, rows: sympy.Matrix, b: list) -> tuple[bool, list[dict]]:
    out, ok = [], True
    for i in range(rows.shape[0]):
        a = rows[i, :]
        lhs = gamma * (a * Pinv * a.T)[0, 0]
        bi = b[i]
        holds = bool(bi > 0 and lhs <= bi * bi)
        ok &= holds
        out.append({"row": i, "max_over_Xf": float(np.sqrt(rational_float(lhs))), "bound": rational_float(bi), "holds": holds})
    return ok, out


def backup_certificate(
    A: np.ndarray,
    B: np.ndarray,
    K: np.ndarray,
    P: np.ndarray,
    gamma: float,
    Hx: np.ndarray,
    hx: np.ndarray,
    Hu: np.ndarray,
    hu: np.ndarray,
    *,
    epsilon: float | None = None,
    Q: np.ndarray | None = None,
    R: np.ndarray | None = None,
) -> list[Claim]:
    """Check the backup certificate exactly.

    Parameters
    ----------
    A, B, K, P : ndarray
        Shapes (n, n), (n, m), (m, n), (n, n).
    gamma : float
        Level of ``X_f``.
    Hx, hx, Hu, hu : ndarray
        Polytopic state and input constraints.
    epsilon : float, optional
        Decrease rate to certify; default half the float estimate of
        ``λ_min(P − A_clᵀ P A_cl)`` (any rational below the true minimum eigenvalue is provable).
    Q, R : ndarray, optional
        When given, the DARE residual is reported alongside (float diagnostic).

    Returns
    -------
    list of Claim
        ``P_positive_definite``, ``lyapunov_decrease``, ``terminal_set_in_state_constraints``,
        ``terminal_set_input_feasible``, all at level ``exact``. A NaN/inf input fails all of them.
    """
    arrays = [np.asarray(v, dtype=float) for v in (A, B, K, P, Hx, hx, Hu, hu)]
    if not all(np.all(np.isfinite(v)) for v in arrays) or not np.isfinite(gamma):
        details = {"reason": "non-finite input"}
        names = ("P_positive_definite", "lyapunov_decrease", "terminal_set_in_state_constraints", "terminal_set_input_feasible")
        return [Claim(n, "non-finite input", Level.EXACT, False, details) for n in names]
    A, B, K, P, Hx, hx, Hu, hu = arrays
    Acl = A + B @ K
    diag = {
        "spectral_radius_float": float(np.max(np.abs(np.linalg.eigvals(Acl)))),
        "dare_residual_float": dare_residual(A, B, Q, R, P) if Q is not None and R is not None else None,
    }
    if epsilon is None:
        lam = float(np.linalg.eigvalsh(0.5 * ((P - Acl.T @ P @ Acl) + (P - Acl.T @ P @ Acl).T)).min())
        epsilon = lam / 2 if lam > 0 else 0.0
    eps = sympy.Rational(float(epsilon))

    Pq = to_rational_matrix(P)
    Aq, Bq, Kq = to_rational_matrix(A), to_rational_matrix(B), to_rational_matrix(K)
    Aclq = Aq + Bq * Kq
    pd, piv = is_positive_definite(Pq)
    claims = [
        Claim(
            "P_positive_definite",
            "P ≻ 0 (all LDLᵀ pivots of the exact rational P are positive)",
            Level.EXACT,
            pd,
            {"pivots": [rational_float(p) for p in piv], **diag},
        )
    ]
    M = Pq - Aclq.T * Pq * Aclq - eps * sympy.eye(P.shape[0])
    dec, piv2 = is_positive_definite(M)
    claims.append(
        Claim(
            "lyapunov_decrease",
            f"(A+BK)ᵀP(A+BK) − P ≼ −εI with ε = {float(eps):.6g}: V(x) = xᵀPx decreases by at least ε‖x‖² per backup step",
            Level.EXACT,
            bool(dec and eps > 0),
            {"epsilon": float(eps), "epsilon_exact": str(eps), "pivots_of_P_minus_AclT_P_Acl_minus_epsI": [rational_float(p) for p in piv2]},
        )
    )
    g = sympy.Rational(float(gamma))
    if pd:
        Pinv = Pq.inv()
        ok_x, rows_x = _support_checks(Pinv, g, to_rational_matrix(Hx), [sympy.Rational(float(v)) for v in hx])
        ok_u, rows_u = _support_checks(Pinv, g, to_rational_matrix(Hu) * Kq, [sympy.Rational(float(v)) for v in hu])
    else:
        ok_x = ok_u = False
        rows_x = rows_u = [{"reason": "P is not positive definite"}]
    claims.append(
        Claim(
            "terminal_set_in_state_constraints",
            f"X_f = {{xᵀPx ≤ γ}} with γ = {float(g):.9g} lies inside Hx x ≤ hx (γ aᵀP⁻¹a ≤ b² for every row)",
            Level.EXACT,
            ok_x,
            {"gamma": float(g), "rows": rows_x},
        )
    )
    claims.append(
        Claim(
            "terminal_set_input_feasible",
            "the backup input u = Kx satisfies Hu u ≤ hu everywhere on X_f",
            Level.EXACT,
            ok_u,
            {"gamma": float(g), "rows": rows_u},
        )
    )
    return claims
