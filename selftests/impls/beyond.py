"""Broken losses beyond one logits tensor: each a bug seen in hand-written fused linear and
vocab-parallel label smoothing, caught by the check named for it in selftests/test_plugin.py.
Each is correct except for the one thing its name says (its value is right where only a
gradient is wrong)."""

import torch
import torch.nn.functional as F

from lsuite import Impl


def _ce(z, y, cfg, eps, reduction=None):
    kwargs = {} if cfg.ignore_index is None else {"ignore_index": cfg.ignore_index}
    return F.cross_entropy(z, y, weight=cfg.weight, label_smoothing=eps,
                           reduction=reduction or cfg.reduction, **kwargs)


def _linear_weight_grad_misses_smoothing(cfg):
    """dW from the (1 - eps) nll term alone: the smoothing term's share of dW is lost."""
    def loss(h, W, y, b):
        full = _ce(F.linear(h, W.detach(), b), y, cfg, cfg.eps)
        nll = (1 - cfg.eps) * _ce(F.linear(h.detach(), W, None if b is None else b.detach()), y, cfg, 0.0)
        return full + (nll - nll.detach())
    return loss


def _linear_bias_grad_wrong_denominator(cfg):
    """db of a mean divided by every row, ignored ones included (not the kept count)."""
    def loss(h, W, y, b):
        if b is None or cfg.reduction != "mean":
            return _ce(F.linear(h, W, b), y, cfg, cfg.eps)
        full = _ce(F.linear(h, W, b.detach()), y, cfg, cfg.eps)
        part = _ce(F.linear(h.detach(), W.detach(), b), y, cfg, cfg.eps, "sum") / len(y)
        return full + (part - part.detach())
    return loss


_LINEAR = dict(input="hidden_states", convention="inclusive", form="ce", nd=False,
               unbatched=False, weights=False)
LinearWeightGradMissesSmoothing = Impl(name="LinearWeightGradMissesSmoothing",
                                       build=_linear_weight_grad_misses_smoothing, **_LINEAR)
LinearBiasGradWrongDenominator = Impl(name="LinearBiasGradWrongDenominator",
                                      build=_linear_bias_grad_wrong_denominator, **_LINEAR)


# ------------------------------------------------------------------ vocab-parallel

def _vp_base(cfg, smoothing_term):
    """Vocab-parallel CE whose nll part is right (all-reduced max, sum of exp, target logit)
    and whose smoothing term is `smoothing_term(z, lse, world, K_local)` per row."""
    import torch.distributed as dist

    start, stop = cfg.vocab_range

    def loss(z, y):
        world = dist.get_world_size()
        m = z.detach().max(1).values
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        s = (z - m[:, None]).exp().sum(1)
        s = _AllReduceSum.apply(s)
        lse = s.log() + m
        mine = (y >= start) & (y < stop)
        z_y = _AllReduceSum.apply(torch.where(mine, z.gather(1, torch.where(mine, y - start, 0)[:, None])[:, 0], 0.0))
        rows = (1 - cfg.eps) * (lse - z_y) + cfg.eps * smoothing_term(z, lse, world, stop - start)
        return rows.mean()
    return loss


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks; its gradient is the incoming gradient (every rank holds the same loss)."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return g


def _vp_local_smoothing(cfg):
    """The smoothing term's mean of -log p over the LOCAL shard only (no all-reduce)."""
    return _vp_base(cfg, lambda z, lse, world, k: (lse[:, None] - z).mean(1))


def _vp_local_width(cfg):
    """The smoothing sum is all-reduced but divided by the local shard's width, not K."""
    return _vp_base(cfg, lambda z, lse, world, k: _AllReduceSum.apply((lse[:, None] - z).sum(1)) / k)


def _vp_rank_dependent(cfg):
    """Right everywhere except a denominator that depends on the rank (K + rank)."""
    import torch.distributed as dist
    return _vp_base(cfg, lambda z, lse, world, k: _AllReduceSum.apply((lse[:, None] - z).sum(1))
                    / (cfg.num_classes + dist.get_rank()))


_VP = dict(input="vocab_parallel", convention="inclusive", form="ce", nd=False, unbatched=False,
           weights=False, ignore_index=False, reductions=("mean",), uneven_shards=True)
VocabParallelLocalSmoothing = Impl(name="VocabParallelLocalSmoothing", build=_vp_local_smoothing, **_VP)
VocabParallelLocalWidth = Impl(name="VocabParallelLocalWidth", build=_vp_local_width, **_VP)
VocabParallelRankDependent = Impl(name="VocabParallelRankDependent", build=_vp_rank_dependent, **_VP)


# ------------------------------------------------------------------ vocab-parallel ranks that
# attack the group rather than compute a wrong number (selftests/test_distributed.py): each is
# right except in float32 (its second dtype), so its later checks show the group was restarted.

def _vp_right(cfg):
    """Right (mean reduction, no weights, no ignored targets): float32 arithmetic for
    bfloat16/float16, and the smoothing term lse - (Σ_c z_c) / K with the sum all-reduced."""
    import torch.distributed as dist

    start, stop = cfg.vocab_range

    def loss(z, y):
        zc = z if z.dtype == torch.float64 else z.float()
        m = zc.detach().max(1).values
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        lse = _AllReduceSum.apply((zc - m[:, None]).exp().sum(1)).log() + m
        mine = (y >= start) & (y < stop)
        z_y = _AllReduceSum.apply(torch.where(mine, zc.gather(1, torch.where(mine, y - start, 0)[:, None])[:, 0], 0.0))
        smooth = lse - _AllReduceSum.apply(zc.sum(1)) / cfg.num_classes
        return ((1 - cfg.eps) * (lse - z_y) + cfg.eps * smooth).mean().to(z.dtype)
    return loss


def _vp_misbehaves_in_float32(cfg, misbehaviour):
    if cfg.rank == 1 and cfg.dtype == torch.float32:
        return misbehaviour
    return _vp_right(cfg)


def _vp_rank1_skips_all_reduce(cfg):
    """Rank 1 returns without joining any all-reduce: rank 0 waits in its first one forever."""
    return _vp_misbehaves_in_float32(cfg, lambda z, y: z.sum() * 0)


def _vp_rank1_exits(cfg):
    import os
    return _vp_misbehaves_in_float32(cfg, lambda z, y: os._exit(3))


def _vp_rank1_killed(cfg):
    """What the kernel's OOM killer does to rank 1: SIGKILL."""
    import os
    import signal
    return _vp_misbehaves_in_float32(cfg, lambda z, y: os.kill(os.getpid(), signal.SIGKILL))


def _vp_changes_torch_state(cfg):
    """Right, but every build changes the rank's default dtype and torch.nn.functional.softmax;
    it fails if it finds them changed (state an earlier check left in a persistent rank)."""
    if torch.get_default_dtype() != torch.float32 or F.softmax is not _SOFTMAX:
        raise RuntimeError("torch state an earlier check changed was not restored")
    torch.set_default_dtype(torch.float64)
    F.softmax = lambda *args, **kwargs: None
    return _vp_right(cfg)


_SOFTMAX = F.softmax
VocabParallelRankSkipsAllReduce = Impl(name="VocabParallelRankSkipsAllReduce",
                                       build=_vp_rank1_skips_all_reduce, **_VP)
VocabParallelRankExits = Impl(name="VocabParallelRankExits", build=_vp_rank1_exits, **_VP)
VocabParallelRankKilled = Impl(name="VocabParallelRankKilled", build=_vp_rank1_killed, **_VP)
VocabParallelChangesTorchState = Impl(name="VocabParallelChangesTorchState",
                                      build=_vp_changes_torch_state, **_VP)
