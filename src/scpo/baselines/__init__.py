"""Baselines that SCPO is benchmarked against (``benchmarks/bench_methods.py``).

Each implements the optimiser protocol of the projector (:class:`scpo._iterate.IterateState`):
``step()`` returns a record with ``accepted``, ``objective``, ``max_constraint``, ``evaluations``
and the time split; the object has ``theta``, ``g``, ``objective_value``, ``iteration`` and a
running ``evaluations`` count, and ``state_dict`` / ``load_state_dict``, so one loop drives every
method and one contract suite (``tests/test_iterate.py``) checks them all: a non-finite ``g`` is
never accepted, every evaluation is counted, the state round-trips. Unconstrained training is the
projector with ``projection=False``.

Public names::

    LBSGD, LBSGDConfig        log-barrier SGD with zeroth-order constraint gradients (Usmanova et al. 2024)
    lbsgd_step_size           its safe adaptive step size
    Penalty, PenaltyConfig    quadratic penalty / augmented Lagrangian
    augmented_lagrangian      value and constraint weights of the PHR augmented Lagrangian
    BaselineRecord            what one iteration of a baseline did
    TwoPointJacobian          the factored zeroth-order Jacobian estimate
    two_point_jacobian        evaluate g at x + νU and form the estimate
    sample_directions         random unit directions (sphere or orthogonal)
"""

from .common import BaselineRecord, TwoPointJacobian, sample_directions, two_point_jacobian
from .lbsgd import LBSGD, LBSGDConfig, lbsgd_step_size
from .penalty import Penalty, PenaltyConfig, augmented_lagrangian

__all__ = [
    "BaselineRecord",
    "LBSGD",
    "LBSGDConfig",
    "Penalty",
    "PenaltyConfig",
    "TwoPointJacobian",
    "augmented_lagrangian",
    "lbsgd_step_size",
    "sample_directions",
    "two_point_jacobian",
]
