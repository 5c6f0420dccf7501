"""Ecosystem records of Triton losses beyond Liger's (lsuite/catalogs/peers.py lists these in its
catalog): flash-attn 2.8.3's cross-entropy kernel (vendored: lsuite/vendor/), on one logits
tensor and tensor-parallel over a process group. Interpreted on a CPU-only machine
(TRITON_INTERPRET=1, lsuite/catalogs/peers.py `prepare_triton`) within the interpreter's size cap.
Claims are quoted from the library's code beside each record; defects are what the suite
demonstrated, confirmed by a hand check (docs/catalogs.md) and declared with the
library version.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from unittest import mock

import torch

from lsuite.catalogs.peer_loading import Lazy
from lsuite.record.records import BuildConfig, Impl, KnownDefect

FLASH_ATTN = "flash-attn 2.8.3"  # the vendored file's version (lsuite/vendor/__init__.py)
FLASH_ATTN_FUNCTION = Lazy("lsuite.vendor.flash_attn_cross_entropy", "CrossEntropyLoss")


def _no_cuda_device(index):
    return contextlib.nullcontext()


_ALL_GATHER_INTO_TENSOR = torch.distributed.all_gather_into_tensor


def all_gather_into_flat(output_tensor, input_tensor, group=None, async_op=False):
    """gloo's all_gather_into_tensor takes a flat output (`invalid tensor size ... expected (16),
    got (1, 16)`); flash-attn passes a contiguous (world, n) one, as NCCL takes it. The same
    buffer, viewed flat: the same bytes end up in the same places."""
    return _ALL_GATHER_INTO_TENSOR(output_tensor.view(-1), input_tensor, group=group,
                                   async_op=async_op)


@contextlib.contextmanager
def flat_all_gather_on_cpu(device: torch.device):
    """On CPU tensors (gloo ranks) all_gather_into_tensor gets its output viewed flat
    (all_gather_into_flat); on CUDA (NCCL) nothing is patched."""
    if device.type == "cuda":
        yield
        return
    with mock.patch.object(torch.distributed, "all_gather_into_tensor", all_gather_into_flat):
        yield


@contextlib.contextmanager
def cuda_device_as_a_noop(device: torch.device):
    """flash-attn launches each kernel inside `with torch.cuda.device(logits.device.index):`
    ("otherwise Triton tries to launch from cuda:0"); for a CPU tensor the index is None and a
    CPU build of torch raises TypeError there (`'<' not supported between instances of
    'NoneType' and 'int'`). On a CPU tensor (the Triton interpreter, gloo ranks) that call is
    a null context and all_gather_into_tensor gets its output viewed flat
    (all_gather_into_flat); on CUDA nothing is patched."""
    if device.type == "cuda":
        yield
        return
    with mock.patch.object(torch.cuda, "device", _no_cuda_device), flat_all_gather_on_cpu(device):
        yield


class FlashAttnOnCPU(torch.autograd.Function):
    """flash-attn's CrossEntropyLoss autograd function, its forward and backward run verbatim
    with `torch.cuda.device` a null context on CPU tensors (cuda_device_as_a_noop)."""

    @staticmethod
    def forward(ctx, logits, labels, *args):
        with cuda_device_as_a_noop(logits.device):
            return FLASH_ATTN_FUNCTION.resolve().forward(ctx, logits, labels, *args)

    @staticmethod
    def backward(ctx, *grads):
        with cuda_device_as_a_noop(grads[0].device):
            return FLASH_ATTN_FUNCTION.resolve().backward(ctx, *grads)


@dataclass(frozen=True)
class FlashAttnCrossEntropy:
    """build(cfg): `cross_entropy_loss(logits, labels, label_smoothing=eps, ignore_index,
    process_group)`'s per-row losses (the z-loss, 0 at lse_square_scale=0, dropped); with
    `parallel`, process_group is the check's group (None at world 1, as a single GPU calls it)."""

    parallel: bool = False

    def __call__(self, cfg: BuildConfig):
        ignore_index = -100 if cfg.ignore_index is None else cfg.ignore_index
        group = cfg.group if self.parallel and cfg.world > 1 else None

        def call(logits, target):
            # (logits, labels, precomputed_lse, smoothing, logit_scale, lse_square_scale,
            #  ignore_index, inplace_backward, process_group), as cross_entropy_loss passes them
            losses, _ = FlashAttnOnCPU.apply(logits, target, None, cfg.eps, 1.0, 0.0,
                                             ignore_index, False, group)
            return losses

        return call


# ops/triton/cross_entropy.py (docstring of cross_entropy_loss): "logits: (batch, vocab_size),
# labels: (batch,) ... ignore_index: int. If labels == ignore_index, the loss is set to 0.0
# ... Returns: losses: (batch,), float": per-row float32 (`torch.empty(n_rows,
# dtype=torch.float)`), the logits `.to(tl.float32)` in the kernels: computes in float32;
# smoothing `lse - smoothing * sum_logits / total_classes - (1 - smoothing) * logits_label`:
# inclusive (eps/K on every class); `n_rows, n_cols = logits.shape`: 2-D; no class weights;
# no check on label_smoothing (`HAS_SMOOTHING: args["smoothing"] > 0.0`).
FLASH_ATTN_CLAIMS = dict(
    convention="inclusive", form="ce", reductions=("none",), weights=False, nd=False,
    unbatched=False, output_dtype="float32", computes_in="float32", triton=True,
    # triton 3.9's interpreter misreads a bfloat16 scalar loaded without conversion (1.5 * 0.9
    # gives -8.9e-16) and computes a float16 scalar times a float argument in float16 (the
    # argument arrives as a Python float): the kernel's `tl.load(logits_ptr + label_idx) *
    # logit_scale` is such a load (hand check: docs/catalogs.md)
    interpreter_cannot=("bfloat16", "float16"),
    requires=("triton",), install="pip install triton (the flash-attn file is vendored)")
OUT_OF_RANGE = KnownDefect(
    f"{FLASH_ATTN} scores a label outside [0, V) without raising: \"If label is out of bounds, "
    "we set the CE loss to 0.0. But we still want the smoothing loss\" (ops/triton/"
    "cross_entropy.py; the bounds test is how its tensor-parallel ranks skip labels of other "
    "shards), so a wrong label silently gives the smoothing term alone",
    checks=("rejects_targets_at_or_above_the_class_count",
            "rejects_negative_targets_other_than_ignore_index"))

# float64 logits at K = 1 give float32(z) - z, not 0 (confirmed by hand): a float32 rounding of
# O(1) terms, within the budget of a record that computes in float32, so not a defect.
# Measured by the Hypothesis invariants, confirmed by hand: a row of one -1e4 and 127 x 1e4 gives
# gradient rows summing to 4.37e-4 (float32 replay of its steps: 1.00043715 - 1).
LARGE_LOGIT_LSE = (
    "the kernels form exp(z - lse) with lse = log(l) + m rounded to float32: at logits ~1e4 (ulp "
    "~1e-3) the softmax sums to 1.00044 (gradient rows sum to 4.4e-4, not 0); Hypothesis reaches "
    "such logits on some draws only, so the invariant checks cannot hold it as a strict known "
    "defect and do not run (hand check: docs/catalogs.md)")

RECORDS: tuple[Impl, ...] = (
    Impl(
        name="flash_attn_cross_entropy",
        description=(f"{FLASH_ATTN} flash_attn.ops.triton.cross_entropy.cross_entropy_loss(logits, "
                     "labels, label_smoothing=eps, ignore_index) per-row losses (vendored file; "
                     "torch.cuda.device a null context on CPU tensors)"),
        build=FlashAttnCrossEntropy(), class_dim="last",
        known_defects=(OUT_OF_RANGE,),
        check_kinds=("reference", "argument"), check_kinds_reason=LARGE_LOGIT_LSE,
        **FLASH_ATTN_CLAIMS,
    ),
    Impl(
        name="flash_attn_cross_entropy_tp",
        description=(f"{FLASH_ATTN} cross_entropy_loss(local_logits, labels, label_smoothing=eps, "
                     "ignore_index, process_group=the check's group): tensor parallel, each rank "
                     "a shard of the vocabulary"),
        # "process_group: if not None, we're doing Tensor Parallel: each process is responsible
        # for one part of the vocab. The loss will be aggregated across processes":
        # `total_classes = world_size * n_cols`, `class_start_idx = rank * n_cols` (equal
        # shards); the lse all-gathered and combined by logsumexp, the partial losses
        # (-(1 - eps) z_y - eps * sum z / total_classes) all-reduced.
        build=FlashAttnCrossEntropy(parallel=True), input="vocab_parallel",
        uneven_shards=False, **FLASH_ATTN_CLAIMS,
    ),
)
