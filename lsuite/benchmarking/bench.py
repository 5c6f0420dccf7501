"""What the benchmarks run and record: points, sweeps, workloads, and one point's entry.

pytest-benchmark times the implementations (suites/test_benchmarks.py, wired by
lsuite/pytest_plugin/benchplugin.py); this module says what it times and assembles the results.json
entry of each point (`measure`):

- a `Point` (implementation x shape x dtype x device x pass) of a sweep (`SIZES`), and
  its `workload`: what one round runs, everything a user of the recipe pays included;
- beside each round, interleaved (lsuite/benchmarking/timing.py): the builtin (nn.CrossEntropyLoss,
  the catalog's `seed000_ce`) at the same point, for ratios that are comparable across
  runs and machines when absolute times are not, and a `copy_` of a tensor of the
  logits' size (`copy_workload`), the bandwidth any loss that reads the logits and writes
  their gradient competes with (the roofline);
- the peak memory of one call beyond its inputs (lsuite/benchmarking/memory.py).

Hidden-states records (fused linear cross-entropy, `input="hidden_states"`) have points of
their own (`LINEAR_SIZES`: n x hidden size h x k): they are called on h (n, h), W (k, h)
and, when the record takes one, b (k,), and compared with `LINEAR_BUILTIN`, F.linear
followed by nn.CrossEntropyLoss, timed interleaved and with its own peak in the entry
(`baseline_peak_over_logits`): the saving users choose these kernels for. `logits_bytes`
stays n x k of the dtype, the logits they avoid; no copy is timed (a fused kernel is
bound by its matrix products, not by the logits' bytes: no roofline).

On CUDA each call is bracketed by CUDA events and synchronised (never host clocks
alone); the host-side pytest-benchmark numbers are kept beside them.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lsresults import benchdiff
from lsuite.benchmarking import memory, timing
from lsuite.inputs.cases import default_case
from lsuite.record.records import BuildConfig, Impl
from lsuite.running import runner
from lsuite.running.runner import Context

PASSES = ("forward", "backward", "forward_backward")
# The least memory traffic a pass needs, in multiples of the logits' bytes: the forward
# must read the logits; the backward must read them (or a saved softmax of the same size)
# and write their gradient; forward+backward together need no more than that (a fused
# kernel reads once and writes the gradient once). A copy moves 2x (read + write), so
# roofline_fraction = (MIN_TRAFFIC * L / t) / (2 * L / t_copy) = MIN_TRAFFIC/2 * t_copy/t.
MIN_TRAFFIC = {"forward": 1.0, "backward": 2.0, "forward_backward": 2.0}
EPS = 0.1  # smoothing of every benchmark: the cost does not depend on it
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
    h: int = 0  # hidden size of a hidden-states point; 0 for a logits point
    bias: bool = False  # hidden states: a bias b (k,) is passed (the record under test takes one)

    @property
    def input(self) -> str:
        return "hidden_states" if self.h else "logits"

    @property
    def element_size(self) -> int:
        return torch.empty((), dtype=getattr(torch, self.dtype)).element_size()

    @property
    def logits_bytes(self) -> int:
        """n x k of the dtype: the logits (the ones a fused linear kernel avoids holding)."""
        return self.n * self.k * self.element_size

    @property
    def input_bytes(self) -> int:
        """What a call is given besides the logits' size: h, W and b of a hidden-states point."""
        return (self.n * self.h + self.k * self.h + self.k) * self.element_size if self.h else 0

    @property
    def key(self) -> tuple:
        """Identifies a point across runs (as reports/compare.py matches benchmarks)."""
        return (self.impl.name, self.device, self.dtype, self.pass_, self.n, self.k, self.h)


@dataclass
class Workload:
    """What one round runs: `setup()` untimed (returns the args of `run`), then `run(*args)`."""

    run: Callable
    setup: Callable[[], tuple | None]


def inputs(point: Point, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(point.n, point.k, generator=gen) * 3.0).to(getattr(torch, point.dtype))
    target = torch.randint(0, point.k, (point.n,), generator=gen)
    return (logits.to(point.device).requires_grad_(True), target.to(point.device))


def linear_inputs(point: Point, seed: int = 0) -> tuple:
    """(h, W, b or None, target) of a hidden-states point: logits z = h·Wᵀ + b of about the
    spread of `inputs`' (standard deviation 3); a bias when the point has one (the record
    under test takes one; the baseline at the same point gets the same arguments)."""
    gen = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, point.dtype)
    hidden = torch.randn(point.n, point.h, generator=gen)
    classifier = torch.randn(point.k, point.h, generator=gen) * (3.0 / math.sqrt(point.h))
    bias = torch.randn(point.k, generator=gen) * 0.1 if point.bias else None
    target = torch.randint(0, point.k, (point.n,), generator=gen)
    leaves = [None if t is None else t.to(dtype).to(point.device).requires_grad_(True)
              for t in (hidden, classifier, bias)]
    return (*leaves, target.to(point.device))


def context(impl: Impl, point: Point) -> Context:
    """The runner's context for `impl` at `point`: its base case (first reduction)."""
    case = default_case(impl).replace(device=point.device, dtype=point.dtype, eps=EPS,
                                      K=point.k, N=point.n)
    if point.h:
        case = case.replace(H=point.h, bias="random" if point.bias else "none")
    return Context(impl=impl, case=case)


def build(impl: Impl, point: Point) -> Callable:
    """The implementation's loss function, built by the suite's runner like every check's."""
    weight = None
    if impl.requires_weights:
        gen = torch.Generator().manual_seed(1)
        weight = (torch.rand(point.k, generator=gen) * 1.8 + 0.2).to(getattr(torch, point.dtype))
        weight = weight.to(point.device)
    return runner.build(context(impl, point), weight)


def workload(impl: Impl, point: Point, seed: int = 0) -> Workload:
    """The timed call of `impl` at `point` (the impl may differ from point.impl: the builtin
    reference measured at the same point). Everything a user of the recipe pays is inside:
    log_softmax for log-probability recipes, the clone for recipes that mutate the logits
    (the runner's `call` does both, as for every check). Every call starts without a
    gradient on the logits (a backward writes it, never accumulates), also when a round
    repeats the call (lsuite.benchmarking.timing.Batch); `setup` clears it too, so that a memory
    measurement does not see the previous gradient freed."""
    ctx = context(impl, point)
    loss_fn = build(impl, point)
    if point.h:
        hidden, classifier, bias, target = linear_inputs(point, seed)
        leaves = [t for t in (hidden, classifier, bias) if t is not None]

        def call():
            return runner.call_linear(ctx, loss_fn, hidden, classifier, target, bias)
    else:
        logits, target = inputs(point, seed)
        leaves = [logits]

        def call():
            return runner.call(ctx, loss_fn, logits, target)

    return passes(call, leaves, point.pass_, point.device)


def passes(call, leaves: list, pass_: str, device: str) -> Workload:
    """The timed pass of a loss call (`call()` returns the loss) whose gradients land in
    `leaves`: the forward, the backward of a forward made in the untimed setup, or both."""
    def forward():
        out = call()
        return out if out.ndim == 0 else out.sum()  # "none" reductions: a scalar to backprop

    def reset():
        for leaf in leaves:
            leaf.grad = None

    if pass_ == "forward":
        return Workload(run=forward, setup=lambda: reset())
    if pass_ == "backward":
        def setup():
            reset()
            loss = forward()
            timing.synchronize(device)
            return (loss,), {}

        def backward(loss):
            reset()
            loss.backward()
        return Workload(run=backward, setup=setup)
    if pass_ == "forward_backward":
        def forward_backward():
            reset()
            forward().backward()
        return Workload(run=forward_backward, setup=lambda: reset())
    raise ValueError(f"pass {pass_!r} is not one of {PASSES}")


def copy_workload(point: Point) -> Workload:
    """A `copy_` of a tensor of the logits' size, dtype and device: the roofline."""
    src = torch.randn(point.n, point.k).to(getattr(torch, point.dtype)).to(point.device)
    dst = torch.empty_like(src)
    return Workload(run=lambda: dst.copy_(src), setup=lambda: None)


def roofline_fraction(pass_: str, seconds: float, copy_s: float | None) -> float | None:
    """Achieved bandwidth of the pass's least traffic over the copy's bandwidth (with
    seconds=1, copy_s is the median per-round copy/pass time ratio of a paired run)."""
    if not seconds or not copy_s or not math.isfinite(seconds) or not math.isfinite(copy_s):
        return None
    return MIN_TRAFFIC[pass_] / 2.0 * copy_s / seconds


def too_big(point: Point) -> str | None:
    """Why a point cannot run here (the full sweep's vocabularies need a big machine). A
    hidden-states point needs the baseline's logits too, and h, W, b with their gradients
    (twice the inputs, and as much again for float32 copies of low-precision ones)."""
    free = memory.free_bytes(point.device)
    need = point.logits_bytes * MEMORY_FACTOR + 4 * point.input_bytes
    if free is not None and need > free:
        shape = f"{point.n}x{point.h}x{point.k}" if point.h else f"{point.n}x{point.k}"
        extra = " and 4x the inputs" if point.h else ""
        return (f"{shape} {point.dtype} needs about {need / 2**30:.1f} GiB "
                f"({MEMORY_FACTOR}x the logits{extra}), {point.device} has {free / 2**30:.1f} GiB free")
    return None


# Sweeps: (tokens n, classes k, dtypes). `quick` completes in a few minutes on a 2-core
# CPU; `full` has the LLM vocabularies (GPT-2 50257, Llama-3 128256, Gemma 256000) at
# 8192 tokens and wants a machine that holds 8x the logits (too_big skips the rest).
SIZES = {
    "quick": ((1024, 1000, ("float32",)), (1024, 8192, ("float32", "bfloat16")),
              (1024, 32000, ("float32",))),
    "full": tuple((8192, k, ("float32", "bfloat16")) for k in (32000, 50257, 128256, 256000)),
}
# Hidden-states sweeps: (tokens n, hidden size h, classes k, dtypes). Measured on the shared
# 2-core CPU, one thread (docs/benchmarks.md): the example's forward+backward at
# 1024 x 256 x 8192 takes about 0.5 s, at 1024 x 512 x 32000 about 4.4 s in float32 and
# 5.9 s in bfloat16 (a point of 8 rounds or more, the baseline interleaved: minutes),
# so `quick` keeps h = 256 and bfloat16 at k = 8192 only. `full` is a Llama-3-8B head
# (h 4096, k 128256) at 8192 tokens: 4.2 GB of float32 logits, for a big machine.
LINEAR_SIZES = {
    "quick": ((1024, 256, 8192, ("float32", "bfloat16")), (1024, 256, 32000, ("float32",))),
    "full": ((8192, 4096, 128256, ("float32", "bfloat16")),),
}
# Deterministic mode counts instructions at these many tokens at most: counts grow in
# proportion to the rows, so fewer rows change the ratios little and the run time under
# callgrind (about 100x native) a lot.
INSTRUCTION_ROWS = 128
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


def _linear_builtin_build(cfg: BuildConfig):
    ce = torch.nn.CrossEntropyLoss(weight=cfg.weight, reduction=cfg.reduction, label_smoothing=cfg.eps,
                                   ignore_index=-100 if cfg.ignore_index is None else cfg.ignore_index)
    return lambda hidden, classifier, target, bias=None: ce(F.linear(hidden, classifier, bias), target)


# The hidden-states points' denominator: the plain path that materialises the logits.
LINEAR_BASELINE_PATH = "F.linear(h, W, b) + nn.CrossEntropyLoss(label_smoothing=eps)"
LINEAR_BUILTIN = Impl(name="linear_ce", build=_linear_builtin_build, input="hidden_states",
                      convention="inclusive", form="ce", nd=False, unbatched=False,
                      description=f"{LINEAR_BASELINE_PATH}: the N x K logits held, then the loss")


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
