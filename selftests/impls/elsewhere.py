"""Drop-ins written the way code outside this repository is written (issue 24): correct ones
in forms the suite had not seen, which must pass every time, and broken ones modelled on
bugs reported in real kernels and libraries, which must fail every time
(selftests/test_elsewhere.py). All take nn.CrossEntropyLoss's arguments.
"""

import torch
from torch import nn

from lsuite import dropin


class _Args(nn.Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing={label_smoothing} is outside [0, 1]")
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def rows(self, input, target):
        """(R, K) logits rows-last and (R,) targets, from (K,), (N, K) or (N, K, d...)."""
        if input.ndim == 1:
            return input.unsqueeze(0), target.reshape(1)
        return input.movedim(1, -1).reshape(-1, input.shape[1]), target.reshape(-1)

    def shaped(self, per_row, input, target):
        return per_row.reshape(target.shape)

    def check_targets(self, target, keep, K):
        bad = keep & ((target < 0) | (target >= K))
        if bool(bad.any()):
            raise IndexError(f"target {int(target[bad][0])} is out of range for {K} classes")


class SumOverWeightCE(_Args):
    """Correct: Σ per-row loss / Σ w_y, written as the formula reads. Where the total target
    weight is 0 and the smoothing numerator is not, that is x/0 = +inf (PyTorch: NaN)."""

    def forward(self, input, target):
        z, t = self.rows(input, target)
        K = z.shape[1]
        keep = t != self.ignore_index
        self.check_targets(t, keep, K)
        safe = torch.where(keep, t, torch.zeros_like(t))
        logp = z.log_softmax(-1)
        w = torch.ones(K, dtype=z.dtype, device=z.device) if self.weight is None else self.weight.to(z.dtype)
        nll = -logp.gather(1, safe[:, None])[:, 0] * w[safe]
        smooth = -(logp * w).sum(-1) / K
        per_row = torch.where(keep, (1 - self.eps) * nll + self.eps * smooth, torch.zeros_like(nll))
        if self.reduction == "none":
            return self.shaped(per_row, input, target)
        if self.reduction == "sum":
            return per_row.sum()
        return per_row.sum() / (w[safe] * keep).sum()


class ClampedDenominatorCE(SumOverWeightCE):
    """Broken: `total / denominator.clamp_min(1e-12)`, the usual guard against 0/0, turns a
    mean over zero total weight into a huge finite number (neither +inf nor NaN)."""

    def forward(self, input, target):
        if self.reduction != "mean":
            return super().forward(input, target)
        reduction, self.reduction = self.reduction, "sum"
        try:
            total = super().forward(input, target)
        finally:
            self.reduction = reduction
        z, t = self.rows(input, target)
        keep = t != self.ignore_index
        w = torch.ones(z.shape[1], dtype=z.dtype) if self.weight is None else self.weight.to(z.dtype)
        denominator = (w[torch.where(keep, t, torch.zeros_like(t))] * keep).sum()
        return total / denominator.clamp_min(1e-12)


class LabelLogitInFloat64(SumOverWeightCE):
    """Correct for a record that claims float32 arithmetic: the label logit and the smoothing
    sum in the input's float64, the log-sum-exp in float32 (a mixed-precision kernel). At
    K = 1 the value LSE(z) - z_y is exactly 0 and float32 rounds the terms by 6e-8 |z|."""

    def forward(self, input, target):
        z, t = self.rows(input, target)
        keep = t != self.ignore_index
        self.check_targets(t, keep, z.shape[1])
        safe = torch.where(keep, t, torch.zeros_like(t))
        lse = torch.logsumexp(z.float(), -1).to(z.dtype)
        nll = lse - z.gather(1, safe[:, None])[:, 0]
        smooth = lse - z.mean(-1)
        per_row = torch.where(keep, (1 - self.eps) * nll + self.eps * smooth, torch.zeros_like(nll))
        if self.reduction == "none":
            return self.shaped(per_row, input, target)
        return per_row.sum() if self.reduction == "sum" else per_row.sum() / keep.sum()


MixedPrecisionRecord = dropin(LabelLogitInFloat64, name="MixedPrecisionRecord", weights=False,
                              dtypes=("float64", "float32"),
                              computes_in="float32")


class NoneKeepsAColumn(SumOverWeightCE):
    """Broken: reduction='none' returns (N, 1), the per-row losses before a squeeze."""

    def shaped(self, per_row, input, target):
        return per_row.reshape(*target.shape, 1)


# Correct, but it claims CUDA only: on a machine without CUDA nothing of it can be checked.
CudaOnly = dropin(SumOverWeightCE, name="CudaOnly", devices=("cuda",))


class SmpSoftCrossEntropy(nn.Module):
    """Broken in float16 at LLM sizes: segmentation-models-pytorch 0.6.0
    SoftCrossEntropyLoss(smooth_factor=eps) (losses/_functional.py label_smoothed_nll_loss),
    which sums -log p over the K classes in the input dtype: at K = 32000 that passes
    float16's 65504 and inf * (eps / K) with eps = 0 is NaN."""

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction, self.eps = reduction, label_smoothing

    def forward(self, input, target):
        lprobs = torch.log_softmax(input, dim=-1)
        target = target.unsqueeze(-1)
        nll_loss = -lprobs.gather(dim=-1, index=target).squeeze(-1)
        smooth_loss = -lprobs.sum(dim=-1, keepdim=True).squeeze(-1)
        if self.reduction == "sum":
            nll_loss, smooth_loss = nll_loss.sum(), smooth_loss.sum()
        elif self.reduction == "mean":
            nll_loss, smooth_loss = nll_loss.mean(), smooth_loss.mean()
        eps_i = self.eps / lprobs.size(-1)
        return (1.0 - self.eps) * nll_loss + eps_i * smooth_loss
