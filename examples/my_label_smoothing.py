"""A label-smoothed cross-entropy written from the formula, as a user would plug it in:

    python -m pytest suites/ --ls-impl examples/my_label_smoothing.py:LabelSmoothedCE

It is a drop-in for nn.CrossEntropyLoss (class-index targets): the suite holds it to
PyTorch's semantics (docs/specification.md §4) for the keyword arguments it accepts.
"""

import torch
from torch import nn


class LabelSmoothedCE(nn.Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        if reduction not in ("none", "sum", "mean"):
            raise ValueError(f"reduction must be none, sum or mean, got {reduction!r}")
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.eps = label_smoothing

    def forward(self, input, target):
        class_dim = 0 if input.ndim == 1 else 1
        num_classes = input.shape[class_dim]
        log_p = input.log_softmax(class_dim).movedim(class_dim, -1)  # (..., K)
        keep = target != self.ignore_index
        safe = torch.where(keep, target, torch.zeros_like(target))
        if bool(((safe < 0) | (safe >= num_classes)).any()):
            raise IndexError(f"target out of range [0, {num_classes})")
        weight = self.weight if self.weight is not None else torch.ones(
            num_classes, dtype=input.dtype, device=input.device)
        w_y = weight[safe]
        nll = -log_p.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * w_y
        # Scale by eps/K before summing over classes: in float16 the unscaled sum of K
        # large log-probabilities overflows although the smoothing term does not.
        smooth = -(log_p * (weight * (self.eps / num_classes))).sum(-1)
        loss = ((1 - self.eps) * nll + smooth) * keep
        if self.reduction == "none":
            return loss
        # Accumulate in float32 at least: a float16 sum of large row losses overflows
        # although their mean is representable.
        acc = torch.promote_types(input.dtype, torch.float32)
        total = loss.sum(dtype=acc)
        if self.reduction == "sum":
            return total.to(input.dtype)
        # PyTorch's rule: divide by the summed weight of the kept rows; with none kept the
        # value is NaN and the gradient 0 (docs/specification.md §4), hence where() not a division.
        denominator = (w_y * keep).sum(dtype=acc)
        nan = torch.full_like(total, float("nan"))
        mean = torch.where(denominator > 0, total / denominator.clamp_min(1e-30), nan)
        return mean.to(input.dtype)
