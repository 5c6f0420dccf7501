"""The ecosystem catalog: label-smoothing losses that real libraries ship, judged as shipped.

Each record's claims come from the library's own code and documentation (quoted beside the
record), not from what the suite measured; what the suite then demonstrated against those
claims is declared as a KnownDefect with the library version it was seen on. A record whose
library is not installed skips every check with the install command as the reason (plugin),
never fails. Libraries are imported only when a check builds the record, so listing the
catalog costs nothing.

Triton kernels (Liger) need CUDA, or the Triton interpreter on CPU: without a GPU the suite
sets TRITON_INTERPRET=1 itself before anything imports Triton code (`prepare_triton`), says
so in results.json and the report, and runs such records only on cases of at most
INTERPRETED_MAX_ELEMENTS logits (`skip_reason`); with CUDA they run natively at full sizes.

Records of the other inputs: Liger's fused linear loss (`input="hidden_states"`, its classifier
argument first, so an adapter reorders) and Megatron's vocab-parallel loss
(`input="vocab_parallel"`: each rank builds Megatron's tensor-parallel group over the check's
world, once per process and default group, `megatron_tensor_parallel`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types

from lsuite.catalogs import peers_fla, peers_logits, peers_parallel, peers_te, peers_triton
from lsuite.catalogs.catalog import (
    CONFIDENT_ROWS,
    FLOAT16_SUM_OVERFLOWS,
    FLOAT32_TARGET_SCOPE,
    FLOAT32_TARGET_SHOWS,
)
from lsuite.catalogs.peer_loading import INSTALL, INTERPRETED_MAX_ELEMENTS, Lazy, missing, version
from lsuite.inputs.predicates import when
from lsuite.record.builders import construct
from lsuite.record.records import Impl, KnownDefect

__all__ = ["INSTALL", "INTERPRETED_MAX_ELEMENTS", "Lazy", "PEERS", "by_name", "missing", "version"]

# ------------------------------------------------------------------------------- adapters

class TimmMixupSoftTargetCE:
    """timm's SoftTargetCrossEntropy on the target timm's Mixup hands it when label smoothing is
    on and no mixing happens (lam = 1): `mixup_target(target, num_classes, lam, smoothing)`
    (timm/data/mixup.py), which is one_hot with on 1-eps+eps/K, off eps/K."""

    def __init__(self, smoothing: float):
        self.smoothing = smoothing
        self.loss = Lazy("timm", "SoftTargetCrossEntropy", "loss/cross_entropy.py")()
        self.mixup_target = Lazy("timm", "mixup_target", "data/mixup.py").resolve()

    def __call__(self, logits, target):
        soft = self.mixup_target(target, logits.shape[-1], lam=1.0, smoothing=self.smoothing)
        return self.loss(logits, soft)


class HFLabelSmoother:
    """transformers' Trainer calls `LabelSmoother(epsilon=args.label_smoothing_factor)` as
    `label_smoother(outputs, labels)`; outputs is the model's output dict."""

    def __init__(self, epsilon: float, ignore_index: int | None = None):
        smoother = Lazy("transformers.trainer_pt_utils", "LabelSmoother").resolve()
        self.smoother = smoother(epsilon=epsilon) if ignore_index is None else smoother(
            epsilon=epsilon, ignore_index=ignore_index)

    def __call__(self, logits, target):
        return self.smoother({"logits": logits}, target)


@functools.cache
def _compiled_cross_entropy():
    import torch
    import torch.nn.functional as F

    # Every (eps, reduction, dtype, layout) is its own graph (a float argument of an aten op is
    # specialised); past the default limit Dynamo would silently fall back to eager PyTorch.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 4096)
    torch._dynamo.config.accumulated_cache_size_limit = max(
        torch._dynamo.config.accumulated_cache_size_limit, 4096)
    return torch.compile(F.cross_entropy, dynamic=True, fullgraph=True)


class CompiledCrossEntropy:
    """F.cross_entropy under torch.compile (Inductor generates and compiles its own C++/Triton
    kernel: an implementation independent of ATen's), fullgraph so nothing falls back."""

    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=-100):
        self.kwargs = dict(label_smoothing=label_smoothing, reduction=reduction, weight=weight,
                           ignore_index=ignore_index)

    def __call__(self, logits, target):
        return _compiled_cross_entropy()(logits, target, **self.kwargs)


class AutocastCrossEntropy:
    """nn.CrossEntropyLoss called inside torch.autocast(dtype=bfloat16), as a mixed-precision
    training loop calls it."""

    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=-100):
        import torch

        self.loss = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index,
                                              reduction=reduction, label_smoothing=label_smoothing)

    def __call__(self, logits, target):
        import torch

        with torch.autocast(device_type=logits.device.type, dtype=torch.bfloat16):
            return self.loss(logits, target)


class LigerFusedLinearCE:
    """Liger's LigerFusedLinearCrossEntropyLoss takes the classifier first:
    `forward(self, lin_weight, _input, target, bias=None)`
    (liger_kernel/transformers/fused_linear_cross_entropy.py); the suite calls
    loss_fn(hidden, classifier, target, bias)."""

    def __init__(self, label_smoothing=0.0, reduction="mean", weight=None, ignore_index=-100):
        loss = Lazy("liger_kernel.transformers", "LigerFusedLinearCrossEntropyLoss").resolve()
        self.loss = loss(ce_weight=weight, ignore_index=ignore_index,
                         label_smoothing=label_smoothing, reduction=reduction)

    def __call__(self, hidden, classifier, target, bias=None):
        return self.loss(classifier, hidden, target, bias)


_MEGATRON_GROUP: list = []  # the default process group Megatron's parallel state was built on
# megatron/core/__init__.py and tensor_parallel/__init__.py import Megatron's DDP, optimizers,
# FSDP and transformer layers (2-4 s a rank process on the 2-core machine, four times what the
# loss needs, with a warning each for Transformer Engine and Apex); the loss's own modules
# import only torch, numpy and megatron.core.utils.
MEGATRON_PACKAGES = ("megatron", "megatron.core", "megatron.core.tensor_parallel")


def _megatron(module: str):
    """A module of megatron-core imported as shipped, its parent packages registered bare
    (their search path, not their __init__): parallel_state, tensor_parallel.cross_entropy
    and what they import run unchanged. A process that already imported them keeps them."""
    for package in MEGATRON_PACKAGES:
        if package in sys.modules:
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{package} is not installed: {INSTALL}")
        bare = types.ModuleType(package)
        bare.__path__, bare.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules[package] = bare
    return importlib.import_module(module)


def megatron_tensor_parallel(world: int, rank: int, group) -> None:
    """Megatron's tensor-parallel group over the whole default group (`world` ranks), built
    once per process and per group: `vocab_parallel_cross_entropy` takes no group argument,
    it reads megatron.core.parallel_state's (`get_tensor_model_parallel_group()` and its
    rank and world size). Kept while the default group and the world size are those it was
    built for (a rank process may build records for several checks); otherwise torn down
    (`destroy_model_parallel`, which only forgets the groups) and built again."""
    ps = _megatron("megatron.core.parallel_state")
    if ps.model_parallel_is_initialized():
        if (_MEGATRON_GROUP and _MEGATRON_GROUP[0] is group
                and ps.get_tensor_model_parallel_world_size() == world
                and ps.get_tensor_model_parallel_rank() == rank):
            return
        ps.destroy_model_parallel()
    _MEGATRON_GROUP.clear()
    # new_group is collective: every rank of the default group builds at the same point
    ps.initialize_model_parallel(tensor_model_parallel_size=world,
                                 create_gloo_process_groups=False)
    _MEGATRON_GROUP.append(group)


class MegatronVocabParallelCE:
    """megatron.core.tensor_parallel.vocab_parallel_cross_entropy(vocab_parallel_logits,
    target, label_smoothing) on this rank's columns, inside a tensor-parallel group of the
    check's world (megatron_tensor_parallel)."""

    def __init__(self, cfg):
        megatron_tensor_parallel(cfg.world, cfg.rank, cfg.group)
        self.loss = _megatron("megatron.core.tensor_parallel.cross_entropy").vocab_parallel_cross_entropy
        self.eps = cfg.eps

    def __call__(self, local_logits, target):
        return self.loss(local_logits, target, label_smoothing=self.eps)


# ------------------------------------------------------------------------------- records

TORCH_NEGATIVE_EPS = KnownDefect(
    f"torch {version('torch')} accepts a negative label_smoothing (it checks only > 1.0): "
    "label_smoothing=-0.1 returns a loss instead of raising", checks=("rejects_negative_smoothing",))

MEGATRON_LOCAL_SMOOTHING = (
    f"megatron-core {version('megatron-core')} smooths over the rank's shard only: "
    "`vocab_size = exp_logits.size(-1)` is the shard's width, used as K, and "
    "`log_probs.mean(dim=-1)` averages the rank's columns, with no all-reduce: at world > 1 with "
    "eps > 0 the ranks' losses disagree and differ from world 1's, and each non-target gradient "
    "column is p - eps/(K/world - 1) instead of p - eps/(K - 1) (NVIDIA/Megatron-LM#737, #7464; "
    "hand check: docs/catalogs.md)")

PEERS: tuple[Impl, ...] = (
    Impl(
        name="timm_label_smoothing_ce",
        description=f"timm {version('timm')} timm.loss.LabelSmoothingCrossEntropy(smoothing=eps)",
        # cross_entropy.py: `assert smoothing < 1.0`; confidence*nll + smoothing*mean(-logp)
        # over the last dim (inclusive); `target.unsqueeze(1)` and gather(dim=-1): (N, K) only;
        # `loss.mean()` over rows; no ignore_index, no weights.
        build=construct(Lazy("timm", "LabelSmoothingCrossEntropy", "loss/cross_entropy.py"),
                        eps="smoothing", reduction=None, weight=None, ignore_index=None),
        convention="inclusive", form="ce", reductions=("mean",), default_ignore_index=None,
        ignore_index=False, weights=False, nd=False, unbatched=False, class_dim="last",
        eps_max=1.0, eps_max_inclusive=False, requires=("timm",), install=INSTALL,
    ),
    Impl(
        name="timm_soft_target_ce",
        description=(f"timm {version('timm')} SoftTargetCrossEntropy on mixup_target(target, K, "
                     "lam=1, smoothing=eps), the target timm's Mixup builds"),
        # mixup.py: one_hot(..., on 1-eps+eps/K, off eps/K) via torch.full with the default
        # dtype (float32), so the target, and with it the loss of bfloat16/float16 logits, is
        # float32; SoftTargetCrossEntropy: sum(-target * log_softmax(x, -1), -1).mean().
        build=construct(TimmMixupSoftTargetCE, eps="smoothing", reduction=None, weight=None,
                        ignore_index=None),
        convention="inclusive", form="ce", reductions=("mean",), default_ignore_index=None,
        ignore_index=False, weights=False, nd=False, unbatched=False, class_dim="last",
        output_dtype="at_least_float32", requires=("timm",), install=INSTALL,
        known_defects=(KnownDefect(
            f"timm {version('timm')} mixup_target builds the target with torch.full in the default "
            "dtype (float32): float64 logits get float32-rounded smoothing mass",
            when=FLOAT32_TARGET_SHOWS, kinds=FLOAT32_TARGET_SCOPE["kinds"],
            # the affine-in-eps invariant compares L(eps) with L(0) and L(1): the float32
            # rounding of 1-eps+eps/K is not affine (hand check: docs/catalogs.md)
            checks=FLOAT32_TARGET_SCOPE["checks"] + ("loss_is_affine_in_smoothing",)),),
    ),
    Impl(
        name="hf_label_smoother",
        description=(f"transformers {version('transformers')} trainer_pt_utils.LabelSmoother"
                     "(epsilon=eps, ignore_index=...) called on {'logits': ...} as the Trainer does"),
        # LabelSmoother: log_softmax(logits, dim=-1) (classes last, any leading dims);
        # nll and `log_probs.sum(dim=-1, keepdim=True, dtype=torch.float32)` ("internally
        # upcasting it to fp32"), both / the count of non-ignored labels (/ K for the smooth
        # term): inclusive, mean over non-ignored tokens; bf16 logits give a float32 loss.
        build=construct(HFLabelSmoother, eps="epsilon", reduction=None, weight=None),
        convention="inclusive", form="ce", reductions=("mean",), weights=False,
        class_dim="last", output_dtype="at_least_float32", computes_in="float32",
        requires=("transformers",), install=INSTALL,
        known_defects=(KnownDefect(
            f"transformers {version('transformers')} LabelSmoother sums the nll term in the logits' "
            "dtype (`nll_loss.sum()`; only the smoothing term is upcast to float32): float16 row "
            "losses of ~1e4 sum past 65504 to inf although the mean (~1.9e4) is representable",
            when=FLOAT16_SUM_OVERFLOWS), KnownDefect(
            f"transformers {version('transformers')} LabelSmoother clamps labels to >= 0 "
            "(`labels = torch.clamp(labels, min=0)`, meant for the ignore_index -100 it has "
            "already masked): any other negative label, e.g. -5, is silently scored as class 0",
            checks=("rejects_negative_targets_other_than_ignore_index",))),
    ),
    Impl(
        name="liger_cross_entropy",
        description=(f"Liger-Kernel {version('liger-kernel')} LigerCrossEntropyLoss(label_smoothing=eps, "
                     "reduction, weight, ignore_index): a Triton kernel"),
        # ops/cross_entropy.py: `BT, V = _input.shape` (2-D only); every block `.cast(tl.float32)`
        # then stored in the input's dtype; the gradient is written into the input buffer
        # ("in-place" for memory); reduction mean divides by the non-ignored count or Σ w_y and
        # an all-ignored batch sums zero rows (0; docs/specification.md §6); asserts 0 <= eps <= 1 and
        # targets in [0, V).
        build=construct(Lazy("liger_kernel.transformers", "LigerCrossEntropyLoss")),
        convention="inclusive", form="ce", nd=False, unbatched=False, class_dim="last",
        computes_in="float32", mutates_input=True, empty_mean="zero", triton=True,
        # triton 3.9's interpreter hands the kernel's float scalar arguments over as Python
        # floats; the weighted path calls `sum_non_ignore_weight.to(tl.float32)` on one
        interpreter_cannot=("weights",),
        validates_arguments=True, requires=("liger_kernel", "triton"), install=INSTALL,
        # Liger validates with `assert` (label_smoothing in [0, 1], target bounds): an
        # AssertionError is its documented rejection.
        rejects_with=(AssertionError,),
        known_defects=(KnownDefect(
            f"Liger-Kernel {version('liger-kernel')} raises on an empty batch: its target bounds "
            "check `assert (target * target_mask).max() < V` calls max() on an empty tensor "
            "(RuntimeError) before the kernel, where a mean over nothing is 0 by its own rule",
            when=when.N == 0),),
    ),
    Impl(
        name="torch_compile_ce",
        description="F.cross_entropy(label_smoothing=eps) under torch.compile(fullgraph=True, dynamic=True): Inductor's own kernel",
        build=construct(CompiledCrossEntropy), convention="inclusive", form="ce",
        prob_targets=True, validates_arguments=True,
        check_kinds=("reference", "argument"), time_factor=5.0,
        check_kinds_reason=("each new eps, dtype or layout is a new Inductor compilation (2-5 s "
                            "here), and Hypothesis draws a new eps for almost every example"),
        known_defects=(TORCH_NEGATIVE_EPS, KnownDefect(
            f"torch {version('torch')} under Inductor still overflows float16 means: with logits "
            "~1e4 the sum of row losses is rounded to float16 (max 65504) before dividing, so the "
            "mean (~1.9e4, representable) is inf, as in eager mode", when=FLOAT16_SUM_OVERFLOWS),
            KnownDefect(
                f"torch {version('torch')} under Inductor overflows float16 label smoothing at "
                "K = 1000 as eager mode does: the mean loss of confident rows is inf where the "
                "reference is 1.6-2.5 (16 rows x 1000 log-probabilities of ~25 sum past 65504), "
                "and at K = 32000, 32769 and 65537 (rows of 32000 log-probabilities of ~10 sum "
                "past it: inf where the reference is 14.4-15.6)",
                checks=(CONFIDENT_ROWS, "llm_sized_vocabularies_in_half_precision",
                        "vocabularies_past_powers_of_two_in_half_precision"),
                when=(when.dtype == "float16") & (when.eps > 0))),
    ),
    Impl(
        name="torch_autocast_bf16_ce",
        description="nn.CrossEntropyLoss(label_smoothing=eps) inside torch.autocast(dtype=bfloat16)",
        # torch.amp docs: cross-entropy is among the ops that autocast to float32, so bfloat16
        # and float16 logits give a float32 loss; float64 stays float64.
        build=construct(AutocastCrossEntropy), convention="inclusive", form="ce",
        output_dtype="at_least_float32", prob_targets=True, validates_arguments=True,
        known_defects=(TORCH_NEGATIVE_EPS,),
    ),
    Impl(
        name="liger_fused_linear_ce",
        description=(f"Liger-Kernel {version('liger-kernel')} LigerFusedLinearCrossEntropyLoss("
                     "label_smoothing=eps, reduction, ce_weight, ignore_index) called as "
                     "loss(W, h, target, bias): h·Wᵀ + b a chunk of rows at a time into Liger's "
                     "cross-entropy Triton kernel"),
        input="hidden_states",
        # ops/fused_linear_cross_entropy.py: the same `liger_cross_entropy_kernel` as
        # LigerCrossEntropyLoss on each chunk of logits (inclusive smoothing, float32 blocks,
        # mean over the non-ignored count or Σ ce_weight[y], an all-ignored batch 0);
        # `loss_1d = torch.zeros(BT, dtype=torch.float32, ...)` ("loss_1d is always fp32"):
        # every reduction returns float32, float64 included; `BT, H = _input.shape` (2-D);
        # the logits chunk is its own buffer and the gradients new tensors (`torch.zeros_like`),
        # so no input is written; module __init__ asserts 0 <= label_smoothing <= 1 and
        # reduction in {mean, sum, none}.
        build=construct(LigerFusedLinearCE),
        convention="inclusive", form="ce", nd=False, unbatched=False, output_dtype="float32",
        computes_in="float32", empty_mean="zero", triton=True,
        # the same kernel's weighted path (`sum_non_ignore_weight.to(tl.float32)` on a float
        # that triton 3.9's interpreter passes as a Python float): see liger_cross_entropy
        interpreter_cannot=("weights",),
        requires=("liger_kernel", "triton"), install=INSTALL,
        known_defects=(KnownDefect(
            f"Liger-Kernel {version('liger-kernel')} LigerFusedLinearCrossEntropyLoss raises "
            "ZeroDivisionError on an empty batch in every reduction: ops/fused_linear_cross_entropy.py "
            "sets `chunk_size = min(chunk_size, BT)`, 0 when BT = 0, then `num_chunks = "
            "triton.cdiv(BT, chunk_size)` divides by it (before any kernel runs; the sum over no "
            "rows is 0 and F.cross_entropy's mean is NaN)",
            checks=("linear_empty_batch",)),),
    ),
    Impl(
        name="megatron_vocab_parallel_ce",
        description=(f"megatron-core {version('megatron-core')} tensor_parallel."
                     "vocab_parallel_cross_entropy(local_logits, target, label_smoothing=eps) in a "
                     "tensor-parallel group of the check's world (parallel_state."
                     "initialize_model_parallel)"),
        input="vocab_parallel",
        # tensor_parallel/cross_entropy.py: the docstring derives "1 / (K - 1) probability mass
        # to every index that is not the ground truth" (exclusive) and computes
        # `smoothing = label_smoothing * vocab_size / (vocab_size - 1)`,
        # `loss = (1.0 - smoothing) * loss - smoothing * mean_log_probs`; it returns the
        # per-token loss ("[sequence_length, micro_batch_size]"; reduction none), no
        # ignore_index, no weights; `vocab_parallel_logits.float()` then
        # `vocab_parallel_logits -= logits_max` ("In-place subtraction") and
        # `torch.exp(..., out=exp_logits)`: float32 logits are overwritten, every dtype is
        # computed and returned in float32; `assert 1.0 > label_smoothing > 0.0` when smoothing;
        # each rank's columns start at `rank * partition_vocab_size` (equal shards only).
        build=MegatronVocabParallelCE,
        convention="exclusive", form="ce", reductions=("none",), default_ignore_index=None,
        ignore_index=False, weights=False, nd=False, unbatched=False, output_dtype="float32",
        computes_in="float32", mutates_input=True, eps_max=1.0, eps_max_inclusive=False,
        uneven_shards=False, requires=("megatron",), install=INSTALL,
        known_defects=(
            KnownDefect(
                f"megatron-core {version('megatron-core')} takes the log of the normalised softmax "
                "(`log_probs = torch.log(exp_logits)`) for its smoothing term: a probability that "
                "underflows float32 (logit gaps past ~104) is log 0 = -inf and the loss is inf "
                "where the exact loss is finite, at any world size",
                checks=("shards_confident_extreme_and_masked_logits",),
                when=(when.logits == "extreme") & (when.eps > 0)),
            *(KnownDefect(MEGATRON_LOCAL_SMOOTHING, checks=checks, kinds=kinds, when=scope)
              for checks, kinds, scope in (
                  (("shards_permuting_classes_across_shards_permutes_the_gradient",), ("reference",),
                   (when.world > 1) & (when.eps > 0) & (when.N > 0)),
                  (("world_size_does_not_change_the_result",), (), when.eps > 0))),
        ),
    ),
)


# The records kept beside this module, by the input they take (lsuite/peers_*.py).
PEERS = (PEERS + peers_logits.RECORDS + peers_parallel.RECORDS + peers_triton.RECORDS
         + peers_fla.RECORDS + peers_te.RECORDS)


def by_name() -> dict[str, Impl]:
    return {impl.name: impl for impl in PEERS}
