"""The reference check: one implementation on one case against the float64 reference.

The case's inputs (lsuite/cases.py) go to the reference and, through the one runner
(lsuite/runner.py), to the implementation; value and gradient are judged by the one
assertion (lsuite/assertions.py) against budgets from lsuite/tolerances.py, in low
precision anchored to PyTorch's own error on the same inputs (lsuite/torch_error.py). The
measured errors are handed to `ctx.record` before anything is raised, so a failed check
still reports its numbers.
"""

from __future__ import annotations

import numpy as np
import torch

import reference

from . import assertions, severity, tolerances
from .cases import make_inputs
from .runner import Context, Feed, run
from .torch_error import pytorch_error, pytorch_outputs


def _rounded_expectation(expected, out_dtype: str) -> np.ndarray:
    """A true value beyond the output dtype's range is +-inf once rounded: the right answer."""
    expected = np.asarray(expected, dtype=float)
    top = torch.finfo(getattr(torch, out_dtype)).max
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(expected) > top, np.copysign(np.inf, expected), expected)


def check_against_reference(ctx: Context) -> dict:
    """The conformance check: value and gradient of the implementation vs the reference."""
    inputs = severity.suite_step("making the case's inputs", make_inputs, ctx.impl, ctx.case,
                                 ctx.seed)
    ref = severity.suite_step("computing the reference", reference.loss_and_grad, inputs.logits,
                              inputs.target, inputs.spec, weight=inputs.weight,
                              cotangent=inputs.cotangent)
    shape = () if ctx.case.reduction != "none" else tuple(inputs.cotangent.shape)
    out = run(ctx, Feed(inputs.logits, inputs.target, inputs.weight, inputs.cotangent,
                        expect_shape=shape))
    base_value = base_grad = None
    if ctx.case.dtype != "float64":
        base_value, base_grad = pytorch_error(inputs, ctx.case.dtype, ref.value, ref.grad)
    problems, divergences, metrics, judged = list(out.notes), [], {}, []
    for what, actual, expected, base in (("value", out.value, ref.value, base_value),
                                         ("grad", out.grad, ref.grad, base_grad)):
        expected = _rounded_expectation(expected, ctx.case.dtype)
        diff = assertions.measure(actual, expected)
        budget = tolerances.budget(ctx.case.dtype, diff.scale, base)
        metrics.update({f"{what}_max_abs_err": diff.max_abs, f"{what}_max_rel_err": diff.max_rel,
                        f"{what}_budget": budget.allowed, f"baseline_{what}_abs_err": base})
        judged.append((what, actual, expected, budget, assertions.problem(what, actual, expected,
                                                                          budget, diff)))
    ctx.record(metrics)
    if any(found for *_, found in judged):
        twin = dict(zip(("value", "grad"), pytorch_outputs(inputs, ctx.case.dtype), strict=True))
        zero = _zero_denominator(inputs)
        for what, actual, expected, budget, found in judged:
            if found and severity.is_divergence(actual, expected, twin[what], budget, zero):
                divergences.append(f"{found} ({_why(zero)})")
            elif found:
                problems.append(found)
    if problems:
        raise ctx.fail("; ".join(problems + divergences))
    if divergences:
        raise ctx.fail("; ".join(divergences), kind=severity.CheckDiverged)
    return metrics


def _zero_denominator(inputs) -> bool:
    """A reduced value whose denominator is zero (all ignored, zero total weight)."""
    if inputs.cotangent is not None:
        return False
    return reference.denominator(inputs.logits, inputs.target, inputs.spec, weight=inputs.weight) == 0


def _why(zero_denominator: bool) -> str:
    if zero_denominator:
        return "a divergence: the mean's denominator is zero, where NaN and inf are conventions"
    return "a divergence: PyTorch's own primitives give the same NaN/inf on these inputs"
