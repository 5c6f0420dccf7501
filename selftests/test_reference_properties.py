"""Properties of the reference on Hypothesis-drawn problems.

Shift invariance of CE/KL rows, relabelling of the classes, Gibbs' inequality
(CE >= H(q), KL >= 0), the gradient of a proper target summing to zero per row.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
from reference import Spec

# Relative error of float64 log-softmax work on logits up to |z| <= 30 with K <= 12:
# a few ulps of the largest term.
PROP_RTOL = 1e-12
PROP_ATOL = 1e-12

CATEGORICAL = st.sampled_from(["inclusive", "exclusive", "padding_excluded"])
FAST = settings(max_examples=60, deadline=None)


@st.composite
def problems(draw):
    """(logits (N, K), targets (N,), weight or None, eps, convention) with targets != pad 0."""
    K = draw(st.integers(3, 12), label="K")
    N = draw(st.integers(1, 6), label="N")
    # Arrays drawn by Hypothesis itself (not a drawn seed fed to NumPy), so a failure shrinks
    # element by element to the smallest counterexample.
    scale = draw(st.sampled_from([0.1, 3.0, 30.0]), label="logit scale")
    unit = st.floats(-3, 3, allow_nan=False, allow_subnormal=False)
    logits = draw(hnp.arrays(np.float64, (N, K), elements=unit), label="logits") * scale
    target = draw(hnp.arrays(np.int64, (N,), elements=st.integers(1, K - 1)), label="target")
    weight = None
    if draw(st.booleans(), label="weighted"):
        weight = draw(hnp.arrays(np.float64, (K,), elements=st.floats(0.1, 3.0)), label="weight")
    eps = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]), label="eps")
    convention = draw(CATEGORICAL, label="convention")
    return logits, target, weight, eps, convention


def make(convention, eps, form="ce", reduction="none"):
    pad = 0 if convention == "padding_excluded" else None
    return Spec(convention=convention, form=form, eps=eps, reduction=reduction, pad_index=pad)


@FAST
@given(problems(), st.floats(-50, 50, allow_nan=False))
def test_adding_a_constant_to_a_row_changes_nothing(problem, c):
    logits, target, weight, eps, convention = problem
    for form in ("ce", "kl"):
        s = make(convention, eps, form)
        base = reference.loss_and_grad(logits, target, s, weight=weight)
        moved = reference.loss_and_grad(logits + c, target, s, weight=weight)
        scale = np.abs(base.value).max() + abs(c) * PROP_RTOL * 10
        np.testing.assert_allclose(moved.value, base.value, rtol=0, atol=PROP_RTOL * scale + PROP_ATOL)
        np.testing.assert_allclose(moved.grad, base.grad, rtol=0, atol=1e-10)


@FAST
@given(problems(), st.data())
def test_relabelling_the_classes_permutes_the_gradient(problem, data):
    logits, target, weight, eps, convention = problem
    K = logits.shape[1]
    # keep class 0 in place: it is the padding column of padding_excluded
    perm = np.concatenate([[0], 1 + np.array(data.draw(st.permutations(range(K - 1)), label="perm"))])
    inverse = np.argsort(perm)
    s = make(convention, eps, reduction="sum")
    base = reference.loss_and_grad(logits, target, s, weight=weight)
    # new class j is old class perm[j]
    moved = reference.loss_and_grad(logits[:, perm], inverse[target], s,
                                    weight=None if weight is None else weight[perm])
    np.testing.assert_allclose(moved.value, base.value, rtol=PROP_RTOL, atol=PROP_ATOL)
    np.testing.assert_allclose(moved.grad, base.grad[:, perm], rtol=PROP_RTOL, atol=1e-15)


@FAST
@given(problems())
def test_gibbs_inequality_and_zero_sum_gradient_of_a_proper_target(problem):
    logits, target, _, eps, convention = problem
    ce = reference.loss_and_grad(logits, target, make(convention, eps))
    kl = reference.loss(logits, target, make(convention, eps, "kl"))
    s = make(convention, eps)
    h = np.array([reference.entropy(reference.target_distribution(s, logits.shape[1], int(t))) for t in target])
    assert (ce.value >= h - PROP_ATOL * np.maximum(1, np.abs(ce.value))).all()
    assert (kl >= -PROP_ATOL * np.maximum(1, np.abs(ce.value))).all()
    np.testing.assert_allclose(ce.grad.sum(axis=1), 0.0, atol=1e-14)
