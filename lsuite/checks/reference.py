"""The reference check, for every input kind: one implementation on one case against the
float64 reference.

The kind (lsuite/kinds/) makes the case's inputs and names the reference's outputs: the
value and one gradient per leaf. The implementation runs through the one runner, in its
worker or on every rank of its group (lsuite/checks/calling.py); every output of every
process is judged by the one assertion (lsuite/judging/assertions.py) against budgets from
lsuite/judging/tolerances.py: in low precision a multiple of what a careful kernel attains
on the same inputs (the kind's `attainable`), in float32 also of PyTorch's own error (the
kind's `pytorch`, recorded as "baseline_*"). A value beyond the range of the dtype it is
returned in is expected as ±inf. A miss that PyTorch's own primitives make too, or a NaN
against ±inf at a zero denominator, is a divergence, not an error (lsuite/judging/severity.py).
Ranks must agree with each other. The measured errors and each output's judgement are
handed to `ctx.record` before anything is raised, so a failed check still reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import reference
from lsuite.checks.calling import columns, outcomes
from lsuite.checks.diagnosis import true_class_entries, what_it_computes
from lsuite.judging import assertions, severity, tolerances
from lsuite.judging.attainable import finite_max
from lsuite.kinds import grad_name, kind_of
from lsuite.record import claims
from lsuite.running import causes
from lsuite.running.runner import Context


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

    def record(self) -> dict:
        """The judgement as data (results.json's `judged`, docs/results-schema.md)."""
        return {"max_abs_err": self.diff.max_abs, "max_rel_err": self.diff.max_rel,
                "budget": self.budget.allowed, "baseline_abs_err": self.pytorch,
                "attainable_abs_err": self.attainable, "within": self.problem is None}


def judge(label: str, actual, expected, dtype: str, *, attainable=None, pytorch=None,
          exact=None) -> Judged:
    """The one judgement of a tensor against the reference: the error, the budget from
    lsuite/judging/tolerances.py (anchored to `attainable` elementwise errors in low precision,
    to PyTorch's own output `pytorch` in float32), and the message when it is over. `exact`:
    the unrounded reference PyTorch's error is measured against (default: `expected`)."""
    diff = assertions.measure(actual, expected)
    allowed = None if attainable is None else finite_max(attainable)
    base_err = None if pytorch is None else assertions.measure(
        pytorch, expected if exact is None else exact).max_abs
    budget = tolerances.budget(dtype, diff.scale, allowed, base_err)
    return Judged(diff, budget, allowed, base_err,
                  assertions.problem(label, actual, expected, budget, diff))


def _part(array, cols):
    if array is None or cols is None:
        return array
    return np.asarray(array)[:, cols]


def check_against_reference(ctx: Context) -> dict:
    """Value and every gradient of the implementation, on every process, vs the reference."""
    kind, case = kind_of(ctx.impl), ctx.case
    inputs = severity.suite_step("making the case's inputs", kind.make_inputs, ctx.impl, case, ctx.seed)
    exact = severity.suite_step("computing the reference", kind.expected, inputs)
    claimed = dict(exact, value=claims.expected_value(ctx.impl, case.reduction, inputs, exact["value"]))
    shape = () if case.reduction != "none" else tuple(inputs.cotangent.shape)
    cotangent = inputs.cotangent if inputs.upstream is None else np.asarray(inputs.upstream)
    results = outcomes(ctx, kind, kind.feed(inputs, cotangent=cotangent, expect_shape=shape,
                                            strided_upstream=case.upstream == "strided"))
    dtype = claims.judged_dtype(ctx.impl, case.dtype)  # float32 for "computes in float32"
    base = None if dtype == "float64" else kind.pytorch(inputs, dtype)
    att = None
    if dtype in tolerances.LOW_PRECISION or dtype == "float32":  # float32: tolerances.budget
        att = kind.attainable(inputs, dtype, exact)
    world = len(results)
    problems, metrics, found, worst = [], ({"world": case.world} if kind.ranks else {}), [], {}
    for rank, out in enumerate(results):
        where = f"rank {rank} of {world}: " if kind.ranks else ""
        problems += [_prefixed(f"rank {rank}: " if kind.ranks else "", note) for note in out.notes]
        actual = {"value": out.value, **out.grads}
        for name in ("value", *kind.gradients):
            if claimed.get(name) is None:
                continue
            if name not in actual:
                problems.append(causes.Explained(f"{where}no gradient for the {name}", [causes.part(
                    "no_gradient", name, f"no gradient for the {name}")]))
                continue
            cols = columns(kind, name, case.K, rank, world)
            rounded_in = out.dtype if name == "value" and out.dtype in tolerances.RTOL else dtype
            label = "value" if name == "value" else grad_name(name)
            judged = judge(label, actual[name], rounded_expectation(_part(claimed[name], cols), rounded_in),
                           dtype, attainable=None if att is None else _part(att.get(name), cols),
                           pytorch=None if base is None else _part(base[name], cols),
                           exact=_part(claimed[name], cols))
            own = f"{label}_rank{rank}" if kind.ranks and name != "value" else label
            if own != label or not kind.ranks:
                metrics.update(judged.metrics(own), **{f"{own}_within": judged.problem is None})
                key = f"rank{rank}" if own != label else name  # results.json's `judged` names
                metrics.setdefault("judged", {})[key] = dict(judged.record(), **(
                    {"rank": rank} if kind.ranks else {}))
            if kind.ranks and judged.diff.max_abs >= worst.get(label, (-1.0,))[0]:
                worst[label] = (judged.diff.max_abs, judged, rank)
            if judged.problem:
                found.append((where, name, rank, actual[name], judged))
    for label, (_, judged, rank) in worst.items():  # the worst rank's figures, and which rank
        metrics.update(judged.metrics(label), **{f"{label}_worst_rank": rank})
        if label == "value":
            metrics.setdefault("judged", {})["value"] = dict(judged.record(), rank=rank)
    if kind.ranks:
        problems += _rank_agreement(results, dtype)
    whole = _whole_logits_gradient(kind, results)
    if dtype in tolerances.LOW_PRECISION and whole is not None:  # float32/64: rounding noise
        true_class = true_class_entries(inputs, whole, exact["logits"], att, base)
        if true_class is not None:
            metrics.update(true_class.metrics())
    ctx.record(metrics)
    divergences, diverged = [], []
    if found:  # an error, or a divergence (lsuite/judging/severity.py)?
        twin = base if base is not None else kind.pytorch(inputs, dtype)
        zero = _zero_denominator(inputs)
        for where, name, rank, actual, judged in found:
            cols = columns(kind, name, case.K, rank, world)
            expected = rounded_expectation(_part(claimed[name], cols), dtype)
            if severity.is_divergence(actual, expected, _part(twin[name], cols), judged.budget, zero):
                divergences.append(_prefixed(where, judged.problem, f" ({_why(zero)})"))
                diverged.append(_prefixed(where, judged.problem))
            else:
                problems.append(_prefixed(where, judged.problem))
    if problems:
        found_causes = causes.of_texts(problems)
        computes = what_it_computes(ctx, inputs, results[0]) if len(results) == 1 and any(
            c["kind"] in ("over_budget", "nan_inf_pattern") for c in found_causes) else None
        if computes is not None:
            found_causes = [dict(c, computes=computes) for c in found_causes]
        raise ctx.fail("; ".join(problems + divergences), causes=found_causes)
    if divergences:
        raise ctx.fail("; ".join(divergences), kind=severity.CheckDiverged,
                       causes=causes.of_texts(diverged))
    return metrics


def _prefixed(where: str, text: str, after: str = "") -> str:
    """`text` with a prefix (which rank) and a suffix, keeping the causes it carries."""
    if not where and not after:
        return text
    return causes.Explained(f"{where}{text}{after}", getattr(text, "causes", None))


def _whole_logits_gradient(kind, results):
    if "logits" not in kind.gradients or any("logits" not in r.grads for r in results):
        return None
    return np.concatenate([r.grads["logits"] for r in results], axis=1) if len(results) > 1 \
        else results[0].grads["logits"]


def _rank_agreement(results, dtype: str) -> list[str]:
    problems = []
    first = np.asarray(results[0].value)
    for rank, out in enumerate(results[1:], start=1):
        diff = assertions.measure(out.value, first)
        found = assertions.problem(f"rank {rank}'s value vs rank 0's (ranks disagree)", out.value,
                                   first, tolerances.invariant_budget(dtype, diff.scale), diff)
        if found:
            problems.append(found)
    return problems


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
