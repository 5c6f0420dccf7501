"""Layouts, chunking, threads, reductions of nothing, finite differences, grad_out, imports.

N-D inputs against the permuted 2-D problem; unbatched against a batch of one; every
chunk size and thread count bit-identical; iter_row_chunks against loss_and_grad; the
gradient against central differences in float64; `import reference` without torch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reference
from reference import Spec, engine

# Same arithmetic on re-arranged data: only summation order may differ (N-D vs 2-D sums).
LAYOUT_RTOL = 1e-13
# Central differences with h = 1e-6 in float64: truncation ~h^2, rounding ~1e-16/h.
FD_STEP = 1e-6
FD_ATOL = 1e-8

FORMS = [("inclusive", "ce"), ("exclusive", "kl"), ("padding_excluded", "ce"),
         ("binary", "bce"), ("binary_classwise", "bce")]
PROBS_FORMS = [("inclusive", "ce"), ("inclusive", "kl"), ("binary", "bce")]
# probability targets are defined for inclusive and the binary conventions only
WITH_TARGETS = [(c, f, "index") for c, f in FORMS + [("inclusive", "kl")]] + \
    [(c, f, "probs") for c, f in PROBS_FORMS]


def spec(convention="inclusive", form="ce", reduction="mean", eps=0.1, **kw):
    return Spec(convention=convention, form=form, eps=eps, reduction=reduction, **kw)


def problem(shape, targets="index", ignore=-100, seed=0, K_axis=1):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * 2
    K = shape[0] if len(shape) == 1 else shape[K_axis]
    if targets == "probs":
        t = rng.random(shape)
        return logits, t / t.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    tshape = () if len(shape) == 1 else (shape[0], *shape[2:])
    y = rng.integers(1, K, size=tshape)
    if y.ndim and ignore is not None:
        y.reshape(-1)[::3] = ignore
    return logits, y


def reductions_for(form):
    return [r for r in reference.REDUCTIONS if not (form == "bce" and r == "mean")]


@pytest.mark.parametrize("convention,form,targets", WITH_TARGETS)
def test_nd_equals_the_permuted_2d_problem(convention, form, targets):
    x, y = problem((3, 5, 2, 4), targets)
    x2 = np.moveaxis(x, 1, -1).reshape(-1, 5)
    y2 = np.moveaxis(y, 1, -1).reshape(-1, 5) if targets == "probs" else y.reshape(-1)
    for reduction in reductions_for(form):
        kw = dict(ignore_index=-100) if targets == "index" else {}
        s = spec(convention, form, reduction, targets=targets, **kw)
        nd, flat = reference.loss_and_grad(x, y, s), reference.loss_and_grad(x2, y2, s)
        back = np.moveaxis(flat.grad.reshape(3, 2, 4, 5), -1, 1)
        scale = 1.0
        if reduction == "batchmean":  # divides by the first dimension, which differs
            scale = 3 / x2.shape[0]
        if reduction == "none":
            shape = x.shape if form == "bce" else (3, 2, 4)
            expected = flat.value.reshape(3, 2, 4, 5) if form == "bce" else flat.value.reshape(shape)
            if form == "bce":
                expected = np.moveaxis(expected, -1, 1)
            np.testing.assert_allclose(nd.value, expected, rtol=LAYOUT_RTOL)
        else:
            np.testing.assert_allclose(nd.value * scale, flat.value, rtol=LAYOUT_RTOL)
        np.testing.assert_allclose(nd.grad * scale, back, rtol=LAYOUT_RTOL, atol=1e-300)


@pytest.mark.parametrize("convention,form", FORMS)
def test_unbatched_equals_a_batch_of_one_except_batchmean_divides_by_k(convention, form):
    x, y = problem((6,), seed=1)
    for reduction in reductions_for(form):
        s = spec(convention, form, reduction)
        one = reference.loss_and_grad(x, y, s)
        batch = reference.loss_and_grad(x[None], y[None], s)
        factor = 6.0 if reduction == "batchmean" else 1.0  # torch KLDivLoss: shape[0] is K here
        if reduction == "none":
            np.testing.assert_array_equal(one.value, batch.value[0])
        else:
            np.testing.assert_allclose(one.value * factor, batch.value, rtol=1e-15)
        np.testing.assert_allclose(one.grad * factor, batch.grad[0], rtol=1e-15)
        assert one.grad.shape == (6,)


@pytest.mark.parametrize("convention,form", FORMS)
def test_every_chunk_size_and_thread_count_gives_identical_results(convention, form):
    x, y = problem((37, 11), seed=2)
    w = np.linspace(0.5, 2.0, 11)
    s = spec(convention, form, "sum", ignore_index=-100)
    base = reference.loss_and_grad(x, y, s, weight=w)
    try:
        for threads in (1, 2):
            engine.set_threads(threads)
            for chunk in (1, 11, 12, 50, 33 * 11, 10**9):
                got = reference.loss_and_grad(x, y, s, weight=w, chunk_elems=chunk)
                assert got.value == base.value, (threads, chunk)
                np.testing.assert_array_equal(got.grad, base.grad)
                assert reference.loss(x, y, s, weight=w, chunk_elems=chunk) == base.value
    finally:
        engine.set_threads(engine.default_threads())


def test_iter_row_chunks_concatenates_to_loss_and_grad():
    x, y = problem((23, 7), seed=3)
    s = spec(reduction="mean", ignore_index=-100)
    whole = reference.loss_and_grad(x, y, s)
    for chunk in (7, 30, 7 * 23):
        parts = list(reference.iter_row_chunks(x.astype(np.float32), y, s, chunk_elems=chunk))
        assert [p[0] for p in parts] == sorted(p[0] for p in parts) and parts[-1][1] == 23
        rows = np.concatenate([p[2] for p in parts])
        grad = np.concatenate([p[3] for p in parts])
        expected = reference.loss_and_grad(x.astype(np.float32), y, s)
        np.testing.assert_array_equal(grad, expected.grad)
        denominator = reference.denominator(x, y, s)
        assert denominator == (y != -100).sum()
        assert rows.sum() / denominator == pytest.approx(expected.value, rel=1e-15)
    np.testing.assert_allclose(expected.value, whole.value, rtol=1e-6)  # float32 rounding only


def test_iter_row_chunks_with_large_k_matches_scipy_log_softmax():
    from scipy.special import log_softmax
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 150_000)).astype(np.float32) * 4
    y = np.array([5, 149_999, 70_000])
    s = spec("exclusive", eps=0.2, reduction="sum")
    (start, stop, rows, grad), = list(reference.iter_row_chunks(x, y, s))
    logp = log_softmax(x.astype(np.float64), axis=1)
    q = np.array([reference.target_distribution(s, x.shape[1], int(t)) for t in y])
    np.testing.assert_allclose(rows, -(q * logp).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(grad, np.exp(logp) - q, rtol=1e-10, atol=1e-17)


@pytest.mark.parametrize("reduction", reference.REDUCTIONS)
def test_all_ignored_rows_mean_is_nan_with_zero_grad_and_sum_is_zero(reduction):
    x = np.random.default_rng(5).standard_normal((4, 3))
    y = np.full(4, -100)
    got = reference.loss_and_grad(x, y, spec(reduction=reduction, ignore_index=-100))
    expected = {"mean": np.nan, "none": np.zeros(4)}.get(reduction, 0.0)
    np.testing.assert_array_equal(got.value, expected)
    assert not got.grad.any() and got.grad.shape == (4, 3)


@pytest.mark.parametrize("reduction", reference.REDUCTIONS)
def test_empty_batch(reduction):
    got = reference.loss_and_grad(np.zeros((0, 5)), np.zeros(0, dtype=np.int64), spec(reduction=reduction))
    assert got.grad.shape == (0, 5)
    if reduction == "none":
        assert got.value.shape == (0,)
    elif reduction == "sum":
        assert got.value == 0.0 and isinstance(got.value, float)
    else:  # every mean of nothing divides by zero
        assert np.isnan(got.value)


def numerical_grad(f, x):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += FD_STEP
        down[i] -= FD_STEP
        g[i] = (f(up) - f(down)) / (2 * FD_STEP)
    return g


@pytest.mark.parametrize("convention,form,targets", WITH_TARGETS)
def test_grad_matches_central_differences(convention, form, targets):
    x, y = problem((3, 4, 2), targets, ignore=-7, seed=6)
    w = np.array([0.5, 1.0, 1.5, 2.0])
    cot = np.random.default_rng(9).standard_normal(x.shape if form == "bce" else (3, 2))
    kw = dict(ignore_index=-7) if targets == "index" else {}
    for reduction in ("none", "element_mean"):
        s = spec(convention, form, reduction, eps=0.3, targets=targets, **kw)
        c = cot if reduction == "none" else None

        def f(z, s=s, c=c):
            return float(np.sum(reference.loss(z, y, s, weight=w) * (1.0 if c is None else c)))
        np.testing.assert_allclose(reference.loss_and_grad(x, y, s, weight=w, cotangent=c).grad,
                                   numerical_grad(f, x), atol=FD_ATOL)


def test_low_precision_logits_are_evaluated_exactly_in_float64():
    x, y = problem((5, 9), ignore=None, seed=7)
    for dtype in (np.float32, np.float16):
        low = x.astype(dtype)
        s = spec(reduction="none")
        got, exact = reference.loss_and_grad(low, y.astype(np.int32), s), reference.loss_and_grad(low.astype(np.float64), y, s)
        np.testing.assert_array_equal(got.value, exact.value)
        np.testing.assert_array_equal(got.grad, exact.grad)
        assert got.grad.dtype == np.float64


def test_grad_out_receives_the_gradient_in_its_own_dtype():
    x, y = problem((6, 5), seed=8)
    s = spec(reduction="mean", ignore_index=-100)
    expected = reference.loss_and_grad(x, y, s)
    out32 = np.full(x.shape, np.nan, dtype=np.float32)
    got = reference.loss_and_grad(x, y, s, grad_out=out32)
    assert got.grad is out32 and got.value == expected.value
    np.testing.assert_array_equal(out32, expected.grad.astype(np.float32))
    strided = np.zeros((6, 10))[:, ::2]
    reference.loss_and_grad(x, y, s, grad_out=strided)
    np.testing.assert_array_equal(strided, expected.grad)
    xn, yn = problem((2, 5, 3), seed=8)
    out = np.empty((2, 5, 3))
    np.testing.assert_array_equal(reference.loss_and_grad(xn, yn, s, grad_out=out).grad,
                                  reference.loss_and_grad(xn, yn, s).grad)


def test_inputs_are_left_unchanged():
    x, y = problem((4, 6), seed=10)
    x0, y0 = x.copy(), y.copy()
    for convention, form in FORMS:
        reference.loss_and_grad(x, y, spec(convention, form, "sum", ignore_index=-100))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_scalar_results_are_python_floats_and_none_is_float64():
    x, y = problem((4, 6), ignore=None, seed=11)
    assert type(reference.loss(x, y, spec(reduction="sum"))) is float
    value = reference.loss(x, y, spec(reduction="none", ignore_index=-100))
    assert value.dtype == np.float64 and value.shape == (4,)


def test_importing_reference_does_not_import_torch():
    code = "import reference, reference.bench, sys; assert 'torch' not in sys.modules, 'torch imported'"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert done.returncode == 0, done.stderr


def test_a_forked_child_can_still_use_the_thread_pool():
    import multiprocessing

    x, y = problem((64, 5), seed=12)
    s = spec(reduction="sum", ignore_index=-100)
    expected = reference.loss(x, y, s, chunk_elems=5)  # starts the pool in the parent
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(reference.loss, (x, y, s), {"chunk_elems": 5}).get(timeout=10)
    assert got == expected
