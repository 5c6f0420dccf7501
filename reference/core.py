"""The loss semantics behind the public functions: what a reader checks against the spec.

A call is validated and brought to a `Problem`: a 2-D (rows, K) view with the classes
last (nn.CrossEntropyLoss's layout rules), the class-index or probability targets, the
cotangent, and the reduction's denominator (docs/specification.md §4, §6). The kernels
(reference.kernels) give each row's loss and final gradient in float64; the row values
are reduced and the gradient put back into the caller's layout. How the rows are run
(threads, chunks, streaming, scratch memory) is reference.engine's job, which never
changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import engine, kernels
from .spec import BINARY, Result, Spec, as_weight, check_classes
from .targets import Structured, check_class, structured, target_distribution


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


def rows_last(a: np.ndarray) -> np.ndarray:
    """(K,) -> (1, K); (N, K) as is; (N, K, d...) -> (N*d..., K), classes last (a view
    where NumPy can make one): the rows of nn.CrossEntropyLoss's layouts."""
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


def _class_rows(target, x: np.ndarray, spec: Spec, K: int):
    """Class-index targets: (R,) int64 classes and the (R,) kept mask (None: all kept)."""
    tgt = np.asarray(target)
    if tgt.dtype.kind not in "iu":
        hint = " (pass targets='probs' in the Spec for probability targets)" if tgt.dtype.kind == "f" else ""
        raise ValueError(f"target has dtype {tgt.dtype}: class-index targets must be integers{hint}")
    expected = () if x.ndim == 1 else (x.shape[0], *x.shape[2:])
    if tgt.shape != expected:
        raise ValueError(f"target has shape {tgt.shape} but logits of shape {x.shape} need a "
                         f"class-index target of shape {expected}")
    y = tgt.reshape(-1).astype(np.int64)
    kept = None if spec.ignore_index is None else y != spec.ignore_index
    ys = y if kept is None else y[kept]
    bad = (ys < 0) | (ys >= K)
    if spec.convention == "padding_excluded" and spec.pad_index is not None:
        bad |= ys == spec.pad_index
    if bad.any():
        check_class(spec, K, int(ys[np.argmax(bad)]))
    return y, kept


def _probability_rows(target, x: np.ndarray) -> np.ndarray:
    """Probability targets ("probs"): (R, K), rows last like the logits."""
    t = np.asarray(target)
    if t.shape != x.shape or t.dtype.kind not in "fiub":
        raise ValueError(f"probability target has shape {t.shape} and dtype {t.dtype}: "
                         f"targets='probs' needs a real array with the logits' shape {x.shape}")
    return rows_last(t)


def _denominator(spec: Spec, logits_shape: tuple, kept_count: int, weight_sum: float | None,
                 rows: int) -> float:
    """What a scalar reduction divides the summed row losses by (docs/specification.md §4, §6).

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
        y, kept = _class_rows(target, x, spec, K)
    else:
        t = _probability_rows(target, x)
    rows_shape = () if x.ndim == 1 else (x.shape[0], *x.shape[2:])
    x2 = rows_last(x)
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
        return rows_last(c.reshape(x.shape)) if x.ndim != 1 else c.reshape(1, -1)
    return c.reshape(-1)


def compute_rows(p: Problem, start: int, stop: int, g: np.ndarray | None,
                 elements: np.ndarray | None = None) -> np.ndarray:
    """Row losses of rows [start, stop); the final gradient into g ((stop-start, K) float64)
    when g is given. elements (bce 'none'): per-element losses, (stop-start, K)."""
    values = np.empty(stop - start)
    step = engine.block_rows(p.K)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _blocks(p, start, stop, step, g, elements, values)
    return values


def _blocks(p: Problem, start: int, stop: int, step: int, g, elements, values) -> None:
    for lo in range(start, stop, step):
        hi = min(lo + step, stop)
        a, b = lo - start, hi - start
        gb = g[a:b] if g is not None else engine.workspace(hi - lo, p.K)
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


def _evaluate(p: Problem, chunk_elems: int | None, rows):
    """Every row's value, rows(lo, hi, elements[lo:hi]) computing each work unit on the
    engine; returns (row_values, elements), elements the per-element losses of bce 'none'."""
    elements = np.empty((p.rows, p.K)) if p.spec.form == "bce" and p.spec.reduction == "none" else None
    row_values = np.empty(p.rows)

    def work(lo, hi):
        row_values[lo:hi] = rows(lo, hi, None if elements is None else elements[lo:hi])
    if p.rows and p.K:
        engine.run(engine.split(p.rows, p.K, chunk_elems), work)
    return row_values, elements


def _check_grad_out(grad_out, shape: tuple) -> None:
    if not isinstance(grad_out, np.ndarray) or grad_out.shape != shape or grad_out.dtype.kind != "f":
        raise ValueError(f"grad_out must be a floating ndarray of the logits' shape "
                         f"{shape}, got {getattr(grad_out, 'shape', type(grad_out))}")
    if not grad_out.flags.writeable:
        raise ValueError("grad_out is read-only: pass a writeable array")


def loss_and_grad(logits, target, spec: Spec, *, weight=None, cotangent=None,
                  chunk_elems: int | None = None, grad_out: np.ndarray | None = None) -> Result:
    """Value and gradient of the loss `spec` in float64.

    logits: (K,), (N, K) or (N, K, d1, ...), any real dtype (computed in float64).
    target: class indices of shape (), (N,) or (N, d1, ...) (any integer dtype), or for
        spec.targets == "probs" an array with the logits' shape.
    weight: (K,) class weights or None.
    cotangent: upstream gradient: an array of the 'none' output's shape (default ones),
        or a scalar for the scalar reductions (default 1.0).
    chunk_elems: float64 elements per row chunk (default engine.DEFAULT_CHUNK_ELEMS); the result
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
        _check_grad_out(grad_out, p.logits_shape)
    # computed in place only in C-contiguous float64 (row sums must run along contiguous rows)
    direct = grad_out is None or (grad_out.dtype == np.float64 and grad_out.flags.c_contiguous)
    if p.layout == "nd":
        grad = None
        g2 = np.empty((R, K))
    else:
        grad = np.empty(p.logits_shape) if grad_out is None else grad_out
        g2 = grad if p.layout == "2d" else grad[None, :]  # a view either way

    def rows(lo, hi, el):
        if direct or p.layout == "nd":  # nd: g2 is our own contiguous float64
            return compute_rows(p, lo, hi, g2[lo:hi], el)
        ws = engine.workspace(hi - lo, K)  # grad_out of another dtype: float64 scratch, then cast
        values = compute_rows(p, lo, hi, ws, el)
        g2[lo:hi] = ws
        return values
    row_values, elements = _evaluate(p, chunk_elems, rows)
    if p.layout == "nd":
        grad = _to_layout(p, g2, grad_out)
    if p.denominator == 0 and spec.reduction != "none":
        grad[...] = 0.0
    return Result(value=_reduce(p, row_values, elements), grad=grad)


def loss(logits, target, spec: Spec, *, weight=None, chunk_elems: int | None = None):
    """The value of loss_and_grad alone (no gradient, extra memory of a few row blocks)."""
    p = prepare(logits, target, spec, weight, None)
    row_values, elements = _evaluate(p, chunk_elems, lambda lo, hi, el: compute_rows(p, lo, hi, None, el))
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
    (default engine.DEFAULT_CHUNK_ELEMS) per chunk; up to engine.THREADS + 1 chunks are computed ahead.
    """
    p = prepare(logits2d, target1d, spec, weight, cotangent, two_d=True)
    bounds = engine.chunk_bounds(p.rows, p.K, chunk_elems)
    return engine.stream(lambda lo, hi, g: compute_rows(p, lo, hi, g), p.K, bounds)
