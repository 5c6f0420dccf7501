"""Broken implementations for the findings self-tests (selftests/test_findings.py): each
bug is one root cause, however many checks and cases show it."""

import torch

from selftests.impls.dropins import TargetDistributionCE


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
