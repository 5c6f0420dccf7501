"""Row-block kernels: per-row loss values and the final gradient of one block of rows.

Every kernel works on a (n, K) block in float64, row by row in the sense that no row's
result depends on which other rows share its block: reductions run along the contiguous
class axis of float64 arrays only (NumPy's pairwise sum over one row), so the results are
bit-identical whatever the chunk size. The gradient is written into `g`, a float64 (n, K)
workspace that also serves as scratch when no gradient is wanted (r is None).

r is the per-row (or, for bce with reduction 'none', per-element) factor
cotangent / denominator; ignored rows are zeroed explicitly, never by multiplying.
Kernels run inside one np.errstate that silences the inf / nan arithmetic of masked
(-inf) logits, which they then handle explicitly.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, xlogy

from .targets import weighted_neg_entropy


def _shifted(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """g = x - rowmax(x) in float64 (one pass); returns the float64 row maxima used."""
    m = x.max(axis=1).astype(np.float64)  # exact in the input dtype
    finite = np.isfinite(m)
    if not finite.all():  # an all -inf row: shift by 0 (the row comes out nan, see core)
        m[~finite & (m < 0)] = 0.0
    np.subtract(x, m[:, None], out=g)
    return m


def _masked_dot(wq_row: np.ndarray, z_row: np.ndarray) -> float:
    """sum wq * z with 0 * (-inf) = 0: a class with no target mass contributes nothing."""
    return float(np.where(wq_row == 0.0, 0.0, wq_row * z_row).sum())


def categorical_index(p, x, y, kept, r, g, form_kl: bool) -> np.ndarray:
    """CE / KL rows for class-index targets, q = a onehot(y) + b u (targets.Structured).

    value = s log S - sum_c w_c q_c z'_c with z' = z - max, S = sum exp z', s = sum w q
    grad  = r * (s p - w q)
    """
    st, w, v = p.structured, p.weight, p.v
    n = x.shape[0]
    rows = np.arange(n)
    yc = y if kept is None else np.where(kept, y, 0)  # a safe column for ignored rows
    m = _shifted(x, g)
    z_y = g[rows, yc]
    w_y = 1.0 if w is None else w[yc]
    s = np.broadcast_to(st.a * w_y + st.b * p.vsum, (n,))  # sum_c w_c q_c per row
    dot = (st.a * w_y) * z_y
    if st.b != 0.0:
        vz = g.sum(axis=1) if v is None else np.multiply(g, v).sum(axis=1)
        dot = dot + st.b * vz
    np.exp(g, out=g)
    S = g.sum(axis=1)
    value = s * np.log(S) - dot
    bad = ~np.isfinite(dot)
    if kept is not None:
        bad &= kept
    for i in np.flatnonzero(bad):  # -inf logits: recompute the dot without 0 * inf
        q = p.q_row(int(yc[i]))
        wq = q if w is None else w * q
        z = x[i].astype(np.float64) - m[i]
        value[i] = s[i] * np.log(S[i]) - _masked_dot(wq, z)
    if form_kl:
        value = value + weighted_neg_entropy(p.K, yc, w, st)
    if kept is not None:
        value = np.where(kept, value, 0.0)
    if r is not None:
        g *= (r * s / S)[:, None]
        if st.b != 0.0:
            beta = r * st.b
            if v is None:
                g -= beta[:, None]
            else:
                g -= np.multiply.outer(beta, v)
        g[rows, yc] -= r * (st.a * w_y)
        if kept is not None and not kept.all():
            g[~kept] = 0.0
    return value


def categorical_probs(p, x, t, r, g, form_kl: bool) -> np.ndarray:
    """CE / KL rows for probability targets: q = t (1 - eps) + eps / K (PyTorch)."""
    eps, K, w = p.spec.eps, p.K, p.weight
    q = t.astype(np.float64) * (1.0 - eps) + eps / K
    wq = q if w is None else q * w
    s = wq.sum(axis=1)
    m = _shifted(x, g)
    dot = np.multiply(wq, g).sum(axis=1)
    np.exp(g, out=g)
    S = g.sum(axis=1)
    value = s * np.log(S) - dot
    for i in np.flatnonzero(~np.isfinite(dot)):
        z = x[i].astype(np.float64) - m[i]
        value[i] = s[i] * np.log(S[i]) - _masked_dot(wq[i], z)
    if form_kl:
        plogp = xlogy(q, q)
        value = value + (plogp if w is None else plogp * w).sum(axis=1)
    if r is not None:
        g *= (r * s / S)[:, None]
        g -= wq * r[:, None]
    return value


def binary(p, x, y, kept, t_given, r, g, elements: np.ndarray | None) -> np.ndarray:
    """BCE per element: w_c [t softplus(-x) + (1 - t) softplus(x)], grad w (sigmoid(x) - t).

    Targets: t = onehot(y) (1 - eps) + eps / share, or the given labels t_given smoothed
    the same way; share = 2 (binary, Keras) or K (binary_classwise, timm).
    elements: if given, receives the per-element losses (reduction 'none').
    """
    eps, K, w = p.spec.eps, p.K, p.weight
    share = 2.0 if p.spec.convention == "binary" else float(K)
    n = x.shape[0]
    if t_given is None:
        t = np.full((n, K), eps / share)
        yc = y if kept is None else np.where(kept, y, 0)
        t[np.arange(n), yc] += 1.0 - eps
    else:
        t = t_given.astype(np.float64) * (1.0 - eps) + eps / share
    xf = np.asarray(x, dtype=np.float64)
    softplus = np.logaddexp(0.0, xf)
    el = softplus - t * xf
    odd = ~np.isfinite(xf)
    if odd.any():  # +-inf logits: t log sigmoid(x) with 0 * inf = 0
        xs, ts = xf[odd], t[odd]
        pos = np.where(ts == 0.0, 0.0, ts * np.logaddexp(0.0, -xs))
        neg = np.where(ts == 1.0, 0.0, (1.0 - ts) * np.logaddexp(0.0, xs))
        el[odd] = pos + neg
    if w is not None:
        el *= w
    if kept is not None and not kept.all():
        el[~kept] = 0.0
    if elements is not None:
        elements[...] = el
    if r is not None:
        expit(xf, out=g)
        g -= t
        if w is not None:
            g *= w
        g *= r if r.ndim == 2 else r[:, None]
        if kept is not None and not kept.all():
            g[~kept] = 0.0
    return el.sum(axis=1)
