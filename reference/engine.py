"""How the reference's row work is run: worker threads, scratch blocks and row chunks.

This module knows nothing about losses. Its callers (reference.core) hand it row counts,
the number of classes and a function that fills rows [lo, hi); it cuts the rows into
chunks of about `chunk_elems` elements, runs them on a small thread pool (NumPy releases
the GIL inside ufuncs), and streams chunks in order with bounded memory. A row's result
never depends on how rows are grouped, so every chunk size and thread count gives
bit-identical results (selftests/test_reference_layout.py checks it).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# float64 elements per yielded chunk: 16 MiB, under glibc's 32 MiB cap on the mmap threshold,
# so that freed chunks are recycled by malloc instead of being page-faulted in afresh
DEFAULT_CHUNK_ELEMS = 2**21
# elements per kernel call (2 MiB of float64): small enough to stay in the L3 cache, large
# enough that NumPy's per-call overhead stays a few percent (measured on K = 128256)
BLOCK_ELEMS = 2**18

# fill(lo, hi, g): the row values of rows [lo, hi), their gradient rows written into g
Fill = Callable[[int, int, np.ndarray], np.ndarray]


def default_threads() -> int:
    """REFERENCE_THREADS if set, else min(2, cores): two threads already keep the
    memory-light kernels busy; more gain little and cost memory (a chunk each)."""
    env = os.environ.get("REFERENCE_THREADS")
    return max(1, int(env)) if env else max(1, min(2, os.cpu_count() or 1))


THREADS = default_threads()

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_scratch: dict[int, np.ndarray] = {}  # thread id -> float64 scratch block


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="reference")
        return _pool


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's pool threads: start afresh on first use."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()
    _scratch.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def set_threads(n: int) -> None:
    """Use n worker threads from now on (the environment variable REFERENCE_THREADS sets the default)."""
    global THREADS, _pool
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads={n!r} must be a positive integer")
    with _pool_lock:
        if _pool is not None and n != THREADS:
            _pool.shutdown(wait=True)
            _pool = None
            _scratch.clear()  # the old workers' blocks
        THREADS = n


def clear_workspaces() -> None:
    """Free the per-thread scratch blocks (the benchmark counts them in its peak memory)."""
    _scratch.clear()


def workspace(rows: int, K: int) -> np.ndarray:
    """A per-thread float64 scratch block of at least rows * K elements."""
    ident = threading.get_ident()
    buf = _scratch.get(ident)
    if buf is None or buf.size < rows * K:
        buf = np.empty(rows * K)
        _scratch[ident] = buf
    return buf[: rows * K].reshape(rows, K)


def block_rows(K: int) -> int:
    """Rows per kernel call: about BLOCK_ELEMS elements."""
    return max(1, BLOCK_ELEMS // max(K, 1))


def chunk_bounds(rows: int, K: int, chunk_elems: int | None) -> list[tuple[int, int]]:
    """[lo, hi) row ranges of about chunk_elems elements each (default DEFAULT_CHUNK_ELEMS)."""
    if chunk_elems is None:
        chunk_elems = DEFAULT_CHUNK_ELEMS
    if not isinstance(chunk_elems, int | np.integer) or chunk_elems < 1:
        raise ValueError(f"chunk_elems={chunk_elems!r} must be a positive integer (elements per chunk)")
    per = max(1, int(chunk_elems) // max(K, 1))
    return [(lo, min(lo + per, rows)) for lo in range(0, rows, per)]


def run(jobs, fn) -> list:
    """fn(*job) for every job, in order, on the pool when there is more than one job."""
    if THREADS == 1 or len(jobs) < 2:
        return [fn(*job) for job in jobs]
    return list(_executor().map(lambda job: fn(*job), jobs))


def split(rows: int, K: int, chunk_elems: int | None) -> list[tuple[int, int]]:
    """Work units: the caller's chunks, cut further so that both threads get work."""
    bounds = chunk_bounds(rows, K, chunk_elems)
    per = max(1, -(-rows // (4 * THREADS)))  # at least a few units per thread
    out = []
    for lo, hi in bounds:
        out += [(a, min(a + per, hi)) for a in range(lo, hi, per)]
    return out


def _one_chunk(fill: Fill, K: int, lo: int, hi: int):
    g = np.empty((hi - lo, K))
    return lo, hi, fill(lo, hi, g), g


def _split_chunk(fill: Fill, K: int, lo: int, hi: int):
    """One big chunk computed by all the threads together."""
    g = np.empty((hi - lo, K))
    values = np.empty(hi - lo)
    per = max(1, -(-(hi - lo) // THREADS))

    def work(a, b):
        values[a - lo:b - lo] = fill(a, b, g[a - lo:b - lo])
    run([(a, min(a + per, hi)) for a in range(lo, hi, per)], work)
    return lo, hi, values, g


def stream(fill: Fill, K: int, bounds: list[tuple[int, int]]) -> Iterator[tuple]:
    """(lo, hi, values, g) for each of bounds in order, each g a fresh float64 (hi - lo, K)
    array; up to THREADS + 1 chunks computed ahead on the pool (bounded memory)."""
    if THREADS == 1 or len(bounds) < 2:
        for lo, hi in bounds:
            yield _one_chunk(fill, K, lo, hi)
        return
    if len(bounds) < 2 * THREADS:  # few big chunks: split each one across the threads
        for lo, hi in bounds:
            yield _split_chunk(fill, K, lo, hi)
        return
    pool = _executor()
    pending = deque()
    todo = iter(bounds)
    for lo, hi in todo:
        pending.append(pool.submit(_one_chunk, fill, K, lo, hi))
        if len(pending) > THREADS:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(_one_chunk, fill, K, *nxt))
        yield result
