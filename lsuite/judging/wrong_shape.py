"""A wrong output shape is one finding: the reference check for the case reports it
("out.shape=..., but should be ..."); an invariant built on that output is not run, and
says which check found the shape, instead of failing with a message derived from a
misshapen array or raising an IndexError of its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsuite.running.runner import Context, Outcome

CONFORMANCE = "suites/test_conformance.py::test_value_and_gradient_in_every_dtype_and_reduction"


def expected_shape(ctx: Context, logits: np.ndarray, target: np.ndarray) -> tuple[int, ...]:
    """The output's shape for class-index targets: () for a scalar reduction, the target's
    shape for 'none' (the logits' for a BCE form, one loss per element)."""
    if ctx.case.reduction != "none":
        return ()
    return tuple(np.shape(logits) if ctx.impl.form == "bce" else np.shape(target))


def not_run_if_misshapen(ctx: Context, outcome: Outcome, logits, target) -> Outcome:
    """The outcome, or a skip "not run: the output shape is wrong (see <check>)"."""
    shape, want = tuple(np.shape(outcome.value)), expected_shape(ctx, logits, target)
    if shape != want:
        case = ctx.case
        pytest.skip(f"not run: the output shape is wrong: out.shape={shape}, but should be {want} "
                    f"for reduction={case.reduction!r} (see {CONFORMANCE}"
                    f"[{ctx.impl.name}-{case.device}-{case.dtype}-{case.reduction}])")
    return outcome
