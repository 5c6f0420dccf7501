"""The three invariants every input kind has, written once: a shift of every logit of a row
(through whichever leaf the kind declares shiftable: the logits, or the bias), a permutation
of the classes (every leaf with a class axis, the weights, the targets relabelled), and a
permutation of the rows (every leaf with a row axis, the targets, the cotangent); plus, for
a kind that runs on ranks, the world size. Each compares the implementation with itself,
every named output (the value and every leaf's gradient), within the invariant budget.

The transforms are the kind's (lsuite/kinds/kind.py, from its declared leaves); the
Hypothesis-drawn versions on one logits tensor (lsuite/checks/properties.py) call the same
functions with drawn shifts and orders.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsuite.checks.calling import merged, outcomes
from lsuite.judging import tolerances
from lsuite.judging.assertions import Budget, assert_close
from lsuite.judging.attainable import finite_max
from lsuite.judging.wrong_shape import not_run_if_misshapen
from lsuite.kinds import Kind, kind_of
from lsuite.record import claims
from lsuite.running.runner import Context

# The constant added to every logit of fixed inputs, and the seed of their permutations of
# classes and rows (a node id is a repro).
SHIFT = 2.0
PERMUTATION_SEED = 7


def judged_dtype(ctx: Context) -> str:
    """The dtype whose budgets hold (float32 at float64 for "computes in float32")."""
    return claims.judged_dtype(ctx.impl, ctx.case.dtype)


def largest(*arrays) -> float:
    """The largest finite magnitude over the arrays (0.0 when none is finite)."""
    return max((finite_max(np.abs(np.asarray(a, dtype=float))) for a in arrays), default=0.0)


def assert_same(ctx: Context, what: str, actual, expected, *, logit_scale: float = 0.0,
                budget: Budget | None = None) -> None:
    """actual == expected within the invariant budget, NaN and inf where the other has them."""
    __tracebackhide__ = True
    if budget is None:
        budget = tolerances.invariant_budget(judged_dtype(ctx), largest(expected), logit_scale)
    assert_close(what, actual, expected, budget, fail=ctx.fail)


def outputs(ctx: Context, kind: Kind, inputs, world: int | None = None) -> dict:
    """Every named output of one call (every rank's put together); a misshapen output is
    not judged (lsuite/judging/wrong_shape.py)."""
    results = outcomes(ctx, kind, kind.feed(inputs), world)
    for result in results:
        not_run_if_misshapen(ctx, result, inputs.logits, inputs.target)
    return merged(kind, results)


def _compare(ctx: Context, expected: dict, actual: dict, what: str, scale: float) -> None:
    __tracebackhide__ = True
    for name, value in expected.items():
        assert_same(ctx, f"{name} {what}", actual[name], value, logit_scale=scale)


def _inputs(ctx: Context, kind: Kind, inputs):
    return kind.make_inputs(ctx.impl, ctx.case, ctx.seed) if inputs is None else inputs


def fixed_classes(ctx: Context, K: int) -> set[int]:
    """Classes a permutation must leave in place: an in-range ignore_index or padding column."""
    index = ctx.case.effective_ignore_index(ctx.impl)
    if index is not None and (0 <= index < K or ctx.impl.pad_index_is_ignore_index):
        return {index % K}
    return set()


def seeded_order(ctx: Context, K: int, seed: int = PERMUTATION_SEED) -> np.ndarray:
    """A seeded permutation of the K classes that leaves fixed_classes in place."""
    fixed = fixed_classes(ctx, K)
    movable = [c for c in range(K) if c not in fixed]
    order = np.arange(K)
    order[movable] = np.random.default_rng(seed).permutation(movable)
    return order


def relabel(ctx: Context, target: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The targets once the classes are permuted by `order` (class order[j] moves to j);
    targets equal to the ignore_index passed stay as they are."""
    inverse = np.argsort(order)  # new position of old class c
    index = ctx.case.passed_ignore_index
    kept = target != index if index is not None else np.ones(target.shape, bool)
    return np.where(kept, inverse[np.where(kept, target, 0)], target)


def shift_invariance(ctx: Context, inputs=None, shifts: np.ndarray | None = None) -> None:
    """L(z + c_row) == L(z), every gradient too (default: SHIFT added to every row)."""
    kind = kind_of(ctx.impl)
    inputs = _inputs(ctx, kind, inputs)
    shifts = np.full(np.shape(inputs.target), SHIFT) if shifts is None else shifts
    moved = kind.shifted(inputs, shifts, ctx.case.dtype)
    if moved is None:
        pytest.skip(f"no input to shift: {kind.name} shifts through "
                    f"{', '.join(leaf.name for leaf in kind.leaves if leaf.shift)}, not passed here")
    before, after = outputs(ctx, kind, inputs), outputs(ctx, kind, moved)
    _compare(ctx, before, after, "after shift", largest(inputs.logits, moved.logits))


def class_permutation(ctx: Context, inputs=None, order: np.ndarray | None = None) -> None:
    """Classes permuted (targets relabelled, weights with them): the same value, every
    gradient with a class axis permuted the same way."""
    kind = kind_of(ctx.impl)
    inputs = _inputs(ctx, kind, inputs)
    order = seeded_order(ctx, ctx.case.K) if order is None else order
    moved = kind.classes_permuted(inputs, order, relabel(ctx, inputs.target, order))
    before, after = outputs(ctx, kind, inputs), outputs(ctx, kind, moved)
    scores = inputs.leaves.get("logits")
    expected = kind.outputs_classes_permuted(before, order, None if scores is None else np.shape(scores))
    _compare(ctx, expected, after, "after class permutation", largest(inputs.logits))


def batch_permutation(ctx: Context, inputs=None, order: np.ndarray | None = None) -> None:
    """Rows permuted: a reduced value unchanged, 'none' and every gradient with rows permuted."""
    kind = kind_of(ctx.impl)
    inputs = _inputs(ctx, kind, inputs)
    if order is None:
        order = np.random.default_rng(PERMUTATION_SEED).permutation(ctx.case.N)
    moved = kind.rows_permuted(inputs, order)
    before, after = outputs(ctx, kind, inputs), outputs(ctx, kind, moved)
    expected = kind.outputs_rows_permuted(before, order, ctx.case.reduction)
    _compare(ctx, expected, after, "after batch permutation", largest(inputs.logits))


def world_size_changes_nothing(ctx: Context) -> None:
    """A ranks kind: the same case at world 1 and at every other world size it claims (and K
    allows) gives the same outputs."""
    kind = kind_of(ctx.impl)
    if not kind.ranks:
        pytest.skip(f"{kind.name} does not run on ranks")
    inputs = kind.make_inputs(ctx.impl, ctx.case, ctx.seed)
    worlds = [w for w in ctx.impl.worlds
              if ctx.case.K >= w and (ctx.case.K % w == 0 or ctx.impl.uneven_shards)]
    if 1 not in worlds or len(worlds) < 2:
        pytest.skip(f"world sizes {worlds} (claimed and dividing K={ctx.case.K}): nothing to compare with world 1")
    results = {w: outputs(ctx, kind, inputs, w) for w in worlds}
    for w in worlds[1:]:
        _compare(ctx, results[1], results[w], f"at world {w} vs world 1", largest(inputs.logits))
