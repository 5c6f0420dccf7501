"""What the benchmarks run: points, sweeps, workloads and the baselines they compare with
(lsuite/benchmarking/measuring.py measures one point into its results.json entry).

pytest-benchmark times the implementations (suites/test_benchmarks.py, wired by
lsuite/pytest_plugin/benchplugin.py); this module says what it times and assembles the results.json
entry of each point (`measuring.measure`):

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

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lsuite.benchmarking import memory, timing
from lsuite.inputs.cases import default_case
from lsuite.kinds import HIDDEN_STATES, LOGITS
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
    return runner.build(context(impl, point), weight, kind_for(impl, point).call)


def kind_for(impl: Impl, point: Point):
    """The input kind `impl` is called as at `point` (lsuite/kinds/): a kind of the record's
    own, else hidden states at a point with a hidden size, else logits."""
    if impl.kind is not None:
        return impl.kind
    return HIDDEN_STATES if point.h else LOGITS


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
    if impl.kind is not None:  # a kind of the record's own: its seeded inputs
        kind = impl.kind
        named, target, _ = runner.tensors(ctx, kind.feed(kind.make_inputs(impl, ctx.case, seed),
                                                         cotangent=None))
        leaves = list(named.values())
    elif point.h:
        hidden, classifier, bias, target = linear_inputs(point, seed)
        leaves = [t for t in (hidden, classifier, bias) if t is not None]

        named = {"hidden": hidden, "classifier": classifier, "bias": bias}
    else:
        logits, target = inputs(point, seed)
        leaves = [logits]
        named = {"logits": logits}
    spec = kind_for(impl, point).call

    def call():
        return runner.call(ctx, loss_fn, spec, named, target)

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
