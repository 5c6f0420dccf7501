"""Ecosystem records of vocab-parallel losses (input="vocab_parallel") beyond Megatron's
record in lsuite/catalogs/peers.py (which lists these in its catalog). Each rank is built with its
BuildConfig (cfg.group, cfg.rank, cfg.vocab_range) and called on its columns of the logits
with the whole target (README "Losses beyond one logits tensor"). Claims are quoted from each
library's code beside its record; defects are what the suite demonstrated, confirmed by a
hand check (docs/catalogs.md) and declared with the library version.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsuite.catalogs.peer_loading import INSTALL, Lazy, version
from lsuite.inputs.predicates import when
from lsuite.record.records import BuildConfig, Impl, KnownDefect

LIGER_VP = Lazy("liger_kernel.transformers", "LigerVocabParallelCrossEntropy")


@dataclass(frozen=True)
class LigerVocabParallel:
    """build(cfg) for LigerVocabParallelCrossEntropy(label_smoothing=eps, ignore_index,
    reduction="none", label_smoothing_formula, label_smoothing_mode), called as
    `ce(logits, target, tp_group)` on [S, B, V_local] logits and [S, B] global targets
    (transformers/vocab_parallel_cross_entropy.py): the suite's (N, V_local) shard is passed
    as (N, 1, V_local) and the (N, 1) loss returned as (N,), both views."""

    formula: str
    mode: str

    def __call__(self, cfg: BuildConfig):
        kwargs = {} if cfg.ignore_index is None else {"ignore_index": cfg.ignore_index}
        loss = LIGER_VP(label_smoothing=cfg.eps, reduction="none", label_smoothing_formula=self.formula,
                        label_smoothing_mode=self.mode, **kwargs)
        group = cfg.group

        def call(local_logits, target):
            return loss(local_logits.unsqueeze(1), target.unsqueeze(1), group).reshape(-1)

        return call


# ops/vocab_parallel_cross_entropy.py, both modes: `vocab_start = rank * v_local` (equal
# shards); `logits_max = x.amax(dim=-1).float()`, an fp32 `exp_buf` and
# `loss = torch.log(sum_exp_local) - predicted_local` in float32: every dtype computed and
# returned in float32; `X_ptr ... READ-ONLY, never mutated`; ignored positions
# (`flat_target == ignore_index`, any integer, default -100) give loss 0 and gradient 0;
# the module asserts reduction "none" ("Vocab-parallel CE returns per-token loss") and
# `0.0 <= label_smoothing < 1.0`; no class weights. The smoothing term is
# `torch.log(exp_buf) - torch.log(sum_exp_local)`: the log of the stored exponentials.
LIGER_VP_CLAIMS = dict(
    input="vocab_parallel", form="ce", reductions=("none",), weights=False, nd=False,
    unbatched=False, output_dtype="float32", computes_in="float32", eps_max=1.0,
    eps_max_inclusive=False, uneven_shards=False, triton=True,
    requires=("liger_kernel", "triton"), install=INSTALL)
LIGER_VP_LOG_OF_EXP = KnownDefect(
    f"Liger-Kernel {version('liger-kernel')} vocab-parallel CE takes the log of its float32 "
    "exponentials buffer for the smoothing term (`torch.log(exp_buf)`): a logit more than ~104 "
    "below the row max underflows exp to 0 and log 0 = -inf, so the loss is inf where the exact "
    "loss is finite (hand check: docs/catalogs.md)",
    checks=("shards_confident_extreme_and_masked_logits",),
    when=(when.logits == "extreme") & (when.eps > 0))
LIGER_PARTITION = (
    f"Liger-Kernel {version('liger-kernel')} label_smoothing_mode='partition' averages the "
    "smoothing term over the rank's shard (`log_probs_local.mean(dim=-1)`, no all-reduce) and "
    "takes K = V_local in the Megatron formula (`alpha_eff = eps * V_local / (V_local - 1)`), "
    "as its docstring says (\"Loss tensor differs per rank under this mode - this mirrors "
    "Megatron's existing behavior verbatim\"), Megatron's NVIDIA/Megatron-LM#737 and #7464: at "
    "world > 1 with eps > 0 the ranks' losses disagree and differ from world 1's (hand check: "
    "docs/catalogs.md)")


def _liger(name: str, formula: str, mode: str, convention: str, how: str, defects=()) -> Impl:
    """A record of LigerVocabParallelCrossEntropy(label_smoothing=eps, ignore_index) with the
    formula and mode given, called with the check's group (Triton kernels, gloo all-reduces)."""
    return Impl(
        name=name, build=LigerVocabParallel(formula, mode), convention=convention,
        description=(f"Liger-Kernel {version('liger-kernel')} LigerVocabParallelCrossEntropy("
                     f"label_smoothing=eps, ignore_index, label_smoothing_formula={formula!r}, "
                     f"label_smoothing_mode={mode!r}): {how}"),
        known_defects=(LIGER_VP_LOG_OF_EXP, *defects), **LIGER_VP_CLAIMS)


RECORDS: tuple[Impl, ...] = (
    # transformers/vocab_parallel_cross_entropy.py: `"pytorch"` (default): "q' = (1 - alpha)
    # * q + (alpha / K) * uniform. Same as torch.nn.functional.cross_entropy(...,
    # label_smoothing=alpha)"; `"global"` (default): "H(u, p) averaged over V_global. Adds
    # one AllReduce ... Exact result - matches a single-rank reference computed on the
    # full logits" (`v_for_K = v_local * world`).
    _liger("liger_vocab_parallel_ce", "pytorch", "global", "inclusive", "its defaults"),
    # megatron/cross_entropy.py: overrides the defaults "to match Megatron-LM's
    # vocab_parallel_cross_entropy bit-for-bit (formula="megatron", mode="partition")";
    # `"megatron"`: "q' = (1 - alpha) * q + (alpha / (K - 1)) * uniform_excluding_gt"
    # (exclusive); `"partition"`: "H(u, p) averaged over V_local on each rank. No extra
    # AllReduce. Loss tensor differs per rank under this mode".
    _liger("liger_vocab_parallel_ce_partition", "megatron", "partition", "exclusive",
           "the defaults of its Megatron drop-in LigerMegatronCrossEntropy "
           "(liger_kernel/megatron/cross_entropy.py)",
           tuple(KnownDefect(LIGER_PARTITION, checks=checks, kinds=kinds, when=scope)
                 for checks, kinds, scope in (
                     (("shards_permuting_classes_across_shards_permutes_the_gradient",), ("reference",),
                      (when.world > 1) & (when.eps > 0) & (when.N > 0) & (when.ignore != "all")),
                     (("world_size_does_not_change_the_result",), (), when.eps > 0)))),
)
