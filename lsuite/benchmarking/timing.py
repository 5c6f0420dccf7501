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
- `Batch`: a round of several calls, so that every round lasts at least MIN_ROUND_S
  (`calls_per_round`) and a scheduler time slice lost to another process is a small part
  of it; `rounds_for`: how many rounds to ask pytest-benchmark's pedantic mode for.

The per-round ratios are kept (results.json `ratio_samples`) and judged by
lsresults/benchdiff.py, the same code on CPU (perf_counter) and CUDA (events).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from pytest_benchmark.stats import Stats

# Rounds: at least MIN_ROUNDS (8 against 8 rounds lets a one-sided Mann-Whitney test reach
# p = 1/12870; 5 against 5 only 1/252), about TARGET_S of the implementation's rounds, at most
# MAX_ROUNDS (lsresults.benchdiff.MAX_SAMPLES ratios are stored per entry).
MIN_ROUNDS, MAX_ROUNDS, TARGET_S = 8, 40, 1.0
# The least work per round: calls are repeated until a round lasts this long. Measured on
# the shared 2-core machine (docs/benchmarks.md): with one call per round the forward at
# k=1000 (about 2 ms) spread its per-round ratio to the builtin by 20-50% between rounds,
# because a round either did or did not lose a 3-4 ms time slice to another process; rounds
# of 50 ms spread it by a few percent.
MIN_ROUND_S = 0.05


# glibc's malloc serves allocations above its mmap threshold (128 KiB, adapting up to
# 32 MiB with the process's history) with fresh pages from the kernel on every call, and
# gives freed heap back past a trim threshold. A loss at 1024 x 8192 float32 allocates
# 32 MiB tensors, so its time then includes faulting in and zeroing them, a kernel and
# hypervisor cost that has nothing to do with the loss: measured here (one thread, thread
# CPU time, fresh processes), the builtin's backward at 1024 x 32000 took 184-190 ms with
# fresh pages and 74-78 ms with reused ones; seed001_kldiv's forward at 1024 x 8192, 168-178
# against 82-87 ms. Worse, that cost moves between processes on this VM (the guest returns
# freed pages to the host, virtio-balloon free page reporting): with the mmap threshold
# pinned at 32 MiB, the builtin's backward at 1024 x 32000 took 111 ms in one quick sweep
# and 171-175 ms in two others, and same-commit ratios moved by up to 67%.
# `pin_allocator` turns mmap off (M_MMAP_MAX 0: every allocation from the heap, which this
# process's single benchmark thread owns) and trimming too (M_TRIM_THRESHOLD INT_MAX): after
# a warm-up call, every measured call reuses memory the process already has, whatever ran
# before it. What is measured is the loss's own work and memory traffic.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h parameter numbers
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: never trim


def pin_allocator() -> str:
    """Make glibc malloc keep and reuse what a process frees (benchmark sessions and their
    ranks only): no mmap, no trimming, so that what a call allocates costs the same whatever
    ran before it, and no call pays for fresh pages. Returns what was done, for results.json
    (another C library: nothing, and says so)."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return "not pinned: this C library has no mallopt (not glibc)"
    if mallopt(M_MMAP_MAX, 0) != 1 or mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "not pinned: mallopt refused the settings"
    return (f"glibc malloc pinned (mallopt): M_MMAP_MAX 0 (no mmap), "
            f"M_TRIM_THRESHOLD {TRIM_THRESHOLD} bytes (no trimming)")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def call_args(setup: Callable) -> tuple[tuple, dict]:
    """What pytest-benchmark passes to the timed call: setup()'s (args, kwargs), or none."""
    made = setup()
    return made if made else ((), {})


def cpu_clock() -> Callable[[], float]:
    """The CPU timer: with one torch thread every op runs in the calling thread (autograd's
    CPU backward too), so its CPU time (time.thread_time) is the call's cost and excludes
    the time the scheduler gave other processes; measured on the shared 2-core machine
    with the load at 6 (docs/benchmarks.md): per-round ratios scatter with sigma(log) 0.014
    against 0.085 on the wall clock. With more threads, the wall clock (perf_counter)."""
    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


class CpuTimer:
    """Wraps a callable so each call is timed with cpu_clock(); seconds land in `seconds`."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.clock = cpu_clock()
        self.seconds: list[float] = []

    @property
    def name(self) -> str:
        return "thread_time" if self.clock is time.thread_time else "perf_counter"

    def __call__(self, *args, **kwargs):
        started = self.clock()
        result = self.fn(*args, **kwargs)
        self.seconds.append(self.clock() - started)
        return result


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
    """Seconds of one call of run(*setup()): CUDA events on CUDA, cpu_clock() on CPU."""
    args, kwargs = call_args(setup)
    timer = CudaEventTimer(run) if device == "cuda" else CpuTimer(run)
    timer(*args, **kwargs)
    return timer.seconds[0]


def rounds_for(seconds_per_round: float) -> int:
    """Rounds to time: about TARGET_S of rounds, at least MIN_ROUNDS, at most MAX_ROUNDS."""
    if seconds_per_round <= 0:
        return MAX_ROUNDS
    return max(MIN_ROUNDS, min(MAX_ROUNDS, math.ceil(TARGET_S / seconds_per_round)))


def calls_per_round(seconds_per_call: float, min_round_s: float = MIN_ROUND_S) -> int:
    """Calls in one round so that the round lasts at least min_round_s."""
    if seconds_per_call <= 0:
        return 1
    return max(1, math.ceil(min_round_s / seconds_per_call))


class Batch:
    """A round of `calls` calls of run(*setup()): `setup` prepares every call's arguments
    untimed and returns them as the timed `run`'s one argument (pytest-benchmark's pedantic
    mode takes no iterations beside a setup, so the round repeats inside the timed call)."""

    def __init__(self, run: Callable, setup: Callable, calls: int):
        self._run, self._setup, self.calls = run, setup, calls

    def setup(self):
        return ([call_args(self._setup) for _ in range(self.calls)],), {}

    def run(self, prepared):
        for args, kwargs in prepared:
            self._run(*args, **kwargs)


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


def round_ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """The per-round ratios (rounds are paired: same load), in round order."""
    return [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0 and a > 0]


def paired_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    """Median of the per-round ratios."""
    ratios = round_ratios(numerators, denominators)
    return statistics.median(ratios) if ratios else None
