"""The evaluation report: tables, matplotlib figures, spectrograms, audio players, index.html."""

from __future__ import annotations

from mssjax.evaluation.report.html import build_report

__all__ = ["build_report"]
