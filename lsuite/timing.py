"""Timing that pytest-benchmark does not do for the benchmarks: CUDA events, and the
builtin and the copy timed interleaved with every round.

pytest-benchmark (pedantic mode) times each implementation's rounds and keeps their
statistics (`benchmark.stats`); this module adds only what it cannot:

- `CudaEventTimer`: on CUDA each call bracketed by CUDA events and synchronised (host
  clocks alone see the launch, not the kernels); `stats_of` gives those seconds the same
  statistics as pytest-benchmark's own (its `Stats`);
- `Interleaved`: companions (the builtin at the same point, a copy of the logits' bytes)
  timed one call each in pytest-benchmark's untimed `setup`, right before every timed
  round, and `paired_ratio`, the median of the per-round ratios: a change of load on a
  shared machine hits numerator and denominator alike. Measured without the pairing, two
  quick sweeps on the same commit disagreed by up to 30x in ratio_to_builtin (each
  test's rounds were stable; the load changed between tests);
- `rounds_for`: how many rounds to ask pytest-benchmark's pedantic mode for.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from pytest_benchmark.stats import Stats

# Rounds: enough for a median and an IQR (at least 5), about TARGET_S of timed calls.
MIN_ROUNDS, MAX_ROUNDS, TARGET_S = 5, 50, 1.0


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def call_args(setup: Callable) -> tuple[tuple, dict]:
    """What pytest-benchmark passes to the timed call: setup()'s (args, kwargs), or none."""
    made = setup()
    return made if made else ((), {})


class CudaEventTimer:
    """Wraps a callable so each call is bracketed by CUDA events and synchronised; the
    seconds of every call land in `seconds` (torch.cuda.Event(enable_timing=True))."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.seconds: list[float] = []
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, *args, **kwargs):
        self.start.record()
        result = self.fn(*args, **kwargs)
        self.end.record()
        self.end.synchronize()
        self.seconds.append(self.start.elapsed_time(self.end) / 1e3)  # elapsed_time is in ms
        return result


def stats_of(seconds: list[float]) -> Stats:
    """pytest-benchmark's statistics (median, iqr, ...) of seconds it did not time itself."""
    stats = Stats()
    for s in seconds:
        stats.update(s)
    return stats


def time_call(run: Callable, setup: Callable, device: str) -> float:
    """Seconds of one call of run(*setup()): CUDA events on CUDA, perf_counter on CPU."""
    args, kwargs = call_args(setup)
    if device == "cuda":
        timer = CudaEventTimer(run)
        timer(*args, **kwargs)
        return timer.seconds[0]
    started = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - started


def rounds_for(seconds_per_call: float) -> int:
    """Rounds to time: about TARGET_S of calls, at least MIN_ROUNDS, at most MAX_ROUNDS."""
    if seconds_per_call <= 0:
        return MAX_ROUNDS
    return max(MIN_ROUNDS, min(MAX_ROUNDS, math.ceil(TARGET_S / seconds_per_call)))


class Interleaved:
    """`setup` for pytest-benchmark's pedantic mode that first times one call of each
    companion (name -> (run, setup)), in order, then returns the timed call's own setup():
    ABAB interleaving. `seconds[name]` has one time per round, warm-up rounds included."""

    def __init__(self, setup: Callable, device: str, companions: dict[str, tuple[Callable, Callable]]):
        self._setup = setup
        self.device = device
        self.companions = companions
        self.seconds: dict[str, list[float]] = {name: [] for name in companions}

    def setup(self):
        for name, (run, setup) in self.companions.items():
            self.seconds[name].append(time_call(run, setup, self.device))
        return self._setup()


def paired_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    """Median of the per-round ratios (rounds are paired: same load)."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]
    return statistics.median(ratios) if ratios else None
