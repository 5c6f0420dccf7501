"""Render a results dict into one self-contained report.html (inline CSS and SVG, no URL).

Jinja2 autoescapes every value; the only markup inserted unescaped is SVG written by
matplotlib (charts.py). The file is written atomically by lsresults.files.write_atomic, so
a reader never sees half a page.
"""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup

from lsresults import benchdiff
from lsresults.files import write_atomic
from lsresults.load import ResultsError, validate

from . import accuracy, analysis, causes, charts, compare, conventions, findings, sections

TEMPLATES = Path(__file__).parent / "templates"
SHA256 = re.compile(r"[0-9a-f]{64}")  # a results digest as files.write_results gives it
# environment fields the run header lays out itself; any other field is listed as it is
HEADER_FIELDS = {"started", "finished", "duration_s", "suite_commit", "suite_version", "command", "python", "torch",
                 "numpy", "scipy", "platform", "cpu", "torch_threads", "cuda", "seed",
                 "hypothesis_profile", "hypothesis_seed", "workers", "impls"}


def _spelled(value) -> tuple[float | None, str | None]:
    """(the number, or None) and the text for a value that is missing, NaN or infinite."""
    value = analysis.num(value)
    if value is None:
        return None, "—"
    if math.isnan(value):
        return None, "NaN"
    if math.isinf(value):
        return None, "∞" if value > 0 else "−∞"
    return value, None


def fmt_err(value) -> str:
    """An error or budget: scientific, with 0, NaN, inf and missing spelled out."""
    value, text = _spelled(value)
    if text is not None:
        return text
    return "0" if value == 0 else f"{value:.2e}"


def fmt_ratio(value) -> str:
    value, text = _spelled(value)
    return text if text is not None else f"{value:.3g}×"


def fmt_num(value, digits: int = 3) -> str:
    value = analysis.num(value)
    if value is None:
        return "—"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_bytes(value) -> str:
    value = analysis.num(value)
    if value is None or not math.isfinite(value):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "—"


def fmt_seconds(value) -> str:
    value = analysis.num(value)
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 60:
        return f"{int(value // 60)} min {value % 60:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def fmt_pct(value) -> str:
    value = analysis.num(value)
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:+.1f}%"


def _environment():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(err=fmt_err, ratio=fmt_ratio, num=fmt_num, bytes=fmt_bytes,
                       seconds=fmt_seconds, pct=fmt_pct, text=analysis.text,
                       params=findings.params_summary, measured=findings.measured,
                       first_line=lambda s: analysis.first_line(s, 160),
                       suite_version=lambda e: compare.suite_version(e if isinstance(e, dict) else {}))
    return env


def _error_chart(results: dict) -> Markup | None:
    panels = [("value", "max abs error of the loss", accuracy.error_vs_k(results, "value_max_abs_err"), True),
              ("gradient", "max abs error of the gradient",
               accuracy.error_vs_k(results, "grad_max_abs_err"), True)]
    if not any(series for _, _, series, _ in panels) or not charts.available():
        return None
    return Markup(charts.loglog(panels, xlabel="vocabulary size K", salt="accuracy"))


def _benchmarks(results: dict) -> tuple[list[dict], Markup | None]:
    """The benchmark rows, each with `input_label` (what it was called on: logits, hidden
    states H=.., a vocab-parallel rank), and the chart: a line per implementation and
    whatever else differs; entries of other inputs are other lines, never the same one, and
    a hidden-states entry's baseline path (`baseline_peak_over_logits`) is a line of its own."""
    rows = [dict(b, input_label=benchdiff.input_label(b)) for b in results.get("benchmarks") or ()]
    rows.sort(key=lambda b: tuple(analysis.text(b.get(k)) for k in ("impl", "input_label", "device", "dtype", "pass"))
              + (analysis.num(b.get("k")) or 0, analysis.num(b.get("n")) or 0))
    time_series: dict = {}
    memory_series: dict = {}
    # a line's variant names only the fields that differ between benchmarks
    varying = [f for f in ("input_label", "pass", "dtype", "device", "n")
               if len({analysis.text(b.get(f)) for b in rows}) > 1]
    for b in rows:
        k = analysis.num(b.get("k"))
        if k is None or k <= 0:
            continue
        variant = " ".join(f"n={b.get(f)}" if f == "n" else analysis.text(b.get(f)) for f in varying)
        key = (analysis.text(b.get("impl")), variant)
        baseline = (f"{analysis.text(b.get('baseline_path'))} (baseline of {key[0]})", variant)
        for series, field, line in ((time_series, "median_s", key), (memory_series, "peak_over_logits", key),
                                    (memory_series, "baseline_peak_over_logits", baseline)):
            value = analysis.num(b.get(field))
            if value is not None and math.isfinite(value) and value > 0:
                series.setdefault(line, {})[k] = value
    chart = None
    if (time_series or memory_series) and charts.available():
        panels = [("time", "median seconds", time_series, True)]
        if memory_series:  # linear y: the ratio moves within a narrow range
            panels.append(("peak memory", "peak bytes / logits bytes", memory_series, False))
        chart = Markup(charts.loglog(panels, xlabel="vocabulary size k", salt="benchmarks"))
    return rows, chart


def context(results: dict, baseline: dict | None = None) -> dict:
    """Everything the template shows, computed from the results (and baseline)."""
    env = results.get("environment") or {}
    views = analysis.impl_views(results)
    feats, cells = analysis.matrix(results, views)
    records = [v.record for v in views if v.declared]
    example, example_params = conventions.worked_example(records)
    bench_rows, bench_chart = _benchmarks(results)
    cuda = env.get("cuda") if isinstance(env.get("cuda"), dict) else {}
    cuda = {**cuda, "devices": cuda.get("devices") if isinstance(cuda.get("devices"), list) else []}
    extra = [(k, v if isinstance(v, (str, int, float)) else json.dumps(v, default=str))
             for k, v in env.items() if k not in HEADER_FIELDS]
    return {
        "results": results, "env": env, "cuda": cuda, "env_extra": extra,
        "complete": results.get("complete") is True,
        "complete_recorded": "complete" in results,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "views": views, "features": feats, "cells": cells,
        "feature_groups": [(g, [f for f in feats if f.group == g])
                           for g in dict.fromkeys(f.group for f in feats)],
        "sections": sections.matrix_sections(results, views),
        "accuracy": accuracy.accuracy(results), "error_chart": _error_chart(results),
        "gradient_accuracy": accuracy.gradient_accuracy(results),
        "zero_floor": charts.ZERO_FLOOR,
        "example": example,
        "example_k": example_params["K"], "example_eps": example_params["eps"],
        "example_target": example_params["target"], "example_pad": example_params["pad_index"],
        "coinciding": conventions.coinciding(example),
        "root_causes": causes.of_results(results),
        "equivalences": findings.equivalence_checks(results),
        "failures": findings.findings(results, analysis.BAD),
        "known": findings.findings(results, frozenset({"xfailed"})),
        "divergences": findings.findings(results, frozenset({"divergence"})),
        "suite_errors": findings.findings(results, frozenset({"suite_error"})),
        "skips": findings.skip_reasons(results),
        "bench_rows": bench_rows, "bench_chart": bench_chart,
        "regression": compare.compare(baseline, results) if baseline is not None else None,
        "drift_ratio": compare.DRIFT_RATIO, "drift_fraction": compare.DRIFT_BUDGET_FRACTION,
        "nodeids_shown": findings.NODEIDS_SHOWN,
    }


def render_html(results: dict, *, baseline: dict | None = None, results_sha256: str | None = None) -> str:
    """The report as an HTML string; raises ResultsError on an unusable results/baseline.
    `results_sha256`: the digest of the results.json the report stands for (files.write_results
    returns it), recorded as <meta name="ls-results-sha256"> for `python -m reports verify`."""
    if results_sha256 is not None and not SHA256.fullmatch(str(results_sha256)):
        raise ValueError(f"results_sha256 must be 64 lowercase hex digits, got {results_sha256!r:.80}")
    validate(results, source="results")
    if baseline is not None:
        validate(baseline, source="baseline")
    return _environment().get_template("report.html.j2").render(**context(results, baseline),
                                                                results_sha256=results_sha256)


def write_report(results: dict, out_path: str | os.PathLike, *, baseline: dict | None = None,
                 results_sha256: str | None = None) -> Path:
    """Render and write report.html atomically; return its path."""
    return write_atomic(out_path, render_html(results, baseline=baseline, results_sha256=results_sha256))


__all__ = ["ResultsError", "render_html", "write_report"]
