"""Where real kernels break (issue 24), as fixed cases of the default run, each judged
against the reference like every conformance check (lsuite/inputs/kernel_cases.py arranges them):

- the upstream gradient of a reduced loss is not 1 (Liger-Kernel #1298, TransformerEngine
  #2139: a kernel that ignores or mis-broadcasts grad_output), and that of 'none' arrives
  non-contiguous (TransformerEngine #2734: row strides);
- ignore_index=0, the commonest padding id, with class weights (the padding class weighted
  too) and smoothing (`if ignore_index:` is false for 0; OpenNMT-py #1463);
- K past a kernel's block size (4096, 16384, 32768, 65536) with a partial last block that
  holds every row's target and largest logit, class weights differing between blocks
  (verl #5349: tail blocks);
- thousands of rows, more than one chunk or program handles, with ignored rows bunched
  unevenly and class weights (torchtune #1875: chunked means).
"""

import pytest

from lsuite.checks.reference import check_against_reference
from lsuite.inputs.kernel_cases import BLOCKS
from lsuite.record.records import REDUCTIONS

pytestmark = pytest.mark.ls_kind("reference")

TAIL_K = tuple(block + min(block // 2, 4096) + 3 for block in BLOCKS)  # 6147 ... 69635
MANY_ROWS = 4099  # more rows than a GPU has multiprocessors, not a multiple of a chunk


@pytest.mark.ls_cases(upstream=("scaled",), reduction=REDUCTIONS, dtype=("float64", "float32"),
                      weight=("none", "random"), ignore=("none", "negative"))
def test_reduced_losses_backpropagate_an_upstream_gradient_other_than_one(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(upstream=("strided",), reduction=("none",), dtype=("float64", "float32"),
                      layout=("2d", "nd"))
def test_a_non_contiguous_upstream_gradient_of_none(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(ignore=("zero",), weight=("none", "random"), eps=(0.0, 0.1),
                      reduction=REDUCTIONS, dtype=("float32",))
def test_ignore_index_zero_with_class_weights_and_smoothing(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(block=BLOCKS, K=TAIL_K, N=(3,), weight=("none", "random"),
                      reduction=("mean", "none"), dtype=("float32",))
def test_a_partial_tail_block_holding_targets_and_maxima(ls_context):
    check_against_reference(ls_context)


@pytest.mark.ls_cases(N=(MANY_ROWS,), K=(33,), ignore=("negative",), spread=("uneven",),
                      weight=("none", "random"), reduction=REDUCTIONS, dtype=("float32",))
def test_thousands_of_rows_with_unevenly_ignored_rows_and_weights(ls_context):
    check_against_reference(ls_context)
