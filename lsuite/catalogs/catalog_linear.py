"""PyTorch's own fused linear loss in the built-in catalog (lsuite/catalogs/catalog.py lists these):
`torch.nn.functional.linear_cross_entropy(input, linear_weight, target, *, linear_bias,
weight, reduction, ignore_index, label_smoothing, options)`, on its default path
(`options=None`) and on its chunked path (`options=LinearCrossEntropyOptions()`), as
hidden-states records (README "Losses beyond one logits tensor").

Its docstring: `loss = linear_cross_entropy(input, linear_weight, target, **kwargs)` "is
equivalent to ... logits = linear(input, linear_weight); loss = cross_entropy(logits,
target, **kwargs)"; `nn.LinearCrossEntropyLoss` is the module that owns the weight and calls
it. The chunked path "processes the batch dimension in pieces, so the full (num_batches,
num_classes) logits tensor is never materialized" and "Supports a subset of
linear_cross_entropy; unsupported configurations fall through to the reference path with a
warning": torch/nn/functional.py takes it only when `label_smoothing == 0.0` (and the
reduction is none/sum/mean, the target int64, no out_features), so with eps > 0 the chunked
record runs the default path, and only its eps = 0 checks judge the chunked kernels.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from lsuite.inputs.predicates import when
from lsuite.record.records import Impl, KnownDefect

TORCH = torch.__version__.split("+")[0]
# Measured, then confirmed by hand (docs/catalogs.md): the large-norm case in float16
# (h x 300, bias) has finite row losses (max 2762) and a representable mean (1472.4), but the
# smoothing term's sum over rows and classes of -log p_c is 250990 in float64: past 65504.
FLOAT16_SMOOTHING_SUM = KnownDefect(
    f"torch {TORCH} F.linear_cross_entropy (both paths: with eps > 0 the chunked one falls back) "
    "computes cross_entropy on float16 logits and sums the smoothing term -log p_c over rows and "
    "classes in float16: on large-norm hidden states (h x 300) that sum passes 65504 and the mean "
    "loss is inf where the reference is 1472.4 (its row losses, reduction='none', are finite)",
    checks=("linear_confident_large_norm_and_masked_rows_in_every_dtype",),
    when=(when.dtype == "float16") & (when.logits == "extreme") & (when.eps > 0))


class TorchLinearCrossEntropy:
    """loss_fn(hidden, classifier, target, bias) = F.linear_cross_entropy(hidden, classifier,
    target, linear_bias=bias, weight, reduction, ignore_index, label_smoothing, options)."""

    chunked = False

    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=None):
        self.kwargs = dict(label_smoothing=label_smoothing, reduction=reduction, weight=weight,
                           ignore_index=ignore_index)

    def __call__(self, hidden, classifier, target, bias=None):
        options = torch.nn.LinearCrossEntropyOptions() if self.chunked else None
        with warnings.catch_warnings():
            # the chunked path's documented fall-back to the default path when eps > 0
            warnings.filterwarnings("ignore", message="linear_cross_entropy: ``options`` ignored")
            return F.linear_cross_entropy(hidden, classifier, target, linear_bias=bias,
                                          options=options, **self.kwargs)


class ChunkedTorchLinearCrossEntropy(TorchLinearCrossEntropy):
    """The same with `options=torch.nn.LinearCrossEntropyOptions()` (the chunked path, its
    "auto" accumulation policy and chunking picked per device and dtype)."""

    chunked = True


def _build(cls):
    def build(cfg):
        return cls(label_smoothing=cfg.eps, reduction=cfg.reduction, weight=cfg.weight,
                   ignore_index=cfg.ignore_index)
    return build


# Both paths: inclusive smoothing (cross_entropy's); PyTorch's denominators; the input's dtype
# out; "ignore_index ... Default: None. When target contains class indices, the default value
# is mapped to -100"; `input.dim()` 1 or 2 (the suite passes (N, H)).
LINEAR: tuple[Impl, ...] = (
    Impl(name="torch_linear_ce", build=_build(TorchLinearCrossEntropy), input="hidden_states",
         description=(f"torch {TORCH} F.linear_cross_entropy(h, W, target, "
                      "linear_bias=b, weight, reduction, ignore_index, label_smoothing=eps): the "
                      "default path (options=None), linear then cross_entropy"),
         convention="inclusive", form="ce", nd=False, unbatched=False,
         known_defects=(FLOAT16_SMOOTHING_SUM,)),
    Impl(name="torch_linear_ce_chunked", build=_build(ChunkedTorchLinearCrossEntropy),
         input="hidden_states",
         description=(f"torch {TORCH} F.linear_cross_entropy(..., "
                      "options=LinearCrossEntropyOptions()): the chunked path at eps = 0; with "
                      "eps > 0 it falls back to the default path (its documented warning)"),
         convention="inclusive", form="ce", nd=False, unbatched=False,
         known_defects=(FLOAT16_SMOOTHING_SUM,)),
)
