"""The one home for tolerances. No test body holds a literal tolerance.

A reference check passes when, for the value and for the gradient separately,

    max |actual - reference|  <=  budget(dtype)

- float64: a floor, RTOL * max|reference| + ATOL.
- float32: max(the floor, BASELINE_FACTOR x PyTorch's own error on the same inputs), as
  before issue 14 (float32 was not re-anchored: at K = 32000 a recipe's float32 sums over
  the classes need the PyTorch term; see docs/tolerances.md), and at least
  FLOAT32_ATTAINABLE_FACTOR x float32's attainable error (lsuite/judging/attainable.py), which
  anchors a result that cancels to 0 to the magnitudes of the terms that cancel.
- bfloat16 and float16: ATTAINABLE_FACTOR x what a careful kernel attains on the same
  rounded inputs (lsuite/judging/attainable.py: the float64 result rounded once to the dtype, plus
  the error a float32 accumulator over K classes allows), computed from the reference
  alone, so the budget is the same whatever device ran the check. The gradient's
  true-class entries are measured one row at a time and recorded beside the normwise
  errors (lsuite/checks/reference.py says why they are not judged one by one).

PyTorch's own error on the same inputs in the same dtype (lsuite/judging/torch_error.py) is
measured and reported beside it ("x PyTorch on this device"); it sets no low-precision
budget: on a CPU
PyTorch rounds softmax to bfloat16 before subtracting the target and loses the whole
true-class gradient of a confident row (docs/tolerances.md), and a budget anchored to it
would let a kernel do the same. Errors are normwise (max over elements) because a loss
gradient's elements span many orders of magnitude and elementwise relative error on the
tiny ones measures nothing but rounding.
"""

from __future__ import annotations

from lsuite.judging.assertions import Budget

# Floors of float64 and float32, and of the invariants (self-comparisons) in every dtype.
RTOL = {
    # float64: both sides compute in double; 1e-10 normwise leaves room for summation
    # order over 10^5 classes (about 1e-12 observed) and catches any float32 step.
    "float64": 1e-10,
    # float32: unit roundoff 6e-8; a log-softmax over 32000 classes plus a mean over rows
    # accumulates a few hundred ulps in the worst order. 2e-5 is still far below the
    # smallest convention difference the suite must see (eps/K^2 shifts are checked in float64).
    "float32": 2e-5,
    # bfloat16 and float16: used by the invariants only (a reference check in these dtypes
    # is held to ATTAINABLE_FACTOR x attainable). bfloat16: 8 bits of mantissa, unit
    # roundoff 3.9e-3; the output alone rounds by that.
    "bfloat16": 1.6e-2,
    # float16: unit roundoff 4.9e-4; output rounding plus accumulation.
    "float16": 2e-3,
}
ATOL = {
    # Absolute floors guard values that are exactly zero (all-ignored sums, ignored rows);
    # far below the scale of any value or gradient entry a check compares in that dtype.
    "float64": 1e-12,
    "float32": 1e-7,
    # invariants only (see RTOL)
    "bfloat16": 1e-4,
    "float16": 1e-5,
}

# The dtypes whose reference budget is a multiple of the attainable error.
LOW_PRECISION = ("bfloat16", "float16")
# Unit roundoff (half the spacing of numbers in [1, 2), relative: UNIT_ROUNDOFF, one copy in
# lsresults/dtypes.py) and the spacing of the subnormal numbers (the absolute rounding step
# below the smallest normal number).
SUBNORMAL_SPACING = {"float64": 2.0 ** -1074, "float32": 2.0 ** -149, "bfloat16": 2.0 ** -133,
                     "float16": 2.0 ** -24}
# float32 roundings beyond the ceil(log2 K) of a pairwise sum over K classes
# (lsuite/judging/attainable.py): exp, log or the division by the softmax denominator, the product
# with the target mass, the subtraction of the target, the scale by the cotangent or the
# mean's denominator. A worst-case count: a float32 kernel meets it by construction.
FLOAT32_STEPS = 5
# How many times the attainable error an implementation may reach in bfloat16/float16.
# 3x: the output rounding of the attainable bound is the worst case (half a spacing) while
# most results round by less, so a kernel that rounds once more than necessary (stores a
# bf16 intermediate such as log-probabilities, or sums row losses in the dtype) stays
# inside; one that rounds a confident probability before subtracting the target
# (docs/specification.md §7, Liger PR #1329) does not: in bfloat16 at eps = 0 it errs by 25% of the
# true-class gradient at p = 0.99 and by 100% at p >= 0.999, against an attainable 0.4%.
ATTAINABLE_FACTOR = {"bfloat16": 3.0, "float16": 3.0}
# float32 only: how many times PyTorch's own error an implementation may reach.
BASELINE_FACTOR = {"float32": 4.0}
# float32 only: how many times the attainable error of float32 arithmetic (lsuite/judging/attainable.py)
# an implementation may reach. It matters only where the floor, relative to the result, is
# smaller than the rounding of the terms that cancel into it: a value that is exactly 0 (K = 1,
# every row at p = 1) is LSE(z) - z_y, each term of magnitude |z|, and float32 rounds them to
# 6e-8 |z| (issue 24: 2-3e-7 against an absolute 1e-7). Elsewhere the floor is larger.
FLOAT32_ATTAINABLE_FACTOR = 3.0


def budget(dtype: str, scale: float, attainable: float | None = None,
           baseline: float | None = None) -> Budget:
    """The allowed max abs error for a tensor whose reference max-magnitude is `scale`:
    in bfloat16/float16 a multiple of the attainable max abs error (lsuite/judging/attainable.py);
    in float32 the largest of the floor, a multiple of PyTorch's own error `baseline` and a
    multiple of float32's attainable error (when given); in float64 the floor."""
    if dtype in LOW_PRECISION:
        if attainable is None:
            raise ValueError(f"a {dtype} budget needs the attainable error (lsuite/judging/attainable.py)")
        factor = ATTAINABLE_FACTOR[dtype]
        return Budget(factor * attainable, f"{factor:g} x attainable {attainable:.3g}")
    floor = RTOL[dtype] * scale + ATOL[dtype]
    factor = BASELINE_FACTOR.get(dtype, 0.0)
    best = Budget(floor, f"floor: rtol {RTOL[dtype]:g} x scale {scale:.3g} + atol {ATOL[dtype]:g}")
    if baseline is not None and factor * baseline > best.allowed:
        best = Budget(factor * baseline, f"{factor:g} x PyTorch's own error {baseline:.3g}")
    if dtype == "float32" and attainable is not None and \
            FLOAT32_ATTAINABLE_FACTOR * attainable > best.allowed:  # the terms that cancel
        best = Budget(FLOAT32_ATTAINABLE_FACTOR * attainable,
                      f"{FLOAT32_ATTAINABLE_FACTOR:g} x float32 attainable {attainable:.3g}")
    return best


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


# Losses on hidden states (fused linear cross-entropy, lsuite/kinds/hidden_states.py). The anchor in
# bfloat16/float16 is a kernel that computes z = h·Wᵀ + b in float32, rounds each chunk of
# logits once to the dtype (what F.linear in that dtype does, and every chunked
# implementation that materialises a chunk), then runs the careful logits kernel
# (lsuite/judging/attainable.py) on them and accumulates dh = G·W (over K), dW = Gᵀ·h (over N),
# db = Σ G in float32 before rounding each once: its error per element is the exact effect
# of the logits' rounding (the reference on the rounded logits) plus the logits anchor
# carried through |W| and |h|, plus ceil(log2 terms) float32 roundings of the products.
# Held to ATTAINABLE_FACTOR times that; float32 to max(floor, BASELINE_FACTOR x the error of
# F.linear followed by F.cross_entropy in float32 on the same inputs), as the logits checks.
LINEAR_GRADIENTS = ("hidden", "classifier", "bias")
