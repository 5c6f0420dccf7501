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
