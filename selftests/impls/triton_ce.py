"""Triton drop-ins (issue 24), run by the Triton interpreter on a CPU: each row's logits are
scaled by a float kernel argument (a temperature of 1.0) straight from the input dtype, as
real kernels scale by a softcap or a logit scale; compiled Triton promotes that product to
fp32, the bare interpreter keeps it in bfloat16/float16 (lsuite/catalogs/triton_typing.py).

TritonRowCE: correct, computes in fp32 (after the scaling) and returns fp32 results that
the wrapper rounds once to the input dtype. InPlaceBf16TrueClass: the Liger-Kernel PR #1268
pattern, broken on either: the gradient is stored in the input dtype and the target mass
is subtracted from the stored (rounded) true-class entry afterwards.
"""

import torch
import triton
import triton.language as tl
from torch import nn

from lsuite import dropin


@triton.jit
def _rows(z_ptr, t_ptr, loss_ptr, grad_ptr, K, eps, temperature, ROUND_FIRST: tl.constexpr,
          BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    inside = offs < K
    z = tl.load(z_ptr + row * K + offs, mask=inside, other=0.0) * temperature
    z = tl.where(inside, z.to(tl.float32), float("-inf"))
    zmax = tl.max(z, 0)
    e = tl.where(inside, tl.exp(z - zmax), 0.0)
    total = tl.sum(e, 0)
    lse = zmax + tl.log(total)
    target = tl.load(t_ptr + row)
    is_target = offs == target
    z_target = tl.sum(tl.where(is_target, z, 0.0), 0)
    z_sum = tl.sum(tl.where(inside, z, 0.0), 0)
    tl.store(loss_ptr + row, lse - (1.0 - eps) * z_target - eps / K * z_sum)
    p = e / total
    if ROUND_FIRST:  # Liger-Kernel PR #1268: p stored in the input dtype, then corrected in place
        tl.store(grad_ptr + row * K + offs, (p - eps / K).to(grad_ptr.dtype.element_ty), mask=inside)
        stored = tl.load(grad_ptr + row * K + offs, mask=inside & is_target, other=0.0)
        tl.store(grad_ptr + row * K + offs, (stored - (1.0 - eps)).to(grad_ptr.dtype.element_ty),
                 mask=inside & is_target)
    else:
        g = p - eps / K - tl.where(is_target, 1.0 - eps, 0.0)
        tl.store(grad_ptr + row * K + offs, g, mask=inside)


class _Loss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, target, eps, round_first):
        N, K = z.shape
        losses = torch.empty(N, dtype=torch.float32, device=z.device)
        grad = torch.empty((N, K), dtype=z.dtype if round_first else torch.float32, device=z.device)
        _rows[(N,)](z.contiguous(), target.contiguous(), losses, grad, K, float(eps), 1.0,
                    ROUND_FIRST=round_first, BLOCK=triton.next_power_of_2(K))
        ctx.save_for_backward(grad)
        ctx.dtype = z.dtype
        return (losses.sum() / N).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        out = grad.float() * (grad_output.float() / grad.shape[0])
        return out.to(ctx.dtype), None, None, None


class TritonRowCE(nn.Module):
    """Correct (mean over rows, PyTorch's inclusive smoothing, 2-D inputs)."""

    round_first = False

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing={label_smoothing} is outside [0, 1]")
        self.eps = label_smoothing

    def forward(self, input, target):
        if input.ndim != 2:
            raise ValueError("2-D (N, K) logits only")
        if bool(((target < 0) | (target >= input.shape[1])).any()):
            raise IndexError("target out of range")
        if input.shape[0] == 0:
            return (input.sum() * float("nan"))
        return _Loss.apply(input, target, self.eps, self.round_first)


class InPlaceBf16TrueClass(TritonRowCE):
    round_first = True


def _record(cls):
    return dropin(cls, name=f"{cls.__name__}Record", computes_in="float32", nd=False, unbatched=False)


# the records: they compute in float32 (held to float32's budgets at float64), 2-D only
TritonRowCERecord = _record(TritonRowCE)
InPlaceBf16TrueClassRecord = _record(InPlaceBf16TrueClass)
