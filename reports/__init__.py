"""Render the suite's results.json into a self-contained report.html.

    from reports import load_results, write_report, ResultsError
    results = load_results("reports/latest/results.json")
    write_report(results, "report.html", baseline=load_results("old/results.json"))

Also a command line: `python -m reports build|compare ...` (see reports/__main__.py).
Never imports torch: a report can be rendered on any machine from a saved results file.
"""

from .load import SCHEMA, ResultsError, load_results, validate
from .render import render_html, write_report

__all__ = ["SCHEMA", "ResultsError", "load_results", "render_html", "validate", "write_report"]
