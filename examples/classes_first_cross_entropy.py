"""A label-smoothed cross-entropy on classes-first scores (K, N), the record of an input kind
of its own (examples/classes_first_kind.py):

    python -m pytest suites/ --ls-impl examples/classes_first_cross_entropy.py:CLASSES_FIRST_CE

PyTorch's convention (inclusive), ignore_index, class weights, every reduction.
"""

import torch.nn.functional as F

from examples.classes_first_kind import CLASSES_FIRST
from lsuite import Impl


def build(cfg):
    ignore = -100 if cfg.ignore_index is None else cfg.ignore_index

    def loss_fn(scores, target):  # scores (K, N)
        return F.cross_entropy(scores.T, target, weight=cfg.weight, ignore_index=ignore,
                               reduction=cfg.reduction, label_smoothing=cfg.eps)
    return loss_fn


CLASSES_FIRST_CE = Impl(
    name="classes_first_ce", build=build, convention="inclusive", form="ce",
    input="classes_first", kind=CLASSES_FIRST, reductions=("none", "sum", "mean"),
    nd=False, unbatched=False, prob_targets=False, validates_arguments=True,
    description="F.cross_entropy on scores stored classes first (K, N)")
