"""The one home for tolerances. No test body holds a literal tolerance.

A check passes when, for the value and for the gradient separately,

    max |actual - reference|  <=  budget
    budget = max(RTOL[dtype] * max|reference| + ATOL[dtype],  BASELINE_FACTOR[dtype] * baseline)

where `baseline` is PyTorch's own max error on the same inputs in the same dtype
(lsuite/torch_error.py): an implementation may be a few times worse than PyTorch's own
arithmetic in that dtype, never more. Errors are normwise (max over elements) because a
loss gradient's elements span many orders of magnitude and elementwise relative error on
the tiny ones measures nothing but rounding.
"""

from __future__ import annotations

from .assertions import Budget

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


def budget(dtype: str, scale: float, baseline: float | None) -> Budget:
    """The allowed max abs error for a tensor whose reference max-magnitude is `scale`,
    given PyTorch's own error `baseline` on the same inputs (None: not measured)."""
    floor = RTOL[dtype] * scale + ATOL[dtype]
    factor = BASELINE_FACTOR[dtype]
    if baseline is None or factor == 0.0 or factor * baseline <= floor:
        return Budget(floor, f"floor: rtol {RTOL[dtype]:g} x scale {scale:.3g} + atol {ATOL[dtype]:g}")
    return Budget(factor * baseline, f"{factor:g} x PyTorch's own error {baseline:.3g}")


# Invariants compare an implementation with itself on transformed inputs (logits shifted,
# classes or rows permuted, laid out differently, computed twice). Exact arithmetic gives
# equality; floating point gives a few ulps of the largest magnitude involved, and for a
# shift that is the logits (|z| up to 1e4 in the strategies), not the loss. So the invariant
# budget adds the largest |logit| to the scale; the RTOL floors above still apply. In float64
# a 1e4 logit gives 1e-6, still far below the smallest convention difference (eps/K^2 with
# eps >= 1e-3, K <= 16: 4e-6 per row ... and far below every bug the checks target).
def invariant_budget(dtype: str, scale: float, logit_scale: float = 0.0) -> Budget:
    """Allowed max abs difference between two computations that exact arithmetic makes equal."""
    allowed = RTOL[dtype] * (scale + logit_scale) + ATOL[dtype]
    return Budget(allowed, f"rtol {RTOL[dtype]:g} x (scale {scale:.3g} + |logits| {logit_scale:.3g}) "
                           f"+ atol {ATOL[dtype]:g}")


# Two calls on the same inputs must agree bit for bit (no data races, no nondeterministic
# atomics in a kernel that claims determinism).
EXACT = Budget(0.0, "exact: bitwise identical")


# The implied target mass s = Σq recovered from two gradient evaluations (a 1-D least-squares
# fit over K classes) carries the gradient's rounding divided by |p - 1/K|: 1e-9 in float64
# is 10x the observed error on 2 <= K <= 128 and 100x below a float32-rounded target's 6e-8.
TARGET_MASS_ATOL = {"float64": 1e-9, "float32": 1e-5, "bfloat16": 5e-2, "float16": 5e-3}


# CE >= H(q) and KL >= 0 are inequalities: the bugs they catch (kl_div fed logits or
# probabilities, a sign error, mass > 1) violate them by O(eps/K) or more. 1e-8 relative
# (of max(|bound|, |value|)) lets a recipe that takes log q in float32 (seed 001: KL =
# -1.9e-9 at p = q, declared and shown by the reference checks) pass this one.
BOUND_RTOL = {"float64": 1e-8, "float32": 2e-5, "bfloat16": 1.6e-2, "float16": 2e-3}
