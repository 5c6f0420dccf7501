"""The float64 ground truth for label-smoothing losses (NumPy/SciPy only, never torch).

The mathematics is docs/specification.md; this package evaluates it:

    spec = reference.Spec(convention="inclusive", form="ce", eps=0.1, reduction="mean",
                          ignore_index=-100)
    result = reference.loss_and_grad(logits, target, spec, weight=w)   # value and gradient
    value = reference.loss(logits, target, spec)                        # value only
    for start, stop, rows, grad in reference.iter_row_chunks(x2d, y1d, spec): ...

Layout follows nn.CrossEntropyLoss: (K,) with a 0-d target, (N, K) with (N,), or
(N, K, d1, ...) with (N, d1, ...); probability targets have the logits' shape. Logits of
any real dtype are evaluated in float64, in row chunks of bounded memory; the results do
not depend on the chunk size or the number of threads (REFERENCE_THREADS, default 2).
`loss_and_grad(..., grad_out=array)` writes the gradient into an array of any float dtype;
`denominator(logits, target, spec)` turns iter_row_chunks' row sums into the reduced value;
`rows_last(a)` is the (rows, K) view of any of those layouts that every function works on.
padding_excluded with pad_index=None is the same distribution as exclusive.

`linear_loss_and_grad(h, W, target, spec, bias=b)`: the loss on z = h·Wᵀ + b (fused linear
cross-entropy) with the gradients for h, W and b, z formed one chunk of rows at a time.

Modules: spec (the Spec record), targets (target distributions), kernels (per-row loss and
gradient), core (validation, layouts, denominators, the public functions), engine (how
rows are run: threads, chunks, streaming; `engine.set_threads(n)`), bench (throughput), linear (losses on hidden states).
"""

from .core import denominator, iter_row_chunks, loss, loss_and_grad, rows_last
from .engine import DEFAULT_CHUNK_ELEMS
from .linear import LinearResult, linear_loss_and_grad
from .spec import CONVENTIONS, FORMS, REDUCTIONS, Result, Spec
from .targets import entropy, target_distribution

__all__ = [
    "CONVENTIONS", "FORMS", "REDUCTIONS", "DEFAULT_CHUNK_ELEMS", "Spec", "Result",
    "loss_and_grad", "loss", "target_distribution", "entropy", "iter_row_chunks", "denominator",
    "rows_last", "linear_loss_and_grad", "LinearResult",
]
