"""A local Ray instance (2 CPUs, loopback only) shared by the tests of this folder that need one.

Ray is an optional extra: without it those tests skip with the reason. Ray is looked up without
importing it, so that :func:`scpo.distributed.map_tasks` is the first to import it and can keep
the instance on the loopback interface (see :mod:`scpo.distributed`).
"""

import pytest

from scpo.distributed import map_tasks, ray_available, shutdown

NO_RAY = "Ray is not installed (optional extra: pip install -e \".[ray]\"); the Ray engine is not exercised here"


@pytest.fixture(scope="session")
def ray_local():
    """Start the local instance once for the session (2 workers); stop it at the end."""
    if not ray_available():
        pytest.skip(NO_RAY)
    map_tasks(abs, [0], workers=2)  # a builtin: the workers import it by name
    yield 2
    shutdown()


@pytest.fixture
def ray_workers(ray_local, request):
    """The worker count, with the calling test module's functions pickled by value (workers cannot import test modules)."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(request.module)
    yield ray_local
    ray.cloudpickle.unregister_pickle_by_value(request.module)
