"""The accuracy table: worst value and gradient error per implementation x dtype, its
ratio to what a careful float32 kernel attains ("x attainable", the low-precision anchor)
and to PyTorch's own error on this device ("x PyTorch"), the worst true-class gradient
entry, and the share of the budget used; and the error-against-K series for the chart.
Files written before these metrics existed render them as "—".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from lsresults import inputs
from lsresults.dtypes import UNIT_ROUNDOFF

from .analysis import (
    DTYPE_ORDER,
    MEASURED,
    conformance_checks,
    impl_of,
    metrics_of,
    num,
    outcome_of,
    params_of,
    ratio,
    text,
    worst,
)


@dataclass
class AccuracyRow:
    impl: str
    dtype: str
    measured: int
    value_err: float | None
    value_nodeid: str
    grad_err: float | None
    grad_nodeid: str
    value_ratio: float | None  # worst value error / PyTorch's own value error, same inputs
    grad_ratio: float | None
    budget_used: float | None  # worst error / its budget over value and gradient
    value_attainable: float | None = None  # worst value error / attainable (bf16, fp16)
    grad_attainable: float | None = None
    true_grad_rel: float | None = None  # worst true-class gradient entry, relative
    true_grad_baseline_rel: float | None = None  # PyTorch's, on the same checks
    true_grad_attainable: float | None = None  # worst true-class error / its attainable error


def _argworst(pairs: list[tuple[float | None, str]]) -> tuple[float | None, str]:
    value = worst(v for v, _ in pairs)
    if value is None:
        return None, ""
    for v, nodeid in pairs:
        if v is not None and (v == value or (math.isnan(v) and math.isnan(value))):
            return value, nodeid
    return value, ""


def accuracy(results: dict) -> list[AccuracyRow]:
    """Worst errors per implementation × dtype over every check that measured something."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for check in conformance_checks(results):
        if outcome_of(check) in MEASURED and metrics_of(check):
            groups[impl_of(check), text(params_of(check).get("dtype")) or "?"].append(check)
    rows = []
    for (impl, dtype), checks in groups.items():
        value = [(num(metrics_of(c).get("value_max_abs_err")), text(c.get("nodeid"))) for c in checks]
        grad = [(num(metrics_of(c).get("grad_max_abs_err")), text(c.get("nodeid"))) for c in checks]
        if worst(v for v, _ in value) is None and worst(v for v, _ in grad) is None:
            continue
        used = []
        for c in checks:
            m = metrics_of(c)
            for err, budget in (("value_max_abs_err", "value_budget"), ("grad_max_abs_err", "grad_budget")):
                e, b = num(m.get(err)), num(m.get(budget))
                if e is not None and b is not None and b > 0:
                    used.append(e / b)
        rows.append(AccuracyRow(
            impl, dtype, len(checks), *_argworst(value), *_argworst(grad),
            worst(ratio(num(metrics_of(c).get("value_max_abs_err")),
                        num(metrics_of(c).get("baseline_value_abs_err"))) for c in checks),
            worst(ratio(num(metrics_of(c).get("grad_max_abs_err")),
                        num(metrics_of(c).get("baseline_grad_abs_err"))) for c in checks),
            worst(used),
            _worst_ratio(checks, "value_max_abs_err", "attainable_value_abs_err"),
            _worst_ratio(checks, "grad_max_abs_err", "attainable_grad_abs_err"),
            worst(num(metrics_of(c).get("true_grad_max_rel_err")) for c in checks),
            worst(num(metrics_of(c).get("baseline_true_grad_rel_err")) for c in checks),
            worst(num(metrics_of(c).get("true_grad_attainable_ratio")) for c in checks)))
    order = {d: i for i, d in enumerate(DTYPE_ORDER)}
    impl_order = {v: i for i, v in enumerate(dict.fromkeys(impl_of(c) for c in conformance_checks(results)))}
    rows.sort(key=lambda r: (impl_order.get(r.impl, 0), order.get(r.dtype, 99), r.dtype))
    return rows


@dataclass
class GradientRow:
    """The worst error of one judged gradient (dh, dW, db, a rank's shard) of one
    implementation in one dtype (and world size, for a shard), over the checks that
    measured it."""

    impl: str
    input: str
    dtype: str
    gradient: str  # its name in results.json (lsresults/inputs.py)
    label: str  # in words: "dh (hidden)", "shard of rank 1 (world 2)"
    world: int | None
    measured: int
    abs_err: float | None
    nodeid: str
    rel_err: float | None
    rel_in_u: float | None  # rel_err / the dtype's unit roundoff (ulps of the result)
    attainable: float | None  # worst abs error / what a careful kernel attains
    pytorch: float | None  # worst abs error / PyTorch's own error on the same inputs
    budget_used: float | None


def gradient_accuracy(results: dict) -> list[GradientRow]:
    """Worst error per implementation x dtype x judged gradient, for the records that take
    something other than one logits tensor (the logits' gradient is the table above)."""
    kinds = inputs.input_kinds(results.get("environment"))
    groups: dict[tuple, list[tuple[dict, dict]]] = defaultdict(list)
    for check in conformance_checks(results):
        kind = inputs.input_of(check, kinds)
        if kind in inputs.LOGITS_INPUTS or outcome_of(check) not in MEASURED:
            continue
        world = inputs.world_of(check, kinds)
        for name, entry in inputs.gradients_of(check, kinds).items():
            key = (impl_of(check), kind, text(params_of(check).get("dtype")) or "?", name, world)
            groups[key].append((check, entry))
    rows = []
    for (impl, kind, dtype, name, world), pairs in groups.items():
        err, nodeid = _argworst([(num(e.get("max_abs_err")), text(c.get("nodeid"))) for c, e in pairs])
        rel = worst(num(e.get("max_rel_err")) for _, e in pairs)
        u = UNIT_ROUNDOFF.get(dtype)
        rows.append(GradientRow(
            impl, kind, dtype, name, inputs.label(name, world), world, len(pairs), err, nodeid, rel,
            None if rel is None or u is None else rel / u,
            worst(ratio(num(e.get("max_abs_err")), num(e.get("attainable_abs_err"))) for _, e in pairs),
            worst(ratio(num(e.get("max_abs_err")), num(e.get("baseline_abs_err"))) for _, e in pairs),
            worst(_used(e) for _, e in pairs)))
    order = {d: i for i, d in enumerate(DTYPE_ORDER)}
    impl_order = {v: i for i, v in enumerate(dict.fromkeys(impl_of(c) for c in conformance_checks(results)))}
    names = {n: i for i, n in enumerate(("hidden", "classifier", "bias"))}
    rows.sort(key=lambda r: (impl_order.get(r.impl, 0), order.get(r.dtype, 99), r.dtype, r.world or 0,
                             names.get(r.gradient, 9), len(r.gradient), r.gradient))
    return rows


def _used(entry: dict) -> float | None:
    err, budget = num(entry.get("max_abs_err")), num(entry.get("budget"))
    return err / budget if err is not None and budget is not None and budget > 0 else None


def _worst_ratio(checks: list[dict], err: str, anchor: str) -> float | None:
    return worst(ratio(num(metrics_of(c).get(err)), num(metrics_of(c).get(anchor))) for c in checks)


def error_vs_k(results: dict, metric: str) -> dict[tuple[str, str], dict[float, float]]:
    """(impl, dtype) -> {K: worst error at K}, only series with at least two distinct K."""
    series: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    for check in conformance_checks(results):
        if outcome_of(check) not in MEASURED:
            continue
        k, err = num(params_of(check).get("K")), num(metrics_of(check).get(metric))
        if k is None or k <= 0 or err is None or math.isnan(err) or math.isinf(err):
            continue
        key = (impl_of(check), text(params_of(check).get("dtype")) or "?")
        series[key][k] = max(series[key].get(k, err), err)
    return {key: dict(sorted(s.items())) for key, s in series.items() if len(s) >= 2}
