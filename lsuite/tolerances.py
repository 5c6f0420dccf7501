"""The one home for tolerances. No test body holds a literal tolerance.

A check passes when, for the value and for the gradient separately,

    max |actual - reference|  <=  budget
    budget = max(RTOL[dtype] * max|reference| + ATOL[dtype],  BASELINE_FACTOR[dtype] * baseline)

where `baseline` is PyTorch's own max error on the same inputs in the same dtype
(lsuite/baseline.py): an implementation may be a few times worse than PyTorch's own
arithmetic in that dtype, never more. Errors are normwise (max over elements) because a
loss gradient's elements span many orders of magnitude and elementwise relative error on
the tiny ones measures nothing but rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

# Floors: what any correct implementation can meet in this dtype, whatever PyTorch does.
RTOL = {
    # float64: both sides compute in double; 1e-10 normwise leaves room for summation
    # order over 10^5 classes (about 1e-12 observed) and catches any float32 step.
    "float64": 1e-10,
    # float32: unit roundoff 6e-8; a log-softmax over 32000 classes plus a mean over rows
    # accumulates a few hundred ulps in the worst order. 2e-5 is still far below the
    # smallest convention difference the suite must see (eps/K^2 shifts are checked in float64).
    "float32": 2e-5,
    # bfloat16: 8 bits of mantissa, unit roundoff 3.9e-3; the output alone rounds by that.
    "bfloat16": 1.6e-2,
    # float16: unit roundoff 4.9e-4; output rounding plus accumulation.
    "float16": 2e-3,
}
ATOL = {
    # Absolute floors guard values that are exactly zero (all-ignored sums, ignored rows).
    "float64": 1e-12,
    "float32": 1e-7,
    "bfloat16": 1e-4,
    "float16": 1e-5,
}
# How many times PyTorch's own error an implementation may reach in low precision.
# 4x: a fused kernel that rounds once more than PyTorch (e.g. stores p in bf16 before
# subtracting the target) stays inside; one that subtracts 1-eps after rounding a
# confident probability (CONVENTIONS §7, Liger PR #1329) does not.
BASELINE_FACTOR = {"float64": 0.0, "float32": 4.0, "bfloat16": 4.0, "float16": 4.0}


@dataclass(frozen=True)
class Budget:
    floor: float  # RTOL * scale + ATOL
    baseline: float | None  # PyTorch's own error, None when not measured

    @property
    def allowed(self) -> float:
        scaled = 0.0 if self.baseline is None else self.baseline
        return max(self.floor, scaled)


def budget(dtype: str, scale: float, baseline: float | None) -> Budget:
    """The allowed max abs error for a tensor whose reference max-magnitude is `scale`."""
    factor = BASELINE_FACTOR[dtype]
    scaled = None if baseline is None or factor == 0.0 else factor * baseline
    return Budget(floor=RTOL[dtype] * scale + ATOL[dtype], baseline=scaled)
