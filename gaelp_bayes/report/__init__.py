"""``gaelp-bayes report``: one self-contained HTML file of a bundle's diagnostics and results.

The page is built from sections (:data:`SECTIONS`), each a function of a
:class:`ReportContext` that returns an HTML fragment, or ``""`` when the
bundle has nothing for it. Figures are Matplotlib (Agg) PNGs embedded as
``data:`` URIs; diagnostics plots use ArviZ.

Example
-------
>>> from gaelp_bayes.report import build_report
>>> build_report("bundle")  # doctest: +SKIP
PosixPath('bundle/report.html')
"""

from __future__ import annotations

from gaelp_bayes.report.build import SECTIONS, Section, build_report, render_report
from gaelp_bayes.report.context import ReportContext

__all__ = ["SECTIONS", "ReportContext", "Section", "build_report", "render_report"]
