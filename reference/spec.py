"""What a loss is (Spec), what the reference returns (Result), and argument checks.

Every check raises ValueError with one line that names the argument and what to fix.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

CONVENTIONS = ("inclusive", "exclusive", "padding_excluded", "binary", "binary_classwise")
FORMS = ("ce", "kl", "bce")
REDUCTIONS = ("none", "sum", "mean", "row_mean", "batchmean", "element_mean")
TARGETS = ("index", "probs")
BINARY = ("binary", "binary_classwise")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True)
class Spec:
    """One label-smoothing loss, as docs/specification.md defines it.

    convention: target distribution (docs/specification.md §1), one of CONVENTIONS
    form: "ce", "kl" (categorical conventions) or "bce" (binary conventions)
    eps: smoothing in [0, 1]
    reduction: one of REDUCTIONS ("mean" is not defined for "bce": use "element_mean")
    ignore_index: rows whose class-index target equals it give loss 0 and gradient 0
    pad_index: padding_excluded only: the column that gets no mass (None: no such column,
        and then padding_excluded is the same distribution as exclusive)
    targets: "index" (class indices) or "probs" (an array with the logits' shape)
    """

    convention: str
    form: str
    eps: float
    reduction: str
    ignore_index: int | None = None
    pad_index: int | None = None
    targets: str = "index"

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"Spec.convention={self.convention!r} is unknown: use one of {CONVENTIONS}")
        if self.form not in FORMS:
            raise ValueError(f"Spec.form={self.form!r} is unknown: use one of {FORMS}")
        binary = self.convention in BINARY
        if binary and self.form != "bce":
            raise ValueError(f"Spec.form={self.form!r} does not go with convention "
                             f"{self.convention!r}: binary conventions take form='bce'")
        if not binary and self.form == "bce":
            raise ValueError(f"Spec.form='bce' does not go with convention {self.convention!r}: "
                             f"use form 'ce' or 'kl', or a convention in {BINARY}")
        if not isinstance(self.eps, numbers.Real) or isinstance(self.eps, bool):
            raise ValueError(f"Spec.eps={self.eps!r} must be a real number in [0, 1]")
        if not 0.0 <= float(self.eps) <= 1.0:  # also rejects nan
            raise ValueError(f"Spec.eps={self.eps!r} is outside [0, 1]: pass a smoothing in [0, 1]")
        object.__setattr__(self, "eps", float(self.eps))
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"Spec.reduction={self.reduction!r} is unknown: use one of {REDUCTIONS}")
        if self.form == "bce" and self.reduction == "mean":
            raise ValueError("Spec.reduction='mean' is not defined for form 'bce' (is it per row or "
                             "per element?): use 'element_mean' (Keras / BCEWithLogitsLoss) or 'row_mean'")
        if self.targets not in TARGETS:
            raise ValueError(f"Spec.targets={self.targets!r} is unknown: use 'index' or 'probs'")
        if self.ignore_index is not None:
            if not _is_int(self.ignore_index):
                raise ValueError(f"Spec.ignore_index={self.ignore_index!r} must be an integer or None")
            object.__setattr__(self, "ignore_index", int(self.ignore_index))
        if self.pad_index is not None:
            if self.convention != "padding_excluded":
                raise ValueError(f"Spec.pad_index={self.pad_index!r} only applies to convention "
                                 f"'padding_excluded': pass pad_index=None for {self.convention!r}")
            if not _is_int(self.pad_index) or self.pad_index < 0:
                raise ValueError(f"Spec.pad_index={self.pad_index!r} must be a class index >= 0 or None")
            object.__setattr__(self, "pad_index", int(self.pad_index))
        if self.targets == "probs":
            if self.convention in ("exclusive", "padding_excluded"):
                raise ValueError(f"Spec.targets='probs' is not defined for convention "
                                 f"{self.convention!r}: use class-index targets, or 'inclusive'")
            if self.ignore_index is not None and self.ignore_index >= 0:
                raise ValueError(f"Spec.ignore_index={self.ignore_index} >= 0 with targets='probs' "
                                 f"(PyTorch raises too): pass ignore_index=None")


@dataclass(frozen=True)
class Result:
    """value: python float (may be nan) for scalar reductions, float64 array for 'none'.
    grad: float64 array (or the caller's grad_out) with the logits' shape:
    d(sum(cotangent * value)) / d logits."""

    value: float | np.ndarray
    grad: np.ndarray


def check_classes(spec: Spec, num_classes: int) -> None:
    """The class count is compatible with the spec (called once per loss evaluation)."""
    K = num_classes
    if K < 1:
        raise ValueError(f"the class axis has size {K}: logits need at least one class")
    eps = spec.eps
    if spec.convention == "exclusive" and K < 2 and eps > 0:
        raise ValueError(f"convention 'exclusive' with K={K} class has no other class for eps={eps}: "
                         f"use eps=0 or K >= 2")
    if spec.convention == "padding_excluded":
        pad = spec.pad_index
        if pad is not None and pad >= K:
            raise ValueError(f"Spec.pad_index={pad} is outside [0, {K}): pass a column of the logits")
        others = K - (1 if pad is None else 2)
        if others < 1 and eps > 0:
            raise ValueError(f"convention 'padding_excluded' with K={K} and pad_index={pad} leaves no "
                             f"class for the smoothing mass eps={eps}: use eps=0 or more classes")


def as_weight(weight, num_classes: int) -> np.ndarray | None:
    if weight is None:
        return None
    w = np.asarray(weight)
    if w.dtype.kind not in "fiu" or w.shape != (num_classes,):
        raise ValueError(f"weight has shape {w.shape} and dtype {w.dtype}: pass a real array of "
                         f"shape ({num_classes},), one weight per class")
    return w.astype(np.float64)
