"""The checks of a vocab-parallel record (docs/input-kinds.md): the
case's logits split by columns across `world` ranks of a torch.distributed group
(lsuite/running/distributed.py); every rank's loss must be the whole vocabulary's reference loss,
the ranks must agree with each other, and each rank's gradient must be its columns of the
whole reference gradient. Budgets are the logits checks' (lsuite/judging/harness.py: float32 from
PyTorch's own error, bfloat16/float16 from the attainable error), each rank's gradient
judged against its columns of them. Invariants: a shift of a row's logits, a permutation of
the classes across shards, a permutation of the batch, and the world size (1, 2, 4 agree).
"""

from __future__ import annotations

import numpy as np

import reference
from lsuite.inputs.cases import make_inputs, round_to, shard_bounds
from lsuite.judging import assertions, severity, tolerances
from lsuite.judging.attainable import attainable
from lsuite.judging.harness import judge, rounded_expectation
from lsuite.judging.properties import (
    PERMUTATION_SEED,
    SHIFT,
    assert_same_outputs,
    relabel,
    seeded_order,
)
from lsuite.judging.torch_error import pytorch_outputs
from lsuite.record import claims
from lsuite.running import distributed
from lsuite.running.runner import Context, Feed


def _feed(inputs, logits=None, target=None, cotangent=None, weight=None) -> Feed:
    cot = inputs.cotangent if cotangent is None else cotangent
    shape = () if cot is None else tuple(cot.shape)
    return Feed(inputs.logits if logits is None else logits,
                inputs.target if target is None else target,
                inputs.weight if weight is None else weight, cot, expect_shape=shape)


def _whole(outcomes) -> tuple[np.ndarray, np.ndarray]:
    """Rank 0's value and the ranks' gradients side by side (the whole gradient)."""
    return np.asarray(outcomes[0].value), np.concatenate([o.grad for o in outcomes], axis=1)


def _rank_agreement(ctx: Context, outcomes, dtype: str) -> list[str]:
    problems = []
    first = np.asarray(outcomes[0].value)
    for rank, out in enumerate(outcomes[1:], start=1):
        diff = assertions.measure(out.value, first)
        found = assertions.problem(f"rank {rank}'s value vs rank 0's (ranks disagree)", out.value,
                                   first, tolerances.invariant_budget(dtype, diff.scale), diff)
        if found:
            problems.append(found)
    return problems


def check_shards_against_reference(ctx: Context) -> dict:
    """Every rank's value against the whole-vocabulary reference, their agreement, and each
    rank's gradient against its columns of the reference gradient."""
    case = ctx.case
    inputs = severity.suite_step("making the case's inputs", make_inputs, ctx.impl, case, ctx.seed)
    ref = severity.suite_step("computing the reference", reference.loss_and_grad, inputs.logits,
                              inputs.target, inputs.spec, weight=inputs.weight,
                              cotangent=inputs.cotangent)
    outcomes = distributed.run_ranks(ctx, _feed(inputs), case.world)
    dtype = claims.judged_dtype(ctx.impl, case.dtype)
    base = None if dtype == "float64" else pytorch_outputs(inputs, dtype)
    att = attainable(inputs, dtype, ref.value, ref.grad) if dtype in tolerances.LOW_PRECISION else None
    value = rounded_expectation(claims.expected_value(ctx.impl, case.reduction, inputs, ref.value), dtype)
    problems, metrics = [], {"world": case.world}
    worst = {}
    for rank, (out, (lo, hi)) in enumerate(zip(outcomes, shard_bounds(case.K, case.world), strict=True)):
        problems += [f"rank {rank}: {note}" for note in out.notes]
        for what, actual, exact, a, b in (
                ("value", out.value, value, None if att is None else att.value,
                 None if base is None else base[0]),
                ("grad", out.grad, ref.grad[:, lo:hi], None if att is None else att.grad[:, lo:hi],
                 None if base is None else base[1][:, lo:hi])):
            judged = judge(what, actual, exact, dtype, attainable=a, pytorch=b)
            if what == "grad":  # each rank's shard gradient under its own name
                metrics.update(judged.metrics(f"grad_rank{rank}"),
                               **{f"grad_rank{rank}_within": judged.problem is None})
            if judged.diff.max_abs >= worst.get(what, (-1.0,))[0]:
                worst[what] = (judged.diff.max_abs, judged, rank)
            if judged.problem:
                problems.append(f"rank {rank} of {case.world}: {judged.problem}")
    for what, (_, judged, rank) in worst.items():  # the worst rank's figures, and which rank
        metrics.update(judged.metrics(what), **{f"{what}_worst_rank": rank})
    problems += _rank_agreement(ctx, outcomes, dtype)
    ctx.record(metrics)
    if problems:
        raise ctx.fail("; ".join(problems))
    return metrics


def _same(ctx: Context, inputs, expected: tuple, actual: tuple, what: str) -> None:
    """(value, grad) of two runs that exact arithmetic makes equal."""
    assert_same_outputs(ctx, inputs.logits, dict(zip(("value", "grad"), expected, strict=True)),
                        dict(zip(("value", "grad"), actual, strict=True)), what)


def world_size_changes_nothing(ctx: Context) -> None:
    """The same case at world 1 and at every other world size it claims (and K allows)."""
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    worlds = [w for w in ctx.impl.worlds
              if ctx.case.K >= w and (ctx.case.K % w == 0 or ctx.impl.uneven_shards)]
    if 1 not in worlds or len(worlds) < 2:
        import pytest

        pytest.skip(f"world sizes {worlds} (claimed and dividing K={ctx.case.K}): nothing to compare with world 1")
    results = {w: _whole(distributed.run_ranks(ctx, _feed(inputs), w)) for w in worlds}
    first = 1
    for w in worlds[1:]:
        _same(ctx, inputs, results[first], results[w], f"at world {w} vs world {first}")


def shift_invariance(ctx: Context) -> None:
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    before = _whole(distributed.run_ranks(ctx, _feed(inputs), ctx.case.world))
    shifted = round_to(inputs.logits + SHIFT, ctx.case.dtype)
    after = _whole(distributed.run_ranks(ctx, _feed(inputs, logits=shifted), ctx.case.world))
    _same(ctx, inputs, before, after, f"after adding {SHIFT:g} to every logit")


def class_permutation(ctx: Context) -> None:
    """Columns permuted across the shards, targets relabelled: same value, gradient permuted."""
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    order = seeded_order(ctx, ctx.case.K, PERMUTATION_SEED)
    weight = None if inputs.weight is None else inputs.weight[order]
    before = _whole(distributed.run_ranks(ctx, _feed(inputs), ctx.case.world))
    after = _whole(distributed.run_ranks(ctx, _feed(inputs, logits=inputs.logits[:, order],
                                                    target=relabel(ctx, inputs.target, order),
                                                    weight=weight), ctx.case.world))
    _same(ctx, inputs, (before[0], before[1][:, order]), after, "after permuting the classes across shards")


def batch_permutation(ctx: Context) -> None:
    inputs = make_inputs(ctx.impl, ctx.case, ctx.seed)
    order = np.random.default_rng(PERMUTATION_SEED).permutation(ctx.case.N)
    before = _whole(distributed.run_ranks(ctx, _feed(inputs), ctx.case.world))
    cot = None if inputs.cotangent is None else inputs.cotangent[order]
    after = _whole(distributed.run_ranks(ctx, _feed(inputs, logits=inputs.logits[order],
                                                    target=inputs.target[order], cotangent=cot),
                                         ctx.case.world))
    value = before[0][order] if ctx.case.reduction == "none" else before[0]
    _same(ctx, inputs, (value, before[1][order]), after, "after permuting the batch")
