"""Fused linear cross-entropy (records with input="hidden_states"): value and the gradients
for h, W and b against the float64 reference on hidden states (reference/linear.py), in
every dtype and reduction claimed, with ignored targets and class weights, on confident
rows, large norms and classes masked through a -inf bias (the one reference check,
lsuite/checks/reference.py, on the hidden-states kind, lsuite/kinds/hidden_states.py); and the
invariants every kind has (lsuite/checks/invariants.py): a shift of every logit through the
bias, a permutation of the classifier's rows, a permutation of the batch.
"""

import pytest

from lsuite.checks.invariants import batch_permutation, class_permutation, shift_invariance
from lsuite.checks.reference import check_against_reference
from lsuite.record.records import DTYPES, REDUCTIONS

pytestmark = [pytest.mark.ls_kind("reference"), pytest.mark.ls_inputs("hidden_states")]


@pytest.mark.ls_cases(dtype=DTYPES, reduction=REDUCTIONS, bias=("none", "random"))
def test_linear_value_and_gradients_in_every_dtype_and_reduction(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(dtype=("float64", "float32"), eps=(0.0, 0.1, 1.0), K=(2, 128, 1000),
                      bias=("random",))
def test_linear_value_and_gradients_across_smoothing_and_vocabularies(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(ignore=("negative", "in_range", "all"), reduction=REDUCTIONS, bias=("random",))
def test_linear_ignored_targets_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(weight=("random", "zeros"), ignore=("none", "negative"), reduction=REDUCTIONS,
                      bias=("random",))
def test_linear_class_weights_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(logits=("confident", "extreme", "masked"), dtype=DTYPES, bias=("random",))
def test_linear_confident_large_norm_and_masked_rows_in_every_dtype(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, bias=("random",), dtype=("float64", "float32"))
def test_linear_shifting_every_logit_through_the_bias_changes_nothing(ls_context):
    shift_invariance(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, bias=("none", "random"), dtype=("float64", "float32"))
def test_linear_permuting_the_classifier_rows_permutes_their_gradients(ls_context):
    class_permutation(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, dtype=("float64", "float32"))
def test_linear_permuting_the_batch_permutes_the_hidden_gradient(ls_context):
    batch_permutation(ls_context)


@pytest.mark.ls_cases(N=(0,), reduction=REDUCTIONS, bias=("none", "random"))
def test_linear_empty_batch(ls_context):
    """No rows (a micro-batch whose tokens were all packed away): sum 0, none an empty
    vector, mean NaN or the claimed empty_mean; gradients of h empty, of W and b zero."""
    check_against_reference(ls_context)
