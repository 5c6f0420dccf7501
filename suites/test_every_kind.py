"""The generic checks, for a record that brings an input kind of its own (`Impl.kind`,
docs/architecture.md "Adding a check or an input kind"): its value and every gradient
against the reference in every dtype and reduction, the three invariants every kind has,
and the argument checks, over the kind's own axes too. The built-in kinds run the same
check functions from their own modules (test_conformance.py, test_fused_linear.py,
test_vocab_parallel.py, test_invariants.py, test_argument_errors.py) with matrices tailored
to each.
"""

import pytest

from lsuite.checks import invariants
from lsuite.checks.reference import check_against_reference
from lsuite.checks.rejection import expect_rejection
from lsuite.record.records import DTYPES, REDUCTIONS

pytestmark = pytest.mark.ls_inputs("other")


@pytest.mark.ls_kind("reference")
@pytest.mark.ls_cases(dtype=DTYPES, reduction=REDUCTIONS)
def test_kind_value_and_gradients_in_every_dtype_and_reduction(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_kind("reference")
@pytest.mark.ls_cases(ignore=("negative", "in_range", "all"), weight=("none", "random"),
                      reduction=REDUCTIONS)
def test_kind_ignored_targets_and_class_weights(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, dtype=("float64", "float32"))
def test_kind_shifting_a_rows_logits_changes_nothing(ls_context):
    invariants.shift_invariance(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, dtype=("float64", "float32"))
def test_kind_permuting_the_classes_permutes_their_gradients(ls_context):
    invariants.class_permutation(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS, dtype=("float64", "float32"))
def test_kind_permuting_the_batch_permutes_the_rows(ls_context):
    invariants.batch_permutation(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(reduction=REDUCTIONS)
def test_kind_world_size_does_not_change_the_result(ls_context):
    invariants.world_size_changes_nothing(ls_context)


@pytest.mark.ls_kind("argument")
@pytest.mark.ls_cases(dtype=("float32",))
def test_kind_rejects_targets_at_or_above_the_class_count(ls_context):
    expect_rejection(ls_context, target="K")


@pytest.mark.ls_kind("argument")
@pytest.mark.ls_cases(needs=("validates_arguments",), dtype=("float32",))
def test_kind_rejects_smoothing_above_one(ls_context):
    expect_rejection(ls_context, eps=1.5)
