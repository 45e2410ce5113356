"""Certificate reports of runs: ``scpo report RUN`` writes ``RUN/report/`` (DESIGN §2, §6, §8).

The report states the induction chain so that a reviewer can follow it from the page alone, every
claim with its level of evidence, the conclusion never stronger than its weakest link.

Modules, by concern::

    collect     the run's records, certificates and statistics (reading only)
    claims      the claims, verdicts, induction conclusion and summary.json
    document    the document model rendered to HTML and Markdown
    induction   the task's description and the induction chain, step by step
    page        the sections of the page
    margins     the reach-avoid margins figure (2-D problems)
    build       build_report: writing RUN/report/ atomically

Public names::

    build_report    RUN/report/: HTML, Markdown, summary.json, CSV, figures (-> ReportResult)
    ReportResult
"""

from .build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
