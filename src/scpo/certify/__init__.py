"""Certificates and their checks (DESIGN §6).

Public names::

    zero_final_layer_claim   base case of the induction: zero final layer ⇒ π_θ0 ≡ π_safe (exact)
    backup_certificate       LQR backup: P ≻ 0, Lyapunov decrease, X_f inside the constraints (exact)
    is_positive_definite     exact LDLᵀ test on a rational matrix
"""

from .backup import backup_certificate
from .base_case import BASE_CASE_STATEMENT, zero_final_layer_claim
from .exact import is_positive_definite, to_rational_matrix

__all__ = ["BASE_CASE_STATEMENT", "backup_certificate", "is_positive_definite", "to_rational_matrix", "zero_final_layer_claim"]
