"""Broken implementations for the findings self-tests (selftests/test_findings.py): each
bug is one root cause, however many checks and cases show it."""

import os

import torch

from lsuite.record.records import Impl, KnownDefect
from selftests.impls.dropins import ExclusiveMassSoldAsPyTorch, TargetDistributionCE


class ShapeAndDenominatorBugs(TargetDistributionCE):
    """Two bugs: reduction='none' keeps a trailing class-like dimension (one wrong shape),
    and `mean` divides by every element of the logits, N·K, not by Σ w_y (one wrong
    denominator)."""

    def forward(self, input, target):
        self.elements = input.numel()
        out = super().forward(input, target)
        return out.unsqueeze(-1) if self.reduction == "none" else out

    def denominator(self, w_y, keep):
        return torch.tensor(float(self.elements), dtype=w_y.dtype, device=w_y.device)


class RaisesOnEveryCall(TargetDistributionCE):
    """Raises the same TypeError on every call, from this file's own line."""

    def forward(self, input, target):
        index = None if input.device.type == "cpu" else input.device.index
        return compare_device(index) + super().forward(input, target)


def compare_device(index):
    return torch.zeros(()) if index < 0 else torch.zeros(())  # raises: None < 0 on CPU


# A library whose known defect gets fixed: the record declares the exclusive-mass bug;
# LS_SELFTEST_LIBRARY_FIXED=1 simulates the library release that fixes it.
def _library_loss(cfg):
    fixed = os.environ.get("LS_SELFTEST_LIBRARY_FIXED") == "1"
    return (TargetDistributionCE if fixed else ExclusiveMassSoldAsPyTorch)(
        weight=cfg.weight, ignore_index=-100 if cfg.ignore_index is None else cfg.ignore_index,
        reduction=cfg.reduction, label_smoothing=cfg.eps)


LibraryWithAKnownDefect = Impl(
    name="LibraryWithAKnownDefect", build=_library_loss, convention="inclusive", form="ce",
    description="declares the exclusive-mass defect; fixed when LS_SELFTEST_LIBRARY_FIXED=1",
    known_defects=(KnownDefect("spreads eps over the K-1 other classes (exclusive)",
                               checks=("value_and_gradient_in_every_dtype_and_reduction",)),
                   # never shows: sum and none agree whatever the mass (a drawn check: non-strict)
                   KnownDefect("declared on a check it passes", checks=("sum_equals_the_sum_of_none",))))


class SmoothsOverTheLastDimension(TargetDistributionCE):
    """Spreads ε over the size of the input's last dimension instead of the class dimension
    (Keras 3.15.1 with axis=1 on an (N, K, d1, d2) input, issue 20): right for 2-D input."""

    def forward(self, input, target):
        self.last = input.shape[-1]
        return super().forward(input, target)

    def targets(self, target, num_classes, dtype):
        q, keep, safe = super().targets(target, num_classes, dtype)
        return q - self.eps / num_classes + self.eps / self.last, keep, safe
