"""scpo — certified safe policy learning with the SCPO weight-space projector.

Public names::

    load_run       open a run directory written by ``scpo train``
    audit          re-verify a run directory from its files alone (-> AuditResult)
    Projector      the SCPO training loop (see :mod:`scpo.projector`)
    ProjectorConfig
    Level, Claim   levels of evidence and checked claims
    __version__
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scpo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from .audit import AuditResult, audit
from .evidence import Claim, Level
from .projector import Projector, ProjectorConfig
from .runs import Run, load_run

__all__ = ["AuditResult", "Claim", "Level", "Projector", "ProjectorConfig", "Run", "__version__", "audit", "load_run"]
