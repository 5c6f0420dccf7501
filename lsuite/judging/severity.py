"""Severity, stated in one place: is a failed comparison an *error* or a *divergence*?

- error: a wrong value or gradient, a crash or a wrong output in ordinary use. The gate
  fails on it.
- divergence: the implementation differs from the specification only at an edge where
  PyTorch's own behaviour is arbitrary or is itself declared a defect, and it behaves there
  as PyTorch does, or the specification leaves the value open:
    * NaN versus +-inf (either way) in a mean whose denominator is zero: 0/0 and x/0 are
      conventions, not mathematics (the reference writes NaN with a zero gradient, as
      PyTorch does for an all-ignored mean). A finite value there (0 for an all-ignored
      mean) is a claim the record must make (`empty_mean`), else an error;
    * a NaN or infinity exactly where PyTorch's built-in primitives, on the same rounded
      inputs in the same dtype, give the same NaN or infinity;
    * an error beyond the budget where PyTorch's own result on this device is beyond the
      budget too and the implementation returned exactly, bit for bit, PyTorch's result
      (the whole tensor):
      it computes with PyTorch's kernels (e.g. the CPU bfloat16 softmax rounded before the
      target is subtracted, lsuite/judging/attainable.py). A kernel that reproduces that rounding
      its own way is not bit-identical, and its error stays an error;
    * accepting an argument that nn.CrossEntropyLoss itself accepts.
  The gate passes on divergences unless --ls-strict; each one is listed in results.json
  (outcome "divergence") and in the report. A declared known defect is never downgraded.
"""

from __future__ import annotations

import numpy as np

from lsuite.judging.assertions import Budget
from lsuite.running.runner import CheckFailed


class CheckDiverged(CheckFailed):
    """A failed comparison that is a divergence, not an error (see the module docstring)."""


class SuiteError(Exception):
    """The suite's own failure (making a case's inputs, the reference): the check fails the
    run, but it is reported as the suite's (outcome "suite_error"), never the implementation's."""


def suite_step(what: str, function, *args, **kwargs):
    """Run one of the suite's own steps; its exception becomes a SuiteError naming the step."""
    try:
        return function(*args, **kwargs)
    except Exception as exc:
        raise SuiteError(f"the suite's own error while {what}, not the implementation's: "
                         f"{type(exc).__name__}: {exc}") from exc


def _same_special(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))


def is_divergence(actual, expected, pytorch, budget: Budget, zero_denominator: bool) -> bool:
    """True when every difference between actual and expected is explained: a NaN/inf
    pattern difference by the zero denominator or PyTorch's identical output, a finite
    element over budget by the implementation returning exactly PyTorch's own result (the
    whole tensor, bit for bit: then PyTorch is over budget there too)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    pytorch = None if pytorch is None else np.asarray(pytorch, dtype=float)
    if actual.shape != expected.shape or (pytorch is not None and pytorch.shape != actual.shape):
        return False
    both = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(invalid="ignore"):
        over = both & (np.abs(actual - expected) > budget.allowed)
        if over.any():
            if pytorch is None:
                return False
            if not np.array_equal(actual, pytorch, equal_nan=True):  # the whole tensor
                return False
    pattern = ~both & ~_same_special(actual, expected)
    if not pattern.any():
        return bool(over.any())
    if zero_denominator:  # NaN against +-inf there; a finite value (0 for 0/0) is no edge case
        return bool(np.all(~np.isfinite(actual[pattern])))
    return pytorch is not None and bool(np.all(_same_special(actual, pytorch)[pattern]))
