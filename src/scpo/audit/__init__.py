"""Independent audit of a run directory: ``scpo audit RUN`` / :func:`audit_run` (DESIGN §2, §6, §8).

The audit re-verifies the certificate chain from the files alone, for runs that the user did not
train and need not trust. *Independent* means here:

* **No training code path.** Nothing from :mod:`scpo.training`, the projector, the
  :class:`~scpo.runs.Run` reader or :mod:`scpo.runs.files` is used (only the file names of
  :class:`~scpo.runs.RunPaths`). The audit parses ``config.json``, ``base_certificate.json`` and
  ``certificates.jsonl`` itself and reads every checkpoint with its own safetensors parser
  (:mod:`scpo.audit.reader`: an 8-byte header length, a JSON header, raw little-endian buffers;
  ``json`` and ``numpy.frombuffer`` only). Nothing is ever unpickled; a pickle or a ``torch.save``
  archive in place of a checkpoint is reported as bad input.
* **Hashes from bytes** (:mod:`scpo.audit.hashes`). ``θ`` is the concatenation of the tensors
  named in ``config.json`` (``policy.parameter_names``, in that order) as little-endian float64;
  its SHA-256 is recomputed from the tensor bytes and compared with the checkpoint's metadata and
  with the record of its iteration. The chain of parent hashes is recomputed from ``θ₀``
  (:mod:`scpo.audit.chain`).
* **Base case from tensors** (:mod:`scpo.audit.base_case`). ``θ₀``'s final layer is the pair of
  tensors named by ``policy.final_layer``; the audit checks that they are the last layer of the
  architecture rebuilt from ``task_config`` and that every entry is exactly ``0`` (no tolerance).
* **Backup certificate recomputed** (:mod:`scpo.audit.backup`) from the task's
  :class:`~scpo.systems.ClosedLoopProblem` (the task is rebuilt by
  :func:`scpo.runs.task_from_config`; the audit never asks which task it is): with a terminal set,
  ``P`` and ``K`` solved afresh from the task's LQR weights and ``γ`` from its closed form, then
  the backup re-checked in exact rational arithmetic; for a static problem with ``K = 0``, by
  structure.
* **Constraints re-evaluated** (:mod:`scpo.audit.reevaluate`). ``g`` (the task's constraint
  function, the definition of the safety metric) is evaluated afresh at the audited checkpoints,
  in batches, and its maximum must reproduce the recorded ``max_constraint`` within
  :class:`AuditTolerances` and be ``≤ 0``.
* **Reach-avoid re-derived.** With a terminal set, the closed loop ``x⁺ = Ax + B(Kx + φ_θ(x))``
  is rolled out by the audit's own implementation (:mod:`scpo.audit.rollout`: batched float64
  matrix products, the MLP evaluated from the checkpoint tensors by name, not through the task's
  policy or rollout code) from every grid state of ``S``, and the reach-avoid claim is checked on
  it with no tolerance.
* **Certificate files bound to the chain** (:mod:`scpo.audit.certificate_files`).
* **Saved iterates and steps** (:mod:`scpo.audit.steps`): every accepted iterate that
  ``checkpoint_every`` saves, and the last one of a finished run, has its checkpoint; each
  recorded ``step_norm`` equals ``‖θ_k − θ_parent‖`` of the saved iterates.
* **Only the run's own files.** A file that leads outside the run directory (a symbolic link) is
  refused, and so is a key of ``config.json`` (or of its ``projector``, ``train``, ``gate``
  sections) that scpo does not write.
* **What was checked against.** The constraint specification ``g`` is rebuilt from is printed
  with a digest (:mod:`scpo.audit.specification`), and the chain's head digest
  (:mod:`scpo.audit.head`), which ``expect_head`` pins: a consistently truncated chain is itself a
  valid chain, and only a pinned head shows that records were removed.
* **Crash residue is recognised** in a run that did not finish (``run.json`` not ``"finished"``):
  a torn last line of ``certificates.jsonl`` and the checkpoint and certificate files of the
  iteration after the last record are noted, not failed (a resume removes them).

Audited checkpoints (the ``iterations`` argument): by default every saved checkpoint (``θ₀``,
the saved accepted iterates and the last one). A selection such as ``"0,10-20,100-1000:50,last"``
restricts the re-evaluation of ``g``, ``f`` and reach-avoid; hashes, the chain and the base case
are always checked for every file. Cost: re-evaluation dominates (regression at its default size
≈ 35 ms per checkpoint on 2 cores; the double integrator at its default size ≈ 0.2–0.35 s, two
closed-loop rollouts from every grid state of ``S``), so a sample is the way to audit very long
control runs quickly. Accepted iterates without a checkpoint (``checkpoint_every > 1``) keep
only their recorded ``max_constraint`` (evaluated at training time), which the audit checks is
``≤ 0`` and says so. The re-evaluation and the region re-verification are independent units
(:mod:`scpo.audit.units`) that run in this process or as Ray tasks (``execution``; ``scpo audit
--workers N``) with the same result. A ``module:factory`` task (user code) is rebuilt only with
``allow_task_code=True`` (``--allow-task-code``): rebuilding it imports that code.

Verdicts (:attr:`AuditResult.verdict`): ``"verified"`` every check passed, ``"failed"`` a check
failed (each failure names its iteration and reason), ``"bad input"`` (missing files, an unknown
schema, a checkpoint that is not safetensors or does not hold this run's parameters). ``scpo
audit`` exits 0, 1 and 2 for them (:mod:`scpo.cli.exit_codes`).

Public names::

    audit_run          the audit (-> AuditResult)
    AuditResult, AuditCheck, AuditTolerances, AUDIT_VERDICTS
    parse_iterations   the iteration selection
    read_safetensors   the audit's safetensors parser
    SUPPORTED_SCHEMA_VERSIONS
"""

from .iterations import parse_iterations
from .reader import SUPPORTED_SCHEMA_VERSIONS, read_safetensors
from .result import AUDIT_VERDICTS, AuditCheck, AuditResult, AuditTolerances
from .runner import audit_run

__all__ = [
    "AUDIT_VERDICTS",
    "AuditCheck",
    "AuditResult",
    "AuditTolerances",
    "SUPPORTED_SCHEMA_VERSIONS",
    "audit_run",
    "parse_iterations",
    "read_safetensors",
]
