"""The invariants' logic: properties every label-smoothing loss has whatever its convention,
checked on Hypothesis-drawn inputs (lsuite.strategies) by comparing an implementation with
itself on transformed inputs, or with a bound that needs no reference value.

Each check function takes the harness Context and one drawn `Problem`; a violation raises
`CheckFailed` whose message holds the numbers, the budget (lsuite/tolerances.py), the
inputs as Python literals with the call, and the Context's repro line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

import reference

from . import tolerances
from .cases import spec_for
from .harness import Context, build, call
from .strategies import Problem

KEEP = object()  # "the problem's own value" for evaluate()'s keyword arguments


@dataclass(frozen=True)
class Outcome:
    value: np.ndarray  # float64 copy of the output
    grad: np.ndarray  # float64 gradient w.r.t. the logits (cotangent ones for reduction none)


def context_for(ctx: Context, problem: Problem, **case_changes) -> Context:
    """The check's Context with the case describing the drawn input (for messages, build)."""
    case = ctx.case.replace(K=problem.K, N=problem.N, eps=problem.eps, layout=problem.layout,
                            ignore=problem.ignore, targets="index",
                            weight="none" if problem.weight is None else "random")
    return replace(ctx, case=case.replace(**case_changes))


def call_text(ctx: Context) -> str:
    case, impl = ctx.case, ctx.impl
    fed = "torch.log_softmax(logits, dim=logits.ndim > 1)" if impl.input == "log_probs" else "logits"
    return (f"loss_fn = build(BuildConfig(eps=eps, reduction={case.reduction!r}, num_classes={case.K}, "
            f"device={case.device!r}, dtype=torch.{case.dtype}, weight=weight, "
            f"ignore_index={case.passed_ignore_index!r}))  # {impl.name}: {impl.origin}\n"
            f"out = loss_fn({fed}, target); out.sum().backward()")


def fail(ctx: Context, problem: Problem, what: str):
    return ctx.fail(f"{what}\n--- inputs (shrunk) and call ---\n{problem.literal(call_text(ctx))}\n---")


def evaluate(ctx: Context, problem: Problem, *, logits=KEEP, target=KEEP, weight=KEEP,
             no_grad: bool = False, non_contiguous: bool = False) -> Outcome:
    """Build the implementation for ctx.case, call it once, backpropagate ones."""
    dtype, device = getattr(torch, ctx.case.dtype), ctx.case.device
    z = problem.logits if logits is KEEP else logits
    t = problem.target if target is KEEP else target
    w = problem.weight if weight is KEEP else weight
    leaf = torch.tensor(z, dtype=dtype, device=device, requires_grad=not no_grad)
    target_t = torch.tensor(t, dtype=torch.int64, device=device)
    weight_t = None if w is None else torch.tensor(w, dtype=dtype, device=device)
    loss_fn = build(ctx, weight_t)
    fed = torch.stack([leaf, leaf], dim=-1)[..., 0] if non_contiguous else leaf
    if no_grad:
        with torch.no_grad():
            out = call(ctx, loss_fn, fed, target_t)
    else:
        out = call(ctx, loss_fn, fed, target_t)
    if not isinstance(out, torch.Tensor):
        raise fail(ctx, problem, f"out={type(out).__name__}, but should be a torch.Tensor")
    value = out.detach().double().cpu().numpy()
    if no_grad:
        return Outcome(value, np.zeros_like(z))
    if not out.requires_grad:
        raise fail(ctx, problem, "out.requires_grad=False: the loss does not depend on the logits")
    try:
        out.backward(torch.ones_like(out))
    except Exception as exc:
        raise fail(ctx, problem, f"backward raised {type(exc).__name__}: {exc}") from exc
    grad = np.zeros_like(z) if leaf.grad is None else leaf.grad.double().cpu().numpy()
    return Outcome(value, grad)


def _finite_max(*arrays) -> float:
    values = [np.abs(a[np.isfinite(a)]).max() for a in map(np.asarray, arrays)
              if np.isfinite(a).any()]
    return float(max(values, default=0.0))


def assert_same(ctx: Context, problem: Problem, what: str, actual, expected, *,
                logit_scale: float = 0.0, budget: float | None = None) -> None:
    """actual == expected within the invariant budget, NaN and inf where the other has them."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    if actual.shape != expected.shape:
        raise fail(ctx, problem, f"{what}.shape={actual.shape}, but should be {expected.shape}")
    if budget is None:
        budget = tolerances.invariant_budget(ctx.case.dtype, _finite_max(expected), logit_scale)
    nan_or_inf = ~(np.isfinite(actual) & np.isfinite(expected))
    pattern = nan_or_inf & ~((actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    with np.errstate(invalid="ignore"):
        diff = np.where(nan_or_inf, 0.0, np.abs(actual - expected))
    if pattern.any() or (diff.size and diff.max() > budget):
        flat = int(np.argmax(pattern.reshape(-1))) if pattern.any() else int(np.argmax(diff))
        where = list(np.unravel_index(flat, actual.shape)) if actual.ndim else []
        at = f"{[int(i) for i in where]}" if where else ""
        raise fail(ctx, problem, f"{what}{at}={actual.reshape(-1)[flat]!r}, but should be "
                   f"{expected.reshape(-1)[flat]!r} (max abs difference {float(diff.max()) if diff.size else 0.0:.3g}, "
                   f"budget {budget:.3g})")


def class_axis(array: np.ndarray) -> int:
    return 0 if array.ndim == 1 else 1


def kept_mask(ctx: Context, problem: Problem) -> np.ndarray:
    """Entries of the target that count: not the effective ignore_index."""
    ignore = ctx.case.effective_ignore_index(ctx.impl)
    return np.ones(problem.target.shape, bool) if ignore is None else problem.target != ignore


def fixed_classes(ctx: Context, K: int) -> set[int]:
    """Classes a permutation must leave in place: an in-range ignore_index or padding column."""
    fixed = set()
    for index in (ctx.case.effective_ignore_index(ctx.impl),):
        if index is not None and (0 <= index < K or ctx.impl.pad_index_is_ignore_index):
            fixed.add(index % K)
    return fixed


# ---------------------------------------------------------------------------------------------
# The invariants. Each takes (ctx, problem[, extra draws]) and raises on a violation.

def shift_invariance(ctx: Context, problem: Problem, shifts: np.ndarray) -> None:
    """L(z + c_row) == L(z) and the gradient too, for a constant c per row."""
    ctx = context_for(ctx, problem)
    axis = class_axis(problem.logits)
    shifted = problem.logits + np.expand_dims(shifts.reshape(problem.target.shape), axis)
    base, moved = evaluate(ctx, problem), evaluate(ctx, problem, logits=shifted)
    scale = _finite_max(problem.logits, shifted)
    assert_same(ctx, problem, "value after shift", moved.value, base.value, logit_scale=scale)
    assert_same(ctx, problem, "grad after shift", moved.grad, base.grad, logit_scale=scale)


def class_permutation(ctx: Context, problem: Problem, order: np.ndarray) -> None:
    """Permuting classes (targets and weights remapped) permutes the gradient, keeps the value."""
    ctx = context_for(ctx, problem)
    axis = class_axis(problem.logits)
    inverse = np.argsort(order)  # new position of old class c
    kept = problem.target != ctx.case.passed_ignore_index if ctx.case.passed_ignore_index is not None \
        else np.ones(problem.target.shape, bool)
    target = np.where(kept, inverse[np.where(kept, problem.target, 0)], problem.target)
    weight = None if problem.weight is None else problem.weight[order]
    logits = np.take(problem.logits, order, axis=axis)
    base = evaluate(ctx, problem)
    moved = evaluate(ctx, problem, logits=logits, target=target, weight=weight)
    scale = _finite_max(problem.logits)
    assert_same(ctx, problem, "value after class permutation", moved.value, base.value, logit_scale=scale)
    assert_same(ctx, problem, "grad after class permutation", moved.grad,
                np.take(base.grad, order, axis=axis), logit_scale=scale)


def batch_permutation(ctx: Context, problem: Problem, order: np.ndarray) -> None:
    """Permuting rows keeps a reduced value, permutes `none` and the gradient."""
    ctx = context_for(ctx, problem)
    base = evaluate(ctx, problem)
    moved = evaluate(ctx, problem, logits=problem.logits[order], target=problem.target[order])
    expected = base.value[order] if ctx.case.reduction == "none" else base.value
    scale = _finite_max(problem.logits)
    assert_same(ctx, problem, "value after batch permutation", moved.value, expected, logit_scale=scale)
    assert_same(ctx, problem, "grad after batch permutation", moved.grad, base.grad[order],
                logit_scale=scale)


def affine_in_smoothing(ctx: Context, problem: Problem) -> None:
    """L(eps) == (1 - eps) L(0) + eps L(1): the target is linear in eps, the loss linear in it."""
    eps = problem.eps
    at = {e: evaluate(context_for(ctx, replace(problem, eps=e)), replace(problem, eps=e))
          for e in (0.0, 1.0, eps)}
    ctx = context_for(ctx, problem)
    scale = _finite_max(problem.logits)
    for what in ("value", "grad"):
        mixed = (1 - eps) * getattr(at[0.0], what) + eps * getattr(at[1.0], what)
        assert_same(ctx, problem, f"{what} at eps={eps!r}", getattr(at[eps], what), mixed,
                    logit_scale=scale)


def ignored_rows_are_inert(ctx: Context, problem: Problem, replacement: np.ndarray) -> None:
    """Ignored rows' logits move neither value nor gradient, and their gradient is exactly 0."""
    ctx = context_for(ctx, problem)
    axis = class_axis(problem.logits)
    ignored = np.expand_dims(~kept_mask(ctx, problem), axis)
    other = np.where(ignored, replacement.reshape(problem.logits.shape), problem.logits)
    base, moved = evaluate(ctx, problem), evaluate(ctx, problem, logits=other)
    for outcome in (base, moved):
        rows = np.broadcast_to(ignored, outcome.grad.shape)
        if (outcome.grad[rows] != 0).any():
            bad = float(np.abs(outcome.grad[rows]).max())
            raise fail(ctx, problem, f"grad on ignored rows={bad!r} (max abs), but should be exactly 0")
    scale = _finite_max(problem.logits, other)
    assert_same(ctx, problem, "value after changing ignored rows", moved.value, base.value,
                logit_scale=scale)
    assert_same(ctx, problem, "grad after changing ignored rows", moved.grad, base.grad,
                logit_scale=scale)


def sum_is_sum_of_none(ctx: Context, problem: Problem) -> None:
    """reduction='sum' == reduction='none'.sum(), gradients too."""
    total = evaluate(context_for(ctx, problem, reduction="sum"), problem)
    parts = evaluate(context_for(ctx, problem, reduction="none"), problem)
    ctx = context_for(ctx, problem, reduction="sum")
    scale = _finite_max(problem.logits)
    assert_same(ctx, problem, "sum", total.value, parts.value.sum(), logit_scale=scale)
    assert_same(ctx, problem, "grad of sum", total.grad, parts.grad, logit_scale=scale)


def mean_is_sum_over_denominator(ctx: Context, problem: Problem) -> None:
    """reduction='mean' == 'sum' / Σ w_y over kept rows (the row count without weights)."""
    total = evaluate(context_for(ctx, problem, reduction="sum"), problem)
    mean = evaluate(context_for(ctx, problem, reduction="mean"), problem)
    ctx = context_for(ctx, problem, reduction="mean")
    kept = kept_mask(ctx, problem)
    weight = np.ones(problem.K) if problem.weight is None else problem.weight
    denominator = float(weight[problem.target[kept]].sum()) if kept.any() else 0.0
    scale = _finite_max(problem.logits)
    if denominator == 0:
        assert_same(ctx, problem, "mean with nothing to average", mean.value, np.nan)
        return
    assert_same(ctx, problem, f"mean (sum/{denominator!r})", mean.value,
                total.value / denominator, logit_scale=scale)
    assert_same(ctx, problem, "grad of mean", mean.grad, total.grad / denominator,
                logit_scale=scale)


def gradient_rows_sum_to_zero(ctx: Context, problem: Problem) -> None:
    """For a proper target and unit weights the gradient is s·p - q with s = Σq: rows sum to 0."""
    ctx = context_for(ctx, problem)
    grad = evaluate(ctx, problem).grad
    sums = grad.sum(axis=class_axis(grad))
    budget = tolerances.invariant_budget(ctx.case.dtype, _finite_max(grad) * problem.K)
    assert_same(ctx, problem, "grad summed over classes", sums, np.zeros_like(sums), budget=budget)


def row_targets(ctx: Context, problem: Problem) -> np.ndarray:
    """The claimed target distribution per row (zeros on ignored rows): (rows..., K)."""
    spec = spec_for(ctx.impl, ctx.case)
    kept = kept_mask(ctx, problem)
    q = np.zeros((*problem.target.shape, problem.K))
    for index in np.ndindex(problem.target.shape):
        if kept[index]:
            q[index] = reference.target_distribution(spec, problem.K, int(problem.target[index]))
    return q


def reduce_rows(ctx: Context, problem: Problem, per_row: np.ndarray) -> np.ndarray:
    """Reduce per-row values the way ctx.case.reduction does (unit weights)."""
    reduction = ctx.case.reduction
    if reduction == "none":
        return per_row
    total = per_row.sum()
    if reduction == "mean":
        count = kept_mask(ctx, problem).sum()
        return np.asarray(total / count if count else np.nan)
    if reduction in ("batchmean", "row_mean"):
        return np.asarray(total / problem.N)
    return np.asarray(total)


def bounded_below_by_entropy(ctx: Context, problem: Problem) -> None:
    """CE >= H(q) (Gibbs) and KL >= 0, reduced like the loss, within the budget."""
    ctx = context_for(ctx, problem)
    value = evaluate(ctx, problem).value
    bound = np.zeros(problem.target.shape)
    if ctx.impl.form == "ce":
        bound = np.asarray(reference.entropy(row_targets(ctx, problem)))
    bound = reduce_rows(ctx, problem, bound)
    budget = tolerances.BOUND_RTOL[ctx.case.dtype] * _finite_max(bound, value) \
        + tolerances.ATOL[ctx.case.dtype]
    below = np.asarray(value < bound - budget)
    if below.any():
        flat = int(np.argmax(below.reshape(-1)))
        name = "H(q)" if ctx.impl.form == "ce" else "0"
        raise fail(ctx, problem, f"out={np.asarray(value).reshape(-1)[flat]!r}, but should be >= "
                   f"{name}={np.asarray(bound).reshape(-1)[flat]!r} (budget {budget:.3g})")


def minimum_at_log_target(ctx: Context, problem: Problem) -> None:
    """At z = log q + c the gradient vanishes and the value is H(q) (CE) or 0 (KL)."""
    ctx = context_for(ctx, problem)
    q = row_targets(ctx, problem)
    axis = class_axis(problem.logits)
    kept = kept_mask(ctx, problem)
    offset = np.expand_dims(problem.logits.take(0, axis=axis), axis)
    with np.errstate(divide="ignore"):
        log_q = np.moveaxis(np.log(np.where(kept[..., None], q, 1.0)), -1, axis)
    at = replace(problem, logits=log_q + offset)
    outcome = evaluate(ctx, at)
    expected = np.zeros(problem.target.shape)
    if ctx.impl.form == "ce":
        expected = np.asarray(reference.entropy(q))
    expected = reduce_rows(ctx, problem, expected)
    scale = _finite_max(at.logits)
    assert_same(ctx, at, "value at the minimiser", outcome.value, expected, logit_scale=scale)
    assert_same(ctx, at, "grad at the minimiser", outcome.grad, np.zeros_like(outcome.grad),
                logit_scale=scale)


def implied_target_mass(ctx: Context, problem: Problem, classes: list[int]) -> None:
    """Recover s = Σq from the gradient of one row at z = 0 (s/K - q) and at another z
    (s·p - q): the target distribution the implementation uses must sum to one."""
    K = problem.K
    z1 = problem.logits.reshape(-1, K)[0]
    p1 = np.exp(z1 - np.logaddexp.reduce(z1))
    if np.sum((p1 - 1.0 / K) ** 2) < 1e-6:  # p too close to uniform to separate s from q
        z1 = np.linspace(0.0, 3.0, K)
        p1 = np.exp(z1 - np.logaddexp.reduce(z1))
    for cls in classes:
        row = replace(problem, logits=np.zeros((1, K)), target=np.array([cls]), layout="2d")
        sub = context_for(ctx, row)
        g0 = evaluate(sub, row).grad[0]
        g1 = evaluate(sub, row, logits=z1[None, :]).grad[0]
        direction = p1 - 1.0 / K
        mass = float((g1 - g0) @ direction / (direction @ direction))
        q = mass / K - g0
        err = abs(mass - 1.0)
        if not err <= tolerances.TARGET_MASS_ATOL[ctx.case.dtype]:
            raise fail(sub, replace(row, logits=z1[None, :]),
                       f"implied target mass sum(q)={mass!r} for target class {cls}, but should be 1 "
                       f"(budget {tolerances.TARGET_MASS_ATOL[ctx.case.dtype]:.3g}); recovered "
                       f"q[{cls}]={q[cls]!r}, min(q)={q.min()!r}")


def repeat_is_bitwise_identical(ctx: Context, problem: Problem) -> None:
    ctx = context_for(ctx, problem)
    first, second = evaluate(ctx, problem), evaluate(ctx, problem)
    for what in ("value", "grad"):
        a, b = getattr(second, what), getattr(first, what)
        if not np.array_equal(a, b, equal_nan=True):
            assert_same(ctx, problem, f"{what} on repeat", a, b, budget=0.0)


def no_grad_matches_grad(ctx: Context, problem: Problem) -> None:
    ctx = context_for(ctx, problem)
    with_grad, without = evaluate(ctx, problem), evaluate(ctx, problem, no_grad=True)
    assert_same(ctx, problem, "value under no_grad", without.value, with_grad.value,
                logit_scale=_finite_max(problem.logits))


def non_contiguous_matches_contiguous(ctx: Context, problem: Problem) -> None:
    ctx = context_for(ctx, problem)
    base, strided = evaluate(ctx, problem), evaluate(ctx, problem, non_contiguous=True)
    scale = _finite_max(problem.logits)
    assert_same(ctx, problem, "value on non-contiguous logits", strided.value, base.value,
                logit_scale=scale)
    assert_same(ctx, problem, "grad on non-contiguous logits", strided.grad, base.grad,
                logit_scale=scale)


def layout_matches_2d(ctx: Context, problem: Problem) -> None:
    """An N-D (N, K, d...) or unbatched (K,) input equals the same rows as a 2-D (rows, K) input."""
    ctx_nd = context_for(ctx, problem)
    K = problem.K
    rows = np.moveaxis(problem.logits, class_axis(problem.logits), -1).reshape(-1, K)
    flat = replace(problem, logits=rows, target=problem.target.reshape(-1), layout="2d")
    ctx_2d = context_for(ctx, flat)
    shaped, plain = evaluate(ctx_nd, problem), evaluate(ctx_2d, flat)
    # batchmean divides by the first dim (CONVENTIONS §6), which the layouts differ in: N for
    # N-D, but K for an unbatched (K,) input, as torch's KLDivLoss does.
    factor = flat.N / problem.logits.shape[0] if ctx.case.reduction == "batchmean" else 1.0
    expected = plain.value.reshape(shaped.value.shape) if ctx.case.reduction == "none" else plain.value
    expected = expected * factor
    grad = np.moveaxis(plain.grad.reshape(*problem.target.shape, K), -1,
                       class_axis(problem.logits)) * factor
    scale = _finite_max(problem.logits)
    assert_same(ctx_nd, problem, f"value in layout {problem.layout}", shaped.value, expected,
                logit_scale=scale)
    assert_same(ctx_nd, problem, f"grad in layout {problem.layout}", shaped.grad, grad,
                logit_scale=scale)
