import numpy as np

from scpo.certify import zero_final_layer_claim
from scpo.evidence import Level


def test_zero_layer_holds_exactly():
    c = zero_final_layer_claim(np.zeros((1, 8)), np.zeros(1), layer="layers.2")
    assert c.holds and c.level is Level.EXACT
    assert c.details["nonzero_weight_entries"] == 0 and c.details["layer"] == "layers.2"


def test_negative_zero_is_zero_but_tiny_values_are_not():
    assert zero_final_layer_claim(np.array([[-0.0, 0.0]]), np.array([-0.0])).holds
    c = zero_final_layer_claim(np.array([[0.0, 1e-300]]), np.zeros(1))
    assert not c.holds and c.details["nonzero_weight_entries"] == 1


def test_nan_fails_and_nonfinite_hidden_layers_fail():
    assert not zero_final_layer_claim(np.array([[np.nan]]), np.zeros(1)).holds
    assert not zero_final_layer_claim(np.zeros((1, 2)), np.zeros(1), all_finite=False).holds


def test_claim_serialises_to_strict_json():
    import json

    d = zero_final_layer_claim(np.array([[np.inf]]), np.zeros(1)).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["details"]["max_abs_entry"] == "inf" and d["holds"] is False
