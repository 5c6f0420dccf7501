"""Implementations that claim PyTorch's argument checking (drop-ins, the built-in) must
reject what nn.CrossEntropyLoss rejects (docs/specification.md §4): smoothing outside [0, 1] and
class targets outside [0, K). On CUDA an out-of-range target trips a device-side assert
that poisons the process, so that check runs in a subprocess (lsuite/checks/isolate.py).
"""

import pytest

from lsuite.checks.rejection import expect_rejection

pytestmark = pytest.mark.ls_kind("argument")


@pytest.mark.ls_cases(needs=("validates_arguments",), dtype=("float32",))
def test_rejects_negative_smoothing(ls_context):
    expect_rejection(ls_context, eps=-0.1)


@pytest.mark.ls_cases(needs=("validates_arguments",), dtype=("float32",))
def test_rejects_smoothing_above_one(ls_context):
    expect_rejection(ls_context, eps=1.5)


# Every record, not only those claiming PyTorch's argument checks: silently clamping or
# wrapping an invalid label is a finding for any implementation.
@pytest.mark.ls_cases(dtype=("float32",))
def test_rejects_targets_at_or_above_the_class_count(ls_context):
    expect_rejection(ls_context, target="K")


@pytest.mark.ls_cases(dtype=("float32",))
def test_rejects_negative_targets_other_than_ignore_index(ls_context):
    expect_rejection(ls_context, target="-5")
