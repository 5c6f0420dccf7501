"""Hand values from docs/specification.md and the identities between conventions and forms.

Target rows and entropies against the numbers printed in docs/specification.md §1-2; PyTorch's
weighted smoothed CE (§4) against the column-weighting the reference uses; KL = CE - H(q)
with identical gradients (§2); the minimiser z = log q (§3); masked (-inf) logits.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, logit

import reference
from reference import Spec

# Hand values are printed to 6 decimals in docs/specification.md.
HAND_ATOL = 5e-7
# Identities that hold exactly in real arithmetic, evaluated in float64 on O(1) values.
IDENTITY_RTOL = 1e-12
IDENTITY_ATOL = 1e-13


def close(actual, desired, rtol=IDENTITY_RTOL, atol=IDENTITY_ATOL):
    __tracebackhide__ = True
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def spec(convention="inclusive", form="ce", eps=0.1, reduction="sum", **kw):
    return Spec(convention=convention, form=form, eps=eps, reduction=reduction, **kw)


def test_seed_000_quiz_vector_is_the_exclusive_rule():
    q = reference.target_distribution(spec("exclusive"), 5, 1)
    close(q, [0.025, 0.9, 0.025, 0.025, 0.025])
    assert q.dtype == np.float64 and q.shape == (5,)


def test_inclusive_k5_eps01_is_not_the_quiz_vector():
    q = reference.target_distribution(spec("inclusive"), 5, 1)
    close(q, [0.02, 0.92, 0.02, 0.02, 0.02])


@pytest.mark.parametrize("convention,pad,expected", [
    ("inclusive", None, 0.718801),
    ("exclusive", None, 0.822290),
    # docs/specification.md §2's figure: pad column 0, target 1 (any pad != target gives the same
    # value by symmetry; see the placement test below)
    ("padding_excluded", 0, 0.777661),
])
def test_target_entropy_k6_eps02_matches_conventions(convention, pad, expected):
    q = reference.target_distribution(spec(convention, eps=0.2, pad_index=pad), 6, 1)
    assert abs(reference.entropy(q) - expected) < HAND_ATOL
    assert abs(q.sum() - 1.0) < 1e-15


def test_padding_excluded_entropy_does_not_depend_on_pad_and_target_placement():
    values = {round(reference.entropy(reference.target_distribution(
        spec("padding_excluded", eps=0.2, pad_index=pad), 6, y)), 12)
        for pad in range(6) for y in range(6) if y != pad}
    assert values == {0.777661295762}


def test_padding_excluded_without_pad_column_is_exclusive():
    for y in range(6):
        close(reference.target_distribution(spec("padding_excluded", eps=0.3), 6, y),
              reference.target_distribution(spec("exclusive", eps=0.3), 6, y), rtol=0, atol=0)


@pytest.mark.parametrize("K", [2, 5, 1000])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
def test_inclusive_eps_equals_exclusive_with_eps_times_k_minus_1_over_k(K, eps):
    for y in (0, K - 1):
        close(reference.target_distribution(spec("inclusive", eps=eps), K, y),
              reference.target_distribution(spec("exclusive", eps=eps * (K - 1) / K), K, y))


def test_binary_targets_keras_and_timm():
    close(reference.target_distribution(spec("binary", "bce", eps=0.1), 3, 2), [0.05, 0.05, 0.95])
    close(reference.target_distribution(spec("binary_classwise", "bce", eps=0.15), 3, 2),
          [0.05, 0.05, 0.9])  # the seed 002 smoothed one-hot


def test_ignored_target_has_no_distribution_and_bad_classes_raise():
    s = spec("padding_excluded", pad_index=0, ignore_index=0)
    assert not reference.target_distribution(s, 5, 0).any()
    with pytest.raises(ValueError, match="outside"):
        reference.target_distribution(s, 5, 5)
    with pytest.raises(ValueError, match="padding column"):
        reference.target_distribution(spec("padding_excluded", pad_index=0), 5, 0)


def test_entropy_uses_0_log_0_and_the_last_axis():
    assert reference.entropy([1.0, 0.0]) == 0.0
    h = reference.entropy(np.array([[0.5, 0.5], [1.0, 0.0]]))
    close(h, [np.log(2.0), 0.0])


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_weighted_ce_is_pytorch_formula_and_column_weighting(eps):
    """docs/specification.md §4: l = (1-eps) w_y (-log p_y) + eps/K sum_c w_c (-log p_c); mean / sum w_y."""
    rng = np.random.default_rng(0)
    N, K = 6, 7
    z, y, w = rng.standard_normal((N, K)) * 2, rng.integers(0, K, N), rng.uniform(0.2, 2, K)
    y[2] = -100
    kept = y != -100
    logp = log_softmax(z, axis=1)
    rows = (1 - eps) * w[np.where(kept, y, 0)] * -logp[np.arange(N), np.where(kept, y, 0)] \
        + eps / K * (w * -logp).sum(axis=1)
    rows = np.where(kept, rows, 0.0)
    s = spec(eps=eps, reduction="mean", ignore_index=-100)
    close(reference.loss(z, y, s, weight=w), rows.sum() / w[y[kept]].sum())
    close(reference.loss(z, y, spec(eps=eps, reduction="none", ignore_index=-100), weight=w), rows)
    # the same as -sum_c (w_c q_c) log p_c with q the inclusive row: weights act on columns
    q = np.array([reference.target_distribution(s, K, int(t)) for t in y])
    close(np.where(kept, -(w * q * logp).sum(axis=1), 0.0), rows)


@pytest.mark.parametrize("convention,pad", [("inclusive", None), ("exclusive", None),
                                            ("padding_excluded", 0), ("padding_excluded", None)])
def test_kl_equals_ce_minus_target_entropy_with_identical_gradients(convention, pad):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((8, 6)) * 3, rng.integers(1, 6, 8)
    y[3] = -1
    kw = dict(eps=0.2, reduction="none", ignore_index=-1, pad_index=pad)
    ce = reference.loss_and_grad(z, y, spec(convention, "ce", **kw))
    kl = reference.loss_and_grad(z, y, spec(convention, "kl", **kw))
    s = spec(convention, **kw)
    h = np.array([reference.entropy(reference.target_distribution(s, 6, int(t))) for t in y])
    close(kl.value, ce.value - h)
    assert kl.value[3] == 0.0 and ce.value[3] == 0.0
    close(kl.grad, ce.grad, rtol=0, atol=0)


@pytest.mark.parametrize("convention", ["inclusive", "exclusive"])
@pytest.mark.parametrize("shift", [0.0, 37.5])
def test_minimiser_log_q_gives_entropy_and_zero_gradient(convention, shift):
    K = 9
    s = spec(convention, eps=0.3, reduction="sum")
    q = np.array([reference.target_distribution(s, K, y) for y in range(K)])
    z = np.log(q) + shift
    got = reference.loss_and_grad(z, np.arange(K), s)
    close(got.value, reference.entropy(q).sum())
    close(got.grad, np.zeros((K, K)), atol=1e-15)
    kl = reference.loss(z, np.arange(K), spec(convention, "kl", eps=0.3, reduction="sum"))
    assert abs(kl) < 1e-14


def test_padding_excluded_minimum_needs_a_minus_inf_pad_logit():
    s = spec("padding_excluded", eps=0.3, reduction="none", pad_index=0)
    q = reference.target_distribution(s, 6, 2)
    with np.errstate(divide="ignore"):
        z = np.log(q)[None, :]  # -inf in the pad column: masked logits must work
    got = reference.loss_and_grad(z, np.array([2]), s)
    close(got.value, [reference.entropy(q)])
    assert np.isfinite(got.grad).all() and not np.abs(got.grad).max() > 1e-15


def test_minus_inf_logit_under_target_mass_gives_inf_loss_and_finite_grad():
    z = np.array([[0.0, -np.inf, 1.0], [0.5, 0.0, -np.inf]])
    got = reference.loss_and_grad(z, np.array([1, 0]), spec(eps=0.1, reduction="none"))
    assert got.value[0] == np.inf and got.value[1] == np.inf  # eps/K > 0 on the masked class
    assert np.isfinite(got.grad).all()
    p = np.exp(log_softmax(z[0]))
    close(got.grad[0], p - reference.target_distribution(spec(eps=0.1), 3, 1))
    # without smoothing the masked non-target class costs nothing
    plain = reference.loss(z, np.array([0, 0]), spec(eps=0.0, reduction="none"))
    close(plain, -log_softmax(z, axis=1)[:, 0])


def test_all_minus_inf_row_that_is_ignored_gives_zero():
    z = np.array([[-np.inf, -np.inf, -np.inf], [0.1, 0.2, 0.3]])
    got = reference.loss_and_grad(z, np.array([-100, 1]), spec(reduction="sum", ignore_index=-100))
    close(got.value, reference.loss(z[1:], np.array([1]), spec(reduction="sum")))
    assert not got.grad[0].any()


def test_bce_minimum_is_binary_entropy_at_logit_t():
    s = spec("binary", "bce", eps=0.2, reduction="none")
    t = reference.target_distribution(s, 4, 1)
    got = reference.loss_and_grad(logit(t)[None, :], np.array([1]), s)
    close(got.value[0], reference.entropy(np.stack([t, 1 - t], axis=-1)))
    close(got.grad, np.zeros((1, 4)), atol=1e-15)


def test_bce_infinite_logits_follow_0_log_0():
    x = np.array([[np.inf, -np.inf, np.inf]])
    s = spec("binary", "bce", eps=0.0, reduction="none", targets="probs")
    got = reference.loss_and_grad(x, np.array([[1.0, 0.0, 0.0]]), s)
    assert list(got.value[0]) == [0.0, 0.0, np.inf]
    close(got.grad, [[0.0, 0.0, 1.0]])


def test_ce_at_uniform_logits_is_log_k():
    for convention in ("inclusive", "exclusive"):
        value = reference.loss(np.zeros((3, 11)), np.array([0, 5, 10]), spec(convention, reduction="mean"))
        close(value, np.log(11.0))
