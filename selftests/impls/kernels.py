"""Drop-ins written as kernels and libraries write them (issue 24), all taking
nn.CrossEntropyLoss's arguments (PyTorch's inclusive convention, class weights in both the
NLL and the smoothing term, ignored rows out of the numerator and the denominator).

Correct, in forms the suite had not seen: an online softmax over class blocks; a custom
autograd.Function with its backward written by hand in float64; one built on
torch.distributions.Categorical. Broken: each the correct one with one step written the
way a real kernel or library got it wrong, naming the upstream report.
"""

import torch
from torch import nn
from torch.distributions import Categorical

BLOCK = 4096  # class block of the blocked kernels (a common Triton BLOCK_SIZE)
ROWS_PER_PROGRAM = 1024  # rows one program / chunk handles in the chunked ones


class _Args(nn.Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing={label_smoothing} is outside [0, 1]")
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def keep_mask(self, t):
        return t != self.ignore_index

    def prepared(self, input, target):
        """(rows-last logits (R, K), targets (R,), kept (R,), safe targets, weights (K,)); half
        precision is computed in float32 (the output is rounded back once, in `reduce`)."""
        if input.dtype in (torch.float16, torch.bfloat16):
            input = input.float()
        z = input.unsqueeze(0) if input.ndim == 1 else input.movedim(1, -1).reshape(-1, input.shape[1])
        t = target.reshape(-1)
        K = z.shape[1]
        keep = self.keep_mask(t)
        if bool((keep & ((t < 0) | (t >= K))).any()):
            raise IndexError(f"target out of range for {K} classes")
        safe = torch.where(keep, t, torch.zeros_like(t))
        w = torch.ones(K, dtype=z.dtype, device=z.device) if self.weight is None else self.weight.to(z.dtype)
        return z, t, keep, safe, w

    def reduce(self, per_row, keep, safe, w, target):
        return self.reduced(per_row, keep, safe, w, target).to(self.dtype)

    def reduced(self, per_row, keep, safe, w, target):
        if self.reduction == "none":
            return per_row.reshape(target.shape)
        total = per_row.sum()
        if self.reduction == "sum":
            return total
        return total / (w[safe] * keep).sum()

    def __call__(self, input, target):
        self.dtype = input.dtype  # the output's dtype
        return super().__call__(input, target)

    @staticmethod
    def weighted(w, z):
        """w_c z_c with 0 where w_c = 0 (no 0 * -inf)."""
        return torch.where(w > 0, w * z, torch.zeros_like(z))


# ----------------------------------------------------------------------------- correct

class OnlineSoftmaxCE(_Args):
    """Correct: one pass over class blocks with a running maximum and a rescaled running sum
    (the online softmax of flash-attention-style kernels); the loss is
    LSE · ((1-eps) w_y + eps/K Σw) - (1-eps) w_y z_y - eps/K Σ w_c z_c."""

    block = BLOCK

    def blocks(self, K):
        return range(0, K, self.block)

    def forward(self, input, target):
        z, t, keep, safe, w = self.prepared(input, target)
        R, K = z.shape
        m = torch.full((R,), float("-inf"), dtype=z.dtype, device=z.device)
        s = torch.zeros(R, dtype=z.dtype, device=z.device)
        wz = torch.zeros(R, dtype=z.dtype, device=z.device)
        for start in self.blocks(K):
            zb = z[:, start:start + self.block]
            new = torch.maximum(m, zb.max(-1).values)
            shift = torch.where(torch.isfinite(new), new, torch.zeros_like(new))
            s = s * torch.exp(torch.where(torch.isfinite(m), m - shift, torch.full_like(m, float("-inf")))) \
                + torch.exp(zb - shift[:, None]).sum(-1)
            m = new
            wz = wz + self.weighted(w[start:start + self.block], zb).sum(-1)
        lse = torch.where(torch.isfinite(m), m, torch.zeros_like(m)) + torch.log(s)
        w_y = w[safe]
        z_y = z.gather(1, safe[:, None])[:, 0]
        mass = (1 - self.eps) * w_y + self.eps / K * w.sum()
        per_row = lse * mass - (1 - self.eps) * w_y * z_y - self.eps / K * wz
        per_row = torch.where(keep, per_row, torch.zeros_like(per_row))
        return self.reduce(per_row, keep, safe, w, target)


class _HandWritten(torch.autograd.Function):
    """Forward and backward in float64: g = s (Σq̃ · p - q̃), q̃ = w ⊙ q, s the upstream
    gradient of the row (times 1/denominator for a mean)."""

    @staticmethod
    def forward(ctx, z, safe, keep, w, eps, reduction, owner):
        z64, w64 = z.double(), w.double()
        K = z.shape[1]
        logp = torch.log_softmax(z64, -1)
        q = torch.full_like(z64, eps / K)
        q.scatter_add_(1, safe[:, None], torch.full_like(z64[:, :1], 1 - eps))
        qw = q * w64
        per_row = -torch.where(qw > 0, qw * logp, torch.zeros_like(logp)).sum(-1)
        per_row = torch.where(keep, per_row, torch.zeros_like(per_row))
        denominator = (w64[safe] * keep).sum()
        ctx.save_for_backward(logp, qw, keep, denominator)
        ctx.reduction, ctx.owner, ctx.dtype = reduction, owner, z.dtype
        if reduction == "none":
            return per_row.to(z.dtype)
        total = per_row.sum()
        return (total if reduction == "sum" else total / denominator).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        logp, qw, keep, denominator = ctx.saved_tensors
        p = logp.exp()
        g = qw.sum(-1, keepdim=True) * p - qw
        scale = ctx.owner.row_scale(grad_output, keep, ctx.reduction, denominator)
        g = torch.where(ctx.owner.grad_rows(keep)[:, None], g * scale, torch.zeros_like(g))
        return g.to(ctx.dtype), None, None, None, None, None, None


class HandBackwardFloat64CE(_Args):
    """Correct: a custom autograd.Function whose backward is written by hand in float64."""

    def grad_rows(self, keep):
        """The rows that get a gradient: the kept ones."""
        return keep

    def row_scale(self, grad_output, keep, reduction, denominator):
        """The upstream gradient per row, (R, 1) float64."""
        g = grad_output.double()
        if reduction == "none":
            return g.reshape(-1, 1)
        if reduction == "mean":
            g = g / denominator if denominator != 0 else torch.zeros_like(g)
        return g.reshape(1, 1).expand(keep.shape[0], 1)

    def forward(self, input, target):
        z, t, keep, safe, w = self.prepared(input, target)
        out = _HandWritten.apply(z, safe, keep, w, self.eps, self.reduction, self)
        return (out.reshape(target.shape) if self.reduction == "none" else out).to(self.dtype)


class DistributionsCE(_Args):
    """Correct: torch.distributions.Categorical's log_prob for the label term and its
    normalised logits for the smoothing term."""

    def forward(self, input, target):
        z, t, keep, safe, w = self.prepared(input, target)
        K = z.shape[1]
        dist = Categorical(logits=z, validate_args=False)
        nll = -dist.log_prob(safe) * w[safe]
        smooth = -self.weighted(w, dist.logits).sum(-1) / K
        per_row = torch.where(keep, (1 - self.eps) * nll + self.eps * smooth, torch.zeros_like(nll))
        return self.reduce(per_row, keep, safe, w, target)


# ----------------------------------------------------------------------------- broken

class GradOutputIgnoredWhenReduced(HandBackwardFloat64CE):
    """The backward of a reduced loss assumes grad_output == 1 (the gradient is formed in the
    forward pass and returned as is): grad_output handling as in Liger-Kernel #1298."""

    def row_scale(self, grad_output, keep, reduction, denominator):
        if reduction == "none":
            return super().row_scale(grad_output, keep, reduction, denominator)
        return super().row_scale(torch.ones_like(grad_output), keep, reduction, denominator)


class GradOutputFirstElement(HandBackwardFloat64CE):
    """reduction='none' scales every row by grad_output's first element, as if it were a
    scalar: grad_output broadcasting as in TransformerEngine #2139."""

    def row_scale(self, grad_output, keep, reduction, denominator):
        if reduction == "none":
            return grad_output.reshape(-1)[0].double().expand(keep.shape[0], 1)
        return super().row_scale(grad_output, keep, reduction, denominator)


class GradOutputAssumedContiguous(HandBackwardFloat64CE):
    """reduction='none' reads grad_output's storage with unit stride (a kernel handed
    grad_output.data_ptr() without its stride): row strides as in TransformerEngine #2734."""

    def row_scale(self, grad_output, keep, reduction, denominator):
        if reduction == "none":
            flat = torch.as_strided(grad_output, (grad_output.numel(),), (1,))
            return flat.double().reshape(-1, 1)
        return super().row_scale(grad_output, keep, reduction, denominator)


class TailBlockSkipped(OnlineSoftmaxCE):
    """Past one block, the loop runs over whole blocks only (range(0, K - BLOCK + 1, BLOCK)):
    the partial last block never enters the max, the sum or the smoothing term. Tail
    blocks as in verl #5349."""

    def blocks(self, K):
        return range(0, K, self.block) if K <= self.block else range(0, K - self.block + 1, self.block)


class ChunkedMeanOfMeans(DistributionsCE):
    """The mean over rows is taken per chunk of ROWS_PER_PROGRAM rows (each over its kept
    rows' weight) and the chunk means are averaged: right when every chunk is alike, wrong
    when ignored rows are spread unevenly. Chunked means as in torchtune #1875."""

    def reduce(self, per_row, keep, safe, w, target):
        if self.reduction != "mean" or per_row.shape[0] <= ROWS_PER_PROGRAM:
            return super().reduce(per_row, keep, safe, w, target)
        means = [per_row[i:i + ROWS_PER_PROGRAM].sum() / (w[safe] * keep)[i:i + ROWS_PER_PROGRAM].sum()
                 for i in range(0, per_row.shape[0], ROWS_PER_PROGRAM)]
        return torch.stack(means).mean()


class LastProgramDropped(OnlineSoftmaxCE):
    """A grid of N // ROWS_PER_PROGRAM programs (no ceiling division) when N is larger than
    one program: the last, partial program's rows are never computed."""

    def reduce(self, per_row, keep, safe, w, target):
        R = per_row.shape[0]
        if R > ROWS_PER_PROGRAM:
            covered = torch.arange(R, device=per_row.device) < (R // ROWS_PER_PROGRAM) * ROWS_PER_PROGRAM
            per_row = torch.where(covered, per_row, torch.zeros_like(per_row))
        return super().reduce(per_row, keep, safe, w, target)


class IfIgnoreIndexTruthy(DistributionsCE):
    """`if self.ignore_index:` guards the masking, so ignore_index=0, the commonest padding
    id, masks nothing (the falsy-zero test; ignore handling as in OpenNMT-py #1463)."""

    def keep_mask(self, t):
        if self.ignore_index:
            return t != self.ignore_index
        return torch.ones_like(t, dtype=torch.bool)


class PaddingWeightZeroed(DistributionsCE):
    """Ignores the padding class by zeroing its class weight (w[ignore_index] = 0) as well:
    kept rows then lose the smoothing mass on that class, which PyTorch still weighs."""

    def prepared(self, input, target):
        z, t, keep, safe, w = super().prepared(input, target)
        if 0 <= self.ignore_index < z.shape[1]:
            w = w.clone()
            w[self.ignore_index] = 0.0
        return z, t, keep, safe, w


class IgnoredRowsKeepTheirGradient(HandBackwardFloat64CE):
    """The value leaves ignored rows out but the hand-written backward forgets the row mask:
    ignored rows get the gradient of the target at class 0 (ignore handling as in
    OpenNMT-py #1463)."""

    def grad_rows(self, keep):
        return torch.ones_like(keep)
