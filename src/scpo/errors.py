"""All exceptions raised by scpo.

Two families are kept apart on purpose:

* **bad input** (:class:`InvalidInputError` and its subclasses, all ``ValueError``;
  :class:`UnsupportedError`, a ``TypeError``): the caller passed something the toolkit cannot
  work with. Nothing is written when one of these is raised during set-up.
* **a certificate failed** (:class:`CertificateError`): the input was well formed, but a
  safety or stability claim does not hold. Checks usually *return* a verdict instead of
  raising; this exception is for APIs that must stop (e.g. a start point that is not safe).

:class:`SolverError` is neither: every solver in the fallback chain failed to return an
optimal solution.
"""

from __future__ import annotations

__all__ = [
    "ScpoError",
    "InvalidInputError",
    "ShapeError",
    "NonFiniteError",
    "ConfigError",
    "RunDirectoryError",
    "RunLockedError",
    "CheckpointFormatError",
    "UnsupportedError",
    "CertificateError",
    "UnsafeStartError",
    "SolverError",
    "ExecutionError",
]


class ScpoError(Exception):
    """Base class of every exception raised by scpo."""


class InvalidInputError(ScpoError, ValueError):
    """An argument has the wrong value (bad input)."""


class ShapeError(InvalidInputError):
    """An array argument has an incompatible shape."""


class NonFiniteError(InvalidInputError):
    """An array argument contains NaN or infinity."""


class ConfigError(InvalidInputError):
    """A configuration is invalid: unknown key, out-of-range value or wrong type."""


class RunDirectoryError(InvalidInputError):
    """A run directory is missing, incomplete, or uses an unknown schema."""


class RunLockedError(RunDirectoryError):
    """Another live process holds the run directory's lock (one writer per run)."""


class CheckpointFormatError(InvalidInputError):
    """A checkpoint file is not a safetensors file of the expected layout."""


class UnsupportedError(ScpoError, TypeError):
    """An object of an unsupported type was passed (e.g. a layer bound propagation lacks)."""


class CertificateError(ScpoError):
    """A safety or stability certificate does not hold for well-formed input."""


class UnsafeStartError(CertificateError):
    """The starting parameters violate a constraint, so the safety induction has no base case."""


class SolverError(ScpoError, RuntimeError):
    """No solver in the fallback chain returned an optimal solution."""


class ExecutionError(ScpoError, RuntimeError):
    """A task could not be computed: its worker died more often than the retries allow, or the
    cluster was lost. Neither bad input nor a failed certificate."""
