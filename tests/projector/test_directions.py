"""The raw step rules, shared by the projector and the penalty baseline."""

import numpy as np
import pytest

from scpo.baselines import PenaltyConfig
from scpo.errors import ConfigError
from scpo.projector import ProjectorConfig, StepRecord, raw_direction
from scpo.projector.directions import adam_direction, adam_init


def test_sgd_is_minus_lr_times_the_gradient_and_leaves_adam_alone():
    g = np.array([1.0, -2.0, 0.5])
    state = adam_init(3)
    step, after = raw_direction(ProjectorConfig(direction="sgd", lr=0.1), g, state)
    np.testing.assert_array_equal(step, -0.1 * g)
    assert after is state


@pytest.mark.parametrize("cls", [ProjectorConfig, PenaltyConfig])
def test_adam_is_the_same_rule_for_every_config(cls):
    g = np.array([1.0, -2.0, 0.5])
    cfg = cls(direction="adam", lr=0.01, beta1=0.8, beta2=0.99, adam_eps=1e-6)
    step, state = raw_direction(cfg, g, adam_init(3))
    ref, ref_state = adam_direction(g, adam_init(3), lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)
    np.testing.assert_array_equal(step, ref)
    assert state.count == ref_state.count == 1
    # first bias-corrected Adam step: −η g / (|g| + ε)
    np.testing.assert_allclose(step, -0.01 * g / (np.abs(g) + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("cls", [ProjectorConfig, PenaltyConfig])
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"beta1": 1.0}, r"beta1: expected a number in \[0, 1\), got 1.0"),
    ({"direction": "lbfgs"}, "direction: expected one of 'adam', 'sgd'"),
    ({"lr": 0.0}, "lr: expected a positive number"),
    ({"adam_eps": -1.0}, "adam_eps: expected a positive number"),
])
def test_step_rule_settings_are_checked_alike(cls, kwargs, message):
    with pytest.raises(ConfigError, match=f"{cls.__name__}.{message}"):
        cls(**kwargs)


def test_the_record_fields_and_their_order_are_the_run_format():
    # certificates.jsonl writes StepRecord.to_dict() in this order (DESIGN §8): keep it.
    assert list(StepRecord.__dataclass_fields__) == [
        "iteration", "accepted", "reason", "objective_before", "objective", "gradient_norm", "max_constraint",
        "candidate_max_constraint", "predicted_max_constraint", "step_norm", "raw_step_norm", "alpha", "rejected_tries",
        "prediction_failures", "prediction_excess", "L_min", "L_max", "L_median", "L_raised_rows", "bank_size",
        "evaluations", "solver", "solver_status", "solver_attempts", "socp_rows", "socp_rounds", "feasibility_scale",
        "solve_time_s", "setup_time_s", "evaluation_time_s", "gradient_time_s", "wall_time_s",
        "gate_tries", "gate_rejections", "rows_added", "gate_time_s", "gate_reason", "try_reasons",
        "safety_rejections", "L_mode", "L_radius", "L_certificates", "L_time_s",
    ]
