"""The logits kind: a loss called on one logits tensor (N, K), (N, K, d1, ...) or (K,) and a
target (class indices or probabilities), or on the log-probabilities the runner computes
from them for a record with `input="log_probs"`. The gradient judged is the logits'."""

from __future__ import annotations

import reference
from lsuite.inputs.cases import make_inputs
from lsuite.judging.attainable import attainable as attainable_errors
from lsuite.judging.torch_error import pytorch_outputs
from lsuite.kinds.kind import Kind, Leaf
from lsuite.running.runner import CallSpec


def upstream_of(inputs):
    """The cotangent the reference backpropagates: 'none''s array, a reduced loss's scalar
    upstream gradient (lsuite/inputs/kernel_cases.py), or None (1.0)."""
    return inputs.cotangent if inputs.upstream is None else inputs.upstream


def expected(inputs) -> dict:
    ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec, weight=inputs.weight,
                                  cotangent=upstream_of(inputs))
    return {"value": ref.value, "logits": ref.grad}


def attainable(inputs, dtype: str, exact: dict) -> dict:
    att = attainable_errors(inputs, dtype, exact["value"], exact["logits"])
    return {"value": att.value, "logits": att.grad}


def pytorch(inputs, dtype: str) -> dict:
    """PyTorch's own outputs in dtype, the gradient times a scalar upstream gradient."""
    value, grad = pytorch_outputs(inputs, dtype)
    return {"value": value, "logits": grad if inputs.upstream is None else grad * inputs.upstream}


LOGITS = Kind(
    name="logits", serves=("logits", "log_probs"),
    leaves=(Leaf("logits", class_axis=1, row_axis=0, shift="row"),),
    call=CallSpec(), make_inputs=make_inputs, expected=expected, attainable=attainable,
    pytorch=pytorch, describe="logits (N, K), (N, K, d...) or (K,)")
