"""scpo — certified safe policy learning with the SCPO weight-space projector.

Public names (imported on first use, so ``import scpo`` is cheap)::

    load_run       open a run directory written by ``scpo train``
    audit_run      re-verify a run directory from its files alone (-> AuditResult)
    AuditResult
    Projector      the SCPO training loop (see :mod:`scpo.projector`)
    ProjectorConfig
    Level, Claim   levels of evidence and checked claims
    __version__

Subpackages: :mod:`scpo.systems` (linear systems, the closed-loop problem, the rollout, LQR),
:mod:`scpo.policies`, :mod:`scpo.projector`, :mod:`scpo.baselines`, :mod:`scpo.certify`,
:mod:`scpo.reachability`, :mod:`scpo.tasks`, :mod:`scpo.runs`, :mod:`scpo.training`,
:mod:`scpo.audit`, :mod:`scpo.reports`, :mod:`scpo.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

__all__ = ["AuditResult", "Claim", "Level", "Projector", "ProjectorConfig", "Run", "__version__", "audit_run", "load_run"]

_LAZY = {
    "AuditResult": "scpo.audit",
    "audit_run": "scpo.audit",
    "Claim": "scpo.evidence",
    "Level": "scpo.evidence",
    "Projector": "scpo.projector",
    "ProjectorConfig": "scpo.projector",
    "Run": "scpo.runs",
    "load_run": "scpo.runs",
}


def __getattr__(name: str) -> Any:
    """Import the module that holds ``name`` on first access (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scpo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
