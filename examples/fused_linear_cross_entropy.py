"""A fused linear cross-entropy with label smoothing, written from docs/specification.md §4 and §8,
as a template to copy: the loss on z = h·Wᵀ + b that never holds the N×K logits, only one
chunk of rows at a time, forward and backward (the backward recomputes each chunk).

    python -m pytest suites/ --ls-impl examples/fused_linear_cross_entropy.py:FUSED_LINEAR_CE

It computes PyTorch's convention (inclusive: 1 - ε + ε/K on the target, ε/K elsewhere) with
class weights, ignore_index and the reductions none/sum/mean, in float32 for bfloat16 and
float16 inputs (rounded once at the end), in float64 for float64.
"""

import torch

from lsuite import Impl

CHUNK_ROWS = 64  # rows of logits formed at once: the peak is CHUNK_ROWS x K, never N x K


def _compute_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _chunk(h, W, b, y, weight, eps, ignore_index, ct):
    """Row losses (R,) and the weighted target q̃ pieces of one chunk, in dtype ct."""
    z = h.to(ct) @ W.to(ct).T
    if b is not None:
        z = z + b.to(ct)
    K = z.shape[1]
    keep = (y != ignore_index).to(ct)  # a float mask: eps/K times a bool tensor would be float32
    safe = torch.where(y != ignore_index, y, torch.zeros_like(y))
    w = torch.ones(K, dtype=ct, device=z.device) if weight is None else weight.to(ct)
    lse = torch.logsumexp(z, dim=1)
    w_y = w[safe] * keep
    nll = lse - z.gather(1, safe[:, None])[:, 0]
    loss = (1 - eps) * w_y * nll
    if eps > 0:  # Σ_c w_c (lse - z_c); 0 x inf would be NaN at eps = 0 on masked classes
        loss = loss + (eps / K) * keep * (w.sum() * lse - z @ w)
    return loss, z, lse, w, w_y, safe, keep


class _FusedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, W, b, y, weight, eps, ignore_index, reduction):
        ct = _compute_dtype(h.dtype)
        Wc = W.to(ct)  # once per call (a no-op in float32/float64), not once per chunk
        rows = []
        for lo in range(0, h.shape[0], CHUNK_ROWS):
            sl = slice(lo, lo + CHUNK_ROWS)
            rows.append(_chunk(h[sl], Wc, b, y[sl], weight, eps, ignore_index, ct)[0])
        loss = torch.cat(rows) if rows else h.new_zeros(0, dtype=ct)
        keep = y != ignore_index
        if weight is None:
            denominator = keep.sum().to(ct)
        else:
            denominator = (weight.to(ct)[torch.where(keep, y, torch.zeros_like(y))] * keep).sum()
        ctx.save_for_backward(h, W, b, y, weight, denominator)
        ctx.settings = (eps, ignore_index, reduction)
        if reduction == "none":
            return loss.to(h.dtype)
        total = loss.sum()
        return (total if reduction == "sum" else total / denominator).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        h, W, b, y, weight, denominator = ctx.saved_tensors
        eps, ignore_index, reduction = ctx.settings
        ct = _compute_dtype(h.dtype)
        dh, dW = torch.zeros_like(h, dtype=ct), torch.zeros_like(W, dtype=ct)
        db = None if b is None else torch.zeros_like(b, dtype=ct)
        Wc = W.to(ct)
        for lo in range(0, h.shape[0], CHUNK_ROWS):
            sl = slice(lo, lo + CHUNK_ROWS)
            _, z, lse, w, w_y, safe, keep = _chunk(h[sl], Wc, b, y[sl], weight, eps, ignore_index, ct)
            K = z.shape[1]
            q = (eps / K) * w * keep[:, None]  # q̃ = (1-ε) w_y [c = y] + (ε/K) w_c
            q = q.scatter_add(1, safe[:, None], ((1 - eps) * w_y)[:, None])
            G = q.sum(1, keepdim=True) * torch.exp(z - lse[:, None]) - q
            if reduction == "none":
                G = G * grad_out[sl].to(ct)[:, None]
            else:
                scale = 0.0 if reduction == "mean" and denominator == 0 else (
                    1.0 if reduction == "sum" else 1.0 / denominator)
                G = G * (grad_out.to(ct) * scale)
            dh[sl] = G @ Wc
            dW += G.T @ h[sl].to(ct)
            if db is not None:
                db += G.sum(0)
        return (dh.to(h.dtype), dW.to(W.dtype), None if db is None else db.to(b.dtype),
                None, None, None, None, None)


class FusedLinearCrossEntropy(torch.nn.Module):
    """loss(hidden (N, H), classifier (K, H), target (N,), bias (K,) or None)."""

    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=-100):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.eps, self.reduction, self.ignore_index = label_smoothing, reduction, ignore_index
        self.weight = weight

    def forward(self, hidden, classifier, target, bias=None):
        return _FusedLinearCE.apply(hidden, classifier, bias, target, self.weight, self.eps,
                                    self.ignore_index, self.reduction)


def _build(cfg):
    return FusedLinearCrossEntropy(
        label_smoothing=cfg.eps, reduction=cfg.reduction, weight=cfg.weight,
        ignore_index=-100 if cfg.ignore_index is None else cfg.ignore_index)


FUSED_LINEAR_CE = Impl(
    name="example_fused_linear_ce", build=_build, input="hidden_states",
    description="examples/fused_linear_cross_entropy.py: chunked fused linear CE, plain PyTorch",
    convention="inclusive", form="ce", nd=False, unbatched=False, validates_arguments=False,
)
