"""Implementations of which nothing was checked (every check skipped: a CUDA-only record on
a machine without CUDA, a library that is not installed) are a finding of their own: the
verdict "not checked" is never "conforms". results.json lists them under `not_checked`
with the commonest reason their checks gave; the terminal and the report's header say so;
`--ls-require-checked` (lsuite/pytest_plugin/checkedplugin.py) fails the gate on them.
"""

from __future__ import annotations

from collections import Counter

from lsresults.verdicts import verdict_of

NOT_CHECKED = "not checked"  # lsresults.verdicts.verdict_of's wording


def not_checked(checks: list[dict]) -> dict[str, str]:
    """{implementation: why} for each implementation whose checks all skipped; why is the
    commonest skip message, with how many of its checks gave it."""
    counts: dict[str, Counter] = {}
    reasons: dict[str, Counter] = {}
    for check in checks:
        if check.get("kind") == "equivalence":  # compares conventions, counts for no record
            continue
        outcome = check.get("outcome") or "error"
        counts.setdefault(check["impl"], Counter())[outcome] += 1
        if outcome == "skipped":
            text = str(check.get("message") or "").removeprefix("Skipped: ").strip()
            reasons.setdefault(check["impl"], Counter())[text.splitlines()[0] if text else "skipped"] += 1
    out = {}
    for impl, count in counts.items():
        if verdict_of(count) == NOT_CHECKED:
            total = sum(count.values())
            why, n = (reasons.get(impl) or Counter({"no check ran": total})).most_common(1)[0]
            out[impl] = f"all {total} checks skipped; {n} of them: {why}"
    return out
