"""Adversarial cases, as named data: where label-smoothing bugs live (docs/specification.md §6-7).

Confident, extreme and -inf-masked logits in every dtype; degenerate and huge
vocabularies; the empty batch; smoothing at its edges; zero class weights. Each is judged
against the reference exactly like the ordinary conformance checks.
"""

import pytest

from lsuite.checks.reference import check_against_reference
from lsuite.record.records import DTYPES, REDUCTIONS

pytestmark = pytest.mark.ls_kind("reference")

THOROUGH = "thorough"  # the Hypothesis profile that also runs the LLM-sized vocabularies
# 1 - p(true class) of every row: p = 0.99, 0.999, 0.9999, 1 - 1e-6. Rounding p to bfloat16
# before subtracting the target loses 25% of the true-class gradient at 0.99 and all of it
# from 0.999 on (docs/specification.md §7, Liger PR #1329); every row confident makes that entry the
# largest of the gradient at eps = 0, so the normwise budget judges it.
CONFIDENT_ROW_MISSES = (1e-2, 1e-3, 1e-4, 1e-6)


@pytest.mark.ls_cases(logits=("confident", "extreme", "masked"), dtype=DTYPES)
def test_confident_extreme_and_masked_logits_in_every_dtype(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(logits=("confident",), miss=CONFIDENT_ROW_MISSES, eps=(0.0, 0.1),
                      dtype=("bfloat16", "float16"), K=(1000,))
def test_confident_rows_keep_the_true_class_gradient(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(K=(1, 2, 3, 127), reduction=REDUCTIONS)
def test_degenerate_vocabularies(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(K=(65537, 128256), N=(4,), dtype=("float32", "bfloat16"))
def test_llm_sized_vocabularies(ls_context, request):
    if request.config.getoption("hypothesis_profile", None) != THOROUGH:
        pytest.skip(f"LLM-sized vocabularies run with --hypothesis-profile={THOROUGH}")
    check_against_reference(ls_context)


@pytest.mark.ls_cases(N=(0,), reduction=REDUCTIONS)
def test_empty_batch(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(eps=(1e-6, 0.9), dtype=("float64", "float32", "bfloat16"))
def test_smoothing_at_its_edges(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(weight=("zeros",), ignore=("none", "negative"), reduction=REDUCTIONS)
def test_zero_class_weights(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(weight=("zero_total",), reduction=REDUCTIONS)
def test_zero_total_target_weight(ls_context):
    """Σ w_y = 0 while the smoothing term is not: a mean of 0/0 or x/0 (NaN vs inf is a
    convention there: lsuite/judging/severity.py)."""
    check_against_reference(ls_context)


@pytest.mark.ls_cases(K=(1,), eps=(0.0,), reduction=REDUCTIONS)
def test_a_single_class_without_smoothing(ls_context):
    """K = 1 at eps = 0 is well defined for every convention (loss 0, gradient 0), also for
    those that divide eps by K - 1."""
    check_against_reference(ls_context)
