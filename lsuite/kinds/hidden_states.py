"""The hidden-states kind (fused linear cross-entropy; docs/input-kinds.md "Losses beyond
one logits tensor"): a loss called as loss_fn(h, W, target, b) on hidden states h (N, H),
a classifier W (K, H) and a bias b (K,) or None, which forms z = h·Wᵀ + b itself. The
gradients judged are those of h, W and b (reference.linear_loss_and_grad, z formed a chunk
of rows at a time); budgets carry the logits' attainable error through the products."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import reference
from lsresults.dtypes import UNIT_ROUNDOFF
from lsuite.inputs.cases import Inputs, make_linear_inputs, round_to
from lsuite.judging import tolerances
from lsuite.judging.attainable import attainable as attainable_errors
from lsuite.judging.attainable import summation_steps, target_rows
from lsuite.judging.torch_error import weighted_neg_entropy
from lsuite.kinds.kind import Kind, Leaf
from lsuite.running.runner import CallSpec

GRADIENTS = tolerances.LINEAR_GRADIENTS


def expected(inputs) -> dict:
    """The reference's value and gradients by name ("value", "hidden", "classifier", "bias")."""
    ref = reference.linear_loss_and_grad(inputs.hidden, inputs.classifier, inputs.target,
                                         inputs.spec, bias=inputs.bias, weight=inputs.weight,
                                         cotangent=inputs.cotangent)
    return {"value": ref.value, "hidden": ref.grad_hidden, "classifier": ref.grad_classifier,
            "bias": ref.grad_bias}


def _chain(inputs, value, G) -> dict:
    h, W = inputs.hidden, inputs.classifier
    G = np.where(np.isfinite(G), G, 0.0)
    return {"value": value, "hidden": G @ W, "classifier": G.T @ h,
            "bias": None if inputs.bias is None else G.sum(axis=0)}


def _as_logits_inputs(inputs, logits) -> Inputs:
    return Inputs(logits, inputs.target, inputs.weight, inputs.cotangent, inputs.ignore_index,
                  inputs.spec)


def attainable(inputs, dtype: str, exact: dict) -> dict:
    """Per-element attainable errors of value and gradients (lsuite/judging/tolerances.py: the
    logits rounded once to dtype, then the careful logits kernel, float32 products)."""
    z = inputs.logits
    rounded = np.where(np.isfinite(z), round_to(np.where(np.isfinite(z), z, 0.0), dtype), z)
    ref_r = reference.loss_and_grad(rounded, inputs.target, inputs.spec, weight=inputs.weight,
                                    cotangent=inputs.cotangent)
    at_r = _chain(inputs, ref_r.value, ref_r.grad)
    att = attainable_errors(_as_logits_inputs(inputs, rounded), dtype, ref_r.value, ref_r.grad)
    dG = np.where(np.isfinite(att.grad), att.grad, 0.0)
    G = np.abs(np.where(np.isfinite(ref_r.grad), ref_r.grad, 0.0))
    h, W = np.abs(inputs.hidden), np.abs(inputs.classifier)
    u, u32 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF["float32"]
    half = tolerances.SUBNORMAL_SPACING[dtype] / 2
    N, K = G.shape
    carried = {"hidden": dG @ W + summation_steps(K) * u32 * (G @ W),
               "classifier": dG.T @ h + summation_steps(N) * u32 * (G.T @ h),
               "bias": dG.sum(axis=0) + summation_steps(N) * u32 * G.sum(axis=0)}
    with np.errstate(invalid="ignore"):  # inf - inf where a masked class's logit is -inf
        out = {"value": np.abs(np.asarray(at_r["value"]) - np.asarray(exact["value"])) + att.value}
    for name in GRADIENTS:
        if exact.get(name) is None:
            continue
        moved = np.abs(at_r[name] - exact[name])
        out[name] = moved + carried[name] + u * np.abs(exact[name]) + half
    return out


def pytorch(inputs, dtype: str) -> dict:
    """F.linear followed by F.cross_entropy (the claimed target rows as probabilities), in
    dtype on the same rounded inputs: PyTorch's own error, as lsuite/judging/torch_error.py."""
    tdtype = getattr(torch, dtype)
    K = inputs.classifier.shape[0]
    rows, kept = target_rows(_as_logits_inputs(inputs, np.zeros((len(inputs.target), 0))), K)
    weight = np.ones(K) if inputs.weight is None else inputs.weight
    leaves = {n: torch.tensor(a, dtype=tdtype, requires_grad=True)
              for n, a in inputs.leaves.items() if a is not None}
    z = F.linear(leaves["hidden"], leaves["classifier"], leaves.get("bias"))
    per = F.cross_entropy(z, torch.tensor(rows * weight, dtype=tdtype), reduction="none")
    if inputs.spec.form == "kl":
        per = per + torch.tensor(weighted_neg_entropy(rows, weight), dtype=tdtype)
    per = per * torch.tensor(kept, dtype=tdtype)
    if inputs.cotangent is not None:
        (per * torch.tensor(inputs.cotangent, dtype=tdtype)).sum().backward()
        value = per.detach().double().numpy()
    else:
        D = reference.denominator(np.broadcast_to(np.zeros(()), (len(rows), K)), inputs.target,
                                  inputs.spec, weight=inputs.weight)
        total = per.sum() / D
        total.backward()
        value = total.detach().double().numpy()
    return {"value": value, **{n: t.grad.double().numpy() for n, t in leaves.items()}}


def why_not(impl, case) -> str | None:
    if case.bias != "none" and not impl.bias:
        return "a bias"
    return None


HIDDEN_STATES = Kind(
    name="hidden_states", serves=("hidden_states",),
    leaves=(Leaf("hidden", row_axis=0), Leaf("classifier", class_axis=0),
            Leaf("bias", class_axis=0, shift="all")),
    call=CallSpec(leaves=("hidden", "classifier", "bias"), args=("hidden", "classifier", "target", "bias"),
                  build=(("hidden_size", "H"),), scores=None),
    make_inputs=make_linear_inputs, expected=expected, attainable=attainable, pytorch=pytorch,
    axes=("H", "bias"), why_not=why_not, matrix=(("bias", ("none", "random")),),
    describe="hidden states h (N, H), a classifier W (K, H) and a bias b (K,)")
