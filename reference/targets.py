"""Target distributions (docs/specification.md §1) and their entropy.

For class-index targets every categorical convention has the shape
    q = a * onehot(y) + b * u
with u = ones, or ones with a zero in the padding column (padding_excluded with a pad_index).
The loss kernels use (a, b, u) so that they never build q row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import entr, xlogy

from .spec import Spec, check_classes


@dataclass(frozen=True)
class Structured:
    """q = a * onehot(y) + b * u for a categorical convention with class-index targets."""

    a: float  # extra mass on the true class
    b: float  # mass on every class where u = 1
    q_true: float  # q_y, computed directly (not as a + b) so that it is exact
    u: np.ndarray | None  # (K,) 0/1 float64, or None for all ones


def structured(spec: Spec, num_classes: int) -> Structured:
    K, eps = num_classes, spec.eps
    if spec.convention == "inclusive":
        return Structured(a=1.0 - eps, b=eps / K, q_true=1.0 - eps + eps / K, u=None)
    pad = spec.pad_index if spec.convention == "padding_excluded" else None
    others = K - 1 if pad is None else K - 2
    b = eps / others if others > 0 else 0.0  # others == 0 only with eps == 0 (check_classes)
    u = None
    if pad is not None:
        u = np.ones(K)
        u[pad] = 0.0
    return Structured(a=1.0 - eps - b, b=b, q_true=1.0 - eps, u=u)


def check_class(spec: Spec, num_classes: int, target_class: int) -> None:
    if not 0 <= target_class < num_classes:
        fix = ("pass a class index or set Spec.ignore_index to ignore such rows" if spec.ignore_index is None
               else f"pass a class index or the ignore_index {spec.ignore_index}")
        raise ValueError(f"target class {target_class} is outside [0, {num_classes}): {fix}")
    if spec.convention == "padding_excluded" and target_class == spec.pad_index:
        raise ValueError(f"target class {target_class} is the padding column pad_index="
                         f"{spec.pad_index}, which gets no mass: make it the ignore_index too")


def target_distribution(spec: Spec, num_classes: int, target_class: int) -> np.ndarray:
    """The (K,) float64 target row q for one class-index target, before class weights.

    For the binary conventions: the per-element targets t. A target equal to
    spec.ignore_index (an ignored row) gives zeros. Raises ValueError for a class
    outside [0, K) or (padding_excluded) the padding column.
    """
    K = int(num_classes)
    check_classes(spec, K)
    y = int(target_class)
    if spec.ignore_index is not None and y == spec.ignore_index:
        return np.zeros(K)
    check_class(spec, K, y)
    eps = spec.eps
    if spec.convention in ("binary", "binary_classwise"):
        share = 2 if spec.convention == "binary" else K
        t = np.full(K, eps / share)
        t[y] = (1.0 - eps) + eps / share
        return t
    s = structured(spec, K)
    q = np.full(K, s.b) if s.u is None else s.b * s.u
    q[y] = s.q_true
    return q


def entropy(q):
    """H(q) = -sum q log q over the last axis, with 0 log 0 = 0 (float for a 1-D q)."""
    h = entr(np.asarray(q, dtype=np.float64)).sum(axis=-1)
    return float(h) if np.ndim(h) == 0 else h


def weighted_neg_entropy(num_classes: int, y: np.ndarray, w: np.ndarray | None,
                         s: Structured) -> np.ndarray:
    """sum_c w_c q_c log q_c per row for structured q (the KL offset), rows given by y."""
    K = num_classes
    u = np.ones(K) if s.u is None else s.u
    v = u if w is None else w * u
    v_y = v[y]
    w_y = 1.0 if w is None else w[y]
    # the true class holds q_true; every other class c holds b * u_c
    other = xlogy(s.b, s.b) * (v.sum() - v_y)
    return w_y * xlogy(s.q_true, s.q_true) + other
