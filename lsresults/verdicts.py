"""The outcomes a check can have and the one wording of an implementation's verdict.

The terminal summary and results.json (lsuite/pytest_plugin/results.py), a merged file
(reports/merge.py) and the report (reports/analysis.py) all word a verdict with
`verdict_of`, so they never disagree.
"""

from __future__ import annotations

# suite_error: the suite's own failure on that check (inputs, reference); it fails the run
# but counts against no implementation's verdict (listed under Findings).
OUTCOMES = ("passed", "divergence", "failed", "error", "xpassed", "xfailed", "skipped",
            "suite_error")
BAD = frozenset({"failed", "error", "xpassed"})  # any of these: the verdict is "fails"
MEASURED = frozenset({"passed", "divergence", "failed", "error", "xpassed", "xfailed"})


def verdict_of(counts) -> str:
    """The one wording of a verdict (report, terminal summary, results.json): "fails" with
    any error, failure or xpassed known defect; "conforms except N known defects / M
    divergences" when only those stand between it and "conforms"; "not checked" when no
    check measured it."""
    if sum(counts.get(o, 0) for o in BAD):
        return "fails"
    if not sum(counts.get(o, 0) for o in MEASURED):
        return "not checked"
    known, divergences = counts.get("xfailed", 0), counts.get("divergence", 0)
    parts = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in
             ((known, "known defect"), (divergences, "divergence")) if n]
    return "conforms except " + " / ".join(parts) if parts else "conforms"


def verdict_class(verdict: str) -> str:
    """The verdict's colour: conforms (green), except (amber), fails (red), not-checked."""
    return "except" if verdict.startswith("conforms except") else verdict.replace(" ", "-")


__all__ = ["BAD", "MEASURED", "OUTCOMES", "verdict_class", "verdict_of"]
