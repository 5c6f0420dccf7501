"""Vocab-parallel benchmarks (suites/test_benchmarks.py, the last test): per-rank time and
peak memory of a vocab_parallel record at each world size, forward and forward+backward,
against nn.CrossEntropyLoss on the whole logits in one process.

The record runs on its persistent rank group (lsuite/running/distributed.py, `call_ranks(...,
measure_rank, ...)`); `measure_rank` is the rank's side, `entries` the judge's. On every rank:

- the whole logits are made as lsuite/benchmarking/bench.py makes a point's (`bench.inputs`, the same
  seed on every rank) and the rank keeps its columns; the record is built by the suite's
  runner with the rank's vocab_range and the group, as in every check;
- the calls per round (`timing.calls_per_round`, rounds of at least timing.MIN_ROUND_S) are
  the slowest rank's and the rounds (`timing.rounds_for`) the most any rank asks for, both
  agreed by an all-reduce (max), since every call holds collectives and every rank must make
  the same calls;
- each round starts at a barrier and is timed on the wall clock (perf_counter; CUDA events
  on CUDA): a rank's wait for its peers in a collective is part of what a vocab-parallel
  loss costs, which the thread CPU time the logits benchmarks use on CPU would leave out;
- interleaved with every round, rank 0 times the builtin (the catalog's nn.CrossEntropyLoss,
  `bench.workload` at the same n, k, dtype and pass: the whole logits, one process) while
  the other ranks wait at the barrier, on the same clock as the ranks; ratio_to_builtin is the median of the per-round
  ratios (`timing.paired_ratio`), as in the logits benchmarks;
- peak memory: the median over measuring.MEMORY_CALLS calls of `memory.peak_bytes` (every rank
  makes the same calls); `logits_bytes` is the whole N x K logits, so peak_over_logits of
  world 4 is the quarter a rank is meant to hold, plus what its recipe adds.

One entry per rank per world (/tmp contract: input "vocab_parallel", world, rank,
baseline_path).
"""

from __future__ import annotations

import statistics
import time

import torch

from lsresults import benchdiff
from lsuite.benchmarking import bench, machine, measuring, memory, timing
from lsuite.catalogs import catalog
from lsuite.inputs.cases import default_case, shard_bounds
from lsuite.kinds import VOCAB_PARALLEL
from lsuite.running import distributed, runner
from lsuite.running.runner import Context

PASSES = ("forward", "forward_backward")
BASELINE_PATH = "nn.CrossEntropyLoss on the whole logits, one process"
# (tokens n, classes k, dtype) per sweep; the quick one finishes in about a minute on 2 cores.
SIZES = {"quick": ((1024, 8192, "float32"),),
         "full": ((8192, 32000, "float32"), (8192, 32000, "bfloat16"), (8192, 128256, "bfloat16"))}
WORLDS = (1, 2, 4)
LIMIT_S = 600.0  # one point on every rank


def oversubscribed(device: str, world: int) -> str | None:
    """Why CPU ranks cannot be timed here: more ranks than cores. Each round is timed on the
    wall clock, so a rank would time its peers' turns on its core. Measured on the 2-core
    machine, 5 quick sweeps: world 4 ranks' forward moved by up to +28% between runs of the
    same commit, while world 1 and 2 stayed within the logits points' spread (docs/benchmarks.md,
    Benchmarks)."""
    if device == "cpu" and world > machine.cores():
        return (f"world {world} on {machine.cores()} CPU cores: the ranks would share cores and time "
                f"each other (benchmark it on a machine with {world} or more cores)")
    return None


def _wall(device: str):
    """A callable timer on the wall clock (CUDA events on CUDA)."""
    if device == "cuda":
        return timing.CudaEventTimer

    class Wall(timing.CpuTimer):
        def __init__(self, fn):
            super().__init__(fn)
            self.clock = time.perf_counter
    return Wall


def _workload(ctx: Context, pass_: str, rank: int, world: int, group) -> bench.Workload:
    case = ctx.case
    point = bench.Point(ctx.impl, case.device, case.dtype, pass_, case.N, case.K)
    whole, target = bench.inputs(point)
    lo, hi = shard_bounds(case.K, world)[rank]
    local = whole.detach()[:, lo:hi].contiguous().requires_grad_(True)
    del whole
    spec = VOCAB_PARALLEL.call
    loss_fn = runner.build(ctx, None, spec, world=world, rank=rank, vocab_range=(lo, hi), group=group)
    return bench.passes(lambda: runner.call(ctx, loss_fn, spec, {"logits": local}, target), [local],
                        pass_, case.device)


def _agree_max(values: list[float], device: str) -> list[float]:
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()


def measure_rank(ctx: Context, pass_: str, threads: int, rank: int, world: int, group) -> dict:
    """The rank's side: its seconds per call in each round, its peak memory, and on rank 0
    the builtin's seconds per call in the same rounds (module docstring)."""
    import torch.distributed as dist

    torch.set_num_threads(threads)  # the rank restores its torch state after every call
    timing.pin_allocator()  # as in the judge's process: allocations independent of history
    device = ctx.case.device
    work = _workload(ctx, pass_, rank, world, group)
    builtin = None
    if rank == 0:
        point = bench.Point(catalog.by_name()[bench.BUILTIN], device, ctx.case.dtype, pass_,
                            ctx.case.N, ctx.case.K)
        builtin = bench.workload(point.impl, point)
    for _ in range(2):  # allocator, lazy initialisation
        timing.time_call(work.run, work.setup, device)
    started = time.perf_counter()
    timing.time_call(work.run, work.setup, device)
    per_call = time.perf_counter() - started
    calls = timing.calls_per_round(_agree_max([per_call], device)[0])
    rounds = int(_agree_max([timing.rounds_for(per_call * calls)], device)[0])
    own = timing.Batch(work.run, work.setup, calls)
    other = None
    if builtin is not None:
        timing.time_call(builtin.run, builtin.setup, device)
        other = timing.Batch(builtin.run, builtin.setup,
                             timing.calls_per_round(timing.time_call(builtin.run, builtin.setup, device)))
    # the builtin on the same clock as the rank (a ratio of wall time to CPU time would count
    # the time given to other processes in the numerator only)
    timer = _wall(device)(own.run)
    builtin_timer = None if other is None else _wall(device)(other.run)
    for _ in range(measuring.WARMUP_ROUNDS + rounds):
        if builtin_timer is not None:
            args, kwargs = other.setup()
            builtin_timer(*args, **kwargs)
        args, kwargs = own.setup()
        dist.barrier(group)
        timer(*args, **kwargs)
    seconds = [s / calls for s in timer.seconds[measuring.WARMUP_ROUNDS:]]
    peaks = sorted(memory.peak_bytes(work.run, *timing.call_args(work.setup), device)
                   for _ in range(measuring.MEMORY_CALLS))
    builtin_s = [] if builtin_timer is None else [
        s / other.calls for s in builtin_timer.seconds[measuring.WARMUP_ROUNDS:]]
    return {"seconds": seconds, "builtin_seconds": builtin_s, "calls": calls,
            "peak_bytes": peaks[len(peaks) // 2], "threads": torch.get_num_threads(),
            "timer": "cuda_event" if device == "cuda" else "perf_counter"}


def context(impl, device: str, dtype: str, n: int, k: int, world: int) -> Context:
    case = default_case(impl).replace(device=device, dtype=dtype, eps=bench.EPS, K=k, N=n, world=world)
    return Context(impl=impl, case=case)


def entries(impl, device: str, dtype: str, pass_: str, n: int, k: int, world: int,
            threads: int = measuring.THREADS) -> list[dict]:
    """One results.json entry per rank of `impl` at this point (the judge's side)."""
    ctx = context(impl, device, dtype, n, k, world)
    answers = distributed.call_ranks(ctx, world, measure_rank, (pass_, threads), LIMIT_S)
    builtins = answers[0]["builtin_seconds"]
    logits_bytes = n * k * torch.empty((), dtype=getattr(torch, dtype)).element_size()
    out = []
    for rank, answer in enumerate(answers):
        seconds = answer["seconds"]
        stats = timing.stats_of(seconds)
        ratios = timing.round_ratios(seconds, builtins)
        out.append({
            "kind": "impl", "impl": impl.name, "device": device, "dtype": dtype, "pass": pass_,
            "n": n, "k": k, "measure": "time", "threads": answer["threads"],
            "input": "vocab_parallel", "world": world, "rank": rank, "baseline_path": BASELINE_PATH,
            "median_s": float(stats.median), "iqr_s": float(stats.iqr), "rounds": len(seconds),
            "calls_per_round": answer["calls"], "warmup_rounds": measuring.WARMUP_ROUNDS,
            "timer": answer["timer"],
            "peak_bytes": answer["peak_bytes"], "logits_bytes": logits_bytes,
            "peak_over_logits": answer["peak_bytes"] / logits_bytes,
            "roofline_fraction": None, "copy_median_s": None,
            "builtin_median_s": statistics.median(builtins) if builtins else None,
            "ratio_to_builtin": timing.paired_ratio(seconds, builtins),
            "ratio_samples": benchdiff.thin(ratios) if ratios else None,
            "detectable_slowdown": benchdiff.detectable_alone(ratios) if ratios else None,
        })
    return out
