"""PyTorch's own error on a case: the yardstick for low-precision tolerances.

The same loss the implementation claims, written with PyTorch's built-in primitives
(`F.cross_entropy` with probability targets, `F.binary_cross_entropy_with_logits`) and
evaluated in the case dtype on the same rounded inputs. Its distance from the float64
reference is what PyTorch's arithmetic in that dtype costs on this device: the suite
reports it beside the attainable anchor (lsuite/judging/attainable.py), which alone sets budgets,
since PyTorch's kernels differ by device (on a CPU its bfloat16 softmax is rounded before
the target is subtracted). This is an error scale, not ground truth: the reference alone is that.
(Named for what it measures; `--ls-baseline` is a previous run, unrelated.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import reference
from lsuite.inputs.cases import Inputs
from lsuite.judging.assertions import measure
from lsuite.judging.attainable import from_rows, target_rows


def pytorch_outputs(inputs: Inputs, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's own (value, gradient w.r.t. the logits) in dtype, as float64 arrays laid out
    like the reference's (and the implementation's) outputs."""
    logits, spec = inputs.logits, inputs.spec
    num_classes = logits.shape[0] if logits.ndim == 1 else logits.shape[1]
    rows, kept = target_rows(inputs, num_classes)
    weight = np.ones(num_classes) if inputs.weight is None else inputs.weight
    tdtype = getattr(torch, dtype)
    z = torch.tensor(reference.rows_last(logits), dtype=tdtype, requires_grad=True)
    if spec.form == "bce":
        per = F.binary_cross_entropy_with_logits(
            z, torch.tensor(rows, dtype=tdtype), weight=torch.tensor(weight, dtype=tdtype),
            reduction="none")
    else:
        per = F.cross_entropy(z, torch.tensor(rows * weight, dtype=tdtype), reduction="none")
        if spec.form == "kl":
            per = per + torch.tensor(weighted_neg_entropy(rows, weight), dtype=tdtype)
        per = per * torch.tensor(kept, dtype=tdtype)
    if inputs.cotangent is not None:
        cotangent = inputs.cotangent.reshape(-1) if spec.form != "bce" else \
            reference.rows_last(inputs.cotangent)
        (per * torch.tensor(cotangent, dtype=tdtype)).sum().backward()
        value = per.detach().double().numpy()
        value = (from_rows(value, logits.shape) if spec.form == "bce"
                 else value.reshape(inputs.cotangent.shape))
    else:
        total = per.sum() / reference.denominator(logits, inputs.target, spec, weight=inputs.weight)
        total.backward()
        value = total.detach().double().numpy()
    return value, from_rows(z.grad.double().numpy(), logits.shape)


def pytorch_error(inputs: Inputs, dtype: str, value_ref, grad_ref) -> tuple[float, float]:
    """(max abs value error, max abs gradient error) of PyTorch's own arithmetic in dtype."""
    value, grad = pytorch_outputs(inputs, dtype)
    return _max_abs(value, value_ref), _max_abs(grad, grad_ref)


def weighted_neg_entropy(rows: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Σ_c w_c q_c log q_c per row, 0 log 0 = 0 (the KL offset, docs/specification.md §2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1.0)), 0.0)
    return (terms * weight).sum(axis=-1)


def _max_abs(actual, expected) -> float:
    """Max abs error over the elements finite on both sides (PyTorch's NaN/inf pattern is
    not judged here: this is a yardstick, not a verdict)."""
    return measure(actual, expected).max_abs
