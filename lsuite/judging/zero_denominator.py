"""Invariants at a mean whose denominator is zero: the severity rule of lsuite/judging/severity.py
applied to an implementation compared with itself or with the mathematics.

When the total target weight Σ w_y over kept rows is 0 (every target's class weighs 0,
another class does not) while the smoothing numerator is positive, the mathematics says
the mean is a positive number over 0: +inf. PyTorch's nn.CrossEntropyLoss returns NaN
there (0/0 in its NLL part mixed with x/0 in its smoothing part). Both are conventions of
one edge: an invariant compares what the mathematics says (+inf; NaN only where the
numerator is 0 too, or the record's claimed empty-mean value where nothing is kept) and
reports PyTorch's NaN as a divergence, never as an error. A finite value where the
mathematics says +-inf or NaN stays an error. The gradient there has no mathematical value;
the convention is PyTorch's for an all-ignored mean (0, the reference's), and a NaN or inf
in its place is a divergence.
"""

from __future__ import annotations

import numpy as np

import reference
from lsuite.inputs.cases import make_inputs, spec_for
from lsuite.inputs.strategies import Sample
from lsuite.judging import severity, tolerances
from lsuite.judging.assertions import assert_close
from lsuite.record import claims
from lsuite.running.runner import CheckFailed, Context

WHY = "a divergence: the mean's denominator is zero, where NaN and inf are conventions"


def mean_denominator(kept: np.ndarray, target: np.ndarray, weight: np.ndarray | None) -> float:
    """Σ w_y over kept entries (their count without weights): what `mean` divides by."""
    if not kept.any():
        return 0.0
    classes = target[kept]
    return float(classes.size if weight is None else np.asarray(weight)[classes].sum())


def over_zero(ctx: Context, numerator: float) -> float:
    """numerator / 0 as the mathematics says: +-inf, or (for 0/0) the record's empty mean."""
    if numerator == 0 or not np.isfinite(numerator):
        return float(claims.empty_mean_value(ctx.impl)) if numerator == 0 else float("nan")
    return float(np.copysign(np.inf, numerator))


def reference_denominator(ctx: Context, sample: Sample) -> float:
    """What the record's convention divides the summed row losses of a `mean` by."""
    spec = spec_for(ctx.impl, ctx.case.replace(reduction="mean"))
    return float(severity.suite_step("computing the reference", reference.denominator,
                                     sample.logits, sample.target, spec, weight=sample.weight))


def reference_numerator(ctx: Context, sample: Sample) -> float:
    """The summed row losses of the sample under the record's convention (float64), the
    numerator of its mean."""
    spec = spec_for(ctx.impl, ctx.case.replace(reduction="sum"))
    return float(severity.suite_step("computing the reference", reference.loss, sample.logits,
                                     sample.target, spec, weight=sample.weight))


def judge(ctx: Context, what: str, actual, expected, listed: bool = True) -> None:
    """actual == expected (NaN and inf where it has them); a NaN/inf where the other has the
    other special value, or a NaN/inf in place of the conventional 0, is a divergence:
    raised as one when `listed`, else passed over (a Hypothesis-drawn input that reaches
    the edge by chance: the fixed zero-total-weight checks list it every run, so a verdict
    does not depend on a draw)."""
    __tracebackhide__ = True
    budget = tolerances.invariant_budget(claims.judged_dtype(ctx.impl, ctx.case.dtype), 0.0)
    try:
        assert_close(what, actual, expected, budget, fail=ctx.fail)
    except CheckFailed as exc:
        if severity.is_divergence(actual, expected, None, budget, zero_denominator=True):
            if not listed:
                return
            raise ctx.fail(f"{exc.what} ({WHY})",
                           kind=severity.CheckDiverged) from None
        raise


def judge_mean(ctx: Context, what: str, value, grad, numerator: float, listed: bool) -> None:
    """A mean at a zero denominator: its value numerator/0, its gradient the convention."""
    __tracebackhide__ = True
    judge(ctx, f"value {what}", value, np.asarray(over_zero(ctx, numerator)), listed)
    if grad is not None:
        judge(ctx, f"grad {what}", grad, np.zeros_like(np.asarray(grad, dtype=float)), listed)


def zero_total_sample(ctx: Context) -> Sample:
    """The fixed input of a `weight="zero_total"` case as a Sample: every target's class
    weighs 0, other classes do not, so the smoothing numerator of the mean is positive."""
    inputs = severity.suite_step("making the case's inputs", make_inputs, ctx.impl, ctx.case, ctx.seed)
    case = ctx.case
    return Sample(inputs.logits, inputs.target, inputs.weight, case.eps,
                  case.ignore if case.ignore != "all" else "negative", case.layout, case.logits)
