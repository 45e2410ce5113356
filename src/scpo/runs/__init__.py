"""Run directories (DESIGN §8): files, checkpoints and the :class:`Run` reader.

Public names::

    Run, load_run        read a run directory
    RunPaths             where each file lives (the only place that names them)
    task_from_config     rebuild a run's task from its config.json
    theta_sha256         the hash that chains certificate records
    read_checkpoint      safetensors reader that never unpickles
"""

from .files import SCHEMA_VERSION, read_checkpoint, read_jsonl, theta_sha256, write_checkpoint
from .run import Run, RunPaths, load_run
from .tasks import task_from_config

__all__ = ["SCHEMA_VERSION", "Run", "RunPaths", "load_run", "read_checkpoint", "read_jsonl", "task_from_config",
           "theta_sha256", "write_checkpoint"]
