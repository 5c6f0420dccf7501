"""What a careful implementation attains: the anchor of the low-precision budgets.

A careful kernel reads the case's rounded inputs (exactly representable in float32),
computes in float32 and rounds its outputs once to the output dtype. Per element x of the
value or the gradient its error is then at most

    attainable(x) = u_dtype * |x|  +  spacing_dtype / 2  +  steps(K) * u_float32 * terms(x)

- `u_dtype * |x|`: the one rounding of the result to the output dtype (unit roundoff:
  half the spacing relative to the value); `spacing_dtype / 2` the same below the
  smallest normal number (float16 gradients of a mean over confident rows are subnormal).
- `steps(K) * u_float32 * terms(x)`: the float32 arithmetic before that rounding. A sum of
  K terms in pairwise (blocked, tree) order errs by at most ceil(log2 K) roundings of the
  sum of the terms' magnitudes (Higham, Accuracy and Stability, 2nd ed., §4.2); exp, log
  or the division by the softmax denominator, the product with Σq, the subtraction of the
  target and the scale by the cotangent or denominator add a few more
  (tolerances.FLOAT32_STEPS). `terms(x)` is what is summed in magnitude:
  - a gradient entry of a softmax form, g_c = s (Σq̃ p_c - q̃_c) with q̃ the weighted
    target and s the row's cotangent or 1/denominator: |s| (|Σq̃| p_c + |q̃_c|). On a
    confident row the true class has g_y = s (p_y - 1) but terms = 2|s|: float32 holds
    p_y to about 6e-8 absolute, which is what limits a float32 kernel at p_y = 1 - 1e-6;
  - a BCE gradient entry, s w_c (σ(x_c) - t_c): |s| w_c (σ(x_c) + t_c);
  - a row loss Σq̃·LSE - q̃·z (+ Σ q̃ log q for KL): Σ_c |q̃_c| (|z_c| + |LSE|) (+ |q̃ log q|);
    a BCE element w (max(x, 0) - x t + log1p(e^-|x|)): w (|x| (1 + |t|) + log1p(e^-|x|));
  - a reduced value Σ_r s_r l_r: Σ_r |s_r| terms(l_r), with ceil(log2 rows) more roundings.

Everything here is NumPy on the case's float64 inputs and the reference's float64 result:
no torch, so the anchor is identical whatever device ran the check (PyTorch's own error on
this device, lsuite/judging/torch_error.py, is measured and reported beside it, never used for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logsumexp

import reference
from lsresults.dtypes import UNIT_ROUNDOFF
from lsuite.inputs.cases import Inputs
from lsuite.judging.tolerances import FLOAT32_STEPS, SUBNORMAL_SPACING


def target_rows(inputs: Inputs, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(target distribution rows (R, K), kept-row mask (R,)), before class weights."""
    spec = inputs.spec
    if spec.targets == "probs":
        given = reference.rows_last(inputs.target)
        if spec.convention == "inclusive":
            given = given * (1 - spec.eps) + spec.eps / num_classes
        elif spec.convention.startswith("binary"):
            share = 2 if spec.convention == "binary" else num_classes
            given = given * (1 - spec.eps) + spec.eps / share
        return given, np.ones(len(given), dtype=bool)
    target = inputs.target.reshape(-1)
    kept = np.ones(target.shape, dtype=bool) if spec.ignore_index is None else target != spec.ignore_index
    rows = np.zeros((target.size, num_classes))
    for cls in np.unique(target[kept]):
        rows[target == cls] = reference.target_distribution(spec, num_classes, int(cls))
    return rows, kept


def true_classes(inputs: Inputs, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, class indices) of each kept row's true class: the class-index target,
    or the largest probability target."""
    rows, kept = target_rows(inputs, num_classes)
    if inputs.spec.targets == "index":
        target = inputs.target.reshape(-1)
    else:
        target = np.argmax(reference.rows_last(inputs.target), axis=-1) if rows.size else \
            np.zeros(len(rows), dtype=np.int64)
    keep = kept & (target >= 0) & (target < num_classes)
    return np.flatnonzero(keep), target[keep].astype(np.int64)


def from_rows(rows2d: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of reference.rows_last: (R, K) back to (K,), (N, K) or (N, K, d...)."""
    if len(shape) <= 1:
        return rows2d.reshape(shape)
    if len(shape) == 2:
        return rows2d
    moved = (shape[0], *shape[2:], shape[1])
    return np.moveaxis(rows2d.reshape(moved), -1, 1)


def summation_steps(count: int) -> int:
    """Rounding steps of a pairwise sum of `count` terms (the depth of its tree)."""
    return math.ceil(math.log2(count)) if count > 1 else 0


@dataclass(frozen=True)
class Attainable:
    """Per-element attainable absolute errors, in the layouts of the reference's value and
    gradient (NaN where the reference is not finite: nothing to attain there)."""

    value: np.ndarray
    grad: np.ndarray


def attainable(inputs: Inputs, dtype: str, value_ref, grad_ref) -> Attainable:
    """What a float32 kernel that rounds once to `dtype` is guaranteed to attain."""
    logits, spec = inputs.logits, inputs.spec
    value_ref, grad_ref = np.asarray(value_ref, dtype=float), np.asarray(grad_ref, dtype=float)
    z = reference.rows_last(logits)
    num_rows, num_classes = z.shape
    rows, kept = target_rows(inputs, num_classes)
    weight = np.ones(num_classes) if inputs.weight is None else inputs.weight
    finite = np.isfinite(z)
    z0 = np.where(finite, z, 0.0)
    u32, steps_k = UNIT_ROUNDOFF["float32"], summation_steps(num_classes) + FLOAT32_STEPS
    if inputs.cotangent is not None:
        scale = np.abs(reference.rows_last(inputs.cotangent) if spec.form == "bce" else
                       np.asarray(inputs.cotangent, dtype=float).reshape(-1, 1))
    else:
        denominator = reference.denominator(logits, inputs.target, spec, weight=inputs.weight)
        scale = np.full((num_rows, 1), abs(1.0 / denominator) if denominator else 0.0)
        if inputs.upstream is not None:  # a reduced loss's upstream gradient other than 1
            scale = scale * abs(inputs.upstream)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if spec.form == "bce":
            # per element: one element of the loss, no accumulation before the reduction
            elements = weight * (np.abs(z0) * (1 + np.abs(rows)) + np.log1p(np.exp(-np.abs(z0))))
            elements = elements * (FLOAT32_STEPS * u32)
            grad_terms = scale * weight * (expit(z) + np.abs(rows))
        else:
            weighted = rows * weight
            lse = logsumexp(z, axis=-1) if num_classes else np.zeros(num_rows)
            lse0 = np.where(np.isfinite(lse), lse, 0.0)
            p = np.exp(z - lse0[:, None]) if num_rows else np.zeros_like(z)
            p = np.where(np.isfinite(p), p, 0.0)
            scale = scale * kept[:, None]
            grad_terms = scale * (np.abs(weighted.sum(axis=-1))[:, None] * p + np.abs(weighted))
            row_terms = (np.abs(weighted) * (np.abs(z0) + np.abs(lse0)[:, None])).sum(axis=-1)
            if spec.form == "kl":  # + Σ q̃ log q, the entropy offset (docs/specification.md §2)
                logq = np.log(np.where(rows > 0, rows, 1.0))
                row_terms = row_terms + np.abs(weighted * logq).sum(axis=-1)
            elements = (row_terms * kept * (steps_k * u32))[:, None]  # (R, 1): one per row
    grad = _rounded_once(dtype, grad_ref) + from_rows(steps_k * u32 * grad_terms, grad_ref.shape)
    if spec.reduction == "none":
        per = elements if spec.form == "bce" else elements[:, 0]
        value = _rounded_once(dtype, value_ref) + (from_rows(per, value_ref.shape) if spec.form == "bce"
                                                   else per.reshape(value_ref.shape))
    else:  # Σ_r s_r l_r: the rows' own errors plus ceil(log2 R) roundings of the sum
        own_steps = steps_k if spec.form != "bce" else FLOAT32_STEPS
        total = float(np.sum(scale * elements)) if elements.size else 0.0
        value = _rounded_once(dtype, value_ref) + total * (1 + summation_steps(elements.size) / own_steps)
    return Attainable(np.where(np.isfinite(value_ref), value, np.nan),
                      np.where(np.isfinite(grad_ref), grad, np.nan))


def _rounded_once(dtype: str, exact: np.ndarray) -> np.ndarray:
    """The bound on rounding an exact result once to dtype: half a spacing, relative above
    the smallest normal number, absolute below it."""
    return UNIT_ROUNDOFF[dtype] * np.abs(exact) + SUBNORMAL_SPACING[dtype] / 2


def finite_max(errors: np.ndarray) -> float:
    """Max over the finite elements (0.0 when there are none)."""
    errors = np.asarray(errors, dtype=float)
    finite = errors[np.isfinite(errors)]
    return float(finite.max()) if finite.size else 0.0
