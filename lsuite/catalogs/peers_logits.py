"""Ecosystem records of losses on one logits tensor beyond those of lsuite/catalogs/peers.py (which
lists these in its catalog): timm's BinaryCrossEntropy. Claims are quoted from each
library's code beside its record; defects are what the suite demonstrated, confirmed by a
hand check (docs/catalogs.md) and declared with the library version.
"""

from __future__ import annotations

from lsuite.catalogs.peer_loading import INSTALL, Lazy, version
from lsuite.record.records import BuildConfig, Impl

TIMM_BCE = Lazy("timm", "BinaryCrossEntropy", "loss/binary_cross_entropy.py")
# The suite's reduction names (reference/spec.py) -> BinaryCrossEntropy's keywords:
# `reduction` goes to F.binary_cross_entropy_with_logits ('mean' over all N x K elements);
# `sum_classes=True` sets reduction 'none' and returns `loss.sum(-1).mean()` (per row).
TIMM_BCE_REDUCTIONS = {"none": {"reduction": "none"}, "sum": {"reduction": "sum"},
                       "element_mean": {"reduction": "mean"}, "row_mean": {"sum_classes": True}}


def build_timm_bce(cfg: BuildConfig):
    kwargs = dict(TIMM_BCE_REDUCTIONS[cfg.reduction])
    if cfg.weight is not None:
        kwargs["weight"] = cfg.weight
    return TIMM_BCE(smoothing=cfg.eps, **kwargs).to(cfg.device)


RECORDS: tuple[Impl, ...] = (
    Impl(
        name="timm_binary_ce",
        description=(f"timm {version('timm')} timm.loss.BinaryCrossEntropy(smoothing=eps, "
                     "reduction | sum_classes, weight) on class-index targets"),
        # binary_cross_entropy.py, index targets (`target.shape != x.shape`):
        # `off_value = self.smoothing / num_classes`, `on_value = 1. - self.smoothing +
        # off_value` ("FIXME should off/on be different for smoothing w/ BCE?"), built with
        # `torch.full((batch_size, num_classes), off_value, ..., dtype=x.dtype)` and
        # scattered at `target.long().view(-1, 1)`: (N, K) only, classes last; then
        # F.binary_cross_entropy_with_logits(x, target, self.weight, reduction=...): the
        # class-wise binary convention, weight "Per-class rescaling weight", reduction 'mean'
        # over every element, `sum_classes` "Sum the loss over classes before averaging over
        # the batch"; `assert 0. <= smoothing < 1.0`; no ignore_index.
        build=build_timm_bce, convention="binary_classwise", form="bce",
        reductions=("element_mean", "none", "sum", "row_mean"), default_ignore_index=None,
        ignore_index=False, nd=False, unbatched=False, class_dim="last",
        eps_max=1.0, eps_max_inclusive=False, validates_arguments=True,
        # the smoothing range is checked with `assert`; a target outside [0, K) makes
        # scatter_ raise (RuntimeError)
        rejects_with=(AssertionError,), requires=("timm",), install=INSTALL,
    ),
)
