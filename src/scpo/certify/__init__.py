"""Certificates and their checks (DESIGN §6).

Public names::

    zero_final_layer_claim   base case of the induction: zero final layer ⇒ π_θ0 ≡ π_safe (exact)
"""

from .base_case import BASE_CASE_STATEMENT, zero_final_layer_claim

__all__ = ["BASE_CASE_STATEMENT", "zero_final_layer_claim"]
