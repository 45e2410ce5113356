"""Shared test settings."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Small tensors: intra-op threads only add contention on the 2-core CI machine.
torch.set_num_threads(1)

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=30)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
