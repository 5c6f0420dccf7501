"""Drop-ins for the plug-in self-tests: one correct implementation written independently
of examples/my_label_smoothing.py (through the explicit target distribution), and broken
ones, each a bug pattern seen in the field, each overriding one step of the correct one.
"""

import time

import torch
from torch import nn

from lsuite import dropin


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
        total = per_row.float().sum() if per_row.dtype == torch.float16 else per_row.sum()
        if self.reduction == "sum":
            return total.to(per_row.dtype)
        denominator = self.denominator(weight[safe], keep).to(total.dtype)
        safe_mean = total / torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        mean = torch.where(denominator > 0, safe_mean, torch.full_like(total, float("nan")))
        return mean.to(per_row.dtype)


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


# The same hang with 1/20 of --ls-timeout for its checks (1 s of test_plugin.py's 20): caught
# fast, while a correct drop-in beside it keeps a limit that no load makes it reach.
HangsBriefly = dropin(Hangs, name="HangsBriefly", time_factor=0.05)


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


class TrueClassLosesItsShare(TargetDistributionCE):
    """1-eps on the true class but eps/K on the others: the true class's eps/K share is lost."""

    def targets(self, target, num_classes, dtype):
        q, keep, safe = super().targets(target, num_classes, dtype)
        onehot = torch.nn.functional.one_hot(safe, num_classes).to(dtype)
        return q - onehot * self.eps / num_classes, keep, safe


class MeanOverCountNotWeights(TargetDistributionCE):
    """Weighted `mean` divided by the number of kept rows instead of Σ w_y."""

    def denominator(self, w_y, keep):
        return keep.sum().to(w_y.dtype)


class SmoothingCountsIgnoredRows(TargetDistributionCE):
    """pytorch#73205: the eps/K term is summed over every row, ignored ones included."""

    def forward(self, input, target):
        loss = super().forward(input, target)
        if self.reduction == "none" or self.eps == 0:
            return loss
        logits = input.unsqueeze(0) if input.ndim == 1 else input.movedim(1, -1)
        tgt = target.unsqueeze(0) if input.ndim == 1 else target
        ignored = (tgt == self.ignore_index).unsqueeze(-1)
        extra = -(self.eps / logits.shape[-1]) * (logits.log_softmax(-1) * ignored).sum()
        return loss + extra / (tgt != self.ignore_index).sum().clamp_min(1)


class WeightsDroppedFromSmoothing(TargetDistributionCE):
    """Class weights multiply the true-class term only, not the eps/K smoothing term."""

    def forward(self, input, target):
        if self.weight is None:
            return super().forward(input, target)
        logits = input.unsqueeze(0) if input.ndim == 1 else input.movedim(1, -1)
        tgt = target.unsqueeze(0) if input.ndim == 1 else target
        q, keep, safe = self.targets(tgt, logits.shape[-1], logits.dtype)
        log_p = logits.log_softmax(-1)
        onehot = torch.nn.functional.one_hot(safe, logits.shape[-1]).to(logits.dtype)
        w_y = self.weight[safe]
        per_row = -((q * onehot).sum(-1) * w_y * (log_p * onehot).sum(-1)
                    + (q * (1 - onehot) * log_p).sum(-1)) * keep
        per_row = per_row.squeeze(0) if input.ndim == 1 else per_row
        if self.reduction == "none":
            return per_row
        total = per_row.sum()
        return total if self.reduction == "sum" else total / (w_y * keep).sum()


class LogOfSoftmax(TargetDistributionCE):
    """log(softmax(z)) in the input dtype: underflows to -inf for confident logits (HF#10674)."""

    def log_probs(self, logits):
        return logits.softmax(-1).log()


class SoftmaxWithoutMaxShift(TargetDistributionCE):
    """exp(z) / Σ exp(z) without subtracting the max: overflows for large logits."""

    def log_probs(self, logits):
        e = logits.exp()
        return (e / e.sum(-1, keepdim=True)).log()


class ClampsOutOfRangeTargets(TargetDistributionCE):
    """Out-of-range targets clamped into [0, K) instead of raising."""

    def targets(self, target, num_classes, dtype):
        keep = target != self.ignore_index
        clamped = target.clamp(0, num_classes - 1).masked_fill(~keep, 0)
        onehot = torch.nn.functional.one_hot(clamped, num_classes).to(dtype)
        return onehot * (1 - self.eps) + self.eps / num_classes, keep, clamped


class ClassesFromLastDim(TargetDistributionCE):
    """Flattens N-D input as (-1, input.size(-1)): classes read from the last dim, not dim 1."""

    def forward(self, input, target):
        if input.ndim <= 2:
            return super().forward(input, target)
        return super().forward(input.reshape(-1, input.shape[-1]), target.reshape(-1))


class NonZeroNoneOnIgnoredRows(TargetDistributionCE):
    """`none` output keeps the smoothing term on ignored rows."""

    def forward(self, input, target):
        out = super().forward(input, target)
        if self.reduction != "none":
            return out
        logits = input.unsqueeze(0) if input.ndim == 1 else input.movedim(1, -1)
        tgt = target.unsqueeze(0) if input.ndim == 1 else target
        smooth = -(self.eps / logits.shape[-1]) * logits.log_softmax(-1).sum(-1)
        extra = smooth * (tgt == self.ignore_index)
        return out + (extra.squeeze(0) if input.ndim == 1 else extra)


class _ForgetfulMean(torch.autograd.Function):
    """Forward: a mean. Backward: the gradient of the sum (forgets the denominator)."""

    @staticmethod
    def forward(ctx, total, denominator):
        return total / denominator

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class CustomBackwardForgetsDenominator(TargetDistributionCE):
    def forward(self, input, target):
        if self.reduction != "mean":
            return super().forward(input, target)
        reduction, self.reduction = self.reduction, "sum"
        try:
            total = super().forward(input, target)
        finally:
            self.reduction = reduction
        keep = target != self.ignore_index
        weight = self.weight if self.weight is not None else torch.ones(
            input.shape[0 if input.ndim == 1 else 1], dtype=input.dtype, device=input.device)
        denominator = (weight[target.masked_fill(~keep, 0)] * keep).sum()
        return _ForgetfulMean.apply(total, denominator)


class NaNSumWhenAllIgnored(TargetDistributionCE):
    """`sum` of an all-ignored batch returns NaN (0/0 leaking) instead of 0."""

    def forward(self, input, target):
        out = super().forward(input, target)
        if self.reduction == "sum" and not bool((target != self.ignore_index).any()):
            return out * float("nan")
        return out


class NaiveLogSoftmax(TargetDistributionCE):
    """log p = z - log(sum(exp(z))) without subtracting the max: overflows once logits are
    shifted to ~1e3, so shift invariance breaks (inf/NaN) long before the values look odd."""

    def log_probs(self, logits):
        return logits - logits.exp().sum(-1, keepdim=True).log()


class LogitsAsLogProbs(TargetDistributionCE):
    """The classic F.kl_div/nll_loss slip: raw logits used as log-probabilities (no
    log-softmax), so -Σ q·z can fall below the target entropy H(q), even below 0."""

    def log_probs(self, logits):
        return logits


class HardCodedPadZero(TargetDistributionCE):
    """Class 0 hard-coded as padding (OpenNMT style) in a loss sold as PyTorch's: no mass on
    column 0, eps spread over the rest. Class 0 is special, so permuting classes breaks it."""

    def targets(self, target, num_classes, dtype):
        q, keep, safe = super().targets(target, num_classes, dtype)
        q = q.clone()
        q[..., 0] = torch.where(safe == 0, q[..., 0], torch.zeros_like(q[..., 0]))
        return q / q.sum(-1, keepdim=True), keep, safe


class RaisesMarkup(TargetDistributionCE):
    """Its exception message is markup: the report must show it as text."""

    def forward(self, input, target):
        raise RuntimeError("<script>alert('ls')</script>")


class _ComputesInFloat32(TargetDistributionCE):
    """Half-precision logits computed in float32 and rounded once at the end (float32 and
    float64 as they come): the careful kernel the low-precision budgets are anchored to."""

    def forward(self, input, target):
        if input.dtype not in (torch.bfloat16, torch.float16):
            return super().forward(input, target)
        saved = self.weight
        self.weight = None if saved is None else saved.float()
        try:
            return super().forward(input.float(), target).to(input.dtype)
        finally:
            self.weight = saved


class Float32RoundOnceCE(_ComputesInFloat32):
    """Correct: float32 arithmetic, one rounding of value and gradient to the input dtype."""


class _SoftmaxRoundedBeforeSubtracting(torch.autograd.Function):
    """log_softmax in float32 whose backward rounds softmax to `dtype` before the target is
    subtracted: grad = round(p) * sum(g) - ... (what PyTorch's CPU bf16 kernel does)."""

    @staticmethod
    def forward(ctx, logits, dtype):
        out = logits.log_softmax(-1)
        ctx.save_for_backward(out)
        ctx.dtype = dtype
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        rounded = out.exp().to(ctx.dtype).to(out.dtype)
        return grad - rounded * grad.sum(-1, keepdim=True), None


class RoundsSoftmaxBeforeSubtracting(_ComputesInFloat32):
    """Float32 arithmetic like Float32RoundOnceCE, but the gradient rounds the softmax to
    the logits' dtype before subtracting the target (docs/specification.md §7, Liger PR #1329): a
    confident row's true-class gradient is lost in bfloat16 and float16; exact in float32
    and float64, where the rounding changes nothing."""

    def forward(self, input, target):
        self.low = input.dtype
        return super().forward(input, target)

    def log_probs(self, logits):
        return _SoftmaxRoundedBeforeSubtracting.apply(logits, self.low)


class RestoresItsMutation(TargetDistributionCE):
    """Writes into the logits in place and undoes it before returning: the values match at
    the end, the tensor's version counter does not."""

    def forward(self, input, target):
        with torch.no_grad():
            input.mul_(2.0)
            input.div_(2.0)
        return super().forward(input, target)


class RejectsWithRecursionError(TargetDistributionCE):
    """'Rejects' an out-of-range target by blowing the stack: not a rejection."""

    def targets(self, target, num_classes, dtype):
        if bool(((target != self.ignore_index) & ((target < 0) | (target >= num_classes))).any()):
            raise RecursionError("maximum recursion depth exceeded")
        return super().targets(target, num_classes, dtype)
