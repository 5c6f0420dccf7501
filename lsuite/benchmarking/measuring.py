"""One point measured into its results.json entry (lsuite/benchmarking/bench.py says what a
point runs): its time, interleaved with the builtin's and a copy's (pytest-benchmark's rounds,
lsuite/benchmarking/timing.py), its peak memory beyond its inputs (memory.py), or in
deterministic mode its instructions (instructions.py)."""

from __future__ import annotations

import dataclasses
import statistics

import torch

from lsresults import benchdiff
from lsuite.benchmarking import memory, timing
from lsuite.benchmarking.bench import (
    LINEAR_BASELINE_PATH,
    LINEAR_BUILTIN,
    Point,
    Workload,
    copy_workload,
    roofline_fraction,
    workload,
)
from lsuite.record.records import Impl


class State:
    """Per-session: the builtins whose time is every ratio's denominator (nn.CrossEntropyLoss
    for logits points, LINEAR_BUILTIN for hidden-states points), and in deterministic mode
    the instruction counter (lsuite.benchmarking.instructions.Counter)."""

    def __init__(self, builtin: Impl, counter=None, linear_builtin: Impl = LINEAR_BUILTIN):
        self.builtin = builtin
        self.counter = counter
        self.linear_builtin = linear_builtin

    def baseline(self, point: Point) -> Impl:
        """What `point`'s ratio_to_builtin compares with."""
        return self.linear_builtin if point.h else self.builtin


WARMUP_ROUNDS = 1
# torch threads while benchmarking (--ls-bench-threads). Measured on the shared 2-core
# machine, forward at k=1000, rounds of 50 ms: with 2 threads the per-round ratio to the
# builtin scattered with sigma(log) 1.35 and 12-round medians by 49% between repeats; with
# 1 thread, 0.085 and 8% (/tmp experiment in docs/benchmarks.md).
THREADS = 1
MEMORY_CALLS = 5  # peak memory: the median over this many calls (see peak)


def _seconds_per_call(work: Workload, point: Point) -> float:
    """Two untimed calls (allocator, lazy init), then the time of one: the calibration."""
    timing.time_call(work.run, work.setup, point.device)
    return timing.time_call(work.run, work.setup, point.device)


def _time(benchmark, work: Workload, point: Point, companions: dict[str, Workload]) \
        -> tuple[list[float], dict[str, list[float]], int]:
    """Time `work` with pytest-benchmark (pedantic: our rounds, one warm-up; the companions
    interleaved in its setup), every round of each at least timing.MIN_ROUND_S long:
    (seconds per call of each timed round, the companions' seconds per call, rounds)."""
    batches = {name: timing.Batch(w.run, w.setup, timing.calls_per_round(_seconds_per_call(w, point)))
               for name, w in {"impl": work, **companions}.items()}
    own = batches.pop("impl")
    round_s = timing.time_call(own.run, own.setup, point.device)
    rounds = timing.rounds_for(round_s)
    paired = timing.Interleaved(own.setup, point.device,
                                {name: (b.run, b.setup) for name, b in batches.items()})
    timer = timing.CudaEventTimer(own.run) if point.device == "cuda" else timing.CpuTimer(own.run)
    benchmark.pedantic(timer, setup=paired.setup, rounds=rounds,
                       warmup_rounds=WARMUP_ROUNDS, iterations=1)
    per_call = [s / own.calls for s in timer.seconds[WARMUP_ROUNDS:]]
    return per_call, {name: [s / batches[name].calls for s in paired.seconds[name][WARMUP_ROUNDS:]]
                      for name in batches}, own.calls


def peak(work: Workload, point: Point) -> int:
    """The peak bytes of one call beyond its inputs: the median of MEMORY_CALLS calls (every
    call's arguments fresh from the workload's setup). Replayed by address
    (lsuite/benchmarking/memory.py), the calls of a point agree exactly; the median keeps one call's
    stray, should an implementation allocate differently from call to call, out of the
    entry."""
    peaks = sorted(memory.peak_bytes(work.run, *timing.call_args(work.setup), point.device)
                   for _ in range(MEMORY_CALLS))
    return peaks[len(peaks) // 2]


def _entry(point: Point, kind: str, peak_bytes: int) -> dict:
    entry = {
        "kind": kind, "impl": point.impl.name, "device": point.device, "dtype": point.dtype,
        "pass": point.pass_, "n": point.n, "k": point.k, "measure": "time",
        "threads": torch.get_num_threads(),
        "peak_bytes": peak_bytes, "logits_bytes": point.logits_bytes,
        "peak_over_logits": peak_bytes / point.logits_bytes,
        "roofline_fraction": None, "copy_median_s": None,
        "ratio_to_builtin": None, "builtin_median_s": None,
        "ratio_samples": None, "detectable_slowdown": None,
    }
    if point.h:  # the keys of the other inputs (absent on logits entries; readers default them)
        entry.update(input=point.input, hidden_size=point.h, baseline_path=LINEAR_BASELINE_PATH,
                     baseline_peak_bytes=None, baseline_peak_over_logits=None)
    return entry


def memory_entry(point: Point, state: State, kind: str = "impl", work: Workload | None = None) -> dict:
    """The entry with its memory measured (and no speed yet): the peak of one call beyond
    its inputs; for a hidden-states point of an implementation under test, the baseline
    path's own peak at the same point beside it (what the fused kernel saves)."""
    entry = _entry(point, kind, peak(work or workload(point.impl, point), point))
    if point.h and kind == "impl":
        base = peak(workload(state.baseline(point), point), point)
        entry.update(baseline_peak_bytes=base, baseline_peak_over_logits=base / point.logits_bytes)
    return entry


def measure(benchmark, point: Point, state: State, kind: str = "impl") -> dict:
    """Time `point` with pytest-benchmark, the builtin and the copy interleaved (kind
    "impl"), then measure its peak memory in more, untimed calls; return the results.json
    entry (with the per-round ratios to the builtin, `ratio_samples`, that
    lsresults/benchdiff.py judges, and the smallest slowdown they could reveal)."""
    if state.counter is not None:
        return count(point, state, kind)
    work = workload(point.impl, point)
    builtin = state.baseline(point)
    is_builtin = point.impl.name == builtin.name
    companions = {}
    if kind == "impl":
        if not point.h:  # the roofline: the logits' bytes (a fused linear kernel never reads them)
            companions["copy"] = copy_workload(point)
        if not is_builtin:
            companions["builtin"] = workload(builtin, point)
    seconds, paired, calls = _time(benchmark, work, point, companions)
    host = benchmark.stats.stats
    own = timing.stats_of(seconds)
    entry = memory_entry(point, state, kind, work)
    entry.update(
        median_s=float(own.median), iqr_s=float(own.iqr), rounds=len(seconds),
        calls_per_round=calls, warmup_rounds=WARMUP_ROUNDS,
        timer="cuda_event" if point.device == "cuda" else timing.CpuTimer(None).name,
        host_median_s=float(host.median) / calls, host_iqr_s=float(host.iqr) / calls)
    if kind == "impl":
        copies, builtins = paired.get("copy"), paired.get("builtin", [])
        if copies:
            entry.update(copy_median_s=statistics.median(copies),
                         roofline_fraction=roofline_fraction(point.pass_, 1.0,
                                                             timing.paired_ratio(copies, seconds)))
        entry.update(
            builtin_median_s=entry["median_s"] if is_builtin else statistics.median(builtins),
            ratio_to_builtin=1.0 if is_builtin else timing.paired_ratio(seconds, builtins))
        if not is_builtin:
            ratios = timing.round_ratios(seconds, builtins)
            entry.update(ratio_samples=benchdiff.thin(ratios),
                         detectable_slowdown=benchdiff.detectable_alone(ratios))
    benchmark.extra_info.update({k: v for k, v in entry.items() if k != "ratio_samples"})
    return entry


def count(point: Point, state: State, kind: str = "impl") -> dict:
    """Deterministic mode: instructions of one call (lsuite/benchmarking/instructions.py), the builtin's
    at the same point, and the peak memory (the allocator's, as in timing mode)."""
    entry = memory_entry(point, state, kind)
    own = state.counter.count(point)
    entry.update(measure="instructions", instructions=own, median_s=None, iqr_s=None, rounds=1,
                 timer="callgrind", threads=1)
    if kind == "impl":
        builtin = state.counter.count(dataclasses.replace(point, impl=state.baseline(point)))
        entry.update(builtin_instructions=builtin, ratio_to_builtin=own / builtin if builtin else None)
    return entry
