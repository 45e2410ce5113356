"""The exit codes of every ``scpo`` command (the only place they are defined).

=====  ===============================================================================
code   meaning
=====  ===============================================================================
0      success: every certificate or check holds
1      a certificate or check failed (well-formed input, negative verdict), or every
       solver failed
2      bad input: a missing or malformed argument, file or run directory; nothing written
130    interrupted (Ctrl-C); everything written so far is kept and can be resumed
=====  ===============================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "VERDICTS"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

VERDICTS = {EXIT_OK: "verified", EXIT_FAILED: "failed", EXIT_BAD_INPUT: "bad input", EXIT_INTERRUPTED: "interrupted"}
"""Exit code -> one word, as printed in summaries and JSON output."""
