"""Layout, validation, reductions and the chunked driver behind the public functions.

Every input is brought to a 2-D (rows, K) view with the classes last (PyTorch layout
rules, nn.CrossEntropyLoss), processed in row chunks by the kernels in float64, and put
back into the caller's layout. Work is split into row blocks of about BLOCK_ELEMS
elements (cache-sized) that a small thread pool runs in parallel (NumPy releases the GIL
inside ufuncs); no row's result depends on the blocking, so every chunk size and thread
count gives bit-identical results.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import kernels
from .spec import BINARY, Result, Spec, as_weight, check_classes
from .targets import Structured, check_class, structured, target_distribution

# float64 elements per yielded chunk: 16 MiB, under glibc's 32 MiB cap on the mmap threshold,
# so that freed chunks are recycled by malloc instead of being page-faulted in afresh
DEFAULT_CHUNK_ELEMS = 2**21
# elements per kernel call (2 MiB of float64): small enough to stay in the L3 cache, large
# enough that NumPy's per-call overhead stays a few percent (measured on K = 128256)
BLOCK_ELEMS = 2**18


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


def _workspace(rows: int, K: int) -> np.ndarray:
    """A per-thread float64 scratch block of at least rows * K elements."""
    ident = threading.get_ident()
    buf = _scratch.get(ident)
    if buf is None or buf.size < rows * K:
        buf = np.empty(rows * K)
        _scratch[ident] = buf
    return buf[: rows * K].reshape(rows, K)


@dataclass
class Problem:
    """One validated loss evaluation, flattened to rows (the kernels read these fields)."""

    spec: Spec
    K: int
    x: np.ndarray  # (R, K) logits in their own dtype
    y: np.ndarray | None  # (R,) int64 class indices (index targets)
    kept: np.ndarray | None  # (R,) bool, None when every row counts
    t: np.ndarray | None  # (R, K) probability targets / labels ("probs")
    weight: np.ndarray | None  # (K,) float64
    structured: Structured | None  # categorical conventions with index targets
    v: np.ndarray | None  # weight * u, None when all ones
    vsum: float  # sum of v
    denominator: float  # of the reduction; 1 for none / sum
    cot: float | np.ndarray  # scalar, (R,) or (R, K) for bce 'none'
    layout: str  # "unbatched", "2d" or "nd"
    logits_shape: tuple
    out_shape: tuple  # shape of the 'none' output

    @property
    def rows(self) -> int:
        return self.x.shape[0]

    def q_row(self, target_class: int) -> np.ndarray:
        return target_distribution(self.spec, self.K, target_class)

    def factor(self, start: int, stop: int) -> np.ndarray:
        """cotangent / denominator per row (or per element), 0 when the denominator is 0."""
        if self.denominator == 0:
            shape = (stop - start, self.K) if np.ndim(self.cot) == 2 else (stop - start,)
            return np.zeros(shape)
        if np.ndim(self.cot) == 0:
            return np.full(stop - start, float(self.cot) / self.denominator)
        return self.cot[start:stop] / self.denominator


def _rows_last(a: np.ndarray) -> np.ndarray:
    """(K,) -> (1, K); (N, K) as is; (N, K, d...) -> (N*d..., K), classes last."""
    if a.ndim == 1:
        return a[None, :]
    if a.ndim == 2:
        return a
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _as_logits(logits) -> np.ndarray:
    x = np.asarray(logits)
    if x.dtype.kind not in "fiu":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"logits have dtype {x.dtype}: pass a real floating array") from exc
    if x.ndim == 0:
        raise ValueError("logits are 0-d: pass (K,), (N, K) or (N, K, d1, ...) logits")
    return x


def _index_target(target, x: np.ndarray, spec: Spec) -> np.ndarray:
    tgt = np.asarray(target)
    if tgt.dtype.kind not in "iu":
        hint = " (pass targets='probs' in the Spec for probability targets)" if tgt.dtype.kind == "f" else ""
        raise ValueError(f"target has dtype {tgt.dtype}: class-index targets must be integers{hint}")
    expected = () if x.ndim == 1 else (x.shape[0], *x.shape[2:])
    if tgt.shape != expected:
        raise ValueError(f"target has shape {tgt.shape} but logits of shape {x.shape} need a "
                         f"class-index target of shape {expected}")
    return tgt


def _denominator(spec: Spec, logits_shape: tuple, kept_count: int, weight_sum: float | None,
                 rows: int) -> float:
    """What a scalar reduction divides the summed row losses by (CONVENTIONS.md §4, §6).

    kept_count: non-ignored rows; weight_sum: sum of w_y over them (None without weights);
    rows: every row / position, ignored ones included. 1 for 'none' and 'sum'.
    """
    reduction = spec.reduction
    if reduction in ("none", "sum"):
        return 1.0
    if reduction == "mean":
        if spec.targets == "probs":
            return float(rows)
        return float(kept_count) if weight_sum is None else float(weight_sum)
    if reduction == "row_mean":
        return float(rows)
    if reduction == "batchmean":
        return float(logits_shape[0])
    return float(np.prod(logits_shape))  # element_mean


def prepare(logits, target, spec: Spec, weight=None, cotangent=None, *, two_d: bool = False) -> Problem:
    if not isinstance(spec, Spec):
        raise ValueError(f"spec is a {type(spec).__name__}: pass a reference.Spec")
    x = _as_logits(logits)
    if two_d and x.ndim != 2:
        raise ValueError(f"iter_row_chunks takes 2-D (rows, K) logits, got shape {x.shape}: "
                         f"use loss / loss_and_grad, or move the classes last and reshape")
    K = x.shape[0] if x.ndim == 1 else x.shape[1]
    check_classes(spec, K)
    w = as_weight(weight, K)
    layout = "unbatched" if x.ndim == 1 else ("2d" if x.ndim == 2 else "nd")
    y = kept = t = None
    if spec.targets == "index":
        tgt = _index_target(target, x, spec)
        y = tgt.reshape(-1).astype(np.int64)
        if spec.ignore_index is not None:
            kept = y != spec.ignore_index
        ys = y if kept is None else y[kept]
        bad = (ys < 0) | (ys >= K)
        if spec.convention == "padding_excluded" and spec.pad_index is not None:
            bad |= ys == spec.pad_index
        if bad.any():
            check_class(spec, K, int(ys[np.argmax(bad)]))
        rows_shape = tgt.shape
    else:
        t_arr = np.asarray(target)
        if t_arr.shape != x.shape or t_arr.dtype.kind not in "fiub":
            raise ValueError(f"probability target has shape {t_arr.shape} and dtype {t_arr.dtype}: "
                             f"targets='probs' needs a real array with the logits' shape {x.shape}")
        t = _rows_last(t_arr)
        rows_shape = () if x.ndim == 1 else (x.shape[0], *x.shape[2:])
    x2 = _rows_last(x)
    R = x2.shape[0]
    st = v = None
    vsum = 0.0
    if spec.convention not in BINARY and spec.targets == "index":
        st = structured(spec, K)
        if st.u is not None or w is not None:
            v = (np.ones(K) if st.u is None else st.u) * (1.0 if w is None else w)
        vsum = float(K) if v is None else float(v.sum())
    out_shape = x.shape if spec.form == "bce" else rows_shape
    kept_count = R if kept is None else int(kept.sum())
    weight_sum = None
    if w is not None and spec.targets == "index":
        weight_sum = float(w[y if kept is None else y[kept]].sum())
    D = _denominator(spec, x.shape, kept_count, weight_sum, R)
    cot = _cotangent(cotangent, spec, out_shape, x)
    return Problem(spec=spec, K=K, x=x2, y=y, kept=kept, t=t, weight=w, structured=st, v=v,
                   vsum=vsum, denominator=D, cot=cot, layout=layout, logits_shape=x.shape,
                   out_shape=out_shape)


def _cotangent(cotangent, spec: Spec, out_shape: tuple, x: np.ndarray):
    if spec.reduction != "none":
        if cotangent is None:
            return 1.0
        c = np.asarray(cotangent, dtype=np.float64)
        if c.size != 1 or c.ndim > 0:
            raise ValueError(f"cotangent has shape {c.shape}: reduction {spec.reduction!r} gives a "
                             f"scalar, so pass a scalar cotangent (or None for 1.0)")
        return float(c)
    if cotangent is None:
        c = np.ones(out_shape)
    else:
        c = np.asarray(cotangent, dtype=np.float64)
        if c.shape != out_shape:
            raise ValueError(f"cotangent has shape {c.shape}: reduction 'none' gives shape "
                             f"{out_shape}, pass a cotangent of that shape")
    if spec.form == "bce":
        return _rows_last(c.reshape(x.shape)) if x.ndim != 1 else c.reshape(1, -1)
    return c.reshape(-1)


def _block_rows(K: int) -> int:
    return max(1, BLOCK_ELEMS // max(K, 1))


def compute_rows(p: Problem, start: int, stop: int, g: np.ndarray | None,
                 elements: np.ndarray | None = None) -> np.ndarray:
    """Row losses of rows [start, stop); the final gradient into g ((stop-start, K) float64)
    when g is given. elements (bce 'none'): per-element losses, (stop-start, K)."""
    values = np.empty(stop - start)
    step = _block_rows(p.K)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _blocks(p, start, stop, step, g, elements, values)
    return values


def _blocks(p: Problem, start: int, stop: int, step: int, g, elements, values) -> None:
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        a, b = lo - start, hi - start
        gb = g[a:b] if g is not None else _workspace(hi - lo, p.K)
        r = p.factor(lo, hi) if g is not None else None
        values[a:b] = _kernel(p, lo, hi, r, gb, None if elements is None else elements[a:b])


def _kernel(p: Problem, lo: int, hi: int, r, g, elements) -> np.ndarray:
    x = p.x[lo:hi]
    kept = None if p.kept is None else p.kept[lo:hi]
    y = None if p.y is None else p.y[lo:hi]
    t = None if p.t is None else p.t[lo:hi]
    if p.spec.form == "bce":
        return kernels.binary(p, x, y, kept, t, r, g, elements)
    if p.t is not None:
        return kernels.categorical_probs(p, x, t, r, g, p.spec.form == "kl")
    return kernels.categorical_index(p, x, y, kept, r, g, p.spec.form == "kl")


def chunk_bounds(rows: int, K: int, chunk_elems: int | None) -> list[tuple[int, int]]:
    if chunk_elems is None:
        chunk_elems = DEFAULT_CHUNK_ELEMS
    if not isinstance(chunk_elems, int | np.integer) or chunk_elems < 1:
        raise ValueError(f"chunk_elems={chunk_elems!r} must be a positive integer (elements per chunk)")
    per = max(1, int(chunk_elems) // max(K, 1))
    return [(lo, min(lo + per, rows)) for lo in range(0, rows, per)]


def _run(jobs, fn):
    """fn(*job) for every job, in order, on the pool when there is more than one job."""
    if THREADS == 1 or len(jobs) < 2:
        return [fn(*job) for job in jobs]
    return list(_executor().map(lambda job: fn(*job), jobs))


def _split(p: Problem, chunk_elems: int | None) -> list[tuple[int, int]]:
    """Work units: the caller's chunks, cut further so that both threads get work."""
    bounds = chunk_bounds(p.rows, p.K, chunk_elems)
    per = max(1, -(-p.rows // (4 * THREADS)))  # at least a few units per thread
    out = []
    for lo, hi in bounds:
        out += [(a, min(a + per, hi)) for a in range(lo, hi, per)]
    return out


def _reduce(p: Problem, row_values: np.ndarray, elements: np.ndarray | None):
    if p.spec.reduction == "none":
        if p.spec.form == "bce":
            return _to_layout(p, elements)
        return row_values.reshape(p.out_shape)
    if p.denominator == 0:
        return float("nan")
    return float(np.sum(row_values) / p.denominator)


def _to_layout(p: Problem, a2: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows-last (R, K) back to the logits' layout (into out when given)."""
    shape = p.logits_shape
    if p.layout == "nd":
        moved = (shape[0], *shape[2:], shape[1])
        a = np.moveaxis(a2.reshape(moved), -1, 1)
    else:
        a = a2.reshape(shape)
    if out is None:
        return np.ascontiguousarray(a)
    np.copyto(out, a, casting="unsafe")
    return out


def loss_and_grad(logits, target, spec: Spec, *, weight=None, cotangent=None,
                  chunk_elems: int | None = None, grad_out: np.ndarray | None = None) -> Result:
    """Value and gradient of the loss `spec` in float64.

    logits: (K,), (N, K) or (N, K, d1, ...), any real dtype (computed in float64).
    target: class indices of shape (), (N,) or (N, d1, ...) (any integer dtype), or for
        spec.targets == "probs" an array with the logits' shape.
    weight: (K,) class weights or None.
    cotangent: upstream gradient: an array of the 'none' output's shape (default ones),
        or a scalar for the scalar reductions (default 1.0).
    chunk_elems: float64 elements per row chunk (default DEFAULT_CHUNK_ELEMS); the result
        is bit-identical for every value.
    grad_out: optional writeable floating array with the logits' shape that receives the
        gradient (cast to its dtype) instead of a new float64 array, e.g. float32 to halve
        the memory of a (4096, 128256) gradient; Result.grad is then grad_out itself.

    Result.value is a python float for the scalar reductions (nan when the denominator is
    0: every row ignored, or an empty batch) and a float64 array for 'none'. Result.grad
    is d(sum(cotangent * value)) / d logits; exactly 0 on ignored rows and everywhere
    when the denominator is 0 (PyTorch's behaviour).
    """
    p = prepare(logits, target, spec, weight, cotangent)
    R, K = p.rows, p.K
    if grad_out is not None:
        if not isinstance(grad_out, np.ndarray) or grad_out.shape != p.logits_shape \
                or grad_out.dtype.kind != "f":
            raise ValueError(f"grad_out must be a floating ndarray of the logits' shape "
                             f"{p.logits_shape}, got {getattr(grad_out, 'shape', type(grad_out))}")
        if not grad_out.flags.writeable:
            raise ValueError("grad_out is read-only: pass a writeable array")
    # computed in place only in C-contiguous float64 (row sums must run along contiguous rows)
    direct = grad_out is None or (grad_out.dtype == np.float64 and grad_out.flags.c_contiguous)
    if p.layout == "nd":
        grad = None
        g2 = np.empty((R, K))
    else:
        grad = np.empty(p.logits_shape) if grad_out is None else grad_out
        g2 = grad if p.layout == "2d" else grad[None, :]  # a view either way
    elements = np.empty((R, K)) if spec.form == "bce" and spec.reduction == "none" else None
    row_values = np.empty(R)

    def work(lo, hi):
        el = None if elements is None else elements[lo:hi]
        if direct or p.layout == "nd":  # nd: g2 is our own contiguous float64
            row_values[lo:hi] = compute_rows(p, lo, hi, g2[lo:hi], el)
        else:  # grad_out of another dtype: compute in float64 scratch, then cast
            ws = _workspace(hi - lo, K)
            row_values[lo:hi] = compute_rows(p, lo, hi, ws, el)
            g2[lo:hi] = ws
    if R and K:
        _run(_split(p, chunk_elems), work)
    if p.layout == "nd":
        grad = _to_layout(p, g2, grad_out)
    if p.denominator == 0 and spec.reduction != "none":
        grad[...] = 0.0
    return Result(value=_reduce(p, row_values, elements), grad=grad)


def loss(logits, target, spec: Spec, *, weight=None, chunk_elems: int | None = None):
    """The value of loss_and_grad alone (no gradient, extra memory of a few row blocks)."""
    p = prepare(logits, target, spec, weight, None)
    R, K = p.rows, p.K
    elements = np.empty((R, K)) if spec.form == "bce" and spec.reduction == "none" else None
    row_values = np.empty(R)

    def work(lo, hi):
        el = None if elements is None else elements[lo:hi]
        row_values[lo:hi] = compute_rows(p, lo, hi, None, el)
    if R and K:
        _run(_split(p, chunk_elems), work)
    return _reduce(p, row_values, elements)


def denominator(logits, target, spec: Spec, *, weight=None) -> float:
    """What the scalar reduction of spec divides the summed row losses by (1 for 'none' and
    'sum'; 0 for a mean of nothing): value = sum(row_values of iter_row_chunks) / this."""
    return prepare(logits, target, spec, weight).denominator


def iter_row_chunks(logits2d, target1d, spec: Spec, *, weight=None, cotangent=None,
                    chunk_elems: int | None = None):
    """Row chunks of a 2-D (rows, K) problem, for comparing huge inputs with bounded memory.

    Validates everything at once, then returns an iterator of
    (start, stop, row_values, grad_chunk): row_values is float64 (stop - start,), the
    unreduced loss of each row (0 for ignored rows; for bce the sum over the row's
    elements); grad_chunk is float64 (stop - start, K), the FINAL gradient rows (the
    cotangent and the reduction's denominator applied), so that for a scalar reduction
    value = sum(all row_values) / denominator(logits2d, target1d, spec) and the gradient is the concatenation.
    Each chunk is a fresh array that the caller may keep; about chunk_elems elements
    (default DEFAULT_CHUNK_ELEMS) per chunk; up to THREADS + 1 chunks are computed ahead.
    """
    p = prepare(logits2d, target1d, spec, weight, cotangent, two_d=True)
    bounds = chunk_bounds(p.rows, p.K, chunk_elems)
    return _generate(p, bounds)


def _one_chunk(p: Problem, lo: int, hi: int):
    g = np.empty((hi - lo, p.K))
    return lo, hi, compute_rows(p, lo, hi, g), g


def _generate(p: Problem, bounds):
    """Chunks in order; up to THREADS + 1 computed ahead on the pool (bounded memory)."""
    if THREADS == 1 or len(bounds) < 2:
        for lo, hi in bounds:
            yield _one_chunk(p, lo, hi)
        return
    if len(bounds) < 2 * THREADS:  # few big chunks: split each one across the threads
        for lo, hi in bounds:
            g = np.empty((hi - lo, p.K))
            values = np.empty(hi - lo)
            per = max(1, -(-(hi - lo) // THREADS))

            def work(a, b, lo=lo, g=g, values=values):
                values[a - lo:b - lo] = compute_rows(p, a, b, g[a - lo:b - lo])
            _run([(a, min(a + per, hi)) for a in range(lo, hi, per)], work)
            yield lo, hi, values, g
        return
    pool = _executor()
    pending = deque()
    todo = iter(bounds)
    for lo, hi in todo:
        pending.append(pool.submit(_one_chunk, p, lo, hi))
        if len(pending) > THREADS:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(pool.submit(_one_chunk, p, *nxt))
        yield result
