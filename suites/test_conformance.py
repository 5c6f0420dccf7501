"""Value and gradient of every implementation under test against the float64 reference.

Each test varies a few case axes from the implementation's base case (lsuite/inputs/cases.py)
and is generated only where the implementation claims support; `lsuite.checks.reference` does the
judging (value and gradient errors against budgets from lsuite/judging/tolerances.py, and every
way an implementation can misbehave).
"""

import pytest

from lsuite.checks.reference import check_against_reference
from lsuite.record.records import DTYPES, REDUCTIONS

pytestmark = pytest.mark.ls_kind("reference")

EPSILONS = (0.0, 1e-3, 0.1, 0.5, 1.0)
VOCABULARIES = (2, 3, 128, 1000, 32000)


@pytest.mark.ls_cases(dtype=DTYPES, reduction=REDUCTIONS)
def test_value_and_gradient_in_every_dtype_and_reduction(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(dtype=("float64", "float32"), eps=EPSILONS)
def test_value_and_gradient_across_smoothing_strengths(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(dtype=("float64", "float32"), K=VOCABULARIES, N=(8,))
def test_value_and_gradient_across_vocabulary_sizes(ls_context):
    check_against_reference(ls_context)


# LLM-sized vocabularies in half precision, budgets from the attainable model: a float32
# accumulator passes; a smoothing sum accumulated in the dtype overflows float16 at K = 32000
# (segmentation-models-pytorch 0.6.0 SoftCrossEntropyLoss: -lprobs.sum() is inf, times eps = 0
# is NaN). K = 32000 with and without smoothing, and K just past 2^15 and 2^16 (odd: no
# power of two divides them).
@pytest.mark.ls_cases(dtype=("bfloat16", "float16"), K=(32000,), eps=(0.0, 0.1), N=(4,))
def test_llm_sized_vocabularies_in_half_precision(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(dtype=("bfloat16", "float16"), K=(32769, 65537), N=(1,))
def test_vocabularies_past_powers_of_two_in_half_precision(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(layout=("nd", "unbatched"), reduction=REDUCTIONS)
def test_value_and_gradient_for_nd_and_unbatched_inputs(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(ignore=("negative", "in_range", "all"), reduction=REDUCTIONS)
def test_ignored_targets_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(weight=("random",), ignore=("none", "negative"), reduction=REDUCTIONS,
                      dtype=("float64", "float32"))
def test_class_weights_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(targets=("probs",), weight=("none", "random"), reduction=REDUCTIONS)
def test_probability_targets_follow_pytorch_semantics(ls_context):
    check_against_reference(ls_context)
