"""Ecosystem records of TransformerEngine's Triton cross-entropy,
`transformer_engine.pytorch.parallel_cross_entropy`, at 2.20.2 and 2.18.0 (lsuite/catalogs/peers.py
lists these in its catalog): vocab-parallel (input="vocab_parallel"), each rank called on its
columns of the logits with the whole target and the check's group. TE's files are vendored
(lsuite/vendor/transformer_engine_*/): the package's import loads its CUDA core. Interpreted on
a CPU-only machine (TRITON_INTERPRET=1) within the interpreter's size cap. Claims are quoted
from TE's code and docstrings beside the records; defects are what the suite demonstrated,
confirmed by a hand check (docs/catalogs.md) and declared with the library version.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from unittest import mock

import torch

from lsuite.inputs.predicates import when
from lsuite.record.records import BuildConfig, Impl, KnownDefect

# The vendored copies (lsuite/vendor/transformer_engine_<version>/), by TE version.
VENDORED = {"2.20.2": "transformer_engine_2_20_2", "2.18.0": "transformer_engine_2_18_0"}


def te_module(te_version: str):
    return importlib.import_module(f"lsuite.vendor.{VENDORED[te_version]}.pytorch_cross_entropy")


@contextlib.contextmanager
def cuda_check_passes_on_cpu(module, device: torch.device):
    """2.20.2's `parallel_cross_entropy` validates its arguments first (`_validate_inputs`),
    including `if not inp.is_cuda: raise ValueError("inp must be a CUDA tensor")`. On a CPU
    tensor (the Triton interpreter, gloo ranks) that validation runs as shipped with
    `Tensor.is_cuda` answering True while it runs, so every other check of it (3-D, non-empty,
    BF16/FP32, int64 targets, one target per row, label_smoothing in [0, 1]) still holds;
    on CUDA, and for 2.18.0 (which validates nothing), nothing is patched."""
    validate = getattr(module, "_validate_inputs", None)
    if device.type == "cuda" or validate is None:
        yield
        return

    def validate_as_on_cuda(*args, **kwargs):
        with mock.patch.object(torch.Tensor, "is_cuda", property(lambda tensor: True)):
            return validate(*args, **kwargs)

    with mock.patch.object(module, "_validate_inputs", validate_as_on_cuda):
        yield


@dataclass(frozen=True)
class TransformerEngineParallelCE:
    """build(cfg): `parallel_cross_entropy(inp, target, label_smoothing=eps, reduce_loss=
    (reduction == "mean"), dist_process_group=the check's group (None at world 1, "None if on
    1 device"), ignore_idx)`. TE takes `inp` "(B, SQ, V)" and a target "(B, SQ)": the suite's
    (N, V_local) shard is passed as (N, 1, V_local) and its (N,) target as (N, 1), both views;
    the per-token (N, 1) loss is returned as (N,) and the mean (shape (1,): `loss_1d.sum() /
    n_non_ignore`, a (1,) tensor) as a scalar, both views."""

    te_version: str

    def __call__(self, cfg: BuildConfig):
        module = te_module(self.te_version)
        ignore_idx = -100 if cfg.ignore_index is None else cfg.ignore_index
        reduce_loss = cfg.reduction == "mean"
        group = cfg.group if cfg.world > 1 else None

        def call(local_logits, target):
            with cuda_check_passes_on_cpu(module, local_logits.device):
                loss = module.parallel_cross_entropy(
                    local_logits.unsqueeze(1), target.unsqueeze(1), cfg.eps, reduce_loss, group,
                    ignore_idx)
            return loss.reshape(()) if reduce_loss else loss.reshape(-1)

        return call


# pytorch/cross_entropy.py (both versions), parallel_cross_entropy's docstring: "Loss and
# derivative calculations use FP32 arithmetic for BF16 and FP32 inputs. The returned loss is
# FP32" (2.18.0: "The input tensor can be in BF16/FP32, and loss and gradient calculations
# happen in FP32. The returned loss is always in FP32"); "inp ... shape (B, SQ, V) or
# (SQ, B, V)" (classes last, 3-D); "reduce_loss : bool, default = False. Return the mean loss
# over non-ignored targets when True" (2.18.0: "If True, returns the averaged loss across the
# B*SQ dimension"; its code divides by the non-ignored count as 2.20.2's does:
# `torch.sum(loss_1d) / n_non_ignore` after `n_non_ignore = torch.clamp(n_non_ignore, min=1)`,
# so a mean over nothing is 0); otherwise the per-token loss `torch.reshape(loss_1d, (B, SQ))`;
# "ignore_idx : int, default = -100 ... Target value for ignored rows" (loss 0, gradient 0:
# `if y == ignore_idx`); "dist_process_group ... Every rank must provide an equally sized
# vocabulary shard, and shards must be ordered by process-group rank" (2.18.0: "each of the
# ranks should get equal shards along the V dimension"); no class weights. Kernels
# (common/triton/cross_entropy.py): `eps = label_smoothing / (n_cols * world_size)` on every
# class, `smooth_loss = -eps * x_sum + label_smoothing * (m + tl.log(d))`: inclusive.
# 2.20.2 `_validate_inputs`: "label_smoothing must be in [0, 1]", "inp must have BF16 or FP32
# dtype", "inp dimensions must be non-zero"; 2.18.0 checks none of these.
TE_CLAIMS = dict(
    input="vocab_parallel", convention="inclusive", form="ce", reductions=("none", "mean"),
    weights=False, nd=False, unbatched=False, dtypes=("float32", "bfloat16"),
    output_dtype="float32", computes_in="float32", empty_mean="zero", uneven_shards=False,
    triton=True, requires=("triton",),
    install="pip install triton (the TransformerEngine files are vendored)")

TE_2_18_LOCAL_SMOOTHING = (
    "transformer-engine 2.18.0 parallel_cross_entropy sums the logits of the smoothing term over "
    "the rank's shard only (`scaled_x_sum += tl.sum(tl.where(X_offsets < n_cols, -eps * X_block, "
    "0.0))` over its own columns, no all-gather of it) while the max and the log-sum-exp are global: at world > 1 with eps > 0 "
    "each rank's forward loss is off by eps/K times the sum of the other shards' logits, so the "
    "ranks disagree, differ from world 1's and change when a row is shifted or classes move "
    "between shards; the gradient is right (2.19 gathers the sum; hand check: docs/catalogs.md)")
# Where it does not show, measured: every row ignored (loss 0); masked logits (a -inf logit makes
# the smoothing term, and the expected loss, inf); bfloat16 ordinary and extreme logits (the
# offset, at most 0.13 at K = 12, is within the bfloat16 budgets, 0.14 and 187; confident rows'
# budget is 0.02); the class permutation's mean, where the rows' offsets cancel to 2e-4.
TE_2_18_SHOWS = ((when.world > 1) & (when.eps > 0) & (when.N > 0) & (when.ignore != "all")
                 & (when.logits != "masked") & ((when.dtype == "float32") | (when.logits == "confident")))
TE_2_18_DEFECTS = tuple(
    KnownDefect(TE_2_18_LOCAL_SMOOTHING, checks=checks, kinds=kinds, when=scope)
    for checks, kinds, scope in (
        ((), ("reference",), TE_2_18_SHOWS),
        (("world_size_does_not_change_the_result",), (), when.eps > 0),
        (("shards_shifting_a_rows_logits_changes_nothing",), (), (when.world > 1) & (when.eps > 0)),
        (("shards_permuting_classes_across_shards_permutes_the_gradient",), (),
         (when.world > 1) & (when.eps > 0) & (when.reduction == "none"))))
TE_2_20_EMPTY = KnownDefect(
    "transformer-engine 2.20.2 parallel_cross_entropy refuses an empty batch: `_validate_inputs` "
    "raises ValueError(\"inp dimensions must be non-zero\") for (0, 1, V_local), where the loss "
    "of no rows is an empty per-token loss and, by its own `n_non_ignore.clamp_(min=1)`, a mean "
    "of 0 (2.18.0, which validates nothing, returns both)",
    checks=("shards_empty_batch",))

RECORDS: tuple[Impl, ...] = (
    Impl(
        name="te_2_20_2_parallel_ce", build=TransformerEngineParallelCE("2.20.2"),
        description=("transformer-engine 2.20.2 transformer_engine.pytorch.parallel_cross_entropy("
                     "inp, target, label_smoothing=eps, reduce_loss, dist_process_group=the "
                     "check's group, ignore_idx) (vendored Triton files; its is_cuda check "
                     "passes for CPU tensors)"),
        known_defects=(TE_2_20_EMPTY,), **TE_CLAIMS,
    ),
    Impl(
        name="te_2_18_0_parallel_ce", build=TransformerEngineParallelCE("2.18.0"),
        description=("transformer-engine 2.18.0 transformer_engine.pytorch.parallel_cross_entropy("
                     "inp, target, label_smoothing=eps, reduce_loss, dist_process_group=the "
                     "check's group, ignore_idx) (vendored Triton files)"),
        known_defects=TE_2_18_DEFECTS,
        **TE_CLAIMS,
    ),
)
