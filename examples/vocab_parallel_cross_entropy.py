"""A vocab-parallel cross-entropy with label smoothing, written from docs/specification.md §4 and
§8, as a template to copy: each rank of a torch.distributed group holds columns
[start, stop) of the logits; the softmax statistics and the smoothing sums are all-reduced,
so the loss is the whole vocabulary's (identical on every rank) and each rank's gradient is
its columns of the whole gradient. K in the smoothing is the global K, never the shard's.

    python -m pytest suites/ --ls-impl examples/vocab_parallel_cross_entropy.py:VOCAB_PARALLEL_CE

PyTorch's convention (inclusive), class weights (the global (K,) vector; each rank uses its
columns), ignore_index, reductions none/sum/mean; float32 arithmetic for bfloat16/float16.
"""

import torch
import torch.distributed as dist

from lsuite import Impl


def _all_reduce(tensor, op, group):
    if dist.is_initialized() and dist.get_world_size(group) > 1:
        dist.all_reduce(tensor, op=op, group=group)
    return tensor


class _VocabParallelCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, local, target, weight, start, num_classes, eps, ignore_index, reduction, group):
        ct = torch.float64 if local.dtype == torch.float64 else torch.float32
        z = local.to(ct)
        stop = start + z.shape[1]
        w = torch.ones(z.shape[1], dtype=ct, device=z.device) if weight is None else weight[start:stop].to(ct)
        keep = (target != ignore_index).to(ct)
        mine = (target >= start) & (target < stop)
        local_y = torch.where(mine, target - start, torch.zeros_like(target))
        row_max = _all_reduce(z.max(dim=1).values, dist.ReduceOp.MAX, group)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        exp = torch.exp(z - row_max[:, None])
        lse = torch.log(_all_reduce(exp.sum(dim=1), dist.ReduceOp.SUM, group)) + row_max
        # the target's logit and weight, from the rank that holds it
        picked = torch.stack([torch.where(mine, z.gather(1, local_y[:, None])[:, 0], 0.0),
                              torch.where(mine, w[local_y], 0.0)])
        z_y, w_y = _all_reduce(picked, dist.ReduceOp.SUM, group)
        w_y = w_y * keep
        loss = (1 - eps) * w_y * (lse - z_y)
        w_total = _all_reduce(w.sum().clone(), dist.ReduceOp.SUM, group)  # Σ_c w_c, all K classes
        if eps > 0:  # (ε/K) Σ_c w_c (lse - z_c) over the GLOBAL classes
            wz = _all_reduce((z * w).sum(dim=1), dist.ReduceOp.SUM, group)
            loss = loss + (eps / num_classes) * keep * (w_total * lse - wz)
        denominator = w_y.sum()
        ctx.save_for_backward(exp, row_max, lse, w, w_y, keep, local_y, mine.to(ct), denominator,
                              w_total)
        ctx.settings = (eps, num_classes, reduction, local.dtype)
        if reduction == "none":
            return loss.to(local.dtype)
        total = loss.sum()
        return (total if reduction == "sum" else total / denominator).to(local.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        exp, row_max, lse, w, w_y, keep, local_y, mine, denominator, w_total = ctx.saved_tensors
        eps, num_classes, reduction, dtype = ctx.settings
        p = exp * torch.exp(row_max - lse)[:, None]  # this rank's columns of softmax
        q = (eps / num_classes) * w * keep[:, None]
        q = q.scatter_add(1, local_y[:, None], ((1 - eps) * w_y * mine)[:, None])
        total_q = (1 - eps) * w_y + (eps / num_classes) * keep * w_total
        G = total_q[:, None] * p - q
        if reduction == "none":
            G = G * grad_out.to(G.dtype)[:, None]
        elif reduction == "mean":
            G = G * (0.0 if denominator == 0 else grad_out.to(G.dtype) / denominator)
        else:
            G = G * grad_out.to(G.dtype)
        return G.to(dtype), None, None, None, None, None, None, None, None


class VocabParallelCrossEntropy(torch.nn.Module):
    """loss(local_logits (N, stop - start), target (N,) global class indices)."""

    def __init__(self, vocab_range, num_classes, label_smoothing=0.0, reduction="mean",
                 weight=None, ignore_index=-100, group=None):
        super().__init__()
        self.start = vocab_range[0]
        self.num_classes, self.eps, self.reduction = num_classes, label_smoothing, reduction
        self.weight, self.ignore_index, self.group = weight, ignore_index, group

    def forward(self, local_logits, target):
        return _VocabParallelCE.apply(local_logits, target, self.weight, self.start,
                                      self.num_classes, self.eps, self.ignore_index,
                                      self.reduction, self.group)


def _build(cfg):
    return VocabParallelCrossEntropy(
        cfg.vocab_range, cfg.num_classes, label_smoothing=cfg.eps, reduction=cfg.reduction,
        weight=cfg.weight, ignore_index=-100 if cfg.ignore_index is None else cfg.ignore_index,
        group=cfg.group)


VOCAB_PARALLEL_CE = Impl(
    name="example_vocab_parallel_ce", build=_build, input="vocab_parallel",
    description="examples/vocab_parallel_cross_entropy.py: vocab-parallel CE on torch.distributed, plain PyTorch",
    convention="inclusive", form="ce", nd=False, unbatched=False, uneven_shards=True,
)
