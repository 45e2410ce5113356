"""Small runs shared by the audit tests (trained once per session)."""

import pytest

from scpo.training import resolve_config, train

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}
DI = {"grid": 12, "n_samples": 32, "hidden": [8]}


@pytest.fixture(scope="session")
def reg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "reg"
    train(resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05}, train_overrides={"iterations": 6, "log_every": 1}), out)
    return out


@pytest.fixture(scope="session")
def di_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "di"
    train(resolve_config("double-integrator", task_overrides=DI, train_overrides={"iterations": 3}), out)
    return out
