"""Losses on hidden states: z = h·Wᵀ + b formed in float64 one chunk of rows at a time
(docs/specification.md §8), never the whole N×K logits.

    result = reference.linear_loss_and_grad(h, W, target, spec, bias=b, weight=w)
    result.value, result.grad_hidden, result.grad_classifier, result.grad_bias

With G = ∂L/∂z the final gradient rows of `loss_and_grad` (cotangent and the reduction's
denominator applied), ∂L/∂h = G·W, ∂L/∂W = Gᵀ·h, ∂L/∂b = Σ_rows G. The denominator is the
whole batch's (it depends on the targets and class weights, not on z), so each chunk is
the 'none' loss of its rows with the cotangent divided by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .core import denominator, loss_and_grad
from .engine import DEFAULT_CHUNK_ELEMS
from .spec import Spec


@dataclass(frozen=True)
class LinearResult:
    """value as `Result.value`; the float64 gradients of Σ cotangent·value with respect to
    the hidden states (N, H), the classifier (K, H) and the bias (K,) (None without one)."""

    value: float | np.ndarray
    grad_hidden: np.ndarray
    grad_classifier: np.ndarray
    grad_bias: np.ndarray | None


def _check(hidden, classifier, bias, target, spec: Spec):
    h = np.asarray(hidden, dtype=np.float64)
    W = np.asarray(classifier, dtype=np.float64)
    if h.ndim != 2 or W.ndim != 2 or h.shape[1] != W.shape[1]:
        raise ValueError(f"hidden {h.shape} and classifier {W.shape} must be (N, H) and (K, H)")
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    if b is not None and b.shape != (W.shape[0],):
        raise ValueError(f"bias has shape {b.shape}: pass (K,) = ({W.shape[0]},) or None")
    if spec.form == "bce" or spec.targets != "index":
        raise ValueError("linear_loss_and_grad takes class-index targets and the ce/kl forms")
    y = np.asarray(target)
    if y.shape != (h.shape[0],):
        raise ValueError(f"target has shape {y.shape}: pass ({h.shape[0]},) class indices")
    return h, W, b, y


def linear_loss_and_grad(hidden, classifier, target, spec: Spec, *, bias=None, weight=None,
                         cotangent=None, chunk_elems: int | None = None) -> LinearResult:
    """Value and gradients of the loss `spec` on z = hidden·classifierᵀ + bias, in float64.

    hidden: (N, H); classifier: (K, H); bias: (K,) or None; target: (N,) class indices.
    weight, cotangent: as loss_and_grad ((K,) class weights; (N,) for 'none', a scalar else).
    chunk_elems: float64 logits formed at once (default DEFAULT_CHUNK_ELEMS): the memory
    bound, a whole number of rows; the result does not depend on it beyond summation order.
    """
    h, W, b, y = _check(hidden, classifier, bias, target, spec)
    N, K = h.shape[0], W.shape[0]
    rows = max(1, (chunk_elems or DEFAULT_CHUNK_ELEMS) // max(K, 1))
    scalar = spec.reduction != "none"
    # the denominator needs only the targets' shape: a broadcast view holds no N×K memory
    D = denominator(np.broadcast_to(np.zeros(()), (N, K)), y, spec, weight=weight) if scalar else 1.0
    c = np.asarray(1.0 if cotangent is None else cotangent, dtype=np.float64)
    per_row = np.broadcast_to(c, (N,)) if scalar else np.asarray(c).reshape(N)
    none = Spec(spec.convention, spec.form, spec.eps, "none", spec.ignore_index, spec.pad_index)
    scale = 0.0 if D == 0 else 1.0 / D  # a mean of nothing: zero gradient (PyTorch's rule)
    values = np.empty(N)
    gh, gW = np.zeros_like(h), np.zeros_like(W)
    gb = None if b is None else np.zeros(K)
    for lo in range(0, N, rows):
        hi = min(N, lo + rows)
        z = h[lo:hi] @ W.T
        if b is not None:
            z += b
        part = loss_and_grad(z, y[lo:hi], none, weight=weight, cotangent=per_row[lo:hi] * scale)
        G = part.grad
        values[lo:hi] = part.value  # 'none' row losses do not depend on the cotangent
        gh[lo:hi] = G @ W
        gW += G.T @ h[lo:hi]
        if gb is not None:
            gb += G.sum(axis=0)
    if not scalar:
        return LinearResult(values, gh, gW, gb)
    value = float("nan") if D == 0 else float(values.sum()) / D
    return LinearResult(value, gh, gW, gb)
