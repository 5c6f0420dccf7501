"""The reference against a 50-digit mpmath oracle on small 2-D problems.

The oracle below is written from docs/specification.md alone, element by element, sharing no
code with `reference`: target rows built by the definition of each convention, losses
summed term by term, the gradient from the analytic formula (docs/specification.md §3) and,
on a subset, from mpmath.diff of the oracle's own loss. Every convention x form x
reduction x (weights or not) x (negative or in-range ignore_index), value and gradient.
"""

from __future__ import annotations

import itertools
import zlib

import mpmath
import numpy as np
import pytest

import reference

mpmath.mp.dps = 50

# Tolerances, in one place. The reference works in float64 with a max shift, one exp and
# one log per element and pairwise sums; on these O(1) problems its error is a few ulps of
# the largest term, far below 1e-12 relative. A real bug (wrong mass, wrong denominator,
# a missing term) moves results by more than 1e-3.
RTOL = 1e-12
ATOL = 1e-14
# mpmath.diff's step at 50 digits leaves ~1e-20; the bound is for float64 rounding only.
DIFF_RTOL = 1e-11

N, K = 4, 5
IN_RANGE_IGNORE = 2


# --- the oracle -------------------------------------------------------------------------

def oracle_target(spec, y, t_given):
    """The target row (q or, for bce, t) by the definition of each convention."""
    eps = mpmath.mpf(spec.eps)
    if t_given is not None:
        share = 2 if spec.convention == "binary" else K
        return [mpmath.mpf(float(v)) * (1 - eps) + eps / share for v in t_given]
    if spec.convention == "inclusive":
        return [(1 - eps) * (c == y) + eps / K for c in range(K)]
    if spec.convention == "exclusive":
        return [1 - eps if c == y else eps / (K - 1) for c in range(K)]
    if spec.convention == "padding_excluded":
        pad = spec.pad_index
        others = K - 1 if pad is None else K - 2
        return [1 - eps if c == y else (mpmath.mpf(0) if c == pad else eps / others)
                for c in range(K)]
    share = 2 if spec.convention == "binary" else K
    return [(1 - eps) * (c == y) + eps / share for c in range(K)]


def oracle_rows(logits, target, spec, weight):
    """Per-row losses (per element for bce), per-row analytic gradients, kept flags."""
    w = [mpmath.mpf(1)] * K if weight is None else [mpmath.mpf(float(v)) for v in weight]
    values, grads, kept = [], [], []
    for i in range(logits.shape[0]):
        z = [mpmath.mpf(float(v)) for v in logits[i]]
        probs = spec.targets == "probs"
        y = None if probs else int(target[i])
        keep = probs or spec.ignore_index is None or y != spec.ignore_index
        kept.append(keep)
        if not keep:
            values.append([mpmath.mpf(0)] * K if spec.form == "bce" else mpmath.mpf(0))
            grads.append([mpmath.mpf(0)] * K)
            continue
        q = oracle_target(spec, y, target[i] if probs else None)
        if spec.form == "bce":
            sig = [1 / (1 + mpmath.exp(-x)) for x in z]
            values.append([-w[c] * (q[c] * mpmath.log(sig[c]) + (1 - q[c]) * mpmath.log(1 - sig[c]))
                           for c in range(K)])
            grads.append([w[c] * (sig[c] - q[c]) for c in range(K)])
            continue
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in z))
        logp = [x - lse for x in z]
        if spec.form == "ce":
            values.append(-mpmath.fsum(w[c] * q[c] * logp[c] for c in range(K)))
        else:
            values.append(mpmath.fsum(w[c] * q[c] * (mpmath.log(q[c]) - logp[c])
                                      for c in range(K) if q[c] != 0))
        mass = mpmath.fsum(w[c] * q[c] for c in range(K))
        grads.append([mass * mpmath.exp(logp[c]) - w[c] * q[c] for c in range(K)])
    return values, grads, kept


def oracle_denominator(logits, target, spec, weight, kept):
    rows = logits.shape[0]
    if spec.reduction in ("none", "sum"):
        return mpmath.mpf(1)
    if spec.reduction == "mean":
        if spec.targets == "probs":
            return mpmath.mpf(rows)
        if weight is None:
            return mpmath.mpf(sum(kept))
        return mpmath.fsum(mpmath.mpf(float(weight[int(target[i])])) for i in range(rows) if kept[i])
    if spec.reduction == "row_mean":
        return mpmath.mpf(rows)
    if spec.reduction == "batchmean":
        return mpmath.mpf(logits.shape[0])
    return mpmath.mpf(logits.size)


def oracle(logits, target, spec, weight, cotangent):
    """(value, grad) as float64 from 50-digit arithmetic."""
    values, grads, kept = oracle_rows(logits, target, spec, weight)
    if spec.reduction == "none":
        value = np.array([[float(v) for v in row] for row in values]) if spec.form == "bce" \
            else np.array([float(v) for v in values])
        cot = np.asarray(cotangent, dtype=np.float64)
        if spec.form == "bce":
            grad = [[grads[i][c] * mpmath.mpf(float(cot[i, c])) for c in range(K)] for i in range(N)]
        else:
            grad = [[grads[i][c] * mpmath.mpf(float(cot[i])) for c in range(K)] for i in range(N)]
        return value, np.array(grad, dtype=float)
    flat = [v for row in values for v in row] if spec.form == "bce" else values
    total = mpmath.fsum(flat)
    D = oracle_denominator(logits, target, spec, weight, kept)
    if D == 0:
        return float("nan"), np.zeros(logits.shape)
    grad = np.array([[float(g / D) for g in row] for row in grads])
    return float(total / D), grad


# --- the grid ---------------------------------------------------------------------------

def _specs():
    """(id, Spec) for every convention x form x reduction x ignore placement x targets."""
    out = []
    pairs = [("inclusive", "ce"), ("inclusive", "kl"), ("exclusive", "ce"), ("exclusive", "kl"),
             ("padding_excluded", "ce"), ("padding_excluded", "kl"),
             ("binary", "bce"), ("binary_classwise", "bce")]
    for (conv, form), reduction, ignore in itertools.product(
            pairs, reference.REDUCTIONS, ("negative", "in_range")):
        if form == "bce" and reduction == "mean":
            continue
        ignore_index = -100 if ignore == "negative" else IN_RANGE_IGNORE
        # padding_excluded: the OpenNMT layout (pad column = ignore_index) when in range,
        # otherwise a separate padding column 0 that no target uses
        pad = None
        if conv == "padding_excluded":
            pad = IN_RANGE_IGNORE if ignore == "in_range" else 0
        spec = reference.Spec(convention=conv, form=form, eps=0.15, reduction=reduction,
                              ignore_index=ignore_index, pad_index=pad)
        out.append((f"{conv}-{form}-{reduction}-ignore_{ignore}", spec))
    for (conv, form), reduction in itertools.product(
            [("inclusive", "ce"), ("inclusive", "kl"), ("binary", "bce"), ("binary_classwise", "bce")],
            reference.REDUCTIONS):
        if form == "bce" and reduction == "mean":
            continue
        spec = reference.Spec(convention=conv, form=form, eps=0.15, reduction=reduction, targets="probs")
        out.append((f"{conv}-{form}-{reduction}-probs", spec))
    return out


SPECS = _specs()


def make_problem(spec, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K)) * 2.0
    if spec.targets == "probs":
        raw = rng.gamma(1.0, size=(N, K))
        target = raw / raw.sum(axis=1, keepdims=True)
    else:
        low = 1 if spec.pad_index == 0 else 0
        target = rng.integers(low, K, size=N)
        if spec.pad_index is not None:
            target[target == spec.pad_index] = (spec.pad_index + 1) % K
        target[1] = spec.ignore_index  # one ignored row, always
        if target[0] == spec.ignore_index:
            target[0] = 3
    cot_shape = logits.shape if spec.form == "bce" else (N,)
    cotangent = rng.standard_normal(cot_shape) if spec.reduction == "none" else None
    return logits, target, cotangent


def assert_close(actual, desired, what, rtol=RTOL):
    __tracebackhide__ = True
    actual, desired = np.asarray(actual, dtype=float), np.asarray(desired, dtype=float)
    scale = max(float(np.max(np.abs(desired), initial=0.0)), 1.0)
    err = np.abs(actual - desired)
    limit = rtol * scale + ATOL
    if actual.shape != desired.shape or not (err <= limit).all():
        worst = np.unravel_index(np.argmax(err), err.shape) if err.size else ()
        raise AssertionError(f"{what}: out={actual[worst]!r}, but should be {desired[worst]!r} "
                             f"(max abs err {err.max():.3g} > {limit:.3g} = rtol {rtol} x {scale:.3g} + atol {ATOL}; "
                             f"at {worst})")


@pytest.mark.parametrize("weighted", [False, True], ids=["no_weight", "weight"])
@pytest.mark.parametrize("spec", [s for _, s in SPECS], ids=[i for i, _ in SPECS])
def test_value_and_grad_match_50_digit_oracle(spec, weighted):
    logits, target, cotangent = make_problem(spec, seed=zlib.crc32(repr((spec, weighted)).encode()))
    weight = np.random.default_rng(7).uniform(0.3, 2.0, size=K) if weighted else None
    expected_value, expected_grad = oracle(logits, target, spec, weight, cotangent)
    got = reference.loss_and_grad(logits, target, spec, weight=weight, cotangent=cotangent)
    repro = f"[reference.loss_and_grad(logits, target, {spec!r}, weight={weight!r})]"
    assert_close(got.value, expected_value, f"value {repro}")
    assert_close(got.grad, expected_grad, f"grad {repro}")
    assert_close(reference.loss(logits, target, spec, weight=weight), expected_value, "loss() value")


def oracle_scalar(flat_logits, target, spec, weight):
    logits = np.array([float(v) for v in flat_logits]).reshape(N, K)
    values, _, kept = oracle_rows_mp(flat_logits, target, spec, weight)
    flat = [v for row in values for v in row] if spec.form == "bce" else values
    return mpmath.fsum(flat) / oracle_denominator(logits, target, spec, weight, kept)


def oracle_rows_mp(flat_logits, target, spec, weight):
    """oracle_rows on mpf logits (for mpmath.diff): the same formulas, no float rounding."""
    w = [mpmath.mpf(1)] * K if weight is None else [mpmath.mpf(float(v)) for v in weight]
    values, kept = [], []
    for i in range(N):
        z = list(flat_logits[i * K:(i + 1) * K])
        probs = spec.targets == "probs"
        y = None if probs else int(target[i])
        keep = probs or y != spec.ignore_index
        kept.append(keep)
        if not keep:
            values.append([mpmath.mpf(0)] * K if spec.form == "bce" else mpmath.mpf(0))
            continue
        q = oracle_target(spec, y, target[i] if probs else None)
        if spec.form == "bce":
            values.append([w[c] * (mpmath.log(1 + mpmath.exp(-z[c])) * q[c]
                                   + mpmath.log(1 + mpmath.exp(z[c])) * (1 - q[c])) for c in range(K)])
            continue
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in z))
        terms = [w[c] * q[c] * ((mpmath.log(q[c]) if spec.form == "kl" else 0) - (z[c] - lse))
                 for c in range(K) if q[c] != 0]
        values.append(mpmath.fsum(terms))
    return values, None, kept


DIFF_SPECS = [(i, s) for i, s in SPECS if s.reduction == "mean" or (s.form == "bce" and s.reduction == "sum")]


@pytest.mark.parametrize("spec", [s for _, s in DIFF_SPECS], ids=[i for i, _ in DIFF_SPECS])
def test_grad_matches_mpmath_diff_of_the_oracle_loss(spec):
    """The analytic-formula gradient is itself checked: numerical derivative in 50 digits."""
    logits, target, _ = make_problem(spec, seed=3)
    weight = np.linspace(0.5, 1.5, K)
    flat = [mpmath.mpf(float(v)) for v in logits.reshape(-1)]
    expected = []
    for j in range(N * K):
        def f(x, j=j):
            args = list(flat)
            args[j] = x
            return oracle_scalar(args, target, spec, weight)
        expected.append(float(mpmath.diff(f, flat[j])))
    got = reference.loss_and_grad(logits, target, spec, weight=weight).grad
    assert_close(got, np.array(expected).reshape(N, K), f"grad vs mpmath.diff [{spec!r}]", rtol=DIFF_RTOL)
