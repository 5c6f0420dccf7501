"""The reference check: one implementation on one case against the float64 reference.

The case's inputs (lsuite/inputs/cases.py) go to the reference and, through the one runner
(lsuite/running/runner.py), to the implementation; value and gradient are judged by the one
assertion (lsuite/judging/assertions.py) against budgets from lsuite/judging/tolerances.py, in low
precision a multiple of what a careful kernel attains on the same inputs
(lsuite/judging/attainable.py), with the true-class gradient entries judged row by row as well.
PyTorch's own error on the same inputs (lsuite/judging/torch_error.py) is measured and recorded
beside it ("baseline_*"), the attainable errors as "attainable_*". The measured errors are
handed to `ctx.record` before anything is raised, so a failed check still reports its
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import reference
from lsuite.inputs.cases import make_inputs
from lsuite.judging import assertions, effective, severity, tolerances
from lsuite.judging.attainable import attainable, finite_max, true_classes
from lsuite.judging.torch_error import pytorch_outputs
from lsuite.record import claims
from lsuite.running import causes
from lsuite.running.runner import Context, Feed, run


def rounded_expectation(expected, out_dtype: str) -> np.ndarray:
    """A true value beyond the output dtype's range is +-inf once rounded: the right answer."""
    expected = np.asarray(expected, dtype=float)
    top = torch.finfo(getattr(torch, out_dtype)).max
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(expected) > top, np.copysign(np.inf, expected), expected)


@dataclass(frozen=True)
class Judged:
    """One tensor judged against the reference: what was measured, the budget, the verdict."""

    diff: assertions.Difference
    budget: assertions.Budget
    attainable: float | None  # what a careful float32 kernel attains (float32, low precision)
    pytorch: float | None  # PyTorch's own max abs error on the same inputs (not float64)
    problem: str | None  # None: within budget

    def metrics(self, label: str) -> dict:
        return {f"{label}_max_abs_err": self.diff.max_abs, f"{label}_max_rel_err": self.diff.max_rel,
                f"{label}_budget": self.budget.allowed, f"baseline_{label}_abs_err": self.pytorch,
                f"attainable_{label}_abs_err": self.attainable}


def judge(label: str, actual, expected, dtype: str, *, attainable=None, pytorch=None,
          exact=None) -> Judged:
    """The one judgement of a tensor against the reference, for every input kind (logits,
    hidden states, vocab-parallel shards): the error, the budget from lsuite/judging/tolerances.py
    (anchored to `attainable` elementwise errors in low precision, to PyTorch's own output
    `pytorch` in float32), and the message when it is over. `exact`: the unrounded
    reference PyTorch's error is measured against (default: `expected`)."""
    diff = assertions.measure(actual, expected)
    allowed = None if attainable is None else finite_max(attainable)
    base_err = None if pytorch is None else assertions.measure(
        pytorch, expected if exact is None else exact).max_abs
    budget = tolerances.budget(dtype, diff.scale, allowed, base_err)
    return Judged(diff, budget, allowed, base_err,
                  assertions.problem(label, actual, expected, budget, diff))


def check_against_reference(ctx: Context) -> dict:
    """The conformance check: value and gradient of the implementation vs the reference."""
    inputs = severity.suite_step("making the case's inputs", make_inputs, ctx.impl, ctx.case,
                                 ctx.seed)
    ref = severity.suite_step("computing the reference", reference.loss_and_grad, inputs.logits,
                              inputs.target, inputs.spec, weight=inputs.weight,
                              cotangent=upstream_of(inputs))
    expected_value = claims.expected_value(ctx.impl, ctx.case.reduction, inputs, ref.value)
    shape = () if ctx.case.reduction != "none" else tuple(inputs.cotangent.shape)
    cotangent = inputs.cotangent if inputs.upstream is None else np.asarray(inputs.upstream)
    out = run(ctx, Feed(inputs.logits, inputs.target, inputs.weight, cotangent, expect_shape=shape,
                        strided_upstream=ctx.case.upstream == "strided"))
    dtype = claims.judged_dtype(ctx.impl, ctx.case.dtype)  # float32 for "computes in float32"
    base = att = None  # PyTorch's own outputs; what a careful float32 kernel attains
    if dtype != "float64":
        base = scaled(pytorch_outputs(inputs, dtype), inputs.upstream)
    if dtype in tolerances.LOW_PRECISION or dtype == "float32":  # float32: tolerances.budget
        att = attainable(inputs, dtype, ref.value, ref.grad)
    problems, divergences, metrics, judged = list(out.notes), [], {}, []
    for what, actual, exact, i in (("value", out.value, expected_value, 0),
                                   ("grad", out.grad, ref.grad, 1)):
        # a true value beyond the range of the dtype it is returned in is +-inf once rounded:
        # the output's dtype for the value (a float32 loss of bf16 logits), the logits' for grad
        rounded_in = out.dtype if what == "value" and out.dtype in tolerances.RTOL else dtype
        expected = rounded_expectation(exact, rounded_in)
        judged_one = judge(what, actual, expected, dtype,
                           attainable=None if att is None else (att.value, att.grad)[i],
                           pytorch=None if base is None else base[i], exact=exact)
        metrics.update(judged_one.metrics(what))
        judged.append((what, actual, expected, judged_one.budget, judged_one.problem))
    true_class = None if dtype not in tolerances.LOW_PRECISION else _true_class_entries(
        inputs, out.grad, ref.grad, att, base)
    if true_class is not None:  # low precision only: in float32/64 it measures rounding noise
        metrics.update(true_class.metrics())
    ctx.record(metrics)
    if any(found for *_, found in judged):  # error or divergence (lsuite/judging/severity.py)?
        twin = base if base is not None else scaled(pytorch_outputs(inputs, dtype), inputs.upstream)
        zero = _zero_denominator(inputs)
        for what, actual, expected, budget, found in judged:
            if found and severity.is_divergence(actual, expected, twin[what == "grad"], budget, zero):
                divergences.append(f"{found} ({_why(zero)})")
            elif found:
                problems.append(found)
    if problems:
        found = causes.of_texts(problems)
        computes = _what_it_computes(ctx, inputs, out) if any(
            c["kind"] in ("over_budget", "nan_inf_pattern") for c in found) else None
        if computes is not None:
            found = [dict(c, computes=computes) for c in found]
        raise ctx.fail("; ".join(problems + divergences), causes=found)
    if divergences:
        raise ctx.fail("; ".join(divergences), kind=severity.CheckDiverged,
                       causes=causes.of_texts(found for *_, found in judged if found))
    return metrics


def upstream_of(inputs):
    """The cotangent the reference backpropagates: 'none''s array, a reduced loss's scalar
    upstream gradient (lsuite/inputs/kernel_cases.py), or None (1.0)."""
    return inputs.cotangent if inputs.upstream is None else inputs.upstream


def scaled(outputs, upstream):
    """PyTorch's own (value, gradient) with the gradient times a scalar upstream gradient."""
    return outputs if upstream is None else (outputs[0], outputs[1] * upstream)


def _what_it_computes(ctx: Context, inputs, out) -> dict | None:
    """The target distribution and denominator its gradient implies (lsuite/judging/effective.py),
    for a cross-entropy record with class-index targets and no class weights; None else."""
    case, impl = ctx.case, ctx.impl
    if (impl.input not in ("logits", "log_probs") or impl.form not in ("ce", "kl")
            or case.targets != "index" or inputs.weight is not None or out.grad is None
            or np.shape(out.grad) != np.shape(inputs.logits)):
        return None
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
        return effective.recover(inputs.logits, inputs.target, out.grad, eps=case.eps,
                                 claimed=impl.convention, reduction=case.reduction,
                                 denominators=denominators, cotangent=inputs.cotangent,
                                 ignore_index=inputs.spec.ignore_index,
                                 pad_index=inputs.spec.pad_index)
    except (ValueError, np.linalg.LinAlgError):  # a diagnosis only: never fails the check
        return None


def _zero_denominator(inputs) -> bool:
    """A reduced value whose denominator is zero (all ignored, zero total weight)."""
    if inputs.cotangent is not None:
        return False
    return reference.denominator(inputs.logits, inputs.target, inputs.spec, weight=inputs.weight) == 0


def _why(zero_denominator: bool) -> str:
    if zero_denominator:
        return "a divergence: the mean's denominator is zero, where NaN and inf are conventions"
    return ("a divergence: PyTorch's own primitives, on these inputs in this dtype on this "
            "device, give the same result")


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


def _true_class_entries(inputs, grad, grad_ref, att, base) -> _TrueClass | None:
    """The true-class entries of actual, reference, attainable and PyTorch's gradients."""
    grad = None if grad is None else np.asarray(grad, dtype=float)
    grad_ref = np.asarray(grad_ref, dtype=float)
    if grad is None or grad.shape != grad_ref.shape or grad_ref.size == 0:
        return None
    rows, classes = true_classes(inputs, reference.rows_last(grad_ref).shape[1])
    if rows.size == 0:
        return None

    def pick(array):
        return None if array is None else reference.rows_last(np.asarray(array, dtype=float))[rows, classes]

    return _TrueClass((rows, classes), pick(grad), pick(grad_ref), pick(None if att is None else att.grad),
                      None if base is None else reference.rows_last(base[1])[rows, classes])
