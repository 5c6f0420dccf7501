"""Hypothesis strategies for label-smoothing inputs: where the bugs live, not randn.

Small public functions with keyword-only arguments, validated first, bounded defaults
(after hypothesis.extra.numpy). Arrays are float64/int64 NumPy; checks turn them into
tensors. `samples` draws one whole input (shape, targets, weights, eps, logits) for an
implementation record and labels every draw, so a failure prints a copy-pasteable repro
(`Sample.literal`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsuite.inputs.adversarial import CONFIDENT_MISSES, EXTREME, LOGIT_KINDS, adversarial_logits
from lsuite.inputs.cases import IN_RANGE_IGNORE, LAYOUTS, ND_SPATIAL, NEGATIVE_IGNORE
from lsuite.record.records import Impl

IGNORE_MODES = {"none": None, "negative": NEGATIVE_IGNORE, "in_range": IN_RANGE_IGNORE}
_SPECIAL_EPS = (0.0, 1e-6, 1e-3, 0.1, 0.5, 1.0)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def num_classes(*, min_value: int = 2, max_value: int = 16) -> st.SearchStrategy[int]:
    """Vocabulary sizes K, shrinking towards `min_value`.

    min_value: smallest K (>= 2: one class leaves nothing to smooth over).
    max_value: largest K (<= 4096: Hypothesis draws every logit).
    """
    _check(2 <= min_value <= max_value <= 4096, f"need 2 <= min_value <= max_value <= 4096, "
           f"got {min_value}, {max_value}")
    return st.integers(min_value, max_value)


def smoothing(*, min_value: float = 0.0, max_value: float = 1.0,
              exclude_min: bool = False, exclude_max: bool = False) -> st.SearchStrategy[float]:
    """Smoothing strengths eps: the special values (0, 1e-6, 1e-3, 0.1, 0.5, 1) or any float.

    min_value: smallest eps (>= 0).
    max_value: largest eps (<= 1).
    exclude_min: leave `min_value` itself out (for recipes that assert 0 < eps).
    exclude_max: leave `max_value` itself out (for libraries that assert eps < 1).
    """
    _check(0.0 <= min_value <= max_value <= 1.0, f"need 0 <= min_value <= max_value <= 1, "
           f"got {min_value}, {max_value}")
    _check(not ((exclude_min or exclude_max) and min_value == max_value),
           "exclude_min/exclude_max leave nothing to draw")
    special = [e for e in _SPECIAL_EPS if min_value <= e <= max_value
               and not (exclude_min and e == min_value) and not (exclude_max and e == max_value)]
    floats = st.floats(min_value, max_value, exclude_min=exclude_min, exclude_max=exclude_max)
    return st.sampled_from(special) | floats if special else floats


def shapes(*, num_classes: int, layout: str = "2d", max_rows: int = 6,
           max_spatial: int = ND_SPATIAL[0]) -> st.SearchStrategy[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(logits shape, class-index target shape) in one layout.

    num_classes: K, on dim 1 (dim 0 when unbatched).
    layout: "2d" (N, K), "nd" (N, K, d1, d2) or "unbatched" (K,) with a 0-d target.
    max_rows: largest N (>= 1).
    max_spatial: largest d1 and d2 (>= 1).
    """
    _check(layout in LAYOUTS, f"layout {layout!r} is not one of {LAYOUTS}")
    _check(num_classes >= 1 and max_rows >= 1 and max_spatial >= 1,
           "num_classes, max_rows and max_spatial must be >= 1")
    if layout == "unbatched":
        return st.just(((num_classes,), ()))
    rows = st.integers(1, max_rows)
    if layout == "2d":
        return rows.map(lambda n: ((n, num_classes), (n,)))
    side = st.integers(1, max_spatial)
    return st.tuples(rows, side, side).map(
        lambda t: ((t[0], num_classes, t[1], t[2]), (t[0], t[1], t[2])))


def class_targets(*, num_classes: int, shape: tuple[int, ...], ignore_index: int | None = None,
                  all_ignored: bool = True) -> st.SearchStrategy[np.ndarray]:
    """int64 class indices in [0, K), some equal to `ignore_index` when it is given.

    num_classes: K.
    shape: the target's shape (() for an unbatched input).
    ignore_index: the value marking ignored entries; None: none ignored.
    all_ignored: allow every entry to be ignored (PyTorch's mean is then NaN).
    """
    _check(num_classes >= 1, "num_classes must be >= 1")
    classes = st.integers(0, num_classes - 1)
    if ignore_index is not None and shape != ():
        classes = classes | st.just(ignore_index)
    target = hnp.arrays(np.int64, shape, elements=classes)
    if ignore_index is not None and not all_ignored:
        target = target.filter(lambda t: t.size == 0 or bool((t != ignore_index).any()))
    return target


def class_weights(*, num_classes: int, allow_zero: bool = True,
                  max_value: float = 4.0) -> st.SearchStrategy[np.ndarray]:
    """float64 (K,) non-negative class weights, at least one positive.

    num_classes: K.
    allow_zero: draw zero weights (a class switched off) as well.
    max_value: largest weight (> 0).
    """
    _check(num_classes >= 1 and max_value > 0, "need num_classes >= 1 and max_value > 0")
    low = st.just(0.0) | st.floats(1e-3, max_value) if allow_zero else st.floats(1e-3, max_value)
    return hnp.arrays(np.float64, (num_classes,), elements=st.sampled_from([1.0, 0.5, 2.0]) | low
                      ).filter(lambda w: bool((w > 0).any()))


def logits(*, target: np.ndarray, num_classes: int, kind: str = "ordinary",
           ignore_index: int | None = None, max_magnitude: float = EXTREME,
           never_mask: tuple[int, ...] = ()) -> st.SearchStrategy[np.ndarray]:
    """float64 logits for class-index targets, classes on dim 1 (dim 0 when unbatched).

    target: the class-index target the logits go with (shape without the class dim).
    num_classes: K.
    kind: a logit kind of lsuite/inputs/adversarial.py, its parameters drawn here: "ordinary"
        (|z| <= 10), "confident" (1 - p(true class) in CONFIDENT_MISSES), "extreme" (|z| up
        to `max_magnitude`) or "masked" (some -inf classes, never a row's target, never on
        ignored rows).
    ignore_index: entries of `target` that are ignored (masked kind leaves their rows finite).
    max_magnitude: bound on |z| for the extreme kind (> 10).
    never_mask: classes the masked kind keeps finite (e.g. a padding column).
    """
    _check(kind in LOGIT_KINDS, f"kind {kind!r} is not one of {LOGIT_KINDS}")
    _check(max_magnitude > 10, "max_magnitude must be > 10")
    target = np.asarray(target)
    rows = (1 if target.ndim == 0 else int(np.prod(target.shape)), num_classes)
    flat = target.reshape(-1)
    kept = flat != ignore_index if ignore_index is not None else np.ones(flat.shape, bool)
    is_target = np.arange(num_classes) == np.where(kept, flat, 0)[:, None]

    def arrange(row_logits: np.ndarray) -> np.ndarray:
        if target.ndim == 0:
            return row_logits[0]
        spatial = target.shape[1:]
        return np.moveaxis(row_logits.reshape(target.shape[0], *spatial, num_classes), -1, 1)

    def build(args) -> np.ndarray:
        base, miss, mask = args
        if mask is not None:
            mask = mask & kept[:, None]
            mask[:, list(never_mask)] = False
        return arrange(adversarial_logits(kind, base, is_target, miss=miss,
                                          magnitude=max_magnitude, mask=mask))

    elements = {"ordinary": st.floats(-10, 10, allow_subnormal=False),
                "masked": st.floats(-10, 10, allow_subnormal=False),
                "confident": st.floats(-3, 3),
                "extreme": st.sampled_from([-1.0, -0.1, 0.0, 0.1, 1.0]) | st.floats(
                    -1, 1, allow_subnormal=False)}[kind]
    miss = st.sampled_from(CONFIDENT_MISSES) if kind == "confident" else st.just(CONFIDENT_MISSES[-1])
    mask = hnp.arrays(bool, rows) if kind == "masked" else st.none()
    return st.tuples(hnp.arrays(np.float64, rows, elements=elements), miss, mask).map(build)


# ---------------------------------------------------------------------------------------------
# One whole input for an implementation record.

@dataclass(frozen=True)
class Sample:
    """One drawn input: what a check feeds the implementation (class-index targets)."""

    logits: np.ndarray  # float64, classes on dim 1 (dim 0 unbatched)
    target: np.ndarray  # int64
    weight: np.ndarray | None  # float64 (K,) or None: not passed
    eps: float
    ignore: str  # "none", "negative", "in_range": which ignore_index is passed (cases.py)
    layout: str
    kind: str  # logit kind

    @property
    def K(self) -> int:
        return self.logits.shape[0 if self.logits.ndim == 1 else 1]

    @property
    def N(self) -> int:
        return 1 if self.logits.ndim == 1 else self.logits.shape[0]

    @property
    def ignore_index(self) -> int | None:
        return IGNORE_MODES[self.ignore]

    def literal(self, call: str = "loss_fn(logits, target)") -> str:
        """Copy-pasteable Python that rebuilds these tensors and makes the call."""
        weight = "None" if self.weight is None else _tensor(self.weight, "torch.float64")
        return (f"import torch\nlogits = {_tensor(self.logits, 'torch.float64')}.requires_grad_()\n"
                f"target = {_tensor(self.target, 'torch.int64')}\nweight = {weight}\n"
                f"eps = {self.eps!r}; ignore_index = {self.ignore_index!r}\n{call}")


def _tensor(array: np.ndarray, dtype: str) -> str:
    return f"torch.tensor({_pylist(np.asarray(array))}, dtype={dtype})"


def _pylist(array: np.ndarray) -> str:
    if array.ndim == 0:
        value = array.item()
        if isinstance(value, float) and not np.isfinite(value):
            return f"float('{value}')"
        return repr(value)
    return "[" + ", ".join(_pylist(a) for a in array) + "]"


def eps_for(impl: Impl, *, max_value: float | None = None) -> st.SearchStrategy[float]:
    """The smoothing strengths an implementation record claims to support.

    impl: the record (eps_min, eps_min_inclusive, eps_max, eps_max_inclusive).
    max_value: a further upper bound, None: the record's eps_max.
    """
    top = impl.eps_max if max_value is None else min(max_value, impl.eps_max)
    return smoothing(min_value=impl.eps_min, max_value=top, exclude_min=not impl.eps_min_inclusive,
                     exclude_max=top == impl.eps_max and not impl.eps_max_inclusive)


@st.composite
def _samples(draw, impl: Impl, layouts, kinds, ignores, min_classes, max_classes, max_rows,
              eps, weighted):
    layout = draw(st.sampled_from(layouts), label="layout")
    K = draw(num_classes(min_value=min_classes, max_value=max_classes), label="K")
    logits_shape, target_shape = draw(shapes(num_classes=K, layout=layout, max_rows=max_rows),
                                      label="shape")
    allowed = [m for m in ignores if m == "none" or impl.ignore_index and m in impl.ignore_indices]
    ignore = draw(st.sampled_from(allowed), label="ignore")
    if ignore == "in_range" and K <= IN_RANGE_IGNORE:
        ignore = "none"
    ignore_index = IGNORE_MODES[ignore]
    target = draw(class_targets(num_classes=K, shape=target_shape, ignore_index=ignore_index),
                  label="target")
    weight = None
    if weighted is False and impl.requires_weights:
        weight = np.ones(K)  # unit weights: the recipe always passes some
    elif impl.requires_weights or (impl.weights and weighted is not False and
                                   (weighted or draw(st.booleans(), label="weighted"))):
        weight = draw(class_weights(num_classes=K), label="weight")
    eps_value = draw(eps if eps is not None else eps_for(impl), label="eps")
    kind = draw(st.sampled_from(kinds), label="kind")
    protect = tuple(c for c in (ignore_index, impl.default_ignore_index)
                    if c is not None and 0 <= c < K)
    if impl.pad_index_is_ignore_index and impl.default_ignore_index is not None:
        protect += (impl.default_ignore_index % K,)  # the forum recipe zeroes one_hot[-100]
    z = draw(logits(target=target, num_classes=K, kind=kind, ignore_index=ignore_index,
                    never_mask=protect), label="logits")
    sample = Sample(z, target, weight, eps_value, ignore, layout, kind)
    note(f"drawn input:\n{sample.literal()}")
    return sample


def samples(*, impl: Impl, layouts: tuple[str, ...] | None = None,
             kinds: tuple[str, ...] = LOGIT_KINDS, ignores: tuple[str, ...] = tuple(IGNORE_MODES),
             min_classes: int = 2, max_classes: int = 12, max_rows: int = 6,
             eps: st.SearchStrategy[float] | None = None,
             weighted: bool | None = None) -> st.SearchStrategy[Sample]:
    """Whole inputs an implementation record claims to support, every draw labelled.

    impl: the record; its nd, unbatched, ignore_index, weights, requires_weights and eps
        range bound what is drawn.
    layouts: layouts to draw from (default: 2d plus what the record supports).
    kinds: logit kinds to draw from (see `logits`).
    ignores: ignore modes to draw from ("none", "negative", "in_range").
    min_classes: smallest K (>= 2).
    max_classes: largest K.
    max_rows: largest N.
    eps: a smoothing strategy, None: `eps_for(impl)`.
    weighted: True always passes class weights, False never (unit weights where the record
        requires them), None draws (where supported).
    """
    if layouts is None:
        layouts = ("2d",) + (("nd",) if impl.nd else ()) + (("unbatched",) if impl.unbatched else ())
    _check(bool(layouts) and set(layouts) <= set(LAYOUTS), f"layouts must be a subset of {LAYOUTS}")
    _check(bool(kinds) and set(kinds) <= set(LOGIT_KINDS), f"kinds must be a subset of {LOGIT_KINDS}")
    _check(bool(ignores) and set(ignores) <= set(IGNORE_MODES),
           f"ignores must be a subset of {tuple(IGNORE_MODES)}")
    _check(2 <= min_classes <= max_classes, "need 2 <= min_classes <= max_classes")
    if impl.convention == "padding_excluded":  # eps/(K-2): K = 2 leaves nothing to smooth over
        min_classes, max_classes = max(min_classes, 3), max(max_classes, 3)
    return _samples(impl, tuple(layouts), tuple(kinds), tuple(ignores), min_classes, max_classes,
                     max_rows, eps, weighted)
