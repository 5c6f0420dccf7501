"""What a failed reference check adds about the logits' gradient: the target distribution
and denominator the implementation's gradient implies (lsuite/judging/effective.py), and the
gradient's true-class entries measured one row at a time (recorded, not judged)."""

from __future__ import annotations

import numpy as np

import reference
from lsuite.judging import effective
from lsuite.judging.attainable import true_classes
from lsuite.running.runner import Context


def what_it_computes(ctx: Context, inputs, out) -> dict | None:
    """The target distribution and denominator its gradient implies (lsuite/judging/effective.py),
    for a cross-entropy record with class-index targets and no class weights; None else, and
    None where the outputs are not finite, or where in half precision no known convention
    fits (there the gradient's rounding would be read as a distribution)."""
    case, impl = ctx.case, ctx.impl
    if (impl.input not in ("logits", "log_probs") or impl.form not in ("ce", "kl")
            or case.targets != "index" or inputs.weight is not None or out.grad is None
            or np.shape(out.grad) != np.shape(inputs.logits)
            or not (np.isfinite(out.value).all() and np.isfinite(out.grad).all())):
        return None
    grad = out.grad if inputs.upstream in (None, 0) else out.grad / inputs.upstream
    logits = np.asarray(inputs.logits, dtype=float)
    rows = reference.rows_last(logits).shape[0]
    if case.reduction == "mean":
        claimed = reference.denominator(inputs.logits, inputs.target, inputs.spec)
        denominators = {"the non-ignored rows": claimed, "every row": float(rows),
                        "the batch": float(logits.shape[0]) if logits.ndim > 1 else 1.0,
                        "every element (N·K)": float(logits.size)}
    else:
        denominators = {"1 (no mean)": 1.0}
    try:
        found = effective.recover(inputs.logits, inputs.target, grad, eps=case.eps,
                                  claimed=impl.convention, reduction=case.reduction,
                                  denominators=denominators, cotangent=inputs.cotangent,
                                  ignore_index=inputs.spec.ignore_index,
                                  pad_index=inputs.spec.pad_index)
    except (ValueError, np.linalg.LinAlgError):  # a diagnosis only: never fails the check
        return None
    if found is not None and case.dtype in ("bfloat16", "float16") and found.get("closest") is None:
        return None
    return found



class _TrueClass:
    """The gradient's true-class entry of every kept row, measured one row at a time (a
    normwise error hides one wrong entry per row when K is large). Recorded, not judged:
    where p_y is close to the target mass the entry cancels to a tiny number, and there
    even PyTorch's CPU kernel errs by up to ~170x its attainable error (docs/tolerances.md,
    "Tolerances"); the confident-row cases make that entry the largest of the gradient,
    so the normwise judgement is the per-entry one there."""

    def __init__(self, where, actual, expected, attainable_err, baseline):
        self.where, self.actual, self.expected = where, actual, expected
        self.attainable, self.baseline = attainable_err, baseline
        self.err = np.abs(actual - expected)

    @staticmethod
    def _rel(err, expected) -> float | None:
        ok = np.isfinite(err) & (expected != 0)
        return float(np.max(err[ok] / np.abs(expected[ok]))) if ok.any() else None

    def metrics(self) -> dict:
        base = None if self.baseline is None else self._rel(np.abs(self.baseline - self.expected), self.expected)
        att_ratio = None
        if self.attainable is not None:
            ok = np.isfinite(self.err) & (self.attainable > 0)
            att_ratio = float(np.max(self.err[ok] / self.attainable[ok])) if ok.any() else None
        return {"true_grad_max_rel_err": self._rel(self.err, self.expected),
                "attainable_true_grad_rel_err": None if self.attainable is None
                else self._rel(self.attainable, self.expected),
                "baseline_true_grad_rel_err": base,
                "true_grad_attainable_ratio": att_ratio}


def true_class_entries(inputs, grad, grad_ref, att, base) -> _TrueClass | None:
    """The true-class entries of actual, reference, attainable and PyTorch's gradients of the
    logits (`att` and `base`: the kind's {"logits": ...} outputs)."""
    grad = None if grad is None else np.asarray(grad, dtype=float)
    grad_ref = np.asarray(grad_ref, dtype=float)
    if grad is None or grad.shape != grad_ref.shape or grad_ref.size == 0:
        return None
    rows, classes = true_classes(inputs, reference.rows_last(grad_ref).shape[1])
    if rows.size == 0:
        return None

    def pick(array):
        return None if array is None else reference.rows_last(np.asarray(array, dtype=float))[rows, classes]

    return _TrueClass((rows, classes), pick(grad), pick(grad_ref),
                      pick(None if att is None else att.get("logits")),
                      None if base is None else pick(base["logits"]))
