"""The hidden-states reference (reference/linear.py) against the logits reference on the
logits formed explicitly: value and the chain rule for h, W and b, in every reduction, with
ignored rows, class weights and -inf bias entries; chunking changes nothing but rounding."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference import Spec

RTOL = 1e-12  # same float64 arithmetic, regrouped by the chunked matmuls


def _problem(seed, N=13, H=5, K=7):
    rng = np.random.default_rng(seed)
    h, W, b = rng.standard_normal((N, H)), rng.standard_normal((K, H)), rng.standard_normal(K)
    y = rng.integers(0, K, N)
    y[rng.random(N) < 0.3] = -100
    return h, W, b, y, rng.uniform(0.2, 2.0, K)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("convention", ["inclusive", "exclusive"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("chunk", [None, 7, 30])
def test_chain_rule_matches_the_explicit_logits(reduction, convention, weighted, chunk):
    h, W, b, y, w = _problem(1)
    w = w if weighted else None
    spec = Spec(convention, "ce", 0.1, reduction, ignore_index=-100)
    cot = np.random.default_rng(2).standard_normal(len(y)) if reduction == "none" else None
    ref = reference.loss_and_grad(h @ W.T + b, y, spec, weight=w, cotangent=cot)
    got = reference.linear_loss_and_grad(h, W, y, spec, bias=b, weight=w, cotangent=cot,
                                         chunk_elems=chunk)
    np.testing.assert_allclose(got.value, ref.value, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(got.grad_hidden, ref.grad @ W, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(got.grad_classifier, ref.grad.T @ h, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(got.grad_bias, ref.grad.sum(0), rtol=RTOL, atol=1e-14)


def test_masked_bias_and_all_ignored_mean():
    h, W, b, y, _ = _problem(3)
    b[[2, 4]] = -np.inf
    y[np.isin(y, [2, 4])] = 0
    spec = Spec("inclusive", "ce", 0.0, "mean", ignore_index=-100)
    got = reference.linear_loss_and_grad(h, W, y, spec, bias=b, chunk_elems=14)
    ref = reference.loss_and_grad(h @ W.T + b, y, spec)
    np.testing.assert_allclose(got.value, ref.value, rtol=RTOL)
    np.testing.assert_allclose(got.grad_classifier, ref.grad.T @ h, rtol=RTOL, atol=1e-14)
    assert np.all(got.grad_classifier[[2, 4]] == 0)
    nothing = reference.linear_loss_and_grad(h, W, np.full(len(y), -100), spec)
    assert np.isnan(nothing.value) and not nothing.grad_hidden.any() and nothing.grad_bias is None


def test_gradients_match_central_differences():
    h, W, b, y, _ = _problem(4, N=4, H=3, K=5)
    spec = Spec("inclusive", "ce", 0.2, "mean", ignore_index=-100)
    got = reference.linear_loss_and_grad(h, W, y, spec, bias=b)
    step = 1e-6
    for array, grad in ((h, got.grad_hidden), (W, got.grad_classifier), (b, got.grad_bias)):
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            up = reference.linear_loss_and_grad(h, W, y, spec, bias=b).value
            array[index] = saved - step
            down = reference.linear_loss_and_grad(h, W, y, spec, bias=b).value
            array[index] = saved
            assert abs((up - down) / (2 * step) - grad[index]) < 1e-8
