"""Ecosystem records of fla-core's (flash-linear-attention) fused losses (lsuite/catalogs/peers.py lists
these in its catalog): `fla.modules.fused_cross_entropy.cross_entropy_loss` on one logits
tensor and tensor-parallel over a process group, and
`fla.modules.fused_linear_cross_entropy.fused_linear_cross_entropy_loss` on hidden states.
Triton kernels, interpreted on a CPU-only machine within the interpreter's size cap. Claims are
quoted from the library's code and docstrings beside each record; defects are what the suite
demonstrated, confirmed by a hand check (docs/catalogs.md) and declared with the
library version.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsuite.catalogs.peer_loading import INSTALL, Lazy, version
from lsuite.catalogs.peers_triton import flat_all_gather_on_cpu
from lsuite.record.records import BuildConfig, Impl, KnownDefect

FLA = f"fla-core {version('fla-core')}"
FLA_CE = Lazy("fla.modules.fused_cross_entropy", "cross_entropy_loss")
FLA_LINEAR = Lazy("fla.modules.fused_linear_cross_entropy", "fused_linear_cross_entropy_loss")
FLA_REQUIRES = dict(requires=("fla", "einops", "triton"), install=INSTALL)


@dataclass(frozen=True)
class FlaCrossEntropy:
    """build(cfg): `cross_entropy_loss(logits, target, label_smoothing=eps, ignore_index,
    process_group)`'s per-row loss (its z-loss, 0 at lse_square_scale=0, dropped); with
    `parallel`, process_group is the check's group (None at world 1)."""

    parallel: bool = False

    def __call__(self, cfg: BuildConfig):
        ignore_index = -100 if cfg.ignore_index is None else cfg.ignore_index
        group = cfg.group if self.parallel and cfg.world > 1 else None

        def call(logits, target):
            with flat_all_gather_on_cpu(logits.device):  # its lse all-gather, on gloo
                loss, _ = FLA_CE(logits, target, label_smoothing=cfg.eps,
                                 ignore_index=ignore_index, process_group=group)
            return loss

        return call


class FlaFusedLinearCrossEntropy:
    """loss_fn(hidden, classifier, target, bias) = fused_linear_cross_entropy_loss(x=hidden,
    target, weight=classifier, bias, ignore_index, label_smoothing, reduction): fla takes the
    target second and the classifier third."""

    def __init__(self, label_smoothing=0.0, reduction="mean", ignore_index=-100):
        self.kwargs = dict(label_smoothing=label_smoothing, reduction=reduction,
                           ignore_index=ignore_index)

    def __call__(self, hidden, classifier, target, bias=None):
        return FLA_LINEAR(hidden, target, classifier, bias, **self.kwargs)


def build_fla_linear(cfg: BuildConfig):
    ignore_index = -100 if cfg.ignore_index is None else cfg.ignore_index
    return FlaFusedLinearCrossEntropy(cfg.eps, cfg.reduction, ignore_index)


# fused_cross_entropy/ops.py: cross_entropy_loss "Compute unreduced cross entropy ... logits of
# shape [N, V] ... Global target indices of shape [N] ... Returns: FP32 loss and z-loss tensors
# of shape [N]"; the kernels load `.to(tl.float32)`; smoothing `(1 - label_smoothing) * b_loss
# - label_smoothing * b_sum / V_TOTAL` plus the lse: inclusive; "ignore_index: Target index
# excluded from loss and gradients"; no class weights; "process_group: Group sharding the
# vocabulary into equal contiguous partitions".
FLA_CE_CLAIMS = dict(
    convention="inclusive", form="ce", reductions=("none",), weights=False, nd=False,
    unbatched=False, output_dtype="float32", computes_in="float32", triton=True, **FLA_REQUIRES)

# Each measured by the suite, then confirmed by hand (docs/catalogs.md).
FLA_OUT_OF_RANGE = KnownDefect(
    f"{FLA} cross_entropy_loss scores a target outside [0, V) without raising: the kernel loads "
    "the target logit with `mask=m_target, other=0`, so a row whose target is V or -5 gets the "
    "loss of a target logit of 0 (4.5677 where lse - 0.1 * mean z = 4.5677)",
    checks=("rejects_targets_at_or_above_the_class_count",
            "rejects_negative_targets_other_than_ignore_index"))
FLA_LINEAR_EMPTY = KnownDefect(
    f"{FLA} fused_linear_cross_entropy_loss raises ZeroDivisionError on an empty batch: "
    "`C = triton.next_power_of_2(triton.cdiv(N, NC))` is 0 for N = 0, then `NC = "
    "triton.cdiv(N, C)` divides by it (the sum over no rows is 0, and its own mean divides by "
    "`total.clamp_min(1)`: 0)", checks=("linear_empty_batch",))

FLA_LARGE_LOGIT_LSE = (
    "its kernels form exp(z - lse) with lse = log(sum) + max rounded to float32 (as flash-attn's): "
    "at logits ~1e4 the softmax sums to 1.00044 (gradient rows sum to 4.4e-4, not 0); Hypothesis "
    "reaches such logits on some draws only, so the invariant checks cannot hold it as a strict "
    "known defect and do not run (hand check: docs/catalogs.md)")

RECORDS: tuple[Impl, ...] = (
    Impl(
        name="fla_cross_entropy",
        description=(f"{FLA} fla.modules.fused_cross_entropy.cross_entropy_loss(logits, target, "
                     "label_smoothing=eps, ignore_index) per-row losses"),
        build=FlaCrossEntropy(), class_dim="last",
        known_defects=(FLA_OUT_OF_RANGE,),
        check_kinds=("reference", "argument"), check_kinds_reason=FLA_LARGE_LOGIT_LSE,
        **FLA_CE_CLAIMS,
    ),
    Impl(
        name="fla_cross_entropy_tp",
        description=(f"{FLA} cross_entropy_loss(local_logits, target, label_smoothing=eps, "
                     "ignore_index, process_group=the check's group): vocabulary-parallel"),
        build=FlaCrossEntropy(parallel=True), input="vocab_parallel", uneven_shards=False,
        **FLA_CE_CLAIMS,
    ),
    Impl(
        name="fla_fused_linear_ce",
        description=(f"{FLA} fla.modules.fused_linear_cross_entropy.fused_linear_cross_entropy_loss("
                     "x=h, target, weight=W, bias, ignore_index, label_smoothing=eps, reduction): "
                     "logits a chunk of rows at a time, gradients computed in the forward"),
        # fused_linear_cross_entropy/ops.py: `c_logits = F.linear(c_x, weight, bias)` per chunk
        # into the same cross_entropy_fwd/bwd kernels (inclusive, float32); `loss =
        # torch.zeros(N, ..., dtype=torch.float)`, `loss = loss.sum()`, `if reduction == "mean":
        # loss = loss / total` with `total = target.ne(ignore_index).sum().clamp_min(1)`: float32
        # sum or mean only (a mean over nothing is 0); x "of shape [batch_size * seq_len,
        # hidden_size]" (2-D); no class weights.
        build=build_fla_linear, input="hidden_states", convention="inclusive", form="ce",
        reductions=("sum", "mean"), weights=False, nd=False, unbatched=False,
        output_dtype="float32", computes_in="float32", empty_mean="zero", triton=True,
        known_defects=(FLA_LINEAR_EMPTY,), **FLA_REQUIRES,
    ),
)
