"""Training runs: the projector on a task, written as a run directory (DESIGN §8).

Public names::

    resolve_config, ResolvedConfig   every setting of a run, from defaults, a file and overrides
    TrainConfig, GateSettings        the run's and the sound gate's settings
    train, resume, TrainResult       write and continue a run directory
    build_projector                  the projector of a task (used by the benchmarks too)
    SoundGate                        the region certificate on every candidate (certify="sound")
"""

from .config import CERTIFY_MODES, GateSettings, ResolvedConfig, TrainConfig, resolve_config
from .gate import SoundGate, restore_added_states, write_region_certificate
from .run import TrainResult, build_projector, resume, setup_task, train

__all__ = [
    "CERTIFY_MODES",
    "GateSettings",
    "ResolvedConfig",
    "SoundGate",
    "TrainConfig",
    "TrainResult",
    "build_projector",
    "restore_added_states",
    "resolve_config",
    "resume",
    "setup_task",
    "train",
    "write_region_certificate",
]
