"""Drop-ins for the plug-in self-tests: one correct implementation written independently
of examples/my_label_smoothing.py (through the explicit target distribution), and broken
ones, each a bug pattern seen in the field, each overriding one step of the correct one.
"""

import time

import torch
from torch import nn


class TargetDistributionCE(nn.Module):
    """Correct: builds q = (1-eps)·onehot + eps/K explicitly, loss = -Σ w_c q_c log p_c."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.check_eps(label_smoothing)
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def check_eps(self, eps):
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"label_smoothing={eps} is outside [0, 1]")

    def targets(self, target, num_classes, dtype):
        keep = target != self.ignore_index
        safe = target.masked_fill(~keep, 0)
        if bool(((safe < 0) | (safe >= num_classes)).any()):
            raise IndexError("target out of range")
        onehot = torch.nn.functional.one_hot(safe, num_classes).to(dtype)
        return onehot * (1 - self.eps) + self.eps / num_classes, keep, safe

    def log_probs(self, logits):
        return logits.log_softmax(-1)

    def denominator(self, w_y, keep):
        return (w_y * keep).sum()

    def forward(self, input, target):
        logits = input.unsqueeze(0) if input.ndim == 1 else input.movedim(1, -1)
        tgt = target.unsqueeze(0) if input.ndim == 1 else target
        num_classes = logits.shape[-1]
        q, keep, safe = self.targets(tgt, num_classes, logits.dtype)
        weight = self.weight if self.weight is not None else torch.ones(
            num_classes, dtype=logits.dtype, device=logits.device)
        per_row = -(q * weight * self.log_probs(logits)).sum(-1) * keep
        if input.ndim == 1:
            per_row = per_row.squeeze(0)
        if self.reduction == "none":
            return per_row
        if self.reduction == "sum":
            return per_row.sum()
        total, denominator = per_row.sum(), self.denominator(weight[safe], keep)
        safe_mean = total / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        return torch.where(denominator > 0, safe_mean, torch.full_like(total, float("nan")))


class ExclusiveMassSoldAsPyTorch(TargetDistributionCE):
    """eps/(K-1) off the true class, 1-eps on it: the seed 000 quiz rule under PyTorch's name."""

    def targets(self, target, num_classes, dtype):
        q, keep, safe = super().targets(target, num_classes, dtype)
        onehot = torch.nn.functional.one_hot(safe, num_classes).to(dtype)
        return onehot * (1 - self.eps) + (1 - onehot) * self.eps / (num_classes - 1), keep, safe


class IgnoresSmoothing(TargetDistributionCE):
    def targets(self, target, num_classes, dtype):
        keep = target != self.ignore_index
        safe = target.masked_fill(~keep, 0)
        return torch.nn.functional.one_hot(safe, num_classes).to(dtype), keep, safe


class MeanOverAllRows(TargetDistributionCE):
    """`mean` divides by every row, ignored ones included."""

    def denominator(self, w_y, keep):
        return torch.tensor(float(keep.numel()), dtype=w_y.dtype, device=w_y.device)


class NoSmoothingValidation(TargetDistributionCE):
    def check_eps(self, eps):
        pass


class ReturnsNaN(TargetDistributionCE):
    def forward(self, input, target):
        return super().forward(input, target) * float("nan")


class ReturnsPerRowForMean(TargetDistributionCE):
    def forward(self, input, target):
        reduction, self.reduction = self.reduction, "none"
        try:
            return super().forward(input, target)
        finally:
            self.reduction = reduction


class ReturnsPythonFloat(TargetDistributionCE):
    def forward(self, input, target):
        return float(super().forward(input, target))


class ReturnsFloat32ForEveryDtype(TargetDistributionCE):
    def forward(self, input, target):
        return super().forward(input.float(), target)


class MutatesLogits(TargetDistributionCE):
    """Subtracts the row max in place, as a fused kernel that reuses its input buffer might."""

    def log_probs(self, logits):
        with torch.no_grad():
            logits.sub_(logits.amax(-1, keepdim=True))
        return logits.log_softmax(-1)


class Raises(TargetDistributionCE):
    def forward(self, input, target):
        raise RuntimeError("kernel launch failed: <no device>")


class Hangs(TargetDistributionCE):
    def forward(self, input, target):
        time.sleep(3600)


class DetachedSmoothingTerm(TargetDistributionCE):
    """Value right, gradient wrong: the eps/K term does not backpropagate."""

    def forward(self, input, target):
        eps, self.eps = self.eps, 0.0
        try:
            hard = super().forward(input, target)
        finally:
            self.eps = eps
        return hard + (super().forward(input, target) - hard).detach()


def not_a_factory_value():
    return 42


NOT_CALLABLE = 3.14
