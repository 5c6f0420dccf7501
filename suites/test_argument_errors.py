"""Implementations that claim PyTorch's argument checking (drop-ins, the built-in) must
reject what nn.CrossEntropyLoss rejects (CONVENTIONS.md §4): smoothing outside [0, 1] and
class targets outside [0, K). On CUDA an out-of-range target trips a device-side assert
that poisons the process, so that check runs in a subprocess (lsuite/isolate.py).
"""

import pytest

from lsuite.rejection import expect_rejection

pytestmark = pytest.mark.ls_kind("argument")


@pytest.mark.ls_cases(needs=("validates_arguments",), dtype=("float32",))
def test_rejects_negative_smoothing(ls_context):
    expect_rejection(ls_context, eps=-0.1)


@pytest.mark.ls_cases(needs=("validates_arguments",), dtype=("float32",))
def test_rejects_smoothing_above_one(ls_context):
    expect_rejection(ls_context, eps=1.5)


@pytest.mark.ls_cases(dtype=("float32",))  # every record: silently clamping a label is a finding
@pytest.mark.parametrize("bad_target", ["K", "-5"])
def test_rejects_out_of_range_targets(ls_context, bad_target):
    expect_rejection(ls_context, target=bad_target)
