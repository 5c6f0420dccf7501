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

from . import assertions, claims, tolerances
from .cases import make_inputs
from .runner import Context, Feed, run
from .torch_error import pytorch_error


def _rounded_expectation(expected, out_dtype: str) -> np.ndarray:
    """A true value beyond the output dtype's range is +-inf once rounded: the right answer."""
    expected = np.asarray(expected, dtype=float)
    top = torch.finfo(getattr(torch, out_dtype)).max
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(expected) > top, np.copysign(np.inf, expected), expected)


def check_against_reference(ctx: Context) -> dict:
    """The conformance check: value and gradient of the implementation vs the reference."""
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec,
                                  weight=inputs.weight, cotangent=inputs.cotangent)
    expected_value = claims.expected_value(ctx.impl, ctx.case.reduction, inputs, ref.value)
    dtype = claims.judged_dtype(ctx.impl, ctx.case.dtype)  # float32 for "computes in float32"
    shape = () if ctx.case.reduction != "none" else tuple(inputs.cotangent.shape)
    out = run(ctx, Feed(inputs.logits, inputs.target, inputs.weight, inputs.cotangent,
                        expect_shape=shape))
    base_value = base_grad = None
    if dtype != "float64":
        base_value, base_grad = pytorch_error(inputs, dtype, ref.value, ref.grad)
    problems, metrics = list(out.notes), {}
    for what, actual, expected, base in (("value", out.value, expected_value, base_value),
                                         ("grad", out.grad, ref.grad, base_grad)):
        expected = _rounded_expectation(expected, dtype)
        diff = assertions.measure(actual, expected)
        budget = tolerances.budget(dtype, diff.scale, base)
        metrics.update({f"{what}_max_abs_err": diff.max_abs, f"{what}_max_rel_err": diff.max_rel,
                        f"{what}_budget": budget.allowed, f"baseline_{what}_abs_err": base})
        problems.append(assertions.problem(what, actual, expected, budget, diff))
    ctx.record(metrics)
    problems = [p for p in problems if p]
    if problems:
        raise ctx.fail("; ".join(problems))
    return metrics
