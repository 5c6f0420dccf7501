"""Vocab-parallel cross-entropy (records with input="vocab_parallel") on a real
torch.distributed group (lsuite/running/distributed.py: gloo on CPU, NCCL on CUDA, world 1, 2, 4):
every rank's loss against the whole-vocabulary float64 reference, the ranks against each
other, each rank's gradient against its columns of the reference gradient (the one reference
check, lsuite/checks/reference.py, on the vocab-parallel kind, lsuite/kinds/vocab_parallel.py), in every dtype and reduction claimed, with ignored targets and class weights, on a
K the world divides and one it does not (where claimed), and the invariants: a row's shift,
a permutation of the classes across shards, of the batch, and of the world size.
"""

import pytest

from lsuite.checks import invariants
from lsuite.checks.reference import check_against_reference
from lsuite.record.records import DTYPES, REDUCTIONS

pytestmark = [pytest.mark.ls_kind("reference"), pytest.mark.ls_inputs("vocab_parallel")]

EVEN_K = 12  # divisible by every world size


# The ranks persist across checks (lsuite/running/distributed.py), so a check no longer pays their
# start; the matrix stays small all the same: world 1 vs 2 vs 4 is the world-size check's axis.
@pytest.mark.ls_cases(world=(1, 2), dtype=DTYPES, reduction=REDUCTIONS, K=(EVEN_K,))
def test_shards_value_and_gradient_in_every_dtype_and_reduction(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(world=(4,), K=(11, 13, 128, 1000), eps=(0.0, 0.1))
def test_shards_across_vocabularies_even_and_uneven(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), ignore=("negative", "in_range", "all"), reduction=REDUCTIONS)
def test_shards_ignored_targets_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), weight=("random",), ignore=("none", "negative"),
                      reduction=("sum", "mean"))
def test_shards_class_weights_follow_the_convention(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), logits=("confident", "extreme", "masked"), dtype=DTYPES)
def test_shards_confident_extreme_and_masked_logits(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(K=(EVEN_K,), reduction=REDUCTIONS)
def test_world_size_does_not_change_the_result(ls_context):
    invariants.world_size_changes_nothing(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), reduction=("mean", "none"))
def test_shards_shifting_a_rows_logits_changes_nothing(ls_context):
    invariants.shift_invariance(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), reduction=("mean", "none"))
def test_shards_permuting_classes_across_shards_permutes_the_gradient(ls_context):
    invariants.class_permutation(ls_context)


@pytest.mark.ls_kind("invariant")
@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), reduction=("mean", "none"))
def test_shards_permuting_the_batch_permutes_rows(ls_context):
    invariants.batch_permutation(ls_context)


@pytest.mark.ls_cases(world=(2,), K=(EVEN_K,), N=(0,), reduction=REDUCTIONS)
def test_shards_empty_batch(ls_context):
    check_against_reference(ls_context)
