"""Run directories (DESIGN §8): files, checkpoints and the :class:`Run` reader.

Public names::

    Run, load_run        read a run directory
    RunPaths             where each file lives (the only place that names them)
    task_from_config     rebuild a run's task from its config.json
    theta_sha256         the hash that chains certificate records
    read_checkpoint      safetensors reader that never unpickles (reads the header first, bounded)
    read_records         strict reader of certificates.jsonl (only a torn last line is left out)
    RunLock              one writer per run directory (an OS file lock on RUN/.lock)
    verify_resumable     everything a resume rests on, checked before anything is written
    verify_intact        the same on a run's own config, before a command adds a certificate to it
"""

from .files import SCHEMA_VERSION, read_checkpoint, read_jsonl, read_records, theta_sha256, write_checkpoint
from .integrity import check_config, verify_intact, verify_resumable
from .lock import RunLock
from .run import Run, RunPaths, load_run
from .tasks import task_from_config

__all__ = ["SCHEMA_VERSION", "Run", "RunLock", "RunPaths", "check_config", "load_run", "read_checkpoint", "read_jsonl", "read_records",
           "task_from_config", "theta_sha256", "verify_intact", "verify_resumable", "write_checkpoint"]
