"""Throughput and peak extra memory of the reference on one large float32 problem.

    python -m reference.bench [--rows 4096 --classes 128256] [--repeats 3] [--threads 2]

Prints GB/s of float32 logits (logits bytes / wall time; median of the repeats, with the
minimum and maximum) for the value alone (`loss`, reduction 'mean') and for the value and
the gradient streamed through `iter_row_chunks` (each chunk is dropped once received, as a
comparing caller would), and the peak memory allocated beyond the inputs (tracemalloc,
one extra traced run each) in MB and as a multiple of the logits' size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np

from . import engine
from .core import iter_row_chunks, loss
from .spec import Spec


def make_inputs(rows: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((rows, classes), dtype=np.float32)
    logits *= 3.0
    target = rng.integers(0, classes, size=rows)
    target[rng.random(rows) < 0.1] = -100  # some ignored rows, as in a padded LM batch
    return logits, target


def run_value(logits, target, spec, chunk_elems):
    return loss(logits, target, spec, chunk_elems=chunk_elems)


def run_value_and_grad(logits, target, spec, chunk_elems):
    total = 0.0
    for _, _, row_values, grad in iter_row_chunks(logits, target, spec, chunk_elems=chunk_elems):
        total += float(row_values.sum())
        del grad
    return total


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peak_extra_bytes(fn) -> int:
    engine.clear_workspaces()  # count the scratch blocks too
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096, help="rows N (default 4096)")
    parser.add_argument("--classes", type=int, default=128256, help="classes K (default 128256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per mode (default 3)")
    parser.add_argument("--threads", type=int, default=engine.THREADS,
                        help=f"worker threads (default {engine.THREADS}: REFERENCE_THREADS or min(2, cores))")
    parser.add_argument("--chunk-elems", type=int, default=engine.DEFAULT_CHUNK_ELEMS,
                        help=f"float64 elements per chunk (default {engine.DEFAULT_CHUNK_ELEMS})")
    parser.add_argument("--convention", default="inclusive", help="convention (default inclusive)")
    args = parser.parse_args(argv)
    engine.set_threads(args.threads)
    spec = Spec(convention=args.convention, form="ce", eps=0.1, reduction="mean", ignore_index=-100)
    logits, target = make_inputs(args.rows, args.classes)
    gb = logits.nbytes / 1e9
    print(f"reference.bench: {args.rows} x {args.classes} float32 logits ({gb:.3f} GB), "
          f"{spec.convention} ce eps=0.1 mean, threads={engine.THREADS}, chunk_elems={args.chunk_elems}, "
          f"median of {args.repeats}")
    modes = [("value (loss)", run_value), ("value+grad (iter_row_chunks)", run_value_and_grad)]
    for name, fn in modes:
        call = lambda fn=fn: fn(logits, target, spec, args.chunk_elems)  # noqa: E731
        call()  # warm up: pool threads, allocator
        times = timed(call, args.repeats)
        rates = sorted(gb / t for t in times)
        peak = peak_extra_bytes(call)
        print(f"  {name:30s} {statistics.median(rates):6.3f} GB/s (min {rates[0]:.3f}, max {rates[-1]:.3f}; "
              f"median {statistics.median(times):.2f} s)   peak extra memory {peak / 1e6:8.1f} MB "
              f"= {peak / logits.nbytes:.4f} x logits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
