"""What a record's real-world claims mean for a check (lsuite/record/records.py): the class dimension,
the output dtype, float32 internal arithmetic, the ignore indices it takes, and what a mean
over nothing returns. The runner, the reference check and the invariants ask here, so each
claim is read in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import reference
from lsuite.record.records import Impl

# Reductions that divide by something that can be zero (reference.denominator).
MEANS = ("mean", "batchmean", "row_mean", "element_mean")


def to_impl_layout(impl: Impl, logits):
    """The logits as the implementation takes them: classes of an N-D (N, K, d1, ...) input
    moved to the last dim for class_dim="last" (2-D and unbatched are already both). A view:
    autograd carries the gradient back to the suite's layout."""
    if impl.class_dim == "last" and logits.ndim > 2:
        return logits.movedim(1, -1)
    return logits


def output_dtype(impl: Impl, dtype: str) -> str:
    """The dtype the returned loss must have for logits of `dtype`."""
    if impl.output_dtype == "float32":
        return "float32"
    if impl.output_dtype == "at_least_float32" and dtype in ("bfloat16", "float16"):
        return "float32"
    return dtype


def judged_dtype(impl: Impl, dtype: str) -> str:
    """The dtype whose budgets a check holds the implementation to: float32's for float64
    logits when it claims to compute in float32, else the logits' dtype."""
    if impl.computes_in == "float32" and dtype == "float64":
        return "float32"
    return dtype


def unsupported_ignore(impl: Impl, ignore: str) -> str | None:
    """Why the record does not take the case's ignore mode (None: it does)."""
    needed = {"negative": "negative", "all": "negative", "in_range": "in_range", "zero": "in_range"}.get(ignore)
    if needed is not None and needed not in impl.ignore_indices:
        return f"ignore_index {'-100' if needed == 'negative' else 'in range'} (it takes {', '.join(impl.ignore_indices)})"
    return None


def empty_mean_value(impl: Impl) -> float:
    return 0.0 if impl.empty_mean == "zero" else float("nan")


def expected_value(impl: Impl, reduction: str, inputs, value):
    """The reference value under the record's empty-mean claim: a mean whose denominator is 0
    is NaN in the reference (PyTorch's rule); a record claiming "zero" expects 0 there. The
    gradient is 0 in both."""
    if impl.empty_mean == "nan" or reduction not in MEANS:
        return value
    if reference.denominator(inputs.logits, inputs.target, inputs.spec, weight=inputs.weight) != 0:
        return value
    return np.zeros_like(np.asarray(value, dtype=float))


def describe(impl: Impl) -> list[str]:
    """The claims beyond PyTorch's defaults, in words (--ls-list, the report)."""
    said = []
    if impl.class_dim == "last":
        said.append("classes on the last dim")
    if impl.output_dtype != "input":
        said.append({"float32": "returns float32",
                     "at_least_float32": "returns float32 for bfloat16/float16 logits"}[impl.output_dtype])
    if impl.computes_in:
        said.append(f"computes in {impl.computes_in} (held to {impl.computes_in} budgets at float64)")
    if impl.mutates_input:
        said.append("writes into its input by design (the suite passes a copy)")
    if impl.empty_mean == "zero":
        said.append("a mean over nothing is 0")
    if not impl.eps_max_inclusive:
        said.append(f"eps < {impl.eps_max:g}")
    if impl.ignore_index and tuple(impl.ignore_indices) != ("negative", "in_range"):
        said.append(f"ignore_index only {', '.join(impl.ignore_indices)}")
    if impl.triton:
        said.append("Triton kernels")
    return said


def as_data(impl: Impl) -> dict[str, Any]:
    """The record as JSON-ready data for results.json and --ls-list: every claim, and the
    claims beyond PyTorch's defaults in words."""
    return {
        "name": impl.name,
        "description": impl.description,
        "origin": impl.origin,
        "convention": impl.convention,
        "form": impl.form,
        "input": impl.input,
        "pad_index": "ignore_index" if impl.pad_index_is_ignore_index else None,
        "reductions": list(impl.reductions),
        "class_dim": impl.class_dim,
        "output_dtype": impl.output_dtype,
        "computes_in": impl.computes_in,
        "empty_mean": impl.empty_mean,
        "mutates_input": impl.mutates_input,
        "triton": impl.triton,
        "interpreter_cannot": list(impl.interpreter_cannot),
        "check_kinds": list(impl.check_kinds),
        "bias": impl.bias if impl.input == "hidden_states" else None,
        "worlds": list(impl.worlds) if impl.input == "vocab_parallel" else None,
        "uneven_shards": impl.uneven_shards if impl.input == "vocab_parallel" else None,
        "claims": describe(impl),
        "supports": {
            "ignore_index": impl.ignore_index,
            "ignore_indices": list(impl.ignore_indices) if impl.ignore_index else [],
            "weights": impl.weights,
            "prob_targets": impl.prob_targets,
            "nd": impl.nd,
            "unbatched": impl.unbatched,
            "dtypes": list(impl.dtypes),
            "devices": list(impl.devices),
            "eps_min": impl.eps_min,
            "eps_max": impl.eps_max,
            "eps_max_inclusive": impl.eps_max_inclusive,
        },
        "known_defects": [
            {"checks": list(d.checks), "kinds": list(d.kinds), "when": d.when_text,
             "reason": d.reason}
            for d in impl.known_defects
        ],
    }
