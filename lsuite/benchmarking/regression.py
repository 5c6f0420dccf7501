"""The benchmark regression gate: this run's benchmarks against a baseline results.json.

Matching and judging live in lsresults/benchdiff.py (torch-free, shared with the report's
regression section, so the gate and the report decide alike); the calibrated thresholds,
the statistics and their reasons are there too. This module applies them to a run and
records what it decided in results.json (`record`), and
`python -m lsuite.benchmarking.regression A B C ...` measures what the gate would do on runs of the
same commit: every ordered pair compared as the gate compares (false alarms), the
smallest slowdown each comparison could have flagged, and the run-to-run spread.
Correctness never depends on it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys

import lsresults
from lsresults import benchdiff
from lsresults.benchdiff import (
    CALIBRATION,
    KEY,
    MEMORY_THRESHOLD,
    RATIO_THRESHOLD,
    BenchRegression,
    key_of,
    spread,
)

__all__ = ["CALIBRATION", "KEY", "MEMORY_THRESHOLD", "RATIO_THRESHOLD", "BenchRegression", "regressions",
           "describe", "key_of", "record", "same_commit", "spread", "thresholds"]


def thresholds() -> benchdiff.Thresholds:
    """The thresholds the gate judges with (and records)."""
    return benchdiff.Thresholds()


def describe() -> str:
    return thresholds().describe()


def regressions(current: list[dict], baseline: list[dict],
                limits: benchdiff.Thresholds | None = None) -> list[BenchRegression]:
    """Every benchmark present in both runs that regressed (lsresults/benchdiff.py decides).
    Entries without a comparable quantity (the reference, the no-op) or absent from one
    run are ignored."""
    return benchdiff.diff(baseline, current, limits or thresholds()).findings


def record(findings: list[BenchRegression] | None, baseline: str | None) -> dict:
    """results.json's benchmark_gate: the thresholds, and the findings against the
    baseline (null when the run had none)."""
    return {**thresholds().record(), "baseline": baseline,
            "findings": None if findings is None else [f.record() for f in findings]}


def _quantiles(values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return "none"
    return (f"median {statistics.median(values):.1%}, p90 {values[int(0.9 * (len(values) - 1))]:.1%}, "
            f"max {values[-1]:.1%}")


def same_commit(runs: list[list[dict]]) -> dict:
    """Runs of one commit compared as the gate compares, every ordered pair: the false
    alarms, and the smallest slowdown each comparison could have flagged."""
    alarms, detectable, compared, pairs = [], [], 0, 0
    for (i, before), (j, after) in itertools.permutations(enumerate(runs), 2):
        result = benchdiff.diff(before, after, thresholds())
        pairs += 1
        compared += len(result.pairs)
        alarms += [(i, j, f.message()) for f in result.findings]
        detectable += [p.speed.detectable for p in result.pairs
                       if p.speed is not None and p.speed.detectable is not None]
    return {"pairs": pairs, "entries": compared, "alarms": alarms, "detectable": detectable}


def main(argv: list[str]) -> int:
    try:
        runs = [lsresults.load_results(path).get("benchmarks") or [] for path in argv]
    except lsresults.ResultsError as exc:
        print(f"python -m lsuite.benchmarking.regression: error: {exc}", file=sys.stderr)
        return 2
    if len(runs) < 2:
        print("python -m lsuite.benchmarking.regression: give two or more results.json of the same commit",
              file=sys.stderr)
        return 2
    found = same_commit(runs)
    print(f"{found['pairs']} ordered comparisons of {len(runs)} runs, {found['entries']} entry "
          f"comparisons: {len(found['alarms'])} false alarms (gate: {describe()})")
    for i, j, message in found["alarms"]:
        print(f"  run {i} -> run {j}: {message}")
    finite = [d for d in found["detectable"] if math.isfinite(d)]
    blind = len(found["detectable"]) - len(finite)
    print(f"smallest detectable slowdown per timed comparison: {_quantiles(finite)}"
          + (f"; {blind} could detect nothing (too few rounds)" if blind else ""))
    for quantity in ("ratio_to_builtin", "instructions", "peak_over_logits"):
        spreads = spread(runs, quantity)
        if spreads:
            print(f"{quantity} spread (max/min - 1) over {len(spreads)} entries: "
                  f"{_quantiles(list(spreads.values()))}")
            for key, value in sorted(spreads.items(), key=lambda kv: -kv[1])[:5]:
                print(f"  {value:8.3%}  {' '.join(map(str, key))}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
