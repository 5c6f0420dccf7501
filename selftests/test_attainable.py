"""The low-precision anchor (lsuite/judging/attainable.py): what a float32 kernel that rounds once
attains, the same whatever device computed it. A kernel that rounds the true-class softmax
to the logits' dtype before subtracting the target fails the confident-row cases in
bfloat16 and float16; the same arithmetic rounding once passes them."""

import numpy as np
import pytest

import reference
from lsuite.catalogs import loading
from lsuite.checks import reference as harness
from lsuite.inputs.cases import Case, make_inputs
from lsuite.judging.attainable import attainable, finite_max
from lsuite.kinds import logits as logits_kind
from lsuite.running.runner import CheckFailed, Context
from selftests.test_plugin import DROPINS

CONFIDENT = dict(logits="confident", K=1000, N=16)
# p(true class) where rounding it to the dtype loses precision measurably at eps = 0:
# bfloat16 from 0.99 (25% of the entry), float16 likewise (4%, 3%, then 100% at 0.9999).
MEASURABLE = [(dtype, miss) for dtype in ("bfloat16", "float16") for miss in (1e-2, 1e-3, 1e-4)]


def _check(name: str, case: Case) -> dict:
    impl = loading.load(f"{DROPINS}:{name}")
    metrics = {}
    ctx = Context(impl=impl, case=case, record=metrics.update)
    try:
        harness.check_against_reference(ctx)
    except CheckFailed as failed:
        return {"failed": str(failed), **metrics}
    return {"failed": None, **metrics}


@pytest.mark.parametrize("dtype, miss", MEASURABLE)
def test_rounding_softmax_before_subtracting_fails_and_rounding_once_passes(dtype, miss):
    case = Case(dtype=dtype, eps=0.0, miss=miss, **CONFIDENT)
    broken, careful = _check("RoundsSoftmaxBeforeSubtracting", case), _check("Float32RoundOnceCE", case)
    assert broken["failed"] and "grad: max abs error" in broken["failed"] and "x attainable" in broken["failed"]
    assert careful["failed"] is None, careful["failed"]
    assert broken["true_grad_max_rel_err"] > 10 * careful["true_grad_max_rel_err"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rounding_to_float32_or_float64_changes_nothing(dtype):
    """The broken kernel is correct where its rounding is a no-op."""
    assert _check("RoundsSoftmaxBeforeSubtracting", Case(dtype=dtype, eps=0.0, miss=1e-3, **CONFIDENT))["failed"] is None


def test_budget_does_not_depend_on_the_device_that_computed_the_anchor(monkeypatch):
    """The budget is a function of the reference and the case alone: PyTorch's own error
    (here replaced by a device that is 1000x worse, then exact) changes the recorded
    baseline, never the budget."""
    case = Case(dtype="bfloat16", eps=0.0, miss=1e-3, **CONFIDENT)
    budgets = []
    for factor in (1000.0, 0.0):
        def device_outputs(inputs, dtype, factor=factor):
            exact = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec)
            return np.asarray(exact.value) * (1 + factor * 1e-3), exact.grad * (1 + factor * 1e-3)
        monkeypatch.setattr(logits_kind, "pytorch_outputs", device_outputs)
        metrics = _check("Float32RoundOnceCE", case)
        budgets.append((metrics["value_budget"], metrics["grad_budget"], metrics["baseline_grad_abs_err"]))
    assert budgets[0][:2] == budgets[1][:2]
    assert budgets[0][2] > 0 and budgets[1][2] == 0


def test_attainable_is_half_a_spacing_plus_the_float32_term():
    """On an ordinary bfloat16 case the attainable error of every element is at least the
    rounding bound u|x| and at most a few times it (the float32 term is small)."""
    impl = loading.load(f"{DROPINS}:Float32RoundOnceCE")
    inputs = make_inputs(impl, Case(dtype="bfloat16", reduction="none"))
    ref = reference.loss_and_grad(inputs.logits, inputs.target, inputs.spec, cotangent=inputs.cotangent)
    att = attainable(inputs, "bfloat16", ref.value, ref.grad)
    assert att.value.shape == np.shape(ref.value) and att.grad.shape == ref.grad.shape
    assert np.all(att.grad >= 2.0 ** -8 * np.abs(ref.grad))
    assert finite_max(att.grad) <= 1.1 * 2.0 ** -8 * np.max(np.abs(ref.grad))
