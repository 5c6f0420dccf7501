"""Memory for the benchmarks: the peak of one call beyond its inputs, and what is free.

Peak memory, never process RSS (the CPU allocator returns large blocks to the OS and RSS
lags, so it misses short-lived N x K temporaries):

- CUDA: the caching allocator's statistics (reset_peak_memory_stats, max_memory_allocated);
- CPU: the allocation and free events of torch's own allocator, recorded by the profiler
  (profile_memory=True) and replayed in time order. The profiler exposes those events, in
  order and with their sizes, only through its results object `kineto_results`
  (undocumented); the profiler's public per-operator `cpu_memory_usage` nets allocations
  and frees inside an operator and so loses the peak within it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _cpu_peak_from_events(events) -> int:
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _cpu_peak_bytes(run: Callable, args: tuple, kwargs: dict) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run(*args, **kwargs)
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        raise RuntimeError(f"torch {torch.__version__}'s profiler has no kineto_results: "
                           "lsuite/memory.py cannot replay its allocator events")
    events = [e for e in results.events()
              if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    return _cpu_peak_from_events(events)


def peak_bytes(run: Callable, args: tuple = (), kwargs: dict | None = None, device: str = "cpu") -> int:
    """Peak bytes allocated during `run(*args)` beyond what was allocated before it.

    CUDA: the allocator's peak since a reset, minus what was allocated at the reset.
    CPU: the profiler's allocator events ("[memory]": +bytes on allocation, -bytes on
    free) summed in time order; the running sum's maximum is the peak."""
    kwargs = kwargs or {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run(*args, **kwargs)
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - before)
    return _cpu_peak_bytes(run, args, kwargs)


def free_bytes(device: str) -> int | None:
    """Memory a benchmark may use: free GPU memory, or MemAvailable on Linux; None if unknown."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
