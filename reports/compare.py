"""Regression: what changed between a baseline results dict and the current one.

Checks are matched by nodeid (stable across runs: impl, device and case are in the id).
The two drift thresholds below decide what is worth a reader's attention; each carries
its reason. Benchmarks are matched and judged by lsresults/benchdiff.py, the same code and
the same recorded thresholds as the gate (lsuite/benchmarking/regression.py), so the report's
benchmark regressions are exactly the ones that fail a gated run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lsresults import benchdiff

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
    new_failures: list[Change]
    fixes: list[Change]
    other_changes: list[Change]
    added: list[dict]
    removed: list[dict]
    drift: list[Drift]
    bench: benchdiff.BenchDiff  # every matched benchmark, and the gate's decisions on them
    gate: dict | None  # what the current run's own gate recorded (results.json benchmark_gate)

    @property
    def bench_flagged(self) -> list[benchdiff.Pair]:
        """Matched benchmarks that moved beyond a threshold, regressions first."""
        moved = [p for p in self.bench.pairs if p.label != "within noise"]
        return sorted(moved, key=lambda p: not p.regressed)


def _by_nodeid(results: dict) -> dict[str, dict]:
    return {text(c.get("nodeid")): c for c in results.get("checks") or ()}


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
    old, new = _by_nodeid(baseline), _by_nodeid(results)
    new_failures, fixes, other, drift = [], [], [], []
    for nodeid, cur in new.items():
        prev = old.get(nodeid)
        if prev is None:
            continue
        before, after = outcome_of(prev), outcome_of(cur)
        change = Change(nodeid, impl_of(cur), text(cur.get("check")), before, after,
                        text(cur.get("message")))
        if after in BAD and before not in BAD:
            new_failures.append(change)
        elif before in BAD and after not in BAD and after != "skipped":
            fixes.append(change)
        elif before != after:
            other.append(change)
        if after in MEASURED and before in MEASURED:
            drift += _drift(nodeid, prev, cur)
    added = [c for n, c in new.items() if n not in old]
    removed = [c for n, c in old.items() if n not in new]
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
        gate=gate if isinstance(gate, dict) else None)
