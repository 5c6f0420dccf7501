"""Regression: what changed between a baseline results dict and the current one.

Checks are matched by nodeid (stable across runs: impl, device and case are in the id);
benchmarks by (impl, device, dtype, pass, n, k). The two thresholds below decide what is
worth a reader's attention; each carries its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lsuite.regression import RATIO_THRESHOLD

from .analysis import (
    BAD,
    DTYPE_EPS,
    MEASURED,
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

# Benchmarks: ratio_to_builtin changes within the gate's threshold are noise. One home for
# that number: lsuite/regression.py, calibrated from two runs of the same commit (it is
# torch-free, so rendering still never imports torch).
BENCH_NOISE = RATIO_THRESHOLD


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
class BenchChange:
    key: tuple
    before: float
    after: float
    median_before: float | None
    median_after: float | None

    @property
    def relative(self) -> float:
        return self.after / self.before - 1

    @property
    def label(self) -> str:
        if abs(self.relative) <= BENCH_NOISE:
            return "within noise"
        return "slower than builtin" if self.relative > 0 else "faster than builtin"


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
    bench: list[BenchChange]  # every matched benchmark, flagged or not
    bench_added: int
    bench_removed: int

    @property
    def bench_flagged(self) -> list[BenchChange]:
        return [b for b in self.bench if abs(b.relative) > BENCH_NOISE]


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
        floor = budget * DRIFT_BUDGET_FRACTION if budget else DTYPE_EPS.get(dtype, 0.0)
        factor = math.inf if before == 0 else after / before
        if after > floor and factor > DRIFT_RATIO:
            out.append(Drift(nodeid, impl_of(new), dtype, quantity, before, after, budget, factor))
    return out


def _bench_key(entry: dict) -> tuple:
    return tuple(text(entry.get(k)) for k in ("impl", "device", "dtype", "pass", "n", "k"))


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

    old_b = {_bench_key(b): b for b in baseline.get("benchmarks") or ()}
    new_b = {_bench_key(b): b for b in results.get("benchmarks") or ()}
    bench = []
    for key, cur in new_b.items():
        prev = old_b.get(key)
        if prev is None:
            continue
        before, after = num(prev.get("ratio_to_builtin")), num(cur.get("ratio_to_builtin"))
        if before and after is not None and math.isfinite(before) and math.isfinite(after):
            bench.append(BenchChange(key, before, after, num(prev.get("median_s")),
                                     num(cur.get("median_s"))))
    bench.sort(key=lambda b: -abs(b.relative))
    return Regression(
        baseline_env=baseline.get("environment") or {},
        baseline_complete=baseline.get("complete") is True,
        new_failures=new_failures, fixes=fixes, other_changes=other,
        added=added, removed=removed, drift=drift, bench=bench,
        bench_added=sum(1 for k in new_b if k not in old_b),
        bench_removed=sum(1 for k in old_b if k not in new_b))
