"""Invariants every label-smoothing loss has, whatever its convention, on Hypothesis-drawn
inputs (lsuite/inputs/strategies.py: confident, extreme and -inf-masked logits, ignored targets,
zero class weights, N-D and unbatched layouts). An implementation is compared with itself on
transformed inputs, or with a bound that needs no reference value (lsuite/checks/properties.py).
Each check is generated per implementation and reduction it supports; draws are labelled,
so a failure prints the shrunk inputs as torch.tensor literals with the call.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsuite.checks import invariants
from lsuite.checks import properties as pp
from lsuite.inputs import strategies as ls
from lsuite.judging import zero_denominator as zd
from lsuite.record.records import REDUCTIONS

pytestmark = pytest.mark.ls_kind("invariant")

SOFTMAX_FORMS = ("ce", "kl")
LARGE = st.sampled_from([-1e4, -1.5, 0.0, 2.0, 1e3, 1e4]) | st.floats(-1e4, 1e4)


def kinds(impl, masked=True):
    """Logit kinds for a record: -inf masking means nothing to independent sigmoids (BCE)."""
    return tuple(k for k in ls.LOGIT_KINDS if masked and impl.form != "bce" or k != "masked")


def need(condition: bool, reason: str) -> None:
    if not condition:
        pytest.skip(reason)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_shifting_a_rows_logits_leaves_value_and_gradient_unchanged(ls_context, data):
    need(ls_context.impl.form != "bce", "BCE is not a softmax loss: no shift invariance")
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    shifts = data.draw(hnp.arrays(np.float64, sample.target.shape, elements=LARGE), label="shifts")
    pp.shift_invariance(ls_context, sample, shifts)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_permuting_classes_permutes_the_gradient_and_keeps_the_value(ls_context, data):
    impl = ls_context.impl
    sample = data.draw(ls.samples(impl=impl, kinds=kinds(impl)), label="sample")
    fixed = invariants.fixed_classes(pp.context_for(ls_context, sample), sample.K)
    movable = [c for c in range(sample.K) if c not in fixed]
    moved = data.draw(st.permutations(movable), label="class permutation")
    order = np.arange(sample.K)
    order[movable] = moved
    pp.class_permutation(ls_context, sample, order)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_permuting_the_batch_permutes_rows_and_keeps_reduced_values(ls_context, data):
    impl = ls_context.impl
    layouts = ("2d", "nd") if impl.nd else ("2d",)
    sample = data.draw(ls.samples(impl=impl, layouts=layouts, kinds=kinds(impl)), label="sample")
    order = np.array(data.draw(st.permutations(range(sample.N)), label="row permutation"))
    pp.batch_permutation(ls_context, sample, order)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_loss_is_affine_in_smoothing(ls_context, data):
    impl = ls_context.impl
    need(impl.form in ("ce", "bce"), "KL is not affine in eps: H(q) is not linear")
    need(impl.supports_eps(0.0) and impl.supports_eps(1.0), "needs eps = 0 and eps = 1")
    sample = data.draw(ls.samples(impl=impl, kinds=kinds(impl, masked=False)), label="sample")
    pp.affine_in_smoothing(ls_context, sample)


# Fixed inputs (not Hypothesis examples: a divergence there would end the search before the
# drawn inputs run): every target's class weighs 0, other classes do not, eps > 0. The mean
# is a positive smoothing numerator over 0, +inf; PyTorch's NaN is a divergence, listed here
# (a drawn input reaching the edge by chance passes it over: lsuite/judging/zero_denominator.py).
@pytest.mark.ls_cases(reduction=("mean",), weight=("zero_total",), N=(4,))
def test_loss_is_affine_in_smoothing_at_a_zero_total_target_weight(ls_context):
    impl = ls_context.impl
    need(impl.form in ("ce", "bce"), "KL is not affine in eps: H(q) is not linear")
    need(impl.supports_eps(0.0) and impl.supports_eps(1.0), "needs eps = 0 and eps = 1")
    pp.affine_in_smoothing(ls_context, zd.zero_total_sample(ls_context), fixed=True)


@pytest.mark.ls_cases(reduction=("mean",), weight=("zero_total",), N=(4,))
def test_mean_equals_sum_over_the_denominator_at_a_zero_total_target_weight(ls_context):
    need("sum" in ls_context.impl.reductions, "no reduction 'sum' to compare with")
    pp.mean_is_sum_over_denominator(ls_context, zd.zero_total_sample(ls_context), fixed=True)


@pytest.mark.ls_cases(needs=("ignore_index",), reduction=REDUCTIONS)
@given(data=st.data())
def test_ignored_rows_affect_neither_value_nor_gradient(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl, ignores=("negative", "in_range")),
                        label="sample")
    if sample.ignore == "none":  # K too small for the in-range index
        sample = pp.replace(sample, ignore=ls_context.impl.ignore_indices[0])
    if not (sample.target == sample.ignore_index).any():
        target = sample.target.copy()
        target.reshape(-1)[0] = sample.ignore_index if target.ndim else 0
        target = np.asarray(sample.ignore_index) if target.ndim == 0 else target
        # the forced row may hold -inf (masked kind), which strategies keep off ignored rows
        sample = pp.replace(sample, target=target,
                             logits=np.where(np.isinf(sample.logits), -30.0, sample.logits))
    replacement = data.draw(hnp.arrays(np.float64, sample.logits.shape, elements=LARGE),
                            label="ignored rows' new logits")
    pp.ignored_rows_are_inert(ls_context, sample, replacement)


@pytest.mark.ls_cases(reduction=("sum",))
@given(data=st.data())
def test_sum_equals_the_sum_of_none(ls_context, data):
    need("none" in ls_context.impl.reductions, "no reduction 'none' to compare with")
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    pp.sum_is_sum_of_none(ls_context, sample)


@pytest.mark.ls_cases(reduction=("mean",))
@given(data=st.data())
def test_mean_equals_sum_over_the_conventions_denominator(ls_context, data):
    need("sum" in ls_context.impl.reductions, "no reduction 'sum' to compare with")
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    pp.mean_is_sum_over_denominator(ls_context, sample)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_gradient_rows_sum_to_zero_for_unweighted_targets(ls_context, data):
    impl = ls_context.impl
    need(impl.form in SOFTMAX_FORMS, "a softmax loss property (CE/KL)")
    sample = data.draw(ls.samples(impl=impl, weighted=False), label="sample")
    pp.gradient_rows_sum_to_zero(ls_context, sample)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_cross_entropy_is_at_least_the_target_entropy_and_kl_at_least_zero(ls_context, data):
    impl = ls_context.impl
    need(impl.form in SOFTMAX_FORMS, "a softmax loss property (CE/KL)")
    sample = data.draw(ls.samples(impl=impl, weighted=False), label="sample")
    pp.bounded_below_by_entropy(ls_context, sample)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_gradient_vanishes_at_the_log_target(ls_context, data):
    impl = ls_context.impl
    need(impl.form in SOFTMAX_FORMS, "a softmax loss property (CE/KL)")
    need(impl.convention != "padding_excluded", "the padding column has q = 0: no finite minimiser")
    eps = ls.smoothing(min_value=max(impl.eps_min, 1e-3), max_value=min(impl.eps_max, 0.9))
    sample = data.draw(ls.samples(impl=impl, weighted=False, kinds=("ordinary",), eps=eps),
                        label="sample")
    pp.minimum_at_log_target(ls_context, sample)


@pytest.mark.ls_cases(K=(11, 128), reduction=REDUCTIONS)
@given(data=st.data())
def test_implied_target_distribution_sums_to_one(ls_context, data):
    impl, K = ls_context.impl, ls_context.case.K
    need(impl.form in SOFTMAX_FORMS, "the gradient is s*p - q only for softmax losses (CE/KL)")
    sample = data.draw(ls.samples(impl=impl, layouts=("2d",), min_classes=K, max_classes=K,
                                    max_rows=1, ignores=("none",), weighted=False,
                                    kinds=("ordinary", "extreme")), label="sample")
    ignored = invariants.fixed_classes(pp.context_for(ls_context, sample), K)
    special = {0, 1, K - 1, K - 100, data.draw(st.integers(0, K - 1), label="a class")}
    classes = sorted(c for c in special if 0 <= c < K and c not in ignored)
    pp.implied_target_mass(ls_context, sample, classes)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_repeated_calls_are_bitwise_identical(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    pp.repeat_is_bitwise_identical(ls_context, sample)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_forward_under_no_grad_equals_forward_with_grad(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    pp.no_grad_matches_grad(ls_context, sample)


@pytest.mark.ls_cases(reduction=REDUCTIONS)
@given(data=st.data())
def test_non_contiguous_logits_match_contiguous_ones(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl), label="sample")
    pp.non_contiguous_matches_contiguous(ls_context, sample)


@pytest.mark.ls_cases(needs=("nd",), reduction=REDUCTIONS)
@given(data=st.data())
def test_nd_input_matches_the_same_rows_in_2d(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl, layouts=("nd",)), label="sample")
    pp.layout_matches_2d(ls_context, sample)


@pytest.mark.ls_cases(needs=("unbatched",), reduction=REDUCTIONS)
@given(data=st.data())
def test_unbatched_input_matches_a_batch_of_one(ls_context, data):
    sample = data.draw(ls.samples(impl=ls_context.impl, layouts=("unbatched",)), label="sample")
    pp.layout_matches_2d(ls_context, sample)
