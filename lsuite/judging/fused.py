"""The checks of a hidden-states record (fused linear cross-entropy; docs/input-kinds.md "Losses beyond
one logits tensor"): its value and its gradients for h, W and b against the float64
reference (reference.linear_loss_and_grad, z formed a chunk of rows at a time), and the
invariants that carry over from the logits checks: a shift of every logit through the bias,
a permutation of the classifier's rows, a permutation of the batch.

Inputs come from lsuite.inputs.cases.make_linear_inputs; the implementation runs through the one
runner (lsuite/running/runner.py, `Feed(hidden=, classifier=, bias=)`, gradients in
`Outcome.grads`); every tensor is judged by lsuite.judging.assertions against lsuite.judging.tolerances.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

import reference
from lsresults.dtypes import UNIT_ROUNDOFF
from lsuite.inputs.cases import Inputs, LinearInputs, make_linear_inputs, round_to
from lsuite.judging import severity, tolerances
from lsuite.judging.attainable import attainable, summation_steps, target_rows
from lsuite.judging.harness import judge
from lsuite.judging.properties import (
    PERMUTATION_SEED,
    SHIFT,
    assert_same_outputs,
    relabel,
    seeded_order,
)
from lsuite.judging.torch_error import weighted_neg_entropy
from lsuite.record import claims
from lsuite.running import causes
from lsuite.running.runner import Context, Feed, run

GRADIENTS = tolerances.LINEAR_GRADIENTS


def expected(inputs: LinearInputs) -> dict[str, np.ndarray | float | None]:
    """The reference's value and gradients by name ("value", "hidden", "classifier", "bias")."""
    ref = reference.linear_loss_and_grad(inputs.hidden, inputs.classifier, inputs.target,
                                         inputs.spec, bias=inputs.bias, weight=inputs.weight,
                                         cotangent=inputs.cotangent)
    return {"value": ref.value, "hidden": ref.grad_hidden, "classifier": ref.grad_classifier,
            "bias": ref.grad_bias}


def _chain(inputs: LinearInputs, value, G) -> dict:
    h, W = inputs.hidden, inputs.classifier
    G = np.where(np.isfinite(G), G, 0.0)
    return {"value": value, "hidden": G @ W, "classifier": G.T @ h,
            "bias": None if inputs.bias is None else G.sum(axis=0)}


def _as_logits_inputs(inputs: LinearInputs, logits) -> Inputs:
    return Inputs(logits, inputs.target, inputs.weight, inputs.cotangent, inputs.ignore_index,
                  inputs.spec)


def linear_attainable(inputs: LinearInputs, dtype: str, exact: dict) -> dict:
    """Per-element attainable errors of value and gradients (lsuite/judging/tolerances.py: the logits
    rounded once to dtype, then the careful logits kernel, float32 products)."""
    z = inputs.logits
    rounded = np.where(np.isfinite(z), round_to(np.where(np.isfinite(z), z, 0.0), dtype), z)
    ref_r = reference.loss_and_grad(rounded, inputs.target, inputs.spec, weight=inputs.weight,
                                    cotangent=inputs.cotangent)
    at_r = _chain(inputs, ref_r.value, ref_r.grad)
    att = attainable(_as_logits_inputs(inputs, rounded), dtype, ref_r.value, ref_r.grad)
    dG = np.where(np.isfinite(att.grad), att.grad, 0.0)
    G = np.abs(np.where(np.isfinite(ref_r.grad), ref_r.grad, 0.0))
    h, W = np.abs(inputs.hidden), np.abs(inputs.classifier)
    u, u32 = UNIT_ROUNDOFF[dtype], UNIT_ROUNDOFF["float32"]
    half = tolerances.SUBNORMAL_SPACING[dtype] / 2
    N, K = G.shape
    carried = {"hidden": dG @ W + summation_steps(K) * u32 * (G @ W),
               "classifier": dG.T @ h + summation_steps(N) * u32 * (G.T @ h),
               "bias": dG.sum(axis=0) + summation_steps(N) * u32 * G.sum(axis=0)}
    out = {"value": np.abs(np.asarray(at_r["value"]) - np.asarray(exact["value"])) + att.value}
    for name in GRADIENTS:
        if exact[name] is None:
            continue
        moved = np.abs(at_r[name] - exact[name])
        out[name] = moved + carried[name] + u * np.abs(exact[name]) + half
    return out


def pytorch_linear_outputs(inputs: LinearInputs, dtype: str) -> dict:
    """F.linear followed by F.cross_entropy (the claimed target rows as probabilities), in
    dtype on the same rounded inputs: PyTorch's own error, as lsuite/judging/torch_error.py."""
    tdtype = getattr(torch, dtype)
    K = inputs.classifier.shape[0]
    rows, kept = target_rows(_as_logits_inputs(inputs, np.zeros((len(inputs.target), 0))), K)
    weight = np.ones(K) if inputs.weight is None else inputs.weight
    leaves = {"hidden": inputs.hidden, "classifier": inputs.classifier, "bias": inputs.bias}
    leaves = {n: torch.tensor(a, dtype=tdtype, requires_grad=True) for n, a in leaves.items()
              if a is not None}
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


def feed(inputs: LinearInputs, **changes) -> Feed:
    shape = () if inputs.cotangent is None else tuple(inputs.cotangent.shape)
    base = Feed(None, inputs.target, inputs.weight, inputs.cotangent, expect_shape=shape,
                hidden=inputs.hidden, classifier=inputs.classifier, bias=inputs.bias)
    return dataclasses.replace(base, **changes)


def check_linear_against_reference(ctx: Context) -> dict:
    """Value and every gradient of a hidden-states record against the float64 reference."""
    inputs = severity.suite_step("making the case's inputs", make_linear_inputs, ctx.impl,
                                 ctx.case, ctx.seed)
    exact = severity.suite_step("computing the reference", expected, inputs)
    exact["value"] = claims.expected_value(ctx.impl, ctx.case.reduction, inputs, exact["value"])
    out = run(ctx, feed(inputs))
    dtype = claims.judged_dtype(ctx.impl, ctx.case.dtype)
    base = None if dtype == "float64" else pytorch_linear_outputs(inputs, dtype)
    att = linear_attainable(inputs, dtype, exact) if dtype in tolerances.LOW_PRECISION else None
    actual = {"value": out.value, **out.grads}
    problems, metrics = list(out.notes), {}
    for name in ("value", *GRADIENTS):
        if exact[name] is None:
            continue
        if name not in actual:
            problems.append(f"no gradient for the {name}")
            continue
        label = "value" if name == "value" else f"grad_{name}"
        judged = judge(label, actual[name], exact[name], dtype,
                       attainable=None if att is None else att[name],
                       pytorch=None if base is None else base[name])
        metrics.update(judged.metrics(label), **{f"{label}_within": judged.problem is None})
        if judged.problem:
            problems.append(judged.problem)
    ctx.record(metrics)
    if problems:
        raise ctx.fail("; ".join(problems), causes=causes.of_texts(problems))
    return metrics


# ------------------------------------------------------------------------- invariants

def _outputs(ctx: Context, inputs: LinearInputs, **changes) -> dict:
    out = run(ctx, feed(inputs, **changes))
    return {"value": np.asarray(out.value), **{f"grad_{name}": grad for name, grad in out.grads.items()}}


def bias_shift(ctx: Context) -> None:
    """h·Wᵀ + (b + c): the same value and the same gradients for h, W and b."""
    inputs = make_linear_inputs(ctx.impl, ctx.case, ctx.seed)
    shifted = round_to(inputs.bias + SHIFT, ctx.case.dtype)
    before = _outputs(ctx, inputs)
    after = _outputs(ctx, inputs, bias=shifted)
    assert_same_outputs(ctx, inputs.logits, before, after, f"after adding {SHIFT:g} to every bias entry")


def class_permutation(ctx: Context) -> None:
    """Classifier rows (and bias entries) permuted, targets relabelled: the same value and
    dh; dW and db permuted the same way."""
    inputs = make_linear_inputs(ctx.impl, ctx.case, ctx.seed)
    order = seeded_order(ctx, ctx.case.K, PERMUTATION_SEED)
    target = relabel(ctx, inputs.target, order)
    before = _outputs(ctx, inputs)
    after = _outputs(ctx, inputs, classifier=inputs.classifier[order], target=target,
                     bias=None if inputs.bias is None else inputs.bias[order],
                     weight=None if inputs.weight is None else inputs.weight[order])
    expected = {"value": before["value"], "grad_hidden": before["grad_hidden"],
                "grad_classifier": before["grad_classifier"][order]}
    if "grad_bias" in before:
        expected["grad_bias"] = before["grad_bias"][order]
    assert_same_outputs(ctx, inputs.logits, expected, after, "after permuting the classifier's rows")


def batch_permutation(ctx: Context) -> None:
    """Rows of h (and targets, cotangent) permuted: a reduced value and dW, db unchanged;
    the per-row values and dh permuted."""
    inputs = make_linear_inputs(ctx.impl, ctx.case, ctx.seed)
    order = np.random.default_rng(PERMUTATION_SEED).permutation(ctx.case.N)
    before = _outputs(ctx, inputs)
    cotangent = None if inputs.cotangent is None else inputs.cotangent[order]
    after = _outputs(ctx, inputs, hidden=inputs.hidden[order], target=inputs.target[order],
                     cotangent=cotangent)
    expected = dict(before, grad_hidden=before["grad_hidden"][order])
    if ctx.case.reduction == "none":
        expected["value"] = before["value"][order]
    assert_same_outputs(ctx, inputs.logits, expected, after, "after permuting the batch")
