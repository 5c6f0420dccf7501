"""Regression: what changed between a baseline results dict and the current one.

Checks are matched by what they are, never where they ran (`check_key`): implementation,
check name, case parameters and the test id's bracketed part (built from the same), so a
baseline made from an installed copy of the suite matches a run from a checkout; a node
id's path and the Python version are not part of it. Each matched check's change is named
for what it is (`Transitions`): a known defect that no longer shows is "fixed? update the
record", not a new failure, though the gate still fails on it until the record changes.
The two drift thresholds below decide what is worth a reader's attention; each carries
its reason. Benchmarks are matched and judged by lsresults/benchdiff.py, the same code and
the same recorded thresholds as the gate (lsuite/benchmarking/regression.py), so the report's
benchmark regressions are exactly the ones that fail a gated run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from lsresults import benchdiff

from . import causes
from .analysis import (
    BAD,
    MEASURED,
    UNIT_ROUNDOFF,
    impl_of,
    metrics_of,
    num,
    outcome_of,
    params_of,
    text,
)

# Accuracy drift: an error that grew by more than this factor since the baseline...
DRIFT_RATIO = 2.0
# ...and now exceeds this fraction of its budget. Errors far below budget jump by orders of
# magnitude on rounding luck alone (0 -> 2e-16 is an "infinite" ratio), so growth only
# matters once it is within 10x of failing; 2x growth is past the run-to-run scatter of
# max-abs errors on identical seeded inputs, which is exactly 1x for a deterministic kernel
# and well under 2x for reductions whose order depends on threading.
DRIFT_BUDGET_FRACTION = 0.1


@dataclass
class Change:
    nodeid: str
    impl: str
    check: str
    before: str
    after: str
    message: str


@dataclass
class Drift:
    nodeid: str
    impl: str
    dtype: str
    quantity: str  # "value" | "gradient"
    before: float | None
    after: float
    budget: float | None
    factor: float


@dataclass
class Regression:
    baseline_env: dict
    baseline_complete: bool
    new_failures: list[Change]  # passed (or new divergence, skipped) -> failed / error
    fixes: list[Change]  # failed -> passed
    other_changes: list[Change]
    added: list[dict]
    removed: list[dict]
    drift: list[Drift]
    bench: benchdiff.BenchDiff  # every matched benchmark, and the gate's decisions on them
    gate: dict | None  # what the current run's own gate recorded (results.json benchmark_gate)
    fixed_defects: list[Change] = field(default_factory=list)  # known defect no longer shows
    new_divergences: list[Change] = field(default_factory=list)
    changed_defects: list[Change] = field(default_factory=list)  # known defect, other cause
    matched: int = 0  # checks present in both runs
    current_env: dict = field(default_factory=dict)

    @property
    def nothing_matched(self) -> bool:
        """A non-empty baseline of which no check matched: not comparable at all."""
        return self.matched == 0 and bool(self.removed)

    def headline(self) -> str:
        """The one line the terminal, the report and `reports compare` lead with."""
        parts = [f"{len(self.new_failures)} new failure{'s' * (len(self.new_failures) != 1)}"]
        if self.fixed_defects:
            parts.append(f"{len(self.fixed_defects)} known defect{'s' * (len(self.fixed_defects) != 1)} "
                         "no longer show: fixed? update the record")
        for items, words in ((self.new_divergences, "new divergence"),
                             (self.changed_defects, "known defect now failing differently"),
                             (self.fixes, "failure fixed")):
            if items:
                parts.append(f"{len(items)} {words}{'s' if len(items) != 1 and words[-1] != 'y' else ''}")
        parts.append(f"{self.matched} checks matched, {len(self.added)} added, {len(self.removed)} removed")
        return "; ".join(parts)

    @property
    def bench_flagged(self) -> list[benchdiff.Pair]:
        """Matched benchmarks that moved beyond a threshold, regressions first."""
        moved = [p for p in self.bench.pairs if p.label != "within noise"]
        return sorted(moved, key=lambda p: not p.regressed)


def check_key(check: dict) -> str:
    """What a check is: implementation, check name, case parameters, and the bracketed id
    pytest built from them (it tells apart parametrisations with equal params)."""
    nodeid = text(check.get("nodeid"))
    bracket = nodeid[nodeid.find("["):] if "[" in nodeid else ""
    params = json.dumps(params_of(check), sort_keys=True, default=str)
    return "\x1f".join((impl_of(check), text(check.get("check")), params, bracket))


def _by_key(results: dict) -> dict[str, dict]:
    return {check_key(c): c for c in results.get("checks") or () if isinstance(c, dict)}


def suite_version(env: dict) -> str:
    """The suite that made a run: package version and commit, where recorded."""
    version, commit = text(env.get("suite_version")), text(env.get("suite_commit"))
    if version and commit:
        return f"{version} (commit {commit})"
    return version or (f"commit {commit}" if commit else "unrecorded")


def _drift(nodeid: str, old: dict, new: dict) -> list[Drift]:
    out = []
    dtype = text(params_of(new).get("dtype"))
    for quantity, err_key, budget_key in (("value", "value_max_abs_err", "value_budget"),
                                          ("gradient", "grad_max_abs_err", "grad_budget")):
        before, after = num(metrics_of(old).get(err_key)), num(metrics_of(new).get(err_key))
        budget = num(metrics_of(new).get(budget_key))
        if after is None or before is None or math.isnan(after):
            continue
        floor = budget * DRIFT_BUDGET_FRACTION if budget else UNIT_ROUNDOFF.get(dtype, 0.0)
        factor = math.inf if before == 0 else after / before
        if after > floor and factor > DRIFT_RATIO:
            out.append(Drift(nodeid, impl_of(new), dtype, quantity, before, after, budget, factor))
    return out


def compare(baseline: dict, results: dict) -> Regression:
    old, new = _by_key(baseline), _by_key(results)
    new_failures, fixes, other, drift = [], [], [], []
    fixed_defects, new_divergences, changed_defects = [], [], []
    matched = 0
    for key, cur in new.items():
        prev = old.get(key)
        if prev is None:
            continue
        matched += 1
        nodeid = text(cur.get("nodeid"))
        before, after = outcome_of(prev), outcome_of(cur)
        change = Change(nodeid, impl_of(cur), text(cur.get("check")), before, after,
                        text(cur.get("message")))
        if (after == "xpassed" and before != "xpassed") or (
                before == "xfailed" and after == "passed" and cur.get("known_defect")):
            fixed_defects.append(change)
        elif after in BAD and before not in BAD:
            new_failures.append(change)
        elif (before in BAD or before == "xfailed") and after in ("passed", "divergence"):
            fixes.append(change)
        elif after == "divergence" and before != "divergence":
            new_divergences.append(change)
        elif (before == after == "xfailed" and causes.parts_of(prev) and causes.parts_of(cur)
              and causes.key_of(prev) != causes.key_of(cur)):
            changed_defects.append(change)
        elif before != after:
            other.append(change)
        if after in MEASURED and before in MEASURED:
            drift += _drift(nodeid, prev, cur)
    added = [c for k, c in new.items() if k not in old]
    removed = [c for k, c in old.items() if k not in new]
    drift.sort(key=lambda d: -d.factor)

    bench = benchdiff.diff(baseline.get("benchmarks") or [], results.get("benchmarks") or [],
                           benchdiff.thresholds_of(results, baseline))
    bench.pairs.sort(key=lambda p: (not p.regressed, -abs(p.ratio_change or 0.0)))
    gate = results.get(benchdiff.GATE)
    if isinstance(gate, dict):  # findings: the gate's list of regressions, or null
        gate = {**gate, "findings": gate.get("findings") if isinstance(gate.get("findings"), list) else None}
    return Regression(
        baseline_env=baseline.get("environment") or {},
        baseline_complete=baseline.get("complete") is True,
        new_failures=new_failures, fixes=fixes, other_changes=other,
        added=added, removed=removed, drift=drift, bench=bench,
        gate=gate if isinstance(gate, dict) else None,
        fixed_defects=fixed_defects, new_divergences=new_divergences,
        changed_defects=changed_defects, matched=matched,
        current_env=results.get("environment") or {})
