"""Broken losses of the classes-first kind (examples/classes_first_kind.py), for
selftests/test_new_kind.py: each bug is caught by the generic checks of a kind of its own."""

import torch.nn.functional as F

from examples.classes_first_kind import CLASSES_FIRST
from lsuite import Impl

COMMON = dict(convention="inclusive", form="ce", input="classes_first", kind=CLASSES_FIRST,
              reductions=("none", "sum", "mean"), nd=False, unbatched=False, prob_targets=False)


def _exclusive(cfg):
    """Spreads eps over the K - 1 other classes while claiming PyTorch's inclusive targets."""
    def loss_fn(scores, target):
        logp = F.log_softmax(scores.T, dim=1)
        K = logp.shape[1]
        q = F.one_hot(target, K).to(logp.dtype) * (1 - cfg.eps) + (1 - F.one_hot(target, K).to(logp.dtype)) * cfg.eps / (K - 1)
        per = -(q * logp).sum(dim=1)
        return {"none": per, "sum": per.sum(), "mean": per.mean()}[cfg.reduction]
    return loss_fn


def _class_zero_term(cfg):
    """Adds a term of class 0's scores: it moves when the classes are permuted or shifted."""
    def loss_fn(scores, target):
        out = F.cross_entropy(scores.T, target, reduction=cfg.reduction, label_smoothing=cfg.eps)
        return out + 1e-2 * scores[0].sum()
    return loss_fn


EXCLUSIVE_SOLD_AS_INCLUSIVE = Impl(name="classes_first_exclusive", build=_exclusive, **COMMON)
CLASS_ZERO_TERM = Impl(name="classes_first_class_zero_term", build=_class_zero_term, **COMMON)
