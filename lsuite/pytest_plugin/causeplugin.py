"""pytest hooks for findings by root cause: each failed check's causes recorded on its
report (lsuite/running/causes.py, carried into results.json by lsuite/pytest_plugin/results.py), and a short
"what failed" block in the terminal after the verdict lines (reports/causes.py groups).
"""

from __future__ import annotations

from collections import Counter

import pytest

from lsuite.pytest_plugin import results
from lsuite.pytest_plugin.stash import BASELINE, COLLECTOR
from lsuite.running import causes
from lsuite.running.runner import clean_text
from reports import causes as grouping
from reports import compare

FINDINGS_SHOWN = 12  # findings listed in the terminal; the report lists every one
SHOWN = ("failed", "no longer shows", "suite error")  # finding outcomes the block lists
FRAMES_SHOWN = 3  # innermost frames of the implementation's own code shown per finding


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The causes the failure's exception carries, on the phase's report (under xdist they
    travel to the controller with the report's user_properties)."""
    report = yield
    excinfo = call.excinfo
    if excinfo is not None and (report.failed or hasattr(report, "wasxfail")):
        found = causes.of(excinfo.value)
        if not found and call.when == "call":
            name = type(excinfo.value).__name__
            found = [causes.part("failed", name, f"{name} with no structured cause (see the message)",
                                 exception=name)]
        if found:
            results.record_causes(report, found)
    return report


@pytest.hookimpl(tryfirst=True)  # before pytest's own xfail status (firstresult)
def pytest_report_teststatus(report, config):
    """A declared known defect on a Hypothesis-drawn check (a non-strict xfail) that did not
    show: results.json records it as passed (it does not fail the gate, and the draw may
    simply have missed it), so pytest counts it as passed too, not "xpassed"."""
    if (report.when == "call" and report.passed and hasattr(report, "wasxfail")
            and any(k == results.PROPERTY for k, _ in getattr(report, "user_properties", ()))):
        return "passed", ".", ("PASSED (known defect not shown)", {"green": True})
    return None


def counts_line(checks: list[dict]) -> str:
    """results.json's outcome counts in pytest's words, so the two summaries can be read
    side by side: pytest counts a divergence as passed, and a declared known defect that
    no longer shows (strict xfail) as failed."""
    n = Counter(c["outcome"] for c in checks)
    words = [f"{n[o]} {o}" for o in ("failed", "error", "xpassed", "passed", "divergence", "xfailed",
                                     "skipped", "suite_error") if n[o]]
    notes = []
    if n["xpassed"]:
        notes.append(f"pytest counts the {n['xpassed']} xpassed (known defects no longer shown) as failed")
    if n["divergence"]:
        notes.append(f"and the {n['divergence']} divergence{'s' * (n['divergence'] != 1)} as passed")
    return f"ls: results.json: {', '.join(words)}" + (f" ({' '.join(notes)})" if notes else "")


def lines(findings: list[dict]) -> list[str]:
    """The terminal's "what failed" block: one line per finding, its traceback's own frames."""
    shown = [f for f in findings if f["outcome"] in SHOWN]
    out = []
    for f in shown[:FINDINGS_SHOWN]:
        checks = ", ".join(f["checks"][:3]) + (f" +{len(f['checks']) - 3}" if len(f["checks"]) > 3 else "")
        out.append(f"ls: {f['impl']}: {f['summary']} — {f['count']} check{'s' * (f['count'] != 1)} "
                   f"({checks})")
        if f.get("computes"):
            out.append(f"      {f['computes']}")
        varying = ", ".join(f"{a}" for a in f["axes_varying"])
        if varying:
            out.append(f"      across {varying}")
        own = [fr for fr in f.get("traceback") or () if fr.get("own")][-FRAMES_SHOWN:]
        for fr in own:
            out.append(f"      {fr['file']}:{fr['line']} in {fr['function']}: {fr.get('code', '')}")
    if len(shown) > FINDINGS_SHOWN:
        out.append(f"ls: ... and {len(shown) - FINDINGS_SHOWN} more findings (report.html, results.json)")
    return out


@pytest.hookimpl(trylast=True)  # after the verdict lines (lsuite.pytest_plugin.outputs.Sink)
def pytest_terminal_summary(terminalreporter, config):
    collector = config.stash.get(COLLECTOR, None)
    if collector is None or not collector.checks:
        return
    checks = [dict(c, outcome=c["outcome"] or "error") for c in collector.checks.values()]
    for line in [counts_line(checks), *headline(checks, collector, config.stash.get(BASELINE, None))]:
        terminalreporter.write_line(clean_text(line))
    findings = grouping.findings(checks)
    found = lines(findings)
    if found:
        n = sum(f["outcome"] in SHOWN for f in findings)
        terminalreporter.write_line(f"ls: what failed ({n} root cause{'s' * (n != 1)}):")
        for line in found:
            terminalreporter.write_line(clean_text(line))


def headline(checks: list[dict], collector, baseline: dict | None) -> list[str]:
    """What changed, named for what it is: against --ls-baseline (reports/compare.py, the
    words of the report's regression section), or, without one, the known defects that no
    longer show. The gate's exit status is pytest's, unchanged by these words."""
    if baseline is None:
        fixed = sum(c["outcome"] == "xpassed" for c in checks)
        if not fixed:
            return []
        return [f"ls: {fixed} known defect{'s' * (fixed != 1)} no longer show: fixed? update the "
                "record (the gate fails until the record no longer declares them)"]
    current = {"checks": checks, "benchmarks": collector.benchmarks, "environment": collector.environment}
    regression = compare.compare(baseline, current)
    sides = (f"baseline suite {compare.suite_version(regression.baseline_env)}, this run "
             f"{compare.suite_version(regression.current_env)}")
    if regression.nothing_matched:
        return [f"ls: against the baseline ({sides}): none of its {len(regression.removed)} checks "
                "matched a check of this run (same implementation, check and case): not a baseline "
                "of these checks"]
    return [f"ls: against the baseline ({sides}): {regression.headline()}"]
