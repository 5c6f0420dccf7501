"""The invariants' logic: properties every label-smoothing loss has whatever its convention,
checked on Hypothesis-drawn inputs (lsuite.inputs.strategies) by comparing an implementation with
itself on transformed inputs, or with a bound that needs no reference value.

Each check function takes the check's Context and one drawn `Sample`; every call goes
through the one runner (lsuite/running/runner.py) and every comparison through the one assertion
(lsuite/judging/assertions.py), so a violation raises `CheckFailed` whose message holds the
numbers, the budget (lsuite/judging/tolerances.py), the inputs as Python literals with the call,
and the Context's repro line.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import reference
from lsuite.checks import invariants
from lsuite.checks.invariants import assert_same, judged_dtype, largest
from lsuite.inputs.cases import Inputs, spec_for
from lsuite.inputs.strategies import Sample
from lsuite.judging import tolerances
from lsuite.judging import zero_denominator as zd
from lsuite.judging.wrong_shape import not_run_if_misshapen
from lsuite.record import claims
from lsuite.running.runner import Context, Feed, Outcome, run

KEEP = object()  # "the sample's own value" for evaluate()'s keyword arguments


def context_for(ctx: Context, sample: Sample, **case_changes) -> Context:
    """The check's Context for the drawn input: its case describes the sample (for building
    and messages) and every failure message carries the sample as Python literals."""
    case = ctx.case.replace(K=sample.K, N=sample.N, eps=sample.eps, layout=sample.layout,
                            ignore=sample.ignore, targets="index",
                            weight="none" if sample.weight is None else "random")
    case = case.replace(**case_changes)
    def detail() -> str:
        return f"--- inputs (shrunk) and call ---\n{sample.literal(call_text(ctx.impl, case))}\n---"
    return replace(ctx, case=case, detail=detail)


def load_text(impl) -> str:
    """Python that loads the implementation's record by its SPEC (the catalog's by name)."""
    if impl.origin == "builtin":
        return (f"from lsuite import catalog, peers\n"
                f"build = {{**catalog.by_name(), **peers.by_name()}}[{impl.name!r}].build")
    return f"from lsuite.catalogs.loading import load\nbuild = load({impl.origin!r}).build"


def call_text(impl, case) -> str:
    fed = "torch.log_softmax(logits, dim=logits.ndim > 1)" if impl.input == "log_probs" else "logits"
    return (f"{load_text(impl)}\nfrom lsuite.record.records import BuildConfig\n"
            f"loss_fn = build(BuildConfig(eps=eps, reduction={case.reduction!r}, num_classes={case.K}, "
            f"device={case.device!r}, dtype=torch.{case.dtype}, weight=weight, "
            f"ignore_index={case.passed_ignore_index!r}))  # {impl.name}: {impl.origin}\n"
            f"out = loss_fn({fed}, target); out.sum().backward()")


def evaluate(ctx: Context, sample: Sample, *, logits=KEEP, target=KEEP, weight=KEEP,
             no_grad: bool = False, non_contiguous: bool = False) -> Outcome:
    """One call through the runner on the sample (or on replacements of its arrays),
    backpropagating ones; a misshapen output is not judged (lsuite/judging/wrong_shape.py)."""
    feed = Feed.of_logits(sample.logits if logits is KEEP else logits,
                          sample.target if target is KEEP else target,
                          sample.weight if weight is KEEP else weight,
                          grad=not no_grad, non_contiguous=non_contiguous)
    return not_run_if_misshapen(ctx, run(ctx, feed), feed.logits, feed.target)


def class_axis(array: np.ndarray) -> int:
    return 0 if array.ndim == 1 else 1


def kept_mask(ctx: Context, sample: Sample) -> np.ndarray:
    """Entries of the target that count: not the effective ignore_index."""
    ignore = ctx.case.effective_ignore_index(ctx.impl)
    return np.ones(sample.target.shape, bool) if ignore is None else sample.target != ignore


# ---------------------------------------------------------------------------------------------
# The invariants. Each takes (ctx, sample[, extra draws]) and raises on a violation.

def as_inputs(ctx: Context, sample: Sample) -> Inputs:
    """The drawn sample as the logits kind's inputs (ctx: the sample's context_for)."""
    spec = spec_for(ctx.impl, ctx.case)
    return Inputs(sample.logits, sample.target, sample.weight, None, spec.ignore_index, spec)


def shift_invariance(ctx: Context, sample: Sample, shifts: np.ndarray) -> None:
    """L(z + c_row) == L(z) and the gradient too, for a drawn constant c per row
    (lsuite/checks/invariants.py)."""
    ctx = context_for(ctx, sample)
    invariants.shift_invariance(ctx, as_inputs(ctx, sample), shifts)


def class_permutation(ctx: Context, sample: Sample, order: np.ndarray) -> None:
    """Permuting classes (targets and weights remapped) permutes the gradient, keeps the value."""
    ctx = context_for(ctx, sample)
    invariants.class_permutation(ctx, as_inputs(ctx, sample), order)


def batch_permutation(ctx: Context, sample: Sample, order: np.ndarray) -> None:
    """Permuting rows keeps a reduced value, permutes `none` and the gradient."""
    ctx = context_for(ctx, sample)
    invariants.batch_permutation(ctx, as_inputs(ctx, sample), order)


def affine_in_smoothing(ctx: Context, sample: Sample, fixed: bool = False) -> None:
    """L(eps) == (1 - eps) L(0) + eps L(1): the target is linear in eps, the loss linear in it.
    `fixed`: a fixed input, whose divergences are listed (lsuite/judging/zero_denominator.py)."""
    eps = sample.eps
    at = {e: evaluate(context_for(ctx, replace(sample, eps=e)), replace(sample, eps=e))
          for e in (0.0, 1.0, eps)}
    ctx = context_for(ctx, sample)
    if ctx.case.reduction == "mean" and zd.reference_denominator(ctx, sample) == 0:  # x/0
        zd.judge_mean(ctx, f"at eps={eps!r}", at[eps].value, at[eps].grad,
                      zd.reference_numerator(ctx, sample), listed=fixed)
        return
    scale = largest(sample.logits)
    for what in ("value", "grad"):
        mixed = (1 - eps) * getattr(at[0.0], what) + eps * getattr(at[1.0], what)
        assert_same(ctx, f"{what} at eps={eps!r}", getattr(at[eps], what), mixed,
                    logit_scale=scale)


def ignored_rows_are_inert(ctx: Context, sample: Sample, replacement: np.ndarray) -> None:
    """Ignored rows' logits move neither value nor gradient, and their gradient is exactly 0."""
    ctx = context_for(ctx, sample)
    axis = class_axis(sample.logits)
    ignored = np.expand_dims(~kept_mask(ctx, sample), axis)
    other = np.where(ignored, replacement.reshape(sample.logits.shape), sample.logits)
    base, moved = evaluate(ctx, sample), evaluate(ctx, sample, logits=other)
    for outcome in (base, moved):
        rows = np.broadcast_to(ignored, outcome.grad.shape)
        if (outcome.grad[rows] != 0).any():
            bad = float(np.abs(outcome.grad[rows]).max())
            raise ctx.fail(f"grad on ignored rows={bad!r} (max abs), but should be exactly 0")
    scale = largest(sample.logits, other)
    assert_same(ctx, "value after changing ignored rows", moved.value, base.value,
                logit_scale=scale)
    assert_same(ctx, "grad after changing ignored rows", moved.grad, base.grad,
                logit_scale=scale)


def sum_is_sum_of_none(ctx: Context, sample: Sample) -> None:
    """reduction='sum' == reduction='none'.sum(), gradients too."""
    total = evaluate(context_for(ctx, sample, reduction="sum"), sample)
    parts = evaluate(context_for(ctx, sample, reduction="none"), sample)
    ctx = context_for(ctx, sample, reduction="sum")
    scale = largest(sample.logits)
    assert_same(ctx, "sum", total.value, parts.value.sum(), logit_scale=scale)
    assert_same(ctx, "grad of sum", total.grad, parts.grad, logit_scale=scale)


def mean_is_sum_over_denominator(ctx: Context, sample: Sample, fixed: bool = False) -> None:
    """reduction='mean' == 'sum' / Σ w_y over kept rows (the row count without weights)."""
    total = evaluate(context_for(ctx, sample, reduction="sum"), sample)
    mean = evaluate(context_for(ctx, sample, reduction="mean"), sample)
    ctx = context_for(ctx, sample, reduction="mean")
    kept = kept_mask(ctx, sample)
    denominator = zd.mean_denominator(kept, sample.target, sample.weight)
    scale = largest(sample.logits)
    if denominator == 0:  # the sum over 0: +-inf, or 0/0 (lsuite/judging/zero_denominator.py)
        numerator = float(total.value) if kept.any() else 0.0  # nothing kept: the empty mean
        zd.judge_mean(ctx, f"mean (sum={numerator!r} over a zero denominator)", mean.value,
                      None, numerator, listed=fixed)
        return
    assert_same(ctx, f"mean (sum/{denominator!r})", mean.value,
                total.value / denominator, logit_scale=scale)
    assert_same(ctx, "grad of mean", mean.grad, total.grad / denominator,
                logit_scale=scale)


def gradient_rows_sum_to_zero(ctx: Context, sample: Sample) -> None:
    """For a proper target and unit weights the gradient is s·p - q with s = Σq: rows sum to 0."""
    ctx = context_for(ctx, sample)
    grad = evaluate(ctx, sample).grad
    sums = grad.sum(axis=class_axis(grad))
    budget = tolerances.invariant_budget(judged_dtype(ctx), largest(grad) * sample.K)
    assert_same(ctx, "grad summed over classes", sums, np.zeros_like(sums), budget=budget)


def row_targets(ctx: Context, sample: Sample) -> np.ndarray:
    """The claimed target distribution per row (zeros on ignored rows): (rows..., K)."""
    spec = spec_for(ctx.impl, ctx.case)
    kept = kept_mask(ctx, sample)
    q = np.zeros((*sample.target.shape, sample.K))
    for index in np.ndindex(sample.target.shape):
        if kept[index]:
            q[index] = reference.target_distribution(spec, sample.K, int(sample.target[index]))
    return q


def reduce_rows(ctx: Context, sample: Sample, per_row: np.ndarray) -> np.ndarray:
    """Reduce per-row values the way ctx.case.reduction does (unit weights)."""
    reduction = ctx.case.reduction
    if reduction == "none":
        return per_row
    total = per_row.sum()
    if reduction == "mean":
        count = kept_mask(ctx, sample).sum()
        return np.asarray(total / count if count else claims.empty_mean_value(ctx.impl))
    if reduction in ("batchmean", "row_mean"):
        return np.asarray(total / sample.N)
    return np.asarray(total)


def bounded_below_by_entropy(ctx: Context, sample: Sample) -> None:
    """CE >= H(q) (Gibbs) and KL >= 0, reduced like the loss, within the budget."""
    ctx = context_for(ctx, sample)
    value = evaluate(ctx, sample).value
    bound = np.zeros(sample.target.shape)
    if ctx.impl.form == "ce":
        bound = np.asarray(reference.entropy(row_targets(ctx, sample)))
    bound = reduce_rows(ctx, sample, bound)
    # (Σq)·LSE − q·z: terms of the logits' size cancel, so rounding is relative to |z| (as in
    # invariant_budget); the bugs caught here (a sign, logits fed as log-probs) are O(1).
    budget = tolerances.BOUND_RTOL[judged_dtype(ctx)] * largest(bound, value) \
        + tolerances.RTOL[judged_dtype(ctx)] * largest(sample.logits) + tolerances.ATOL[judged_dtype(ctx)]
    below = np.asarray(value < bound - budget)
    if below.any():
        flat = int(np.argmax(below.reshape(-1)))
        name = "H(q)" if ctx.impl.form == "ce" else "0"
        raise ctx.fail(f"out={np.asarray(value).reshape(-1)[flat]!r}, but should be >= "
                   f"{name}={np.asarray(bound).reshape(-1)[flat]!r} (budget {budget:.3g})")


def minimum_at_log_target(ctx: Context, sample: Sample) -> None:
    """At z = log q + c the gradient vanishes and the value is H(q) (CE) or 0 (KL)."""
    ctx = context_for(ctx, sample)
    q = row_targets(ctx, sample)
    axis = class_axis(sample.logits)
    kept = kept_mask(ctx, sample)
    offset = np.expand_dims(sample.logits.take(0, axis=axis), axis)
    with np.errstate(divide="ignore"):
        log_q = np.moveaxis(np.log(np.where(kept[..., None], q, 1.0)), -1, axis)
    at = replace(sample, logits=log_q + offset)
    ctx = context_for(ctx, at)  # failures show the minimiser's logits
    outcome = evaluate(ctx, at)
    expected = np.zeros(sample.target.shape)
    if ctx.impl.form == "ce":
        expected = np.asarray(reference.entropy(q))
    expected = reduce_rows(ctx, sample, expected)
    scale = largest(at.logits)
    assert_same(ctx, "value at the minimiser", outcome.value, expected, logit_scale=scale)
    assert_same(ctx, "grad at the minimiser", outcome.grad, np.zeros_like(outcome.grad),
                logit_scale=scale)


def implied_target_mass(ctx: Context, sample: Sample, classes: list[int]) -> None:
    """Recover s = Σq from the gradient of one row at z = 0 (s/K - q) and at another z
    (s·p - q): the target distribution the implementation uses must sum to one."""
    K = sample.K
    z1 = sample.logits.reshape(-1, K)[0]
    p1 = np.exp(z1 - np.logaddexp.reduce(z1))
    if np.sum((p1 - 1.0 / K) ** 2) < 1e-6:  # p too close to uniform to separate s from q
        z1 = np.linspace(0.0, 3.0, K)
        p1 = np.exp(z1 - np.logaddexp.reduce(z1))
    for cls in classes:
        row = replace(sample, logits=np.zeros((1, K)), target=np.array([cls]), layout="2d")
        sub = context_for(ctx, row)
        g0 = evaluate(sub, row).grad[0]
        g1 = evaluate(sub, row, logits=z1[None, :]).grad[0]
        direction = p1 - 1.0 / K
        mass = float((g1 - g0) @ direction / (direction @ direction))
        q = mass / K - g0
        err = abs(mass - 1.0)
        if not err <= tolerances.TARGET_MASS_ATOL[judged_dtype(ctx)]:
            raise context_for(ctx, replace(row, logits=z1[None, :])).fail(
                       f"implied target mass sum(q)={mass!r} for target class {cls}, but should be 1 "
                       f"(budget {tolerances.TARGET_MASS_ATOL[judged_dtype(ctx)]:.3g}); recovered "
                       f"q[{cls}]={q[cls]!r}, min(q)={q.min()!r}")


def repeat_is_bitwise_identical(ctx: Context, sample: Sample) -> None:
    ctx = context_for(ctx, sample)
    first, second = evaluate(ctx, sample), evaluate(ctx, sample)
    for what in ("value", "grad"):
        a, b = getattr(second, what), getattr(first, what)
        if not np.array_equal(a, b, equal_nan=True):
            assert_same(ctx, f"{what} on repeat", a, b, budget=tolerances.EXACT)


def no_grad_matches_grad(ctx: Context, sample: Sample) -> None:
    ctx = context_for(ctx, sample)
    with_grad, without = evaluate(ctx, sample), evaluate(ctx, sample, no_grad=True)
    assert_same(ctx, "value under no_grad", without.value, with_grad.value,
                logit_scale=largest(sample.logits))


def non_contiguous_matches_contiguous(ctx: Context, sample: Sample) -> None:
    ctx = context_for(ctx, sample)
    base, strided = evaluate(ctx, sample), evaluate(ctx, sample, non_contiguous=True)
    scale = largest(sample.logits)
    assert_same(ctx, "value on non-contiguous logits", strided.value, base.value,
                logit_scale=scale)
    assert_same(ctx, "grad on non-contiguous logits", strided.grad, base.grad,
                logit_scale=scale)


def layout_matches_2d(ctx: Context, sample: Sample) -> None:
    """An N-D (N, K, d...) or unbatched (K,) input equals the same rows as a 2-D (rows, K) input."""
    ctx_nd = context_for(ctx, sample)
    K = sample.K
    rows = np.moveaxis(sample.logits, class_axis(sample.logits), -1).reshape(-1, K)
    flat = replace(sample, logits=rows, target=sample.target.reshape(-1), layout="2d")
    ctx_2d = context_for(ctx, flat)
    shaped, plain = evaluate(ctx_nd, sample), evaluate(ctx_2d, flat)
    # batchmean divides by the first dim (docs/specification.md §6), which the layouts differ in: N for
    # N-D, but K for an unbatched (K,) input, as torch's KLDivLoss does.
    factor = flat.N / sample.logits.shape[0] if ctx.case.reduction == "batchmean" else 1.0
    expected = plain.value.reshape(shaped.value.shape) if ctx.case.reduction == "none" else plain.value
    expected = expected * factor
    grad = np.moveaxis(plain.grad.reshape(*sample.target.shape, K), -1,
                       class_axis(sample.logits)) * factor
    scale = largest(sample.logits)
    assert_same(ctx_nd, f"value in layout {sample.layout}", shaped.value, expected,
                logit_scale=scale)
    assert_same(ctx_nd, f"grad in layout {sample.layout}", shaped.grad, grad,
                logit_scale=scale)
