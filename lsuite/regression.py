"""The benchmark regression gate: this run's benchmarks against a baseline results.json.

Matching and judging live in reports/benchdiff.py (torch-free, shared with the report's
regression section, so the gate and the report decide alike); the calibrated thresholds
and their reasons are there too. This module applies them to a run and records what it
decided in results.json (`record`), and `python -m lsuite.regression A B ...` prints the
run-to-run spread the thresholds are calibrated from. Correctness never depends on it.
"""

from __future__ import annotations

from reports import benchdiff
from reports.benchdiff import (
    CALIBRATION,
    KEY,
    MEMORY_THRESHOLD,
    RATIO_THRESHOLD,
    BenchRegression,
    key_of,
    spread,
)

__all__ = ["CALIBRATION", "KEY", "MEMORY_THRESHOLD", "RATIO_THRESHOLD", "BenchRegression", "regressions",
           "describe", "key_of", "record", "spread", "thresholds"]


def thresholds() -> benchdiff.Thresholds:
    """The thresholds the gate judges with (and records)."""
    return benchdiff.Thresholds(RATIO_THRESHOLD, MEMORY_THRESHOLD)


def describe() -> str:
    return thresholds().describe()


def regressions(current: list[dict], baseline: list[dict], ratio_threshold: float = RATIO_THRESHOLD,
                memory_threshold: float = MEMORY_THRESHOLD) -> list[BenchRegression]:
    """Every benchmark present in both runs whose ratio or memory grew past its threshold.
    Entries without a ratio (the reference, the no-op) or absent from one run are ignored."""
    limits = benchdiff.Thresholds(ratio_threshold, memory_threshold)
    return benchdiff.diff(baseline, current, limits).findings


def record(findings: list[BenchRegression] | None, baseline: str | None) -> dict:
    """results.json's benchmark_gate: the thresholds, and the findings against the
    baseline (null when the run had none)."""
    return {**thresholds().record(), "baseline": baseline,
            "findings": None if findings is None else [f.record() for f in findings]}


def main(argv: list[str]) -> int:
    import statistics
    import sys

    import reports

    try:
        runs = [reports.load_results(path).get("benchmarks") or [] for path in argv]
    except reports.ResultsError as exc:
        print(f"python -m lsuite.regression: error: {exc}", file=sys.stderr)
        return 2
    spreads = spread(runs)
    if not spreads:
        print("no benchmark present in every run")
        return 1
    values = sorted(spreads.values())
    print(f"{len(values)} benchmarks in {len(runs)} runs: ratio_to_builtin spread "
          f"median {statistics.median(values):.1%}, p90 {values[int(0.9 * (len(values) - 1))]:.1%}, "
          f"max {values[-1]:.1%}")
    for key, value in sorted(spreads.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {value:6.1%}  {' '.join(map(str, key))}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
