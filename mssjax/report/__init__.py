"""The evaluation report: tables, matplotlib figures, spectrograms, audio players, index.html."""

from mssjax.report.html import build_report

__all__ = ["build_report"]
