"""Render the suite's results.json into a self-contained report.html.

    from reports import load_results, write_report, ResultsError
    results = load_results("reports/latest/results.json")
    write_report(results, "report.html", baseline=load_results("old/results.json"))

Also a command line: `python -m reports build|compare|merge|verify ...` (reports/__main__.py).
Never imports torch nor lsuite: a report can be rendered on any machine from a saved
results file. The results schema, its validation, the atomic writer and the benchmark
gate's statistics live in `lsresults` (shared with the suite); the names below are
re-exported from there. The renderer (Jinja2, matplotlib) is imported only when first used.
"""

from lsresults.load import SCHEMA, ResultsError, load_results, read_results, validate

__all__ = ["SCHEMA", "ResultsError", "load_results", "read_results", "render_html", "validate", "write_report"]


def __getattr__(name: str):
    if name in ("render_html", "write_report"):
        from . import render

        return getattr(render, name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
