"""Measuring for the benchmarks: workloads per pass, peak memory, a copy roofline, CUDA timing.

pytest-benchmark times the implementations (suites/test_benchmarks.py); this module builds
what it times and measures what it cannot:

- peak memory of one call beyond its inputs: on CUDA from the caching allocator's
  statistics (reset_peak_memory_stats / max_memory_allocated); on CPU from the allocation
  and free events of torch's own allocator, recorded by the profiler (profile_memory=True),
  replayed in time order. Never process RSS: the CPU allocator returns large blocks to the
  OS and RSS lags, so it misses short-lived N x K temporaries.
- the roofline: a `copy_` of a tensor of the logits' size on the same device, timed
  before every round, the bandwidth any loss that reads the logits and writes their
  gradient competes with;
- the builtin (nn.CrossEntropyLoss, the catalog's `seed000_ce`) at the same point, timed
  before every round, for ratios that are comparable across runs and machines when
  absolute times are not (see `Paired`).

On CUDA each call is bracketed by CUDA events and synchronised (never host clocks alone);
the host-side pytest-benchmark numbers are kept beside them.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .cases import default_case
from .records import BuildConfig, Impl

PASSES = ("forward", "backward", "forward_backward")
# The least memory traffic a pass needs, in multiples of the logits' bytes: the forward
# must read the logits; the backward must read them (or a saved softmax of the same size)
# and write their gradient; forward+backward together need no more than that (a fused
# kernel reads once and writes the gradient once). A copy moves 2x (read + write), so
# roofline_fraction = (MIN_TRAFFIC * L / t) / (2 * L / t_copy) = MIN_TRAFFIC/2 * t_copy/t.
MIN_TRAFFIC = {"forward": 1.0, "backward": 2.0, "forward_backward": 2.0}
EPS = 0.1  # smoothing of every benchmark: the cost does not depend on it
# Rounds: enough for a median and an IQR (at least 5), about TARGET_S of timed calls.
MIN_ROUNDS, MAX_ROUNDS, TARGET_S = 5, 50, 1.0
# A point is skipped when its logits times this factor exceed the free memory: the worst
# recipes hold a one-hot, a smoothed target, log-probabilities and the gradient at once
# (measured peak_over_logits up to ~6 for the float32 recipes; 8 leaves room for inputs).
MEMORY_FACTOR = 8


@dataclass(frozen=True)
class Point:
    """One benchmark: an implementation at a shape, dtype, device and pass."""

    impl: Impl
    device: str
    dtype: str
    pass_: str
    n: int  # tokens (rows)
    k: int  # classes

    @property
    def logits_bytes(self) -> int:
        return self.n * self.k * torch.empty((), dtype=getattr(torch, self.dtype)).element_size()

    @property
    def key(self) -> tuple:
        """Identifies a point across runs (as reports/compare.py matches benchmarks)."""
        return (self.impl.name, self.device, self.dtype, self.pass_, self.n, self.k)


@dataclass
class Workload:
    """What one round runs: `setup()` untimed (returns the args of `run`), then `run(*args)`."""

    run: Callable
    setup: Callable[[], tuple | None]
    logits: torch.Tensor
    keep: list = field(default_factory=list)  # tensors the workload owns (inputs)


def inputs(point: Point, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(point.n, point.k, generator=gen) * 3.0).to(getattr(torch, point.dtype))
    target = torch.randint(0, point.k, (point.n,), generator=gen)
    return (logits.to(point.device).requires_grad_(True), target.to(point.device))


def build(impl: Impl, point: Point) -> Callable:
    """The implementation's loss function, built as its base case (first reduction)."""
    dtype = getattr(torch, point.dtype)
    weight = None
    if impl.requires_weights:
        gen = torch.Generator().manual_seed(1)
        weight = (torch.rand(point.k, generator=gen) * 1.8 + 0.2).to(dtype).to(point.device)
    cfg = BuildConfig(eps=EPS, reduction=default_case(impl).reduction, num_classes=point.k,
                      device=point.device, dtype=dtype, weight=weight, ignore_index=None)
    return impl.build(cfg)


def workload(impl: Impl, point: Point, seed: int = 0) -> Workload:
    """The timed call of `impl` at `point` (the impl may differ from point.impl: the builtin
    reference measured at the same point). Everything a user of the recipe pays is inside:
    log_softmax for log-probability recipes, the clone for recipes that mutate the logits."""
    logits, target = inputs(point, seed)
    loss_fn = build(impl, point)

    def forward():
        fed = logits.clone() if impl.mutates_input else logits
        if impl.input == "log_probs":
            fed = F.log_softmax(fed, dim=-1)
        out = loss_fn(fed, target)
        return out if out.ndim == 0 else out.sum()  # "none" reductions: a scalar to backprop

    def reset():
        logits.grad = None

    if point.pass_ == "forward":
        return Workload(run=forward, setup=lambda: reset(), logits=logits, keep=[target])
    if point.pass_ == "backward":
        def setup():
            reset()
            loss = forward()
            synchronize(point.device)
            return (loss,), {}
        return Workload(run=lambda loss: loss.backward(), setup=setup, logits=logits, keep=[target])
    if point.pass_ == "forward_backward":
        return Workload(run=lambda: forward().backward(), setup=lambda: reset(), logits=logits,
                        keep=[target])
    raise ValueError(f"pass {point.pass_!r} is not one of {PASSES}")


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _args(setup: Callable) -> tuple[tuple, dict]:
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


def time_calls(run: Callable, setup: Callable, device: str, rounds: int, warmup: int = 1) -> list[float]:
    """Seconds per call, our own loop (used for the copy and for a builtin that was not
    benchmarked in this run); CUDA events on CUDA, perf_counter on CPU."""
    timer = CudaEventTimer(run) if device == "cuda" else None
    times = []
    for i in range(warmup + rounds):
        args, kwargs = _args(setup)
        if timer is not None:
            timer(*args, **kwargs)
            continue
        started = time.perf_counter()
        run(*args, **kwargs)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return timer.seconds[warmup:] if timer is not None else times


def rounds_for(seconds_per_call: float) -> int:
    """Rounds to time: about TARGET_S of calls, at least MIN_ROUNDS, at most MAX_ROUNDS."""
    if seconds_per_call <= 0:
        return MAX_ROUNDS
    return max(MIN_ROUNDS, min(MAX_ROUNDS, math.ceil(TARGET_S / seconds_per_call)))


def median_and_iqr(seconds: list[float]) -> tuple[float, float]:
    if len(seconds) < 2:
        return (seconds[0] if seconds else float("nan")), float("nan")
    q1, _, q3 = statistics.quantiles(seconds, n=4, method="inclusive")
    return statistics.median(seconds), q3 - q1


def roofline_fraction(pass_: str, seconds: float, copy_s: float | None) -> float | None:
    """Achieved bandwidth of the pass's least traffic over the copy's bandwidth (with
    seconds=1, copy_s is the median per-round copy/pass time ratio of a paired run)."""
    if not seconds or not copy_s or not math.isfinite(seconds) or not math.isfinite(copy_s):
        return None
    return MIN_TRAFFIC[pass_] / 2.0 * copy_s / seconds


def _cpu_peak_from_events(events) -> int:
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def peak_bytes(run: Callable, args: tuple = (), kwargs: dict | None = None, device: str = "cpu") -> int:
    """Peak bytes allocated during `run(*args)` beyond what was allocated before it.

    CUDA: the allocator's peak since a reset, minus what was allocated at the reset.
    CPU: the profiler's allocator events ("[memory]": +bytes on allocation, -bytes on free)
    summed in time order; the running sum's maximum is the peak (torch's private
    `kineto_results` is the only place the events' order and sizes are exposed)."""
    kwargs = kwargs or {}
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run(*args, **kwargs)
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run(*args, **kwargs)
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    return _cpu_peak_from_events(events)


def machine_info() -> dict:
    """CPU model, threads, GPU name and memory, torch/CUDA versions: beside every benchmark."""
    from .results import _cpu_model

    info = {
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(), "torch": torch.__version__,
        "cuda_version": torch.version.cuda, "python": platform.python_version(), "gpus": [],
    }
    if torch.cuda.is_available():
        info["cudnn"] = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": props.name, "memory_bytes": props.total_memory,
                                 "capability": f"{props.major}.{props.minor}"})
    return info


def free_bytes(device: str) -> int | None:
    """Memory a point may use: free GPU memory, or MemAvailable on Linux; None if unknown."""
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


def too_big(point: Point) -> str | None:
    """Why a point cannot run here (the full sweep's vocabularies need a big machine)."""
    free = free_bytes(point.device)
    need = point.logits_bytes * MEMORY_FACTOR
    if free is not None and need > free:
        return (f"{point.n}x{point.k} {point.dtype} needs about {need / 2**30:.1f} GiB "
                f"({MEMORY_FACTOR}x the logits), {point.device} has {free / 2**30:.1f} GiB free")
    return None


# Sweeps: (tokens n, classes k, dtypes). `quick` completes in a few minutes on a 2-core
# CPU; `full` has the LLM vocabularies (GPT-2 50257, Llama-3 128256, Gemma 256000) at
# 8192 tokens and wants a machine that holds 8x the logits (too_big skips the rest).
SIZES = {
    "quick": ((1024, 1000, ("float32",)), (1024, 8192, ("float32", "bfloat16")),
              (1024, 32000, ("float32",))),
    "full": tuple((8192, k, ("float32", "bfloat16")) for k in (32000, 50257, 128256, 256000)),
}
# The reference's own throughput (what one conformance check costs), per sweep.
REFERENCE_SHAPE = {"quick": (256, 32000), "full": (1024, 128256)}
# The no-op whose time is the harness's overhead: shape-independent, measured at this one.
NOOP_SHAPE = (1024, 1000)
BUILTIN = "seed000_ce"  # the ratio's denominator: nn.CrossEntropyLoss(label_smoothing=eps)


def _noop_build(cfg: BuildConfig):
    leaf = torch.zeros((), device=cfg.device, requires_grad=True)  # backward touches one scalar
    return lambda logits, target: leaf


NOOP = Impl(name="noop", build=_noop_build, convention="inclusive", form="ce",
            description="returns a fixed scalar: its time is the harness's own overhead")


class State:
    """Per-session: the builtin whose time is every ratio's denominator."""

    def __init__(self, builtin: Impl):
        self.builtin = builtin


class Paired:
    """Times the builtin and the copy in pytest-benchmark's untimed `setup`, right before
    each timed round of the implementation: ABAB interleaving, so a change of load on a
    shared machine (other processes, frequency) hits numerator and denominator alike.
    Measured without it, two quick sweeps on the same commit disagreed by up to 30x in
    ratio_to_builtin (each test's rounds were stable; the load changed between tests)."""

    def __init__(self, work: Workload, point: Point, builtin: Impl | None):
        self.work = work
        self.device = point.device
        self.builtin = workload(builtin, point) if builtin is not None else None
        src = torch.randn(point.n, point.k).to(getattr(torch, point.dtype)).to(point.device)
        dst = torch.empty_like(src)
        self.copy = lambda: dst.copy_(src)
        self.builtin_s: list[float] = []
        self.copy_s: list[float] = []

    def setup(self):
        self.copy_s += time_calls(self.copy, lambda: None, self.device, rounds=1, warmup=0)
        if self.builtin is not None:
            self.builtin_s += time_calls(self.builtin.run, self.builtin.setup, self.device,
                                         rounds=1, warmup=0)
        return self.work.setup()


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and math.isfinite(a) and math.isfinite(b) else None


def _paired_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    """Median of the per-round ratios (rounds are paired: same load)."""
    ratios = [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]
    return statistics.median(ratios) if ratios else None


def measure(benchmark, point: Point, state: State, kind: str = "impl") -> dict:
    """Time `point` with pytest-benchmark (pedantic: our rounds, one warm-up; the builtin
    and the copy interleaved in its setup), then measure its peak memory in two more,
    untimed calls; return the results.json entry."""
    work = workload(point.impl, point)
    args, kwargs = _args(work.setup)
    started = time.perf_counter()
    work.run(*args, **kwargs)  # calibration, and the first warm-up (allocator, lazy init)
    synchronize(point.device)
    rounds = rounds_for(time.perf_counter() - started)
    warmup = 1
    is_builtin = point.impl.name == state.builtin.name
    paired = Paired(work, point, None if kind != "impl" or is_builtin else state.builtin)
    timer = CudaEventTimer(work.run) if point.device == "cuda" else None
    benchmark.pedantic(timer or work.run, setup=paired.setup if kind == "impl" else work.setup,
                       rounds=rounds, warmup_rounds=warmup, iterations=1)
    stats = benchmark.stats.stats
    host_median, host_iqr = float(stats.median), float(stats.iqr)
    seconds = timer.seconds[warmup:] if timer is not None else list(stats.data)
    median, iqr = median_and_iqr(seconds)
    # The minimum of two calls: the first call after timing can still pay a one-off
    # (measured: 1 of 96 points once peaked one logits' size higher).
    peak = min(peak_bytes(work.run, *_args(work.setup), point.device) for _ in range(2))
    entry = {
        "kind": kind, "impl": point.impl.name, "device": point.device, "dtype": point.dtype,
        "pass": point.pass_, "n": point.n, "k": point.k,
        "median_s": median, "iqr_s": iqr, "rounds": int(stats.rounds), "warmup_rounds": warmup,
        "timer": "cuda_event" if point.device == "cuda" else "perf_counter",
        "host_median_s": host_median, "host_iqr_s": host_iqr, "threads": torch.get_num_threads(),
        "peak_bytes": peak, "logits_bytes": point.logits_bytes,
        "peak_over_logits": peak / point.logits_bytes,
        "roofline_fraction": None, "copy_median_s": None,
        "ratio_to_builtin": None, "builtin_median_s": None,
    }
    if kind == "impl":
        copies = paired.copy_s[warmup:]
        builtins = [] if is_builtin else paired.builtin_s[warmup:]
        copy_s = median_and_iqr(copies)[0]
        entry.update(
            copy_median_s=copy_s,
            roofline_fraction=roofline_fraction(point.pass_, 1.0, _paired_ratio(copies, seconds)),
            builtin_median_s=median if is_builtin else median_and_iqr(builtins)[0],
            ratio_to_builtin=1.0 if is_builtin else _paired_ratio(seconds, builtins))
    benchmark.extra_info.update(entry)
    return entry
