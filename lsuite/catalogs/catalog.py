"""The built-in catalog: every label-smoothing recipe of the seed documents, as written.

Each recipe keeps its text's quirks and constructor defaults; where that makes it fail a
check, the record declares a KnownDefect with the reason, and the suite demonstrates it
(strict xfail: if the defect ever stops showing, the run fails). The recipes are
described in docs/specification.md §5.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lsuite.catalogs import catalog_linear
from lsuite.catalogs.loading import load
from lsuite.inputs.predicates import when
from lsuite.record.records import BuildConfig, Impl, KnownDefect

HALF = ("bfloat16", "float16")
# Measured with torch 2.13.0 (CPU): nn.CrossEntropyLoss(label_smoothing=-0.1) returns a
# loss; only values above 1.0 raise. docs/specification.md §4 says outside [0, 1] raises.
TORCH_ACCEPTS_NEGATIVE_EPS = KnownDefect(
    "torch accepts a negative label_smoothing (it checks only > 1.0): label_smoothing=-0.1 "
    "returns a loss with negative smoothing mass instead of raising",
    checks=("rejects_negative_smoothing",))


def _torch_kwargs(cfg: BuildConfig) -> dict:
    """Keyword arguments of nn.CrossEntropyLoss that a check passes."""
    kwargs = {"label_smoothing": cfg.eps, "reduction": cfg.reduction}
    if cfg.weight is not None:
        kwargs["weight"] = cfg.weight
    if cfg.ignore_index is not None:
        kwargs["ignore_index"] = cfg.ignore_index
    return kwargs


def build_torch_ce(cfg: BuildConfig):
    """Seed 000: `nn.CrossEntropyLoss(label_smoothing=eps)`; seed 002 adds `weight=`."""
    return nn.CrossEntropyLoss(**_torch_kwargs(cfg))


class ExclusiveQuizCE:
    """Seed 000's quiz: targets built by hand as 1-eps on the class, eps/(K-1) elsewhere,
    then `nn.CrossEntropyLoss` on those probability targets."""

    def __init__(self, eps: float, reduction: str = "mean"):
        self.eps = eps
        self.loss = nn.CrossEntropyLoss(reduction=reduction)

    def __call__(self, logits, target):
        num_classes = logits.size(-1)
        smoothed = torch.full_like(logits, self.eps / (num_classes - 1))
        smoothed.scatter_(-1, target.unsqueeze(-1), 1.0 - self.eps)
        return self.loss(logits, smoothed)


class Seed001LabelSmoothingLoss(nn.Module):
    """Seed 001, verbatim in behaviour: one-hot, inclusive mixing, KLDivLoss(batchmean)."""

    def __init__(self, smoothing=0.1, dim=-1):
        super().__init__()
        self.smoothing = smoothing
        self.dim = dim

    def forward(self, pred, target):
        target = F.one_hot(target, num_classes=pred.size(-1))
        target = target.float()
        target = (1 - self.smoothing) * target + self.smoothing / pred.size(-1)
        log_pred = F.log_softmax(pred, dim=self.dim)
        loss = nn.KLDivLoss(reduction="batchmean")(log_pred, target)
        return loss


class ForumLabelSmoothingLoss(nn.Module):
    """Seed 002's forum recipe, verbatim in behaviour. `output` must be log-probabilities."""

    def __init__(self, label_smoothing, tgt_vocab_size, ignore_index=-100):
        assert 0.0 < label_smoothing <= 1.0
        self.ignore_index = ignore_index
        super().__init__()

        smoothing_value = label_smoothing / (tgt_vocab_size - 2)
        one_hot = torch.full((tgt_vocab_size,), smoothing_value)
        one_hot[self.ignore_index] = 0
        self.register_buffer("one_hot", one_hot.unsqueeze(0))

        self.confidence = 1.0 - label_smoothing

    def forward(self, output, target):
        model_prob = self.one_hot.repeat(target.size(0), 1)
        model_prob.scatter_(1, target.unsqueeze(1), self.confidence)
        model_prob.masked_fill_((target == self.ignore_index).unsqueeze(1), 0)
        return F.kl_div(output, model_prob, reduction="sum")


def build_forum(cfg: BuildConfig):
    kwargs = {} if cfg.ignore_index is None else {"ignore_index": cfg.ignore_index}
    return ForumLabelSmoothingLoss(cfg.eps, cfg.num_classes, **kwargs).to(cfg.device)


def build_forum_pad0(cfg: BuildConfig):
    return ForumLabelSmoothingLoss(cfg.eps, cfg.num_classes, ignore_index=0).to(cfg.device)


class SmoothedOneHotBCE:
    """Seed 002's BCE variant: raw logits into `BCEWithLogitsLoss` with a smoothed one-hot
    target (1-eps+eps/K on, eps/K off), default mean over all N*K elements."""

    def __init__(self, eps: float):
        self.eps = eps
        self.loss = nn.BCEWithLogitsLoss()

    def __call__(self, logits, target):
        num_classes = logits.size(-1)
        smoothed = F.one_hot(target, num_classes).to(logits.dtype)
        smoothed = smoothed * (1 - self.eps) + self.eps / num_classes
        return self.loss(logits, smoothed)


class WeightedKLDiv:
    """Seed 002's answer for smoothing plus class weights: `nn.KLDivLoss(reduction='none')`
    with the weights applied to the unreduced loss. The seed gives no code; we read it
    literally: inclusive targets, the (N, K) loss times weight[c], summed over classes,
    averaged over rows."""

    def __init__(self, eps: float, weight):
        self.eps = eps
        self.weight = weight
        self.kl = nn.KLDivLoss(reduction="none")

    def __call__(self, logits, target):
        num_classes = logits.size(-1)
        smoothed = F.one_hot(target, num_classes).to(logits.dtype)
        smoothed = smoothed * (1 - self.eps) + self.eps / num_classes
        unreduced = self.kl(F.log_softmax(logits, dim=-1), smoothed)
        return (unreduced * self.weight).sum(dim=-1).mean()


HALF_DTYPE = when.dtype.isin(HALF)
# Float32 rounding of the target shows only in float64, with rows, and with mass to round.
FLOAT32_TARGET_SHOWS = ((when.dtype == "float64") & (when.eps > 0) & (when.K > 1)
                        & ((when.N > 0) | (when.layout == "unbatched")))
FLOAT16_SUM_OVERFLOWS = ((when.dtype == "float16") & (when.logits == "extreme")
                         & (when.reduction == "mean"))
# Where the forum recipe's default ignore_index=-100 shows: the index it is built with is
# negative (not passed, or -100 passed) and the damage is measurable. At K = 32000 in
# float32 its eps/(V-2) spread and zeroed class V-100 move the loss by less than float32
# resolution unless a row targets that class, so the check passes there (measured).
FORUM_DEFAULT_BREAKS = ((when.ignore != "in_range") & (when.ignore != "zero")
                        & ((when.K <= 1000) | when.ignore.isin(("negative", "all"))
                           | (when.dtype == "float64")))


FLOAT32_TARGET = "the target is built in float32 (torch.full / .float()), so float64 logits get float32-rounded smoothing mass"
# Where the float32 target shows: every check against the float64 reference, and the two
# invariants that measure the target itself; the other invariants (suites/test_invariants.py)
# compare the recipe with itself, which float32 smoothing mass does not disturb.
FLOAT32_TARGET_SCOPE = dict(kinds=("reference",), checks=(
    "gradient_vanishes_at_the_log_target", "implied_target_distribution_sums_to_one"))
PROMOTES = "the float32 target promotes the loss: bfloat16/float16 logits give a float32 loss"
SINGLE_CLASS = KnownDefect(
    "K = 1: the hand-built target divides eps by num_classes - 1 (ZeroDivisionError) even at "
    "eps = 0, where the loss is well defined (0, with zero gradient)", when=when.K == 1)
VOCAB_TWO = KnownDefect(
    "V = 2 leaves no class to smooth over: label_smoothing / (tgt_vocab_size - 2) raises "
    "ZeroDivisionError", when=when.K == 2)
# Measured (torch 2.13.0 CPU): with logits of magnitude ~1e4 in float16, the reduced loss
# is inf although the mean (~1.9e4) is representable: the row losses are summed in float16
# (max 65504) before dividing.
FLOAT16_OVERFLOW = KnownDefect(
    "float16 reductions overflow: the sum of row losses is formed in float16 (max 65504), so a "
    "batch of large but representable losses (logits ~1e4) reduces to inf",
    when=FLOAT16_SUM_OVERFLOWS)
# Measured (torch 2.13.0 CPU): BCEWithLogitsLoss at a -inf logit with target t > 0 gives
# NaN (it forms (1-t)x + log(1+exp(-x)) = -inf + inf); the loss is +inf.
BCE_MASKED_NAN = KnownDefect(
    "BCEWithLogitsLoss returns NaN, not +inf, for a -inf logit with a positive target "
    "(every class has target mass eps/K > 0 under smoothing)",
    when=when.logits == "masked")
# Measured: F.kl_div forms target * (log target - input); on a padding column with target 0
# and a -inf log-probability that is 0 * -inf = NaN, where the loss is +inf (the other
# masked classes carry mass eps/(V-2)).
KL_MASKED_PAD_NAN = KnownDefect(
    "kl_div returns NaN, not +inf, when a -inf logit sits on the zero-mass padding column "
    "(0 * -inf) while other masked classes carry smoothing mass",
    when=when.logits == "masked")
# Issue 14, measured with torch 2.13.0 on this CPU (test_confident_rows_keep_the_true_class_gradient,
# K=1000, N=16, every row at p(true class) = 1 - miss): PyTorch's CPU kernels round softmax
# (and log-softmax) to the logits' dtype before subtracting the target, so a confident
# row's true-class gradient keeps no significant bit once p rounds to 1. A finding about
# PyTorch on this device, not about the recipes that call it: on an H100 the same op errs
# by about 0.4% (Liger-Kernel PR #1329). Budgets are 3 x what a float32 kernel that rounds
# once attains (lsuite/judging/attainable.py), whatever the device.
TORCH_CPU_ROUNDS_SOFTMAX = (
    "torch's CPU kernels round softmax to bfloat16/float16 before subtracting the target: at "
    "eps=0 the true-class gradient of rows at p = 0.99, 0.999, 0.9999 is off by 26%, 100%, 100% "
    "in bfloat16 (4.0%, 3.3%, 100% in float16) where a float32 kernel rounding once attains "
    "0.41%, 0.58%, 2.3% (0.07%, 0.28%, 2.3%); at eps=0.1 and p = 0.99, 3.3% (0.6%) against "
    "0.39% (0.05%) (a divergence of PyTorch on this CPU; on an H100 the op errs by ~0.4%)")
CONFIDENT_ROWS = "confident_rows_keep_the_true_class_gradient"
# Where it exceeds 3 x attainable (measured per point; the budget's fp32 term swallows it
# at miss = 1e-6 with eps = 0, and eps = 0.1 dilutes it below p = 0.99 or 0.999).
SOFTMAX_ROUNDING_SHOWS = (when.device == "cpu") & (((when.eps == 0) & (when.miss >= 1e-4))
                                                   | (when.miss >= 1e-2))
SOFTMAX_ROUNDING_BF16_001 = (when.device == "cpu") & (when.dtype == "bfloat16") & (when.miss >= 1e-3)
# Measured: with eps > 0 at K = 1000 in float16 the smoothing term, summed over 16 rows
# of 1000 log-probabilities of magnitude ~25, passes 65504: the mean loss is inf.
FLOAT16_SMOOTHING_SUM_OVERFLOWS = KnownDefect(
    "float16 label smoothing overflows at K = 1000: the smoothing term sum_c log p_c is summed "
    "over rows and classes in float16 and passes 65504 (mean loss inf where the reference is ~2)",
    checks=(CONFIDENT_ROWS, "llm_sized_vocabularies_in_half_precision",
            "vocabularies_past_powers_of_two_in_half_precision"),
    when=(when.dtype == "float16") & (when.eps > 0) & (when.K >= 1000))
TORCH_ROUNDS_SOFTMAX = KnownDefect(
    TORCH_CPU_ROUNDS_SOFTMAX, checks=(CONFIDENT_ROWS,),
    when=SOFTMAX_ROUNDING_SHOWS | SOFTMAX_ROUNDING_BF16_001)
QUIZ_ROUNDS_SOFTMAX = KnownDefect(TORCH_CPU_ROUNDS_SOFTMAX, checks=(CONFIDENT_ROWS,),
                                  when=SOFTMAX_ROUNDING_SHOWS)
KL_WEIGHTED_ROUNDS_SOFTMAX = KnownDefect(
    TORCH_CPU_ROUNDS_SOFTMAX, checks=(CONFIDENT_ROWS,),
    when=SOFTMAX_ROUNDING_SHOWS | SOFTMAX_ROUNDING_BF16_001
    | ((when.device == "cpu") & (when.dtype == "float16") & (when.miss == 1e-4)))
NEGATIVE_DEFAULT = (
    "with ignore_index=-100 (its default) the recipe is broken: V < 100 raises IndexError "
    "building one_hot[-100]; V >= 100 silently zeroes the real class V-100 and spreads eps "
    "over V-2 classes; a target equal to -100 makes scatter_ raise before the masking"
)


# What nn.CrossEntropyLoss itself shows, with or without class weights.
TORCH_CE_DEFECTS = (TORCH_ACCEPTS_NEGATIVE_EPS, FLOAT16_OVERFLOW, FLOAT16_SMOOTHING_SUM_OVERFLOWS,
                    TORCH_ROUNDS_SOFTMAX)

# nn.CrossEntropyLoss as the seeds call it, with or without class weights
TORCH_CE_CLAIMS = dict(build=build_torch_ce, convention="inclusive", form="ce", prob_targets=True,
                       validates_arguments=True, known_defects=TORCH_CE_DEFECTS)

CATALOG: tuple[Impl, ...] = (
    Impl(name="seed000_ce", description="nn.CrossEntropyLoss(label_smoothing=eps) (seed 000)",
         weights=False, **TORCH_CE_CLAIMS),
    Impl(name="seed002_ce_weighted",
         description="nn.CrossEntropyLoss(weight=w, label_smoothing=eps) (seed 002's question)",
         requires_weights=True, **TORCH_CE_CLAIMS),
    Impl(
        name="seed000_quiz_exclusive",
        description="CrossEntropyLoss on hand-built exclusive targets (seed 000's quiz answer)",
        build=lambda cfg: ExclusiveQuizCE(cfg.eps, cfg.reduction),
        convention="exclusive", form="ce", default_ignore_index=None,
        ignore_index=False, weights=False, nd=False,
        known_defects=(FLOAT16_OVERFLOW, SINGLE_CLASS, QUIZ_ROUNDS_SOFTMAX),
    ),
    Impl(
        name="seed001_kldiv",
        description="seed 001 LabelSmoothingLoss: one-hot, inclusive mix, KLDivLoss(batchmean)",
        build=lambda cfg: Seed001LabelSmoothingLoss(smoothing=cfg.eps),
        convention="inclusive", form="kl", reductions=("batchmean",), default_ignore_index=None,
        ignore_index=False, weights=False, nd=False,
        known_defects=(
            KnownDefect(PROMOTES, when=HALF_DTYPE),
            KnownDefect(FLOAT32_TARGET, when=FLOAT32_TARGET_SHOWS, **FLOAT32_TARGET_SCOPE),
        ),
    ),
    Impl(
        name="seed002_forum_kl",
        description="seed 002 forum LabelSmoothingLoss as written (eps/(V-2), kl_div sum on log-probs, ignore_index=-100)",
        build=build_forum, convention="padding_excluded", form="kl", input="log_probs",
        reductions=("sum",), pad_index_is_ignore_index=True, weights=False, nd=False,
        unbatched=False, eps_min=0.0, eps_min_inclusive=False,
        known_defects=(
            VOCAB_TWO,
            KnownDefect(NEGATIVE_DEFAULT, when=FORUM_DEFAULT_BREAKS),
            KnownDefect(PROMOTES, when=HALF_DTYPE),
            KnownDefect(FLOAT32_TARGET, when=FLOAT32_TARGET_SHOWS, **FLOAT32_TARGET_SCOPE),
        ),
    ),
    Impl(
        name="seed002_forum_kl_pad0",
        description="the same forum recipe built with ignore_index=0, a real padding class (as OpenNMT uses it)",
        build=build_forum_pad0, convention="padding_excluded", form="kl", input="log_probs",
        reductions=("sum",), default_ignore_index=0, pad_index_is_ignore_index=True,
        ignore_index=False, weights=False, nd=False, unbatched=False,
        eps_min=0.0, eps_min_inclusive=False,
        known_defects=(
            VOCAB_TWO, KL_MASKED_PAD_NAN,
            KnownDefect(PROMOTES, when=HALF_DTYPE),
            KnownDefect(FLOAT32_TARGET, when=FLOAT32_TARGET_SHOWS, **FLOAT32_TARGET_SCOPE),
        ),
    ),
    Impl(
        name="seed002_bce",
        description="seed 002 BCEWithLogitsLoss on raw logits with a smoothed one-hot target",
        build=lambda cfg: SmoothedOneHotBCE(cfg.eps), convention="binary_classwise", form="bce",
        reductions=("element_mean",), default_ignore_index=None,
        ignore_index=False, weights=False, nd=False, known_defects=(BCE_MASKED_NAN,),
    ),
    Impl(
        name="seed002_kl_weighted",
        description="seed 002 KLDivLoss(reduction='none') with class weights on the unreduced loss",
        build=lambda cfg: WeightedKLDiv(cfg.eps, cfg.weight), convention="inclusive", form="kl",
        reductions=("row_mean",), default_ignore_index=None, requires_weights=True,
        ignore_index=False, nd=False, known_defects=(KL_WEIGHTED_ROUNDS_SOFTMAX,),
    ),
)


def _examples() -> tuple[Impl, ...]:
    """The repository's examples of the losses beyond one logits tensor (examples/), in the
    default run when the suite runs from the repository (an installed suite has no examples/)."""
    root = Path(__file__).resolve().parents[2] / "examples"
    found = []
    for file, attr in EXAMPLES:
        if (root / file).is_file():
            found.append(dataclasses.replace(load(f"{root / file}:{attr}"), origin="builtin"))
    return tuple(found)


EXAMPLES = (("fused_linear_cross_entropy.py", "FUSED_LINEAR_CE"),
            ("vocab_parallel_cross_entropy.py", "VOCAB_PARALLEL_CE"))
CATALOG = CATALOG + catalog_linear.LINEAR + _examples()


def by_name() -> dict[str, Impl]:
    return {impl.name: impl for impl in CATALOG}
