"""Broken implementations that need a record (they claim a KL form, not PyTorch's CE)."""

import torch.nn.functional as F

from lsuite import Impl


def _inclusive_targets(logits, target, eps):
    num_classes = logits.size(-1)
    return F.one_hot(target, num_classes).to(logits.dtype) * (1 - eps) + eps / num_classes


def _kl_fed_logits(cfg):
    """`F.kl_div` expects log-probabilities; this one is fed raw logits."""
    def loss(logits, target):
        return F.kl_div(logits, _inclusive_targets(logits, target, cfg.eps), reduction="batchmean")
    return loss


def _kl_mean_not_batchmean(cfg):
    """`reduction='mean'` divides by every element (N*K), not by the batch."""
    def loss(logits, target):
        log_p = F.log_softmax(logits, dim=-1)
        return F.kl_div(log_p, _inclusive_targets(logits, target, cfg.eps), reduction="mean")
    return loss


_KL = dict(convention="inclusive", form="kl", reductions=("batchmean",), default_ignore_index=None,
           ignore_index=False, weights=False, nd=False)

KLDivFedLogits = Impl(name="KLDivFedLogits", build=_kl_fed_logits, **_KL)
KLDivMeanNotBatchmean = Impl(name="KLDivMeanNotBatchmean", build=_kl_mean_not_batchmean, **_KL)
